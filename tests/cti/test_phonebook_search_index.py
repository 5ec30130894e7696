"""Phonebook search on its token index, at the service (what GET /api/v1/phonebook?q= calls), on SQLite and
PostgreSQL: word prefixes, several words, number fragments in any format, privacy, name order and pages on
each of the three query plans (token by token, sorting the rarest term's matches, walking contacts in name
order), the index kept up to date by edits, deletions and imports (including the rebuild of a big import),
and migration pb0002."""

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from alembic import command
from sqlalchemy import insert, inspect, text

from callto.directory.models import User
from callto.events.bus import EventBus
from callto.phonebook import service as service_module
from callto.phonebook.numbers import query_terms
from callto.phonebook.schemas import ContactIn, ContactPatch, NumberIn, NumberType
from callto.phonebook.service import PhonebookService, sort_key
from callto.store import migrate
from callto.store.database import Database

ALICE, BOB = 701, 702
# (FEW_TOKENS, SORT_LIMIT) forcing each of the three query plans of PhonebookService._page_by_tokens.
PLANS = {"token-by-token": (10**6, 0), "sort": (0, 10**9), "walk": (0, 0)}


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    migrate.upgrade(database)
    _add_users(database)
    yield database
    database.dispose()


def _add_users(database: Database) -> None:
    with database.session() as s:
        s.execute(insert(User), [
            {"id": uid, "username": f"u{uid}", "display_name": f"U {uid}", "role": "user", "outbound": "any",
             "password_hash": "x", "dnd": False, "totp_enabled": False, "token_version": 0}
            for uid in (ALICE, BOB)
        ])


@pytest.fixture(params=list(PLANS))
def plan(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    few_tokens, sort_limit = PLANS[request.param]
    monkeypatch.setattr(service_module, "FEW_TOKENS", few_tokens)
    monkeypatch.setattr(service_module, "SORT_LIMIT", sort_limit)
    return str(request.param)


def _contact(name: str, company: str = "", *numbers: str, email: str = "", shared: bool = False) -> ContactIn:
    return ContactIn(name=name, company=company, email=email, shared=shared,
                     numbers=[NumberIn(type=NumberType.work, number=n) for n in numbers])


def _names(pb: PhonebookService, user: int, query: str, limit: int = 50) -> list[str]:
    return [c.name for c in pb.search(user, query, limit)[0]]


def _all_pages(pb: PhonebookService, user: int, query: str, limit: int) -> list[int]:
    seen: list[int] = []
    cursor = None
    for _ in range(1000):
        page, cursor = pb.search(user, query, limit, cursor)
        seen += [c.id for c in page]
        if cursor is None:
            return seen
    raise AssertionError("the cursor never ended")


PEOPLE = [
    _contact("Mario Rossi", "ACME Idraulica", "+39 0721 40 55 16", "333 123 4567", email="mario@example.it",
             shared=True),
    _contact("Maria Rossini", "Studio Bàrberi", "0541 222333", shared=True),
    _contact("Luigi Verdi", "ACME Spa", "+39 02 1234 5678", shared=True),
    _contact("Niccolò Ferrari", "", "06 555 1234", shared=True),
    _contact("", "Caffè Società", "0721 999 111", shared=True),
    _contact("Marco De-Luca", "Ottica Rossi", "+49 30 1234567", shared=True),
]


def test_words_match_by_prefix_every_word_must_match_and_results_come_in_name_order(
    db: Database, plan: str
) -> None:
    pb = PhonebookService(db, EventBus())
    pb.bulk_create(None, PEOPLE)
    assert _names(pb, ALICE, "ros") == ["Marco De-Luca", "Maria Rossini", "Mario Rossi"]
    assert _names(pb, ALICE, "rossi") == ["Marco De-Luca", "Maria Rossini", "Mario Rossi"]
    assert _names(pb, ALICE, "mari") == ["Maria Rossini", "Mario Rossi"]
    assert _names(pb, ALICE, "mario ros") == ["Mario Rossi"]
    assert _names(pb, ALICE, "ROS MAR") == ["Marco De-Luca", "Maria Rossini", "Mario Rossi"]
    assert _names(pb, ALICE, "acme") == ["Luigi Verdi", "Mario Rossi"]
    assert _names(pb, ALICE, "acme idr") == ["Mario Rossi"]
    assert _names(pb, ALICE, "barberi") == ["Maria Rossini"]  # accents folded on both sides
    assert _names(pb, ALICE, "Società") == ["Caffè Società"]
    assert _names(pb, ALICE, "nicco") == ["Niccolò Ferrari"]
    assert _names(pb, ALICE, "de-lu") == ["Marco De-Luca"]
    assert _names(pb, ALICE, "mario@exa") == ["Mario Rossi"]
    # A word matches from its start only, and every word of the query must match the same contact.
    for query in ("ossi", "mario verdi", "acme zzz", "rossa", "%", "ros%x"):
        assert _names(pb, ALICE, query) == [], query


def test_number_fragments_find_the_number_whatever_format_either_side_used(db: Database, plan: str) -> None:
    pb = PhonebookService(db, EventBus())
    pb.bulk_create(None, PEOPLE)
    for query in ("0721405516", "0721 405516", "+390721405516", "+39 0721 40 55 16", "0039 0721 405516",
                  "(0721) 40-55-16", "0721.40", "405516", "21405516", "3331234567", "+39 333 123", "123 4567"):
        assert "Mario Rossi" in _names(pb, ALICE, query), query
    assert _names(pb, ALICE, "0541222333") == ["Maria Rossini"]
    assert _names(pb, ALICE, "+39 0541 222") == ["Maria Rossini"]
    assert _names(pb, ALICE, "+49 30 123") == ["Marco De-Luca"]
    assert _names(pb, ALICE, "0721") == ["Caffè Società", "Mario Rossi"]
    assert _names(pb, ALICE, "+39 02 1234") == ["Luigi Verdi"]
    for query in ("0721405517", "39 0721 40 55 16 9", "+39 06 556"):
        assert _names(pb, ALICE, query) == [], query


def test_private_contacts_are_found_only_by_their_owner(db: Database, plan: str) -> None:
    pb = PhonebookService(db, EventBus())
    pb.bulk_create(None, PEOPLE)
    pb.create(ALICE, False, _contact("Mario Segreto", "Rossi Casa", "0721 40 55 17"))
    pb.create(BOB, False, _contact("Mario Bob", "Rossi Bob", "0721 40 55 18"))
    for user, mine, other in ((ALICE, "Mario Segreto", "Mario Bob"), (BOB, "Mario Bob", "Mario Segreto")):
        for query in ("mario", "ros", "mario ros", "07214055", "0721", "", "casa", "bob"):
            found = _names(pb, user, query, 200)
            assert other not in found, (user, query)
        assert mine in _names(pb, user, "mario ros")
        assert _all_pages(pb, user, "", 2) == _all_pages(pb, user, "", 200)
    assert _names(pb, BOB, "segreto") == [] and _names(pb, BOB, "0721405517") == []
    assert [c.name for c in pb.lookup(BOB, "0721 405517")] == []
    assert [c.name for c in pb.lookup(ALICE, "+39 0721 405517")] == ["Mario Segreto"]


def test_search_agrees_with_a_plain_reading_of_the_rules_and_pages_cover_each_match_once(
    db: Database, plan: str
) -> None:
    """Random contacts and queries: the index answers exactly what "every query word prefixes one of the
    contact's words or number forms, visible to the user, in name order" means."""
    rnd = random.Random(11)
    first = ["Mario", "Maria", "Marco", "Luca", "Lucia", "Anna", "Andrea"]
    last = ["Rossi", "Rossini", "Russo", "Romano", "Ricci", "Rizzo"]
    pb = PhonebookService(db, EventBus())
    made: list[tuple[int | None, ContactIn]] = []
    for _ in range(120):
        owner = rnd.choice([None, None, ALICE, BOB])
        c = _contact(f"{rnd.choice(first)} {rnd.choice(last)}", rnd.choice(["ACME", "Ottica Ricci", ""]),
                     f"+39 0{rnd.choice(['721', '2', '541'])} {rnd.randrange(100000, 999999)}")
        made.append((owner, c))
    for owner in (None, ALICE, BOB):
        pb.bulk_create(owner, [c for o, c in made if o == owner])
    everyone = list(pb.iter_visible(ALICE)) + list(pb.iter_visible(BOB, "private"))
    assert len(everyone) == 120

    def expected(user: int, query: str) -> list[int]:
        terms = query_terms(query, pb.country())
        hits = []
        for c in everyone:
            if c.owner_id not in (None, user):
                continue
            tokens = pb._tokens(c.name, c.company, c.email, [n for _, n in c.numbers])
            if all(any(t.startswith(term) for t in tokens) for term in terms):
                hits.append((sort_key(c.name, c.company), c.id))
        return [i for _, i in sorted(hits)]

    numbers = [n for c in everyone for _, n in c.numbers]
    queries = ["m", "mar", "ma ro", "ross", "luc ric", "acme", "ottica r", "r r", "0721", "+39 02", "39"]
    queries += [rnd.choice(numbers)[: rnd.randrange(4, 12)] for _ in range(8)]
    queries += [rnd.choice(numbers).replace(" ", "")[-rnd.randrange(6, 9):] for _ in range(4)]
    for user in (ALICE, BOB):
        for query in queries:
            want = expected(user, query)
            assert [c.id for c in pb.search(user, query, 200)[0]] == want, (plan, user, query)
            assert _all_pages(pb, user, query, 7) == want, (plan, user, query)


def test_edits_deletions_and_imports_keep_the_index_up_to_date(db: Database, plan: str) -> None:
    pb = PhonebookService(db, EventBus())
    [mario] = pb.bulk_create(None, PEOPLE[:1])
    own = pb.create(ALICE, False, _contact("Zorro Vecchio", "", "0541 111222"))
    pb.update(ALICE, False, own.id, ContactPatch(name="Zelda Nuova", numbers=[NumberIn(number="06 9876543")]))
    assert _names(pb, ALICE, "zorro") == [] and _names(pb, ALICE, "0541111222") == []
    assert _names(pb, ALICE, "zelda nuo") == ["Zelda Nuova"] and _names(pb, ALICE, "069876") == ["Zelda Nuova"]
    pb.update(ALICE, True, mario, ContactPatch(company="Nuova Ditta"))
    assert _names(pb, ALICE, "acme") == [] and _names(pb, BOB, "ditta") == ["Mario Rossi"]
    # The sort key changed with the name: the new name order holds in the index too.
    assert _names(pb, ALICE, "nuov") == ["Mario Rossi", "Zelda Nuova"]
    pb.update(ALICE, False, own.id, ContactPatch(name="Alba Nuova"))
    assert _names(pb, ALICE, "nuov") == ["Alba Nuova", "Mario Rossi"]
    pb.delete(ALICE, False, own.id)
    assert _names(pb, ALICE, "alba") == [] and _names(pb, ALICE, "069876") == []
    pb.bulk_create(BOB, [_contact("Imported Person", "", "0721 123123")])
    assert _names(pb, BOB, "impor") == ["Imported Person"] and _names(pb, BOB, "123123") == ["Imported Person"]
    assert _names(pb, ALICE, "impor") == []


def _token_indexes(database: Database) -> set[str]:
    with database.engine.connect() as conn:
        return {str(i["name"]) for i in inspect(conn).get_indexes("pb_tokens")}


def test_a_big_import_rebuilds_the_token_index_and_later_small_ones_update_it(
    db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(service_module, "REBUILD_MIN", 20)
    pb = PhonebookService(db, EventBus())
    rebuilt: list[Any] = []
    real = PhonebookService._rebuild_search_index

    def spy(self: PhonebookService, s: Any, adding: int) -> Any:
        rebuilt.append(real(self, s, adding))
        return rebuilt[-1]

    monkeypatch.setattr(PhonebookService, "_rebuild_search_index", spy)
    pb.bulk_create(None, [_contact(f"Bulk {i:03d}", "Grande", f"0721 {500000 + i}") for i in range(40)])
    pb.bulk_create(None, [_contact(f"Small {i:03d}", "Piccola", f"0541 {500000 + i}") for i in range(25)])
    # Only SQLite drops and rebuilds (PostgreSQL would lock searches out), and only when the import at
    # least doubles the phonebook.
    assert [r is not None for r in rebuilt] == ([True, False] if db.is_sqlite else [False, False])
    assert service_module.TOKEN_INDEX in _token_indexes(db)
    assert _names(pb, ALICE, "bulk 039") == ["Bulk 039"] and _names(pb, ALICE, "0721500039") == ["Bulk 039"]
    assert len(_all_pages(pb, ALICE, "grande", 7)) == 40 and len(_all_pages(pb, ALICE, "0541", 9)) == 25
    # A failing import leaves everything as it was, index included.
    with pytest.raises(ValueError):
        pb.bulk_create(None, [_contact(f"Fail {i}") for i in range(70)], progress=_fail_after_first_batch)
    assert service_module.TOKEN_INDEX in _token_indexes(db) and _names(pb, ALICE, "fail") == []
    assert _names(pb, ALICE, "bulk 039") == ["Bulk 039"]


def _fail_after_first_batch(done: int) -> None:
    raise ValueError(f"stop after {done}")


def test_migrations_index_and_normalize_contacts_stored_before_them(database_url: str) -> None:
    database = Database(database_url)
    try:
        command.upgrade(migrate.alembic_config(database), "pb0001")
        _add_users(database)
        pb = PhonebookService(database, EventBus())
        # Today's service writes pb_numbers.e164 (pb0003); rows of a pb0001 database are written with
        # that column added for the time being, then it is dropped: what an old installation holds.
        with database.engine.begin() as conn:
            conn.execute(text("ALTER TABLE pb_numbers ADD COLUMN e164 VARCHAR(16)"))
        pb.bulk_create(None, PEOPLE)
        pb.create(ALICE, False, _contact("Old Private", "", "0721 777888"))
        with database.engine.begin() as conn:
            conn.execute(text("ALTER TABLE pb_numbers DROP COLUMN e164"))
        assert "ix_pb_tokens_contact_id_token" not in _token_indexes(database)
        migrate.upgrade(database)
        assert {service_module.TOKEN_INDEX, "ix_pb_tokens_contact_id_token"} <= _token_indexes(database)
        assert _names(pb, ALICE, "mario ros") == ["Mario Rossi"]
        assert _names(pb, ALICE, "0721777888") == ["Old Private"] and _names(pb, BOB, "old") == []
        # pb0003 filled in the E.164 form of the numbers stored before it.
        [old] = pb.search(ALICE, "0721777888")[0]
        [number] = old.public()["numbers"]
        assert (number["e164"], number["display"]) == ("+390721777888", "0721 777888")
        command.downgrade(migrate.alembic_config(database), "pb0001")
        assert service_module.TOKEN_INDEX not in _token_indexes(database)
    finally:
        database.dispose()
