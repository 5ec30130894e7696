"""Phone number keys and search tokens: pure functions, no I/O.

Numbers are read by the one number parser, :mod:`callto.dialer.numbers` (the same forms and errors as
click-to-call); this module only turns its forms into what the phonebook indexes. A stored number
keeps the text the user typed; next to it the phonebook keeps its E.164 form and a *key* (E.164 digits
without ``+`` when ``phonenumbers`` can read it in the installation's country, else the bare digits) for
exact look-ups (customer cards, history names), and a handful of *tokens* (international digits, national
digits, bare digits and the trailing parts of the national number) for search as you type. Both sides
of a comparison go through the same functions, so ``0721405516`` and ``+39 0721 40 55 16`` meet.
"""

from __future__ import annotations

import re
import unicodedata

import phonenumbers

from callto.dialer.numbers import NumberForms as NumberForms
from callto.dialer.numbers import number_forms as _number_forms

DEFAULT_COUNTRY = "IT"
TOKEN_MAX = 64
# Trailing parts of the national number shorter than this are not indexed: "516" would match everything.
MIN_SUFFIX = 6
PHONE_QUERY_RE = re.compile(r"^\+?\(?[0-9][0-9 ()./-]*$")
_WORD_SPLIT = re.compile(r"[^\w]+", re.UNICODE)


def only_digits(text: str) -> str:
    return "".join(ch for ch in text if "0" <= ch <= "9")


def number_forms(number: str, country: str = DEFAULT_COUNTRY) -> NumberForms:
    """The forms of a stored or searched number, read by the one number parser in ``country``."""
    return _number_forms(number, country or DEFAULT_COUNTRY)


def number_key(number: str, country: str = DEFAULT_COUNTRY) -> str:
    return number_forms(number, country).key


def number_tokens(number: str, country: str = DEFAULT_COUNTRY) -> set[str]:
    """Search tokens of one stored number (a query digit string matches when it prefixes one of them)."""
    forms = number_forms(number, country)
    tokens = {forms.digits, forms.key}
    national = forms.national_digits
    if national:
        tokens.add(national)
    # Trailing parts of the national number, so "405516" finds "+39 0721 40 55 16".
    base = national or forms.digits
    for start in range(1, max(0, len(base) - MIN_SUFFIX) + 1):
        tokens.add(base[start:])
    return {t[:TOKEN_MAX] for t in tokens if t}


def fold(text: str) -> str:
    """Lower case without accents: what names are compared and sorted on."""
    if text.isascii():
        # Nothing to decompose and casefold() equals lower() on ASCII: most names, at import speed.
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text)
    stripped = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    return stripped.casefold()


def words(text: str) -> list[str]:
    return [w[:TOKEN_MAX] for w in _WORD_SPLIT.split(fold(text)) if w and w != "_"]


def text_tokens(*texts: str | None) -> set[str]:
    out: set[str] = set()
    for text in texts:
        if text:
            out.update(words(text))
    return out


def query_terms(query: str, country: str = DEFAULT_COUNTRY) -> list[str]:
    """Prefix terms for a search: a phone-looking query is one digit string, anything else its words.

    A number typed with a country code (``+39 0721``, ``0039 0721``) becomes the international digits,
    which prefix the E.164 token; one typed nationally prefixes the national or bare-digit token.
    """
    text = query.strip()
    if PHONE_QUERY_RE.match(text) and len(only_digits(text)) >= 1:
        digits = only_digits(text)
        if text.startswith("+"):
            return [digits]
        intl = _international_prefix(country)
        if intl and digits.startswith(intl) and len(digits) > len(intl):
            return [digits[len(intl) :]]
        return [digits]
    seen: list[str] = []
    for word in words(text):
        if word not in seen:
            seen.append(word)
    return seen


def _international_prefix(country: str) -> str:
    meta = phonenumbers.PhoneMetadata.metadata_for_region((country or DEFAULT_COUNTRY).upper())
    prefix = getattr(meta, "preferred_international_prefix", None) or getattr(meta, "international_prefix", None)
    return prefix if isinstance(prefix, str) and prefix.isdigit() else "00"


def prefix_upper_bound(term: str) -> str:
    """The smallest string greater than every string starting with ``term`` (byte/code point order)."""
    last = term[-1]
    return term[:-1] + chr(ord(last) + 1)
