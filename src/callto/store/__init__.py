"""Storage: the SQLAlchemy engine, sessions, the declarative base and schema migrations.

Every feature package declares its tables on :class:`Base` in its own ``models.py`` and ships its own
Alembic migrations in ``<package>/migrations/`` (one branch per package, see :mod:`callto.store.migrate`).
Other packages reach a feature's data through that feature's service, never its tables.
"""

from callto.store.database import Base, Database

__all__ = ["Base", "Database"]
