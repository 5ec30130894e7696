"""Opening the server's data for an administration command: never creates anything, says what it uses."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from callto.config import Settings
from callto.ops.checks import database_label, require_initialized

if TYPE_CHECKING:
    from callto.app import Services


def describe(settings: Settings) -> str:
    return f"data folder {settings.data_dir}, database {database_label(settings)}"


def open_services(settings: Settings, *, quiet: bool = False) -> Services:
    """The services on an existing data folder and database (OpsError when there is none: ``callto init``).

    Prints which data folder and database it works on to stderr (stdout stays for the command's output)."""
    from callto.app import build_services

    require_initialized(settings)
    if not quiet:
        print(f"callto: using {describe(settings)}", file=sys.stderr)
    return build_services(settings)
