"""Extract the number from what users click or select: ``tel:``, ``callto:``, ``sip:`` links and free text.

Link only extracts and sanity-checks; the server parses and normalizes again (with the dial plan), so this
module keeps the number as written (``+`` kept, visual separators dropped, extension kept apart) and rejects
anything that cannot be a phone number with a message that says why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

from callto.link.errors import InvalidLink

MAX_DIGITS = 20  # E.164 allows 15; leave room for prefixes and extensions, refuse pasted garbage.
MAX_INPUT = 256

# RFC 3966 visual separators plus what people paste from documents (spaces, slashes, dots, brackets).
_VISUAL = re.compile(r"[\s\-.()/\[\]\u00a0\u2010-\u2015]")
_SCHEME = re.compile(r"^(?P<scheme>tel|callto|sip|sips)\s*:\s*(?P<rest>.*)$", re.IGNORECASE | re.DOTALL)
_DIAL = re.compile(r"^\+?[0-9*#]+$")
_EXT_WORDS = re.compile(r"^(?P<num>.*?)\s*(?:;ext=|ext\.?|x|#)\s*(?P<ext>[0-9]+)\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class Extracted:
    """A number taken out of a link: ``number`` as dialable text and the optional extension."""

    number: str
    extension: str | None = None
    scheme: str | None = None

    @property
    def target(self) -> str:
        """What Link sends to ``POST /api/v1/calls``: the number, with ``;ext=`` when there is one."""
        return f"{self.number};ext={self.extension}" if self.extension else self.number


def _has_control(text: str) -> bool:
    return any(ord(c) < 32 or ord(c) == 127 for c in text)


def _clean_digits(raw: str, *, what: str) -> str:
    text = _VISUAL.sub("", raw)
    if not text:
        raise InvalidLink(f"The {what} holds no number.", details={"input": raw})
    if not _DIAL.match(text):
        bad = next((c for c in text if not (c.isdigit() or c in "+*#")), "")
        if "+" in text[1:]:
            raise InvalidLink("A '+' may only start the number.", details={"input": raw})
        raise InvalidLink(f"The {what} is not a phone number (it contains {bad!r}).", details={"input": raw})
    digits = sum(c.isdigit() for c in text)
    if digits == 0:
        raise InvalidLink(f"The {what} holds no digits.", details={"input": raw})
    if digits > MAX_DIGITS:
        raise InvalidLink(
            f"The {what} has {digits} digits; a phone number has at most {MAX_DIGITS}.",
            details={"input": raw},
        )
    return text


def _split_params(rest: str) -> tuple[str, dict[str, str]]:
    main, *params = rest.split(";")
    out: dict[str, str] = {}
    for p in params:
        name, _, value = p.partition("=")
        out[name.strip().lower()] = value.strip()
    return main, out


def extract(raw: str) -> Extracted:
    """Return the number in ``raw`` (a link or free text), or raise :class:`InvalidLink` saying why."""
    if raw is None or not raw.strip():
        raise InvalidLink("Nothing to call: the link or selection is empty.")
    if len(raw) > MAX_INPUT:
        raise InvalidLink(f"That text is too long to be a phone number ({len(raw)} characters).")
    text = raw.strip()
    if _has_control(text):
        # A selection may end in a line break (stripped above); one inside is never part of a number.
        raise InvalidLink("The link contains line breaks or control characters.")
    m = _SCHEME.match(text)
    if m is None:
        return _free_text(unquote(text) if "%" in text else text)
    scheme = m.group("scheme").lower()
    rest = unquote(m.group("rest")).strip()
    if _has_control(rest):
        raise InvalidLink("The link contains line breaks or control characters.")
    if rest.startswith("//"):
        rest = rest[2:]
    rest = rest.rstrip("/").strip()
    # Some mail clients append a query (?call, ?dial) to callto links; it is never part of the number.
    rest = rest.split("?", 1)[0]
    if scheme in ("sip", "sips"):
        return _sip(rest, scheme)
    main, params = _split_params(rest)
    number = _clean_digits(main, what="link")
    ext = params.get("ext") or params.get("extension")
    if ext is not None:
        ext = _clean_digits(ext, what="extension")
    context = params.get("phone-context")
    if context and not number.startswith("+"):
        # RFC 3966 local number: a global phone-context ("+39") is its prefix; a domain context says
        # nothing dialable, so the local number stays as it is.
        ctx = _VISUAL.sub("", context)
        if ctx.startswith("+") and _DIAL.match(ctx):
            number = ctx + number
    return Extracted(number=number, extension=ext, scheme=scheme)


def _sip(rest: str, scheme: str) -> Extracted:
    user, at, host = rest.partition("@")
    if not at or not user or not host:
        raise InvalidLink("A sip: link needs a number before '@', like sip:201@pbx.example.com.")
    user, params = _split_params(user)
    number = _clean_digits(user, what="sip: link user part")
    return Extracted(number=number, extension=params.get("ext"), scheme=scheme)


def _free_text(text: str) -> Extracted:
    m = _EXT_WORDS.match(text)
    if m and m.group("num") and not text.lstrip().startswith("#"):
        number = _clean_digits(m.group("num"), what="text")
        if sum(c.isdigit() for c in number) >= 3:
            return Extracted(number=number, extension=m.group("ext"))
    return Extracted(number=_clean_digits(text, what="text"))


# A link or a number-like run inside selected text: digits with the separators people write, an optional
# leading + and a trailing extension. Runs do not cross line breaks (two numbers on two lines stay two).
_IN_TEXT = re.compile(
    r"(?:\b(?:tel|callto|sips?):[^\s<>\"']+)"
    r"|(?:\+?\(?\d[\d \t\-.()/\u00a0\u2010-\u2015]*\d(?:[ \t]*(?:;ext=|ext\.?|x)[ \t]*\d+)?)",
    re.IGNORECASE,
)
MAX_SELECTION = 4096
MIN_FOUND_DIGITS = 3


def find_number(text: str, *, source: str = "selected text") -> Extracted:
    """The number to call in selected or copied text: the whole text when it is a link or a number, else the
    first link or number in it ("Call me at +39 0721 405516 after 5"). ``source`` names where the text came
    from in the error, which says plainly that there is no number."""
    if text is None or not text.strip():
        raise InvalidLink(f"Nothing to call: the {source} is empty. Select or copy a phone number first.")
    try:
        return extract(text)
    except InvalidLink:
        pass
    for m in _IN_TEXT.finditer(text[:MAX_SELECTION]):
        try:
            found = extract(m.group(0).strip())
        except InvalidLink:
            continue
        if sum(c.isdigit() for c in found.number) >= MIN_FOUND_DIGITS:
            return found
    preview = " ".join(text.split())
    preview = preview if len(preview) <= 40 else preview[:39] + "\u2026"
    raise InvalidLink(f"The {source} holds no phone number: \u201c{preview}\u201d.", details={"input": text[:256]})
