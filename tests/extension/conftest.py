"""The extension's fixtures (shared with tests/integrations/test_extension.py): the built packages
(extension/build.sh when the sources are newer), a real server, Debian's Chromium with the extension."""

from __future__ import annotations

from integrations.test_extension import (  # noqa: F401  (fixtures)
    chromium_with_extension,
    extension_dir,
    sqlite_server,
)
