"""Phonebook search benchmark: loads 100,000 contacts, then times search-as-you-type queries.

Prints p50 / p99 (milliseconds) per query kind (name prefixes, number fragments in several formats,
two-word queries, next page) on SQLite and, when reachable, PostgreSQL. Usage::

    .venv/bin/python bench/phonebook_search.py [--contacts 100000] [--rounds 200] [--postgres URL]

The PostgreSQL URL defaults to ``$CALLTO_TEST_POSTGRES_URL`` or postgresql+psycopg://postgres@127.0.0.1/test;
the benchmark works in a throw-away schema there and drops it at the end.
"""

from __future__ import annotations

import argparse
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import sqlalchemy

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))

from callto.events.bus import EventBus
from callto.phonebook.schemas import ContactIn, NumberIn, NumberType
from callto.phonebook.service import PhonebookService
from callto.store import migrate
from callto.store.database import Database

FIRST = [
    "Mario", "Luca", "Giulia", "Anna", "Marco", "Francesca", "Paolo", "Sara", "Andrea", "Chiara", "Giovanni",
    "Elena", "Matteo", "Laura", "Davide", "Alessia", "Stefano", "Martina", "Roberto", "Silvia", "Simone",
    "Federica", "Alberto", "Valentina", "Nicola", "Ilaria", "Fabio", "Marta"
]
LAST = [
    "Rossi", "Russo", "Ferrari", "Esposito", "Bianchi", "Romano", "Colombo", "Ricci", "Marino", "Greco", "Bruno",
    "Gallo", "Conti", "De-Luca", "Mancini", "Costa", "Giordano", "Rizzo", "Lombardi", "Moretti", "Barbieri",
    "Fontana", "Santoro", "Mariani", "Rinaldi", "Caruso", "Ferrara", "Galli", "Martini", "Leone", "Longo",
    "Gentile", "Martinelli", "Vitale", "Lombardo", "Serra", "Coppola", "De-Santis", "D'Angelo", "Marchetti"
]
COMPANY = [
    "Acme", "Tecnoservizi", "Idraulica", "Edilnord", "Autofficina", "Farmacia", "Studio", "Alimentari",
    "Logistica", "Ottica"
]
AREAS = ("0721", "02", "06", "011", "051", "055", "081", "0541", "0732", "071")


def make_contacts(count: int, seed: int = 7) -> list[ContactIn]:
    rnd = random.Random(seed)
    out = []
    for i in range(count):
        work = f"+39 {rnd.choice(AREAS)} {rnd.randrange(100000, 9999999)}"
        numbers = [NumberIn(type=NumberType.work, number=work)]
        if i % 2:
            mobile = f"3{rnd.randrange(10, 99)} {rnd.randrange(1000000, 9999999)}"
            numbers.append(NumberIn(type=NumberType.mobile, number=mobile))
        out.append(
            ContactIn(
                name=f"{rnd.choice(FIRST)} {rnd.choice(LAST)}",
                company=f"{rnd.choice(COMPANY)} {rnd.choice(LAST)} {'Srl' if i % 3 else 'Spa'}",
                numbers=numbers,
            )
        )
    return out


@contextmanager
def sqlite_url() -> Iterator[str]:
    with tempfile.TemporaryDirectory() as tmp:
        yield f"sqlite:///{tmp}/bench.db"


@contextmanager
def postgres_url(base: str) -> Iterator[str]:
    schema = "bench_" + secrets.token_hex(4)
    engine = sqlalchemy.create_engine(base)
    with engine.begin() as conn:
        conn.execute(sqlalchemy.text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    try:
        yield f"{base}{sep}options=-csearch_path%3D{schema}"
    finally:
        with engine.begin() as conn:
            conn.execute(sqlalchemy.text(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE'))
        engine.dispose()


def timed(fn: Callable[[], object], rounds: int) -> tuple[float, float]:
    samples = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1000)
    samples.sort()
    return statistics.median(samples), samples[min(len(samples) - 1, int(len(samples) * 0.99))]


def run(label: str, url: str, contacts: list[ContactIn], rounds: int) -> None:
    db = Database(url)
    migrate.upgrade(db)
    with db.engine.begin() as conn:
        conn.execute(
            sqlalchemy.text(
                "INSERT INTO users (username, display_name, role, outbound, password_hash, dnd, totp_enabled,"
                " token_version, created_at, updated_at) VALUES ('bench', 'Bench', 'user', 'national', 'x',"
                " false, false, 0, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
            )
        )
        user_id = int(conn.execute(sqlalchemy.text("SELECT id FROM users WHERE username = 'bench'")).scalar_one())
    service = PhonebookService(db, EventBus())
    t0 = time.perf_counter()
    # One import, as through the API: no ANALYZE of our own. The service VACUUMs (ANALYZE) PostgreSQL after
    # a big import, as autovacuum would a little later; callto never ANALYZEs SQLite, so neither do we.
    service.bulk_create(None, contacts)
    load = time.perf_counter() - t0
    print(f"\n{label}: loaded {len(contacts)} contacts in {load:.1f} s", flush=True)
    rnd = random.Random(1)
    sample = [contacts[rnd.randrange(len(contacts))] for _ in range(rounds)]
    stored = [c.numbers[0].number for c in sample]
    queries: dict[str, Callable[[int], str]] = {
        "name prefix, 1 letter": lambda i: sample[i].name[0],
        "name prefix, 3 letters": lambda i: sample[i].name[:3],
        "surname prefix, 4 letters": lambda i: sample[i].name.split()[1][:4],
        "two words (name + surname prefix)": lambda i: f"{sample[i].name.split()[0]} {sample[i].name.split()[1][:3]}",
        "company word": lambda i: sample[i].company.split()[0][:5],
        "number, national format, whole": lambda i: stored[i][4:].replace(" ", ""),
        "number, +39 with spaces, first 8 digits": lambda i: stored[i][:9],
        "number, area code only": lambda i: stored[i].split()[1],
        "number, last 6 digits": lambda i: stored[i].replace(" ", "")[-6:],
        "no match": lambda i: f"zzq{i}",
    }
    print(f"{'query':42} {'p50 ms':>8} {'p99 ms':>8} {'hits(first)':>12}")
    for name, make in queries.items():
        counter = iter(range(10**9))
        first_hits = len(service.search(user_id, make(0), 50)[0])
        p50, p99 = timed(
            lambda make=make, counter=counter: service.search(user_id, make(next(counter) % rounds), 50), rounds
        )
        print(f"{name:42} {p50:8.2f} {p99:8.2f} {first_hits:12}")
    _, cursor = service.search(user_id, "m", 50)
    p50, p99 = timed(lambda: service.search(user_id, "m", 50, cursor), rounds)
    print(f"{'next page of m':42} {p50:8.2f} {p99:8.2f}")
    p50, p99 = timed(lambda: service.lookup(user_id, stored[0]), rounds)
    print(f"{'exact number look-up (customer card)':42} {p50:8.2f} {p99:8.2f}")
    db.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument(
        "--postgres",
        default=os.environ.get("CALLTO_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"),
    )
    args = parser.parse_args()
    contacts = make_contacts(args.contacts)
    with sqlite_url() as url:
        run("SQLite", url, contacts, args.rounds)
    try:
        with postgres_url(args.postgres) as url:
            run("PostgreSQL", url, contacts, args.rounds)
    except sqlalchemy.exc.OperationalError as exc:
        print(f"\nPostgreSQL skipped: not reachable at {args.postgres} ({str(exc).splitlines()[0]})")


if __name__ == "__main__":
    main()
