"""The switch's tables moved from ``callto.sip`` to ``callto.switchboard`` with their revision ids: a
database migrated by the old layout is at the new layout's heads and upgrading it runs nothing again."""

from __future__ import annotations

from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import text

from callto.store import migrate
from callto.store.database import Database


def _script(db: Database) -> ScriptDirectory:
    return ScriptDirectory.from_config(migrate.alembic_config(db))


def test_switch_revisions_keep_their_ids_and_branch_after_the_move(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'ids.db'}")
    try:
        script = _script(db)
        first, second = script.get_revision("s0001"), script.get_revision("s0002")
        assert first is not None and second is not None
        assert first.branch_labels == {"sip"}
        assert first.dependencies == "d0001" and second.down_revision == "s0001"
        assert Path(first.path).parent.parent.name == "switchboard"
        assert not (Path(migrate.__file__).parents[1] / "sip" / "migrations").exists()
    finally:
        db.dispose()


def test_a_database_at_the_old_heads_is_current_and_its_tables_stay(tmp_path: Path) -> None:
    """The revision rows an old-layout database holds (its heads, ``s0002`` among them) are this layout's
    heads: ``upgrade`` finds nothing to run, and the SIP tables it made are kept as they are."""
    db = Database(f"sqlite:///{tmp_path / 'old.db'}")
    try:
        migrate.upgrade(db)
        with db.engine.begin() as conn:
            heads = {r[0] for r in conn.execute(text("select version_num from alembic_version"))}
            conn.execute(text("insert into sip_nodes (node, beat) values ('a', 7)"))
        assert "s0002" in heads
        assert heads == set(_script(db).get_heads())
        migrate.upgrade(db)  # a second start: nothing re-runs (a re-run create_table would fail)
        with db.engine.connect() as conn:
            assert {r[0] for r in conn.execute(text("select version_num from alembic_version"))} == heads
            assert conn.execute(text("select beat from sip_nodes where node = 'a'")).scalar() == 7
    finally:
        db.dispose()
