"""Schema migrations: one Alembic branch per feature package, all upgraded together to ``heads``.

A package takes part by having a ``migrations`` folder with revision files; its first revision carries
``branch_labels = ("<package>",)`` and ``depends_on`` the revisions it needs (at least the directory's
base). Packages are listed here once, in no particular order; Alembic works out the graph.
"""

from __future__ import annotations

import importlib
import importlib.util
from pathlib import Path

from alembic import command
from alembic.config import Config

from callto.store.database import Database

MIGRATING_PACKAGES = (
    "callto.directory",
    "callto.switchboard",
    "callto.trunks",
    "callto.dialer",
    "callto.phonebook",
    "callto.history",
    "callto.provisioning",
    "callto.integrations",
)


def version_locations() -> list[str]:
    found = []
    for name in MIGRATING_PACKAGES:
        spec = importlib.util.find_spec(name)
        if spec is None or not spec.submodule_search_locations:
            continue
        folder = Path(next(iter(spec.submodule_search_locations))) / "migrations"
        if folder.is_dir() and any(folder.glob("*.py")):
            found.append(str(folder))
    return found


def alembic_config(db: Database) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "alembic"))
    cfg.set_main_option("version_locations", " ".join(version_locations()))
    cfg.set_main_option("path_separator", "space")
    cfg.attributes["database"] = db
    return cfg


def upgrade(db: Database) -> None:
    """Bring the schema to the newest revision of every branch (idempotent)."""
    command.upgrade(alembic_config(db), "heads")


def import_models() -> None:
    """Import every package's models so ``Base.metadata`` knows all tables (for autogenerate)."""
    for name in MIGRATING_PACKAGES:
        try:
            importlib.import_module(f"{name}.models")
        except ModuleNotFoundError as exc:
            if exc.name not in (name, f"{name}.models"):
                raise
