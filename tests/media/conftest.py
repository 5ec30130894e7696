"""The media tests use the shared harness fixtures that tests/conftest.py imports from ``support.fixtures``."""
