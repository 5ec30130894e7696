"""Web CTI tests (Playwright for Python driving Debian Chromium against a real server)."""
