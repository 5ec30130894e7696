"""Alembic environment: runs migrations on the connection of the Database passed in by migrate.py."""

from __future__ import annotations

from alembic import context

from callto.store.database import Base, Database
from callto.store.migrate import import_models

import_models()
db: Database = context.config.attributes["database"]

with db.engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=Base.metadata,
        render_as_batch=db.is_sqlite,
        compare_type=True,
    )
    context.run_migrations()
