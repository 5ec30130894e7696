"""Customer cards: what is known about a number, from the phonebook, the call history and the sources an
administrator configured (an SQL database such as a CRM, an HTTP JSON service).

Every source runs at the same time as the others with its own timeout; a slow or failing source is
reported in the card (``timeout`` / ``error``) and never holds the card back longer than its timeout.
SQL sources bind the number as a parameter (``:number``, ``:national``, ``:digits``) and never format it
into the text; they run in worker threads, and a query past its timeout is interrupted (SQLite) or
cancelled (PostgreSQL, which also gets a ``statement_timeout``). HTTP sources put the URL-encoded number
into a URL template. Source configuration, credentials included, is only ever shown to administrators.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import decimal
import json
import re
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
from pydantic import ValidationError
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, IntegrityError, NoSuchModuleError

from callto.dialer.numbers import display_number, phone_display, read_number
from callto.events.bus import Event, EventBus
from callto.phonebook.errors import CardSourceNotFound, InvalidCardSource
from callto.phonebook.events import CardReady
from callto.phonebook.models import CardSource
from callto.phonebook.numbers import number_forms, only_digits
from callto.phonebook.schemas import (
    CardSourceIn,
    CardSourcePatch,
    HttpConfig,
    SourceKind,
    SqlConfig,
)
from callto.phonebook.service import PhonebookService
from callto.store.database import Database

BINDS = ("number", "national", "digits")
MAX_SOURCE_ROWS = 20
MAX_HTTP_BYTES = 512 * 1024
RECENT_CALLS = 5
_PLACEHOLDER = re.compile(r"\{([A-Za-z_]+)\}")
_SQL_START = re.compile(r"^\s*(select|with)\b", re.IGNORECASE)

RecentCalls = Callable[[int, str, int], list[dict[str, Any]]]


@dataclass(frozen=True)
class SourceView:
    id: int
    name: str
    kind: str
    enabled: bool
    position: int
    timeout_ms: int
    config: dict[str, Any]
    version: str

    def admin(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "kind": self.kind,
            "enabled": self.enabled,
            "position": self.position,
            "timeout_ms": self.timeout_ms,
            "config": self.config,
        }


def _source_view(row: CardSource) -> SourceView:
    return SourceView(
        id=row.id,
        name=row.name,
        kind=row.kind,
        enabled=row.enabled,
        position=row.position,
        timeout_ms=row.timeout_ms,
        config=dict(row.config),
        version=f"{row.updated_at.isoformat()}|{json.dumps(row.config, sort_keys=True)}",
    )


def number_values(number: str, country: str) -> dict[str, str]:
    """What a source may receive: E.164 (``+390721405516``), national digits, and the digits typed."""
    forms = number_forms(number, country)
    return {
        "number": forms.e164 or forms.digits,
        "national": forms.national_digits or forms.digits,
        "digits": only_digits(number),
    }


def number_fields(data: Any, country: str) -> dict[str, str]:
    """Which values of a source's answer are phone numbers: ``'<row>.<field>'`` -> display form.

    Rows are the answer's list items (an object answer is row 0). Screens make only these values call
    buttons: a CRM's dates, ids and amounts stay text.
    """
    rows = data if isinstance(data, list) else [data]
    found: dict[str, str] = {}
    for index, row in enumerate(rows[:MAX_SOURCE_ROWS]):
        if not isinstance(row, dict):
            continue
        for name, value in row.items():
            display = phone_display(value, country)
            if display is not None:
                found[f"{index}.{name}"] = display
    return found


def validate_config(kind: SourceKind, config: dict[str, Any]) -> dict[str, Any]:
    """Check a source's configuration; returns it cleaned. Raises :class:`InvalidCardSource`."""
    try:
        if kind == SourceKind.sql:
            sql = SqlConfig.model_validate(config)
            _check_sql(sql)
            return sql.model_dump()
        http = HttpConfig.model_validate(config)
        _check_url_template(http.url_template)
        for name, value in http.headers.items():
            if not re.fullmatch(r"[A-Za-z0-9-]{1,64}", name) or re.search(r"[\r\n\x00]", value):
                raise InvalidCardSource(
                    "header names are letters, digits and '-', values one line", details={"header": name[:64]}
                )
        return http.model_dump()
    except ValidationError as exc:
        problems = [
            {"field": ".".join(str(p) for p in e.get("loc", ())), "problem": str(e.get("msg"))} for e in exc.errors()
        ]
        raise InvalidCardSource(
            f"the {kind.value} source configuration is not valid", details={"problems": problems}
        ) from exc


def _check_sql(sql: SqlConfig) -> None:
    try:
        url = make_url(sql.url)
    except ArgumentError as exc:
        raise InvalidCardSource("url is not an SQLAlchemy database URL", details={"field": "url"}) from exc
    if url.get_backend_name() not in ("sqlite", "postgresql"):
        raise InvalidCardSource(
            "only SQLite and PostgreSQL databases are supported as sources",
            details={"field": "url", "backend": url.get_backend_name()},
        )
    query = sql.query.rstrip().rstrip(";")
    if not _SQL_START.match(query):
        raise InvalidCardSource(
            "the query must be one SELECT (or WITH ... SELECT) statement", details={"field": "query"}
        )
    if ";" in query:
        raise InvalidCardSource("the query must be a single statement (no ';')", details={"field": "query"})
    binds = set(text(query)._bindparams)
    if not binds:
        raise InvalidCardSource(
            "the query must use the number as a bind parameter, e.g. WHERE phone = :number",
            details={"field": "query", "allowed": list(BINDS)},
        )
    unknown = sorted(binds - set(BINDS))
    if unknown:
        raise InvalidCardSource(
            f"unknown bind parameter(s): {', '.join(':' + u for u in unknown)}",
            details={"field": "query", "allowed": list(BINDS)},
        )


def _check_url_template(template: str) -> None:
    names = _PLACEHOLDER.findall(template)
    if not names:
        raise InvalidCardSource(
            "the URL template must contain {number}, {national} or {digits}", details={"field": "url_template"}
        )
    unknown = sorted(set(names) - set(BINDS))
    if unknown:
        raise InvalidCardSource(
            f"unknown placeholder(s): {', '.join('{' + u + '}' for u in unknown)}",
            details={"field": "url_template", "allowed": list(BINDS)},
        )
    rest = _PLACEHOLDER.sub("", template)
    if "{" in rest or "}" in rest:
        raise InvalidCardSource("stray { or } in the URL template", details={"field": "url_template"})
    parts = urlsplit(_PLACEHOLDER.sub("x", template))
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise InvalidCardSource(
            "the URL template must be an http:// or https:// URL", details={"field": "url_template"}
        )
    if "{" in urlsplit(template).netloc:
        raise InvalidCardSource("the number may not go into the host name", details={"field": "url_template"})


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, bytes):
        return value.hex()
    return str(value)


def _problem(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    first = (str(orig).strip().splitlines() or [orig.__class__.__name__])[0]
    return f"{orig.__class__.__name__}: {first}"[:300]


class CardService:
    def __init__(
        self, db: Database, bus: EventBus, phonebook: PhonebookService, recent_calls: RecentCalls | None = None
    ) -> None:
        self.db = db
        self.bus = bus
        self.phonebook = phonebook
        # The history's (user_id, number, limit) -> recent calls with the number; None: cards without them.
        self.recent_calls = recent_calls
        self._engines: dict[int, tuple[str, Engine]] = {}
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=8, thread_name_prefix="card-source")

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        with self._lock:
            engines = [engine for _, engine in self._engines.values()]
            self._engines.clear()
        for engine in engines:
            engine.dispose()

    # administration
    def list_sources(self) -> list[SourceView]:
        with self.db.session() as s:
            rows = s.scalars(select(CardSource).order_by(CardSource.position, CardSource.id)).all()
            return [_source_view(r) for r in rows]

    def get_source(self, source_id: int) -> SourceView:
        with self.db.session() as s:
            return _source_view(self._row(s, source_id))

    @staticmethod
    def _row(s: Any, source_id: int) -> CardSource:
        row = s.get(CardSource, source_id)
        if row is None:
            raise CardSourceNotFound(f"there is no card source {source_id}", details={"source_id": source_id})
        return row  # type: ignore[no-any-return]

    def create_source(self, data: CardSourceIn) -> SourceView:
        config = validate_config(data.kind, data.config)
        try:
            with self.db.session() as s:
                row = CardSource(
                    name=data.name,
                    kind=data.kind.value,
                    enabled=data.enabled,
                    position=data.position,
                    timeout_ms=data.timeout_ms,
                    config=config,
                )
                s.add(row)
                s.flush()
                return _source_view(row)
        except IntegrityError as exc:
            raise InvalidCardSource(
                f"a card source named {data.name!r} exists already", status=409, details={"field": "name"}
            ) from exc

    def update_source(self, source_id: int, patch: CardSourcePatch) -> SourceView:
        try:
            with self.db.session() as s:
                row = self._row(s, source_id)
                if patch.config is not None:
                    row.config = validate_config(SourceKind(row.kind), patch.config)
                for name in ("name", "enabled", "position", "timeout_ms"):
                    value = getattr(patch, name)
                    if value is not None:
                        setattr(row, name, value)
                s.flush()
                view = _source_view(row)
        except IntegrityError as exc:
            raise InvalidCardSource("another card source has that name", status=409, details={"field": "name"}) from exc
        self._forget_engine(source_id)
        return view

    def delete_source(self, source_id: int) -> None:
        with self.db.session() as s:
            s.delete(self._row(s, source_id))
        self._forget_engine(source_id)

    def _forget_engine(self, source_id: int) -> None:
        with self._lock:
            old = self._engines.pop(source_id, None)
        if old is not None:
            old[1].dispose()

    # cards
    def check_number(self, number: str) -> str:
        """The number as given, checked by the one number parser (``tel:``, ``sip:``, separators...).

        Raises :class:`callto.dialer.numbers.InvalidNumber` (422 ``invalid-number`` with the reason),
        exactly as click-to-call does for the same text.
        """
        number = number.strip()
        read_number(number)
        return number

    async def card(self, user_id: int, number: str) -> dict[str, Any]:
        number = self.check_number(number)
        country = await asyncio.to_thread(self.phonebook.country)
        forms = number_forms(number, country)
        sources = await asyncio.to_thread(self.list_sources)
        contacts_task = asyncio.to_thread(self.phonebook.lookup, user_id, number)
        calls_task = self._calls(user_id, number)
        results = [self.run_source(src, number, country) for src in sources if src.enabled]
        contacts, calls, *found = await asyncio.gather(contacts_task, calls_task, *results)
        return {
            "number": number,
            "e164": forms.e164,
            "display": display_number(forms.e164, country) if forms.e164 else number,
            "contacts": [c.public() for c in contacts],
            "calls": calls,
            "sources": found,
        }

    async def push_card(
        self, user_id: int, number: str, *, call_id: str | None = None, direction: str | None = None
    ) -> dict[str, Any]:
        """Build the card and send it to the user as a ``card`` event (for the switch, on call start)."""
        card = await self.card(user_id, number)
        self.bus.publish(Event.of(CardReady(card, call_id, direction), frozenset({user_id})))
        return card

    async def _calls(self, user_id: int, number: str) -> list[dict[str, Any]]:
        if self.recent_calls is None:
            return []
        return await asyncio.to_thread(self.recent_calls, user_id, number, RECENT_CALLS)

    async def run_source(self, source: SourceView, number: str, country: str) -> dict[str, Any]:
        started = time.monotonic()
        out: dict[str, Any] = {"id": source.id, "name": source.name, "kind": source.kind}
        timeout = source.timeout_ms / 1000
        values = number_values(number, country)
        try:
            if source.kind == SourceKind.sql:
                data: Any = await self._run_sql(source, values, timeout)
            else:
                data = await asyncio.wait_for(self._run_http(source, values, timeout), timeout)
            status = "ok" if data not in (None, [], {}) else "empty"
            out.update(status=status, data=data, problem=None, number_fields=number_fields(data, country))
        except TimeoutError:
            out.update(status="timeout", data=None, problem=f"no answer within {source.timeout_ms} ms")
        except Exception as exc:
            out.update(status="error", data=None, problem=_problem(exc))
        out["elapsed_ms"] = int((time.monotonic() - started) * 1000)
        return out

    def _engine(self, source: SourceView) -> Engine:
        with self._lock:
            cached = self._engines.get(source.id)
            if cached is not None and cached[0] == source.version:
                return cached[1]
        url = make_url(source.config["url"])
        if url.drivername == "postgresql":
            url = url.set(drivername="postgresql+psycopg")
        kwargs: dict[str, Any] = {"pool_pre_ping": True}
        if url.get_backend_name() == "sqlite":
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": source.timeout_ms / 1000}
        else:
            connect = {"connect_timeout": max(1, source.timeout_ms // 1000)}
            kwargs.update(pool_size=2, max_overflow=4, connect_args=connect)
        try:
            engine = create_engine(url, **kwargs)
        except (ArgumentError, NoSuchModuleError) as exc:
            raise InvalidCardSource(f"cannot open the database: {exc}") from exc
        with self._lock:
            old = self._engines.get(source.id)
            self._engines[source.id] = (source.version, engine)
        if old is not None:
            old[1].dispose()
        return engine

    async def _run_sql(self, source: SourceView, values: dict[str, str], timeout: float) -> list[dict[str, Any]]:
        query = source.config["query"].rstrip().rstrip(";")
        statement = text(query)
        params = {name: values[name] for name in statement._bindparams}
        live: list[Any] = []
        loop = asyncio.get_running_loop()

        def run() -> list[dict[str, Any]]:
            engine = self._engine(source)
            with engine.connect() as conn:
                if engine.dialect.name == "postgresql":
                    conn.execute(
                        text("select set_config('statement_timeout', :ms, true)"), {"ms": str(source.timeout_ms)}
                    )
                live.append(conn.connection.driver_connection)
                try:
                    result = conn.execute(statement, params)
                    rows = result.mappings().fetchmany(MAX_SOURCE_ROWS)
                    return [{k: _jsonable(v) for k, v in row.items()} for row in rows]
                finally:
                    # A source is read, never written: whatever the query did is undone.
                    conn.rollback()

        future = loop.run_in_executor(self._executor, run)
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            for raw in live:
                with contextlib.suppress(Exception):
                    # sqlite3.Connection.interrupt() / psycopg.Connection.cancel(): stop the worker's query.
                    (getattr(raw, "interrupt", None) or raw.cancel)()
            raise

    async def _run_http(self, source: SourceView, values: dict[str, str], timeout: float) -> Any:
        template: str = source.config["url_template"]
        url = _PLACEHOLDER.sub(lambda m: quote(values[m.group(1)], safe=""), template)
        headers = {"Accept": "application/json", **source.config.get("headers", {})}
        async with (
            httpx.AsyncClient(timeout=timeout, follow_redirects=False) as client,
            client.stream("GET", url, headers=headers) as response,
        ):
            if response.status_code == 404:
                return None
            if not 200 <= response.status_code < 300:
                raise RuntimeError(f"the service answered HTTP {response.status_code}")
            body = bytearray()
            async for chunk in response.aiter_bytes():
                body.extend(chunk)
                if len(body) > MAX_HTTP_BYTES:
                    raise RuntimeError(f"the answer is larger than {MAX_HTTP_BYTES} bytes")
        try:
            return json.loads(bytes(body))
        except ValueError as exc:
            raise RuntimeError("the answer is not JSON") from exc
