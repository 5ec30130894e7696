"""Reading and writing contact files: CSV (column mapping, header detection, UTF-8 / Windows-1252) and
vCard 3.0 / 4.0. Pure: bytes in, validated :class:`ContactIn` rows and per-row problems out, and back.

A row that cannot become a contact is reported with its line and why; the others are kept. A file that
cannot be read at all (unknown encoding, no recognisable columns) raises :class:`ImportFailed`.
"""

from __future__ import annotations

import csv
import io
import quopri
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from callto.dialer.numbers import InvalidNumber, read_number
from callto.phonebook.errors import ImportFailed
from callto.phonebook.numbers import fold
from callto.phonebook.schemas import ContactIn

MAX_ROWS = 250_000
MAX_REPORTED_ERRORS = 500
# pb_numbers.number holds the text as typed, up to this many characters.
NUMBER_MAX = 40
NUMBER_FIELDS = ("work", "mobile", "home", "fax", "other")
FIELDS = ("name", "first_name", "last_name", "company", "email", "notes", *NUMBER_FIELDS, "ignore")

# Header words people use (English and Italian), compared after folding and collapsing punctuation.
ALIASES: dict[str, tuple[str, ...]] = {
    "name": ("name", "full name", "fullname", "display name", "contact", "nome", "nominativo", "nome completo"),
    "first_name": ("first name", "firstname", "given name", "nome proprio"),
    "last_name": ("last name", "lastname", "surname", "family name", "cognome"),
    "company": (
        "company", "organization", "organisation", "org", "azienda", "ditta", "societa", "ragione sociale",
    ),
    "email": ("email", "e mail", "mail", "email address", "e mail address", "posta", "posta elettronica"),
    "notes": ("notes", "note", "comment", "comments", "memo"),
    "work": (
        "phone", "telephone", "tel", "work", "work phone", "business phone", "office", "office phone",
        "telefono", "ufficio", "numero", "number", "phone number", "telefono ufficio",
    ),
    "mobile": ("mobile", "cell", "cellular", "mobile phone", "cell phone", "cellulare", "telefono cellulare"),
    "home": ("home", "home phone", "casa", "abitazione", "telefono casa"),
    "fax": ("fax", "business fax", "fax number"),
    "other": ("other", "other phone", "altro", "altro telefono"),
}
_ALIAS_TO_FIELD = {alias: name for name, aliases in ALIASES.items() for alias in aliases}
_NUMBER_SPLIT = re.compile(r"\s*[;,|]\s*")
# Cells a spreadsheet would run as a formula; the export prefixes them with ' and the import strips it.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class RowProblem:
    """Why one row (CSV line, or the line a vCard starts on) was not imported.

    ``error`` is a stable id clients translate (``invalid-number``: ``reason`` from the number parser,
    ``value`` the cell as in the file, ``column`` its header); ``problem`` is the English wording.
    """

    row: int
    problem: str
    field: str | None = None
    error: str = "invalid-row"
    reason: str | None = None
    value: str | None = None
    column: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "row": self.row,
            "problem": self.problem,
            "field": self.field,
            "error": self.error,
            "reason": self.reason,
            "value": self.value,
            "column": self.column,
        }


def _number_problem(row: int, numbers: list[dict[str, str]], columns: list[str | None]) -> RowProblem | None:
    """The first number of a row the number parser refuses, named with its row, column and value."""
    for number, column in zip(numbers, columns, strict=True):
        value = number["number"]
        try:
            read_number(value)
        except InvalidNumber as exc:
            where = f"column {column!r}" if column else f"the {number['type']} number"
            return RowProblem(
                row=row,
                problem=f"row {row}, {where}: {value[:64]!r} is not a phone number. {exc.message}",
                field=number["type"],
                error="invalid-number",
                reason=exc.reason,
                value=value[:64],
                column=column,
            )
        if len(value) > NUMBER_MAX:
            return RowProblem(
                row=row,
                problem=f"row {row}: the number {value[:64]!r} is longer than {NUMBER_MAX} characters.",
                field=number["type"],
                error="invalid-number",
                reason="too-long",
                value=value[:64],
                column=column,
            )
    return None


@dataclass
class Parsed:
    format: str
    encoding: str | None
    contacts: list[tuple[int, ContactIn]] = field(default_factory=list)
    problems: list[RowProblem] = field(default_factory=list)

    @property
    def total(self) -> int:
        return len(self.contacts) + len(self.problems)


def decode(data: bytes, encoding: str = "auto") -> tuple[str, str]:
    """Text and the encoding used: UTF-8 (with or without BOM) first, then Windows-1252."""
    if encoding not in ("auto", "utf-8", "windows-1252"):
        raise ImportFailed(
            "encoding must be auto, utf-8 or windows-1252", details={"encoding": encoding[:40]}
        )
    candidates = ["utf-8", "windows-1252"] if encoding == "auto" else [encoding]
    for name in candidates:
        try:
            text = data.decode("utf-8-sig" if name == "utf-8" else "cp1252")
            return text, name
        except UnicodeDecodeError:
            continue
    raise ImportFailed(
        "the file is neither UTF-8 nor Windows-1252 text; save it as UTF-8 CSV and try again",
        details={"encoding": encoding},
    )


def detect_format(data: bytes) -> str:
    head = data[:4096].lstrip(b"\xef\xbb\xbf \t\r\n").upper()
    return "vcard" if head.startswith(b"BEGIN:VCARD") else "csv"


def _validation_problem(row: int, exc: ValidationError) -> RowProblem:
    first = exc.errors()[0]
    loc = ".".join(str(p) for p in first.get("loc", ()))
    message = str(first.get("msg", "invalid")).removeprefix("Value error, ")
    return RowProblem(
        row=row, problem=f"row {row}, {loc}: {message}" if loc else f"row {row}: {message}", field=loc or None
    )


def _unformula(cell: str) -> str:
    if cell.startswith("'") and cell[1:2] and cell[1] in _FORMULA_START:
        return cell[1:]
    return cell


def _header_key(cell: str) -> str:
    return " ".join(re.split(r"[^0-9a-z]+", fold(cell).strip())).strip()


# CSV
def parse_csv(
    data: bytes,
    *,
    encoding: str = "auto",
    header: str = "auto",
    mapping: dict[str, str] | None = None,
    delimiter: str | None = None,
) -> Parsed:
    text, used = decode(data, encoding)
    if header not in ("auto", "yes", "no"):
        raise ImportFailed("header must be auto, yes or no", details={"header": header[:20]})
    if delimiter is not None and (len(delimiter) != 1 or delimiter in "\"\r\n"):
        raise ImportFailed("delimiter must be one character such as , ; or a tab")
    if mapping is not None:
        bad = sorted({v for v in mapping.values() if v not in FIELDS})
        if bad:
            raise ImportFailed(
                f"unknown target field(s) in the mapping: {', '.join(b[:40] for b in bad)}",
                details={"allowed": list(FIELDS)},
            )
    if delimiter is None:
        delimiter = _guess_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    try:
        first = next(reader, None)
    except csv.Error as exc:
        raise ImportFailed(f"the CSV file cannot be read: {exc}") from exc
    parsed = Parsed(format="csv", encoding=used)
    if first is None:
        return parsed
    header_keys = [_header_key(c) for c in first]
    has_header = header == "yes" or (
        header == "auto"
        and (
            any(k in _ALIAS_TO_FIELD for k in header_keys)
            or bool(mapping and any(c.strip() in mapping for c in first))
        )
    )
    columns = _columns(first, header_keys, has_header, mapping)
    if not any(f not in ("ignore",) for f in columns.values()):
        raise ImportFailed(
            "no column could be recognised: add a header row (name, company, phone, mobile, email, ...) "
            "or give a column mapping",
            details={"first_row": [c[:40] for c in first[:20]]},
        )
    headers = [c.strip() or None for c in first] if has_header else []
    if not has_header and any(c.strip() for c in first):
        _csv_row(parsed, 1, first, columns, headers)
    try:
        for cells in reader:
            if not any(c.strip() for c in cells):
                continue
            if parsed.total >= MAX_ROWS:
                raise ImportFailed(f"the file has more than {MAX_ROWS} rows; split it")
            _csv_row(parsed, reader.line_num, cells, columns, headers)
    except csv.Error as exc:
        parsed.problems.append(RowProblem(row=reader.line_num, problem=f"the CSV breaks here: {exc}"))
    return parsed


def _guess_delimiter(text: str) -> str:
    """The candidate seen most often in the first line (csv.Sniffer guesses wrong on quotes in data)."""
    first = next((line for line in text.splitlines() if line.strip()), "")
    counts = {d: first.count(d) for d in (",", ";", "\t", "|")}
    best = max(counts, key=lambda d: counts[d])
    return best if counts[best] else ","


def _columns(
    first: list[str], header_keys: list[str], has_header: bool, mapping: dict[str, str] | None
) -> dict[int, str]:
    columns: dict[int, str] = {}
    if mapping:
        for key, target in mapping.items():
            index: int | None = None
            if key.isdigit():
                index = int(key)
            elif has_header:
                stripped = [c.strip() for c in first]
                if key.strip() in stripped:
                    index = stripped.index(key.strip())
                elif _header_key(key) in header_keys:
                    index = header_keys.index(_header_key(key))
            if index is None:
                raise ImportFailed(
                    f"the mapping names a column {key[:60]!r} that the file does not have",
                    details={"column": key[:60]},
                )
            columns[index] = target
        return columns
    if not has_header:
        return columns
    for index, key in enumerate(header_keys):
        known = _ALIAS_TO_FIELD.get(key)
        # Several number columns of one kind are all kept; a second name or e-mail column is not.
        if known is not None and (known in NUMBER_FIELDS or known not in columns.values()):
            columns[index] = known
    # "Nome" next to "Cognome" is the first name, not the full name.
    if "last_name" in columns.values():
        for index, target in list(columns.items()):
            if target == "name" and header_keys[index] == "nome":
                columns[index] = "first_name"
    return columns


def _csv_row(
    parsed: Parsed, line: int, cells: list[str], columns: dict[int, str], headers: list[str | None]
) -> None:
    values: dict[str, list[str]] = {}
    sources: dict[str, list[str | None]] = {}
    for index, target in columns.items():
        if target == "ignore" or index >= len(cells):
            continue
        cell = _unformula(cells[index].strip())
        if cell:
            values.setdefault(target, []).append(cell)
            sources.setdefault(target, []).append(headers[index] if index < len(headers) else None)
    name = " ".join(values.get("name", []))
    if not name:
        name = " ".join(values.get("first_name", []) + values.get("last_name", []))
    numbers: list[dict[str, str]] = []
    number_columns: list[str | None] = []
    for kind in NUMBER_FIELDS:
        for cell, column in zip(values.get(kind, []), sources.get(kind, []), strict=True):
            for part in _NUMBER_SPLIT.split(cell):
                if part:
                    numbers.append({"type": kind, "number": part})
                    number_columns.append(column)
    problem = _number_problem(line, numbers, number_columns)
    if problem is not None:
        parsed.problems.append(problem)
        return
    body = {
        "name": name,
        "company": " ".join(values.get("company", [])),
        "email": " ".join(values.get("email", [])),
        "notes": "\n".join(values.get("notes", [])),
        "numbers": numbers,
    }
    try:
        parsed.contacts.append((line, ContactIn.model_validate(body)))
    except ValidationError as exc:
        parsed.problems.append(_validation_problem(line, exc))


def _csv_cell(value: str) -> str:
    return "'" + value if value.startswith(_FORMULA_START) else value


def export_csv(contacts: Iterable[Any]) -> Iterator[str]:
    """CSV text in chunks; ``contacts`` are :class:`~callto.phonebook.service.ContactView`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["name", "company", *NUMBER_FIELDS, "email", "notes"])
    for n, contact in enumerate(contacts, 1):
        by_type = {kind: [num for t, num in contact.numbers if t == kind] for kind in NUMBER_FIELDS}
        writer.writerow(
            [
                _csv_cell(contact.name),
                _csv_cell(contact.company),
                *("; ".join(by_type[kind]) for kind in NUMBER_FIELDS),
                _csv_cell(contact.email),
                _csv_cell(contact.notes),
            ]
        )
        if n % 500 == 0:
            yield out.getvalue()
            out.seek(0)
            out.truncate()
    yield out.getvalue()


# vCard
_VCARD_TYPES = {"cell": "mobile", "mobile": "mobile", "fax": "fax", "home": "home", "work": "work"}


def _unescape(value: str) -> str:
    out: list[str] = []
    chars = iter(value)
    for ch in chars:
        if ch == "\\":
            nxt = next(chars, "")
            out.append("\n" if nxt in ("n", "N") else nxt)
        else:
            out.append(ch)
    return "".join(out)


def _split_unescaped(value: str, sep: str) -> list[str]:
    parts: list[str] = []
    current: list[str] = []
    escaped = False
    for ch in value:
        if escaped:
            current.append("\\" + ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == sep:
            parts.append("".join(current))
            current = []
        else:
            current.append(ch)
    parts.append("".join(current))
    return parts


def _split_params(head: str) -> tuple[str, dict[str, list[str]]]:
    parts: list[str] = []
    current: list[str] = []
    quoted = False
    for ch in head:
        if ch == '"':
            quoted = not quoted
        elif ch == ";" and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    name = parts[0].rsplit(".", 1)[-1].upper()
    params: dict[str, list[str]] = {}
    for part in parts[1:]:
        key, sep, value = part.partition("=")
        if not sep:  # vCard 2.1 bare parameter: TEL;WORK;VOICE:...
            key, value = "TYPE", key
        values = [v.strip().strip('"').lower() for v in value.split(",")]
        params.setdefault(key.strip().upper(), []).extend(v for v in values if v)
    return name, params


def _property_lines(text: str) -> list[tuple[int, str]]:
    """Logical lines with their first physical line number (folded lines joined)."""
    lines: list[tuple[int, str]] = []
    for number, raw in enumerate(text.replace("\r\n", "\n").replace("\r", "\n").split("\n"), 1):
        if raw[:1] in (" ", "\t") and lines:
            lines[-1] = (lines[-1][0], lines[-1][1] + raw[1:])
        elif raw.strip():
            lines.append((number, raw))
    return lines


def parse_vcard(data: bytes, *, encoding: str = "auto") -> Parsed:
    text, used = decode(data, encoding)
    parsed = Parsed(format="vcard", encoding=used)
    card: dict[str, Any] | None = None
    start = 0
    for line_no, line in _property_lines(text):
        head, sep, value = line.partition(":")
        if not sep:
            if card is not None:
                card.setdefault("_problems", []).append(f"line {line_no} has no ':'")
            continue
        name, params = _split_params(head)
        if name == "BEGIN" and value.strip().upper() == "VCARD":
            if card is not None:
                parsed.problems.append(RowProblem(row=start, problem="a vCard is missing its END:VCARD"))
            if parsed.total >= MAX_ROWS:
                raise ImportFailed(f"the file has more than {MAX_ROWS} cards; split it")
            card, start = {"numbers": []}, line_no
            continue
        if card is None:
            continue
        if name == "END" and value.strip().upper() == "VCARD":
            _finish_card(parsed, start, card)
            card = None
            continue
        if "QUOTED-PRINTABLE" in [e.upper() for e in params.get("ENCODING", [])]:
            value = quopri.decodestring(value.encode("latin-1", "replace")).decode("utf-8", "replace")
        _card_property(card, name, params, value)
    if card is not None:
        parsed.problems.append(RowProblem(row=start, problem="the last vCard is missing its END:VCARD"))
    if not parsed.total and text.strip():
        raise ImportFailed("no BEGIN:VCARD found: this is not a vCard file")
    return parsed


def _card_property(card: dict[str, Any], name: str, params: dict[str, list[str]], value: str) -> None:
    if name == "FN":
        card["name"] = _unescape(value).strip()
    elif name == "N":
        family, given, *_ = [*_split_unescaped(value, ";"), "", ""]
        card["n"] = " ".join(p for p in (_unescape(given).strip(), _unescape(family).strip()) if p)
    elif name == "ORG":
        card["company"] = _unescape(_split_unescaped(value, ";")[0]).strip()
    elif name == "EMAIL" and "email" not in card:
        card["email"] = _unescape(value).strip()
    elif name == "NOTE":
        card["notes"] = _unescape(value)
    elif name == "TEL":
        number = _unescape(value).strip()
        if number.lower().startswith("tel:"):
            # The parser reads tel: URIs; stored as the number part, what a person would have typed.
            number = number[4:].split(";", 1)[0]
        types = params.get("TYPE", [])
        kind = next((_VCARD_TYPES[t] for t in types if t in _VCARD_TYPES and t != "work"), None)
        kind = kind or ("work" if "work" in types or "voice" in types or not types else "other")
        card["numbers"].append({"type": kind, "number": number})


def _finish_card(parsed: Parsed, start: int, card: dict[str, Any]) -> None:
    problem = _number_problem(start, card["numbers"], [None] * len(card["numbers"]))
    if problem is not None:
        parsed.problems.append(problem)
        return
    body = {
        "name": card.get("name") or card.get("n") or "",
        "company": card.get("company", ""),
        "email": card.get("email", ""),
        "notes": card.get("notes", ""),
        "numbers": card["numbers"],
    }
    try:
        parsed.contacts.append((start, ContactIn.model_validate(body)))
    except ValidationError as exc:
        parsed.problems.append(_validation_problem(start, exc))


def _escape(value: str) -> str:
    return (
        value.replace("\\", "\\\\").replace(",", "\\,").replace(";", "\\;").replace("\r\n", "\n").replace("\n", "\\n")
    )


def _fold(line: str) -> str:
    """Lines of at most 75 octets, continuation lines starting with a space (RFC 6350 3.2)."""
    out: list[str] = []
    current = ""
    size = 0
    for ch in line:
        width = len(ch.encode())
        if size + width > 75:
            out.append(current)
            current, size = " ", 1
        current += ch
        size += width
    out.append(current)
    return "\r\n".join(out) + "\r\n"


_TEL_TYPES = {"work": "work,voice", "mobile": "cell", "home": "home,voice", "fax": "fax", "other": "voice"}


def export_vcard(contacts: Iterable[Any], version: str = "4.0") -> Iterator[str]:
    for contact in contacts:
        lines = ["BEGIN:VCARD", f"VERSION:{version}", f"FN:{_escape(contact.name)}"]
        if version == "3.0":
            lines.append(f"N:{_escape(contact.name)};;;;")
        if contact.company:
            lines.append(f"ORG:{_escape(contact.company)}")
        for kind, number in contact.numbers:
            lines.append(f"TEL;TYPE={_TEL_TYPES.get(kind, 'voice')}:{number}")
        if contact.email:
            lines.append(f"EMAIL:{_escape(contact.email)}")
        if contact.notes:
            lines.append(f"NOTE:{_escape(contact.notes)}")
        lines.append("END:VCARD")
        yield "".join(_fold(line) for line in lines)
