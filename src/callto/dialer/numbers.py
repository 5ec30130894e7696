"""What a user clicked -> a checked number -> the digits the switch dials. Pure functions, no I/O.

This is the one number parser of callto: click-to-call, customer cards, the phonebook (create,
update, import), card sources and trunk DIDs all read numbers through it, so a form accepted in one
place is accepted everywhere and refused with the same ``reason`` everywhere.

``parse_target`` accepts the forms people really click and type (RFC 3966 ``tel:`` with visual
separators, ``;ext=``, ``;phone-context=``, percent-encoding; ``callto:``; ``sip:``/``sips:`` user
parts; free text with spaces, dots, dashes, slashes and parentheses anywhere, ``+39 (0)721``, ``00``
international prefix) and rejects everything that is not a number with :class:`InvalidNumber`.
``classify`` applies the :class:`~callto.dialer.dialplan.DialPlan` with ``phonenumbers``; ``allowed``
is the outbound permission check. ``read_number`` / ``number_forms`` give the forms a stored number is
compared on (E.164 when the number can be placed in a country), and ``display_number`` the one format
screens show (national for the dial plan's country, international otherwise). Nothing here ever
returns a string that is unsafe in a SIP URI user part: the only characters that leave are
``0-9 * # +``.
"""

from __future__ import annotations

import enum
import re
import unicodedata
from dataclasses import dataclass
from functools import lru_cache
from typing import Any
from urllib.parse import unquote

import phonenumbers
from phonenumbers import NumberParseException, PhoneNumberFormat, ValidationResult

from callto.dialer.dialplan import DialPlan, default_international_prefix
from callto.errors import CalltoError
from callto.sip.ports import NumberKind as NumberKind  # the switch's own type: it routes by kind

MAX_INPUT_LENGTH = 256
E164_MAX_DIGITS = 15
# A local (non-'+') number may carry an international prefix and still fit the trunk's 20 digits.
MAX_LOCAL_DIGITS = 20
MAX_EXTENSION_DIGITS = 10
DIALED_RE = re.compile(r"^[0-9*#+]{1,20}$")

_SCHEME_RE = re.compile(r"^\s*([A-Za-z][A-Za-z0-9+.\-]*):")
_KNOWN_SCHEMES = frozenset({"tel", "callto", "sip", "sips"})
# RFC 3966 visual-separator = "-" / "." / "(" / ")"; people also type spaces and slashes.
_SEPARATORS = frozenset("-.() /")
_SIP_HOST_RE = re.compile(r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+)(?::[0-9]{1,5})?$")
_SIP_URI_PARAM_RE = re.compile(r"^[A-Za-z0-9\-_.!~*'()]+(?:=[A-Za-z0-9\-_.!~*'()\[\]/:&+$]*)?$")
_ISUB_RE = re.compile(r"^[A-Za-z0-9\-_.!~*'()]{1,32}$")
_DOMAIN_RE = re.compile(r"^(?=.{1,253}$)[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9\-]{1,63})*$")


class InvalidNumber(CalltoError):
    """The clicked target is not a dialable number; ``details['reason']`` is a stable machine code."""

    status = 422
    error = "invalid-number"

    def __init__(self, message: str, *, reason: str, raw: Any = None) -> None:
        details: dict[str, Any] = {"reason": reason}
        if isinstance(raw, str):
            # Enough to recognise the input in a log or a UI, never the whole of a huge payload.
            details["input"] = raw[:64]
        super().__init__(message, details=details)
        self.reason = reason


class NumberNotPermitted(CalltoError):
    """The user's outbound class does not allow this kind of number."""

    status = 403
    error = "number-not-permitted"


class OutboundClass(enum.StrEnum):
    INTERNAL = "internal"
    NATIONAL = "national"
    INTERNATIONAL = "international"


@dataclass(frozen=True, slots=True)
class ParsedTarget:
    """A syntactically valid target. ``number`` is digits, optionally with a leading ``+`` kept."""

    raw: str
    number: str
    scheme: str | None = None
    extension: str | None = None
    phone_context: str | None = None
    sip_host: str | None = None
    # '+44 (0)20 ...': the number without the '(0)', tried when the number with it is not valid.
    without_trunk_zero: str | None = None

    @property
    def is_global(self) -> bool:
        return self.number.startswith("+")


@dataclass(frozen=True, slots=True)
class Number:
    """A classified number: what the switch sends to the trunk and what screens show."""

    kind: NumberKind
    dialed: str
    e164: str | None
    display: str
    extension: str | None = None
    region: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "dialed": self.dialed,
            "e164": self.e164,
            "display": self.display,
            "extension": self.extension,
        }


def _reject(message: str, reason: str, raw: Any) -> InvalidNumber:
    return InvalidNumber(message, reason=reason, raw=raw)


def _check_characters(text: str, raw: str) -> None:
    for char in text:
        category = unicodedata.category(char)
        # Cc: CR, LF, NUL, TAB...; Cf: invisible format characters (bidi overrides, zero width).
        if category in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"):
            raise _reject(
                f"The number contains a control or invisible character (U+{ord(char):04X}); "
                "only digits, '+' and separators are allowed.",
                "control-character",
                raw,
            )


def _normalize_spaces(text: str) -> str:
    # Copy-pasted numbers often carry no-break or thin spaces between digit groups.
    return "".join(" " if unicodedata.category(ch) == "Zs" else ch for ch in text)


def _split_params(text: str, raw: str) -> tuple[str, dict[str, str]]:
    parts = text.split(";")
    params: dict[str, str] = {}
    for part in parts[1:]:
        name, sep, value = part.partition("=")
        key = name.strip().lower()
        if key not in ("ext", "phone-context", "isub"):
            raise _reject(
                f"Unsupported parameter ';{name.strip()[:20]}': only ;ext=, ;phone-context= and ;isub= are accepted.",
                "unsupported-parameter",
                raw,
            )
        if not sep or not value.strip():
            raise _reject(f"The parameter ';{key}' has no value.", "empty-parameter", raw)
        if key in params:
            raise _reject(f"The parameter ';{key}' appears twice.", "duplicate-parameter", raw)
        params[key] = value.strip()
    return parts[0], params


def _digits_only(text: str, raw: str, *, what: str, allow_plus: bool, allow_star_hash: bool) -> str:
    """Strip visual separators; everything else must be a digit (or a leading '+')."""
    out: list[str] = []
    for char in text.strip():
        if "0" <= char <= "9":
            out.append(char)
        elif char == "+" and allow_plus and not out:
            out.append("+")
        elif char in _SEPARATORS:
            continue
        elif char in "*#" and allow_star_hash:
            out.append(char)
        elif char == "@":
            raise _reject(f"The {what} contains '@': only a number can be dialled here.", "at-sign", raw)
        elif char.isalpha():
            raise _reject(
                f"The {what} contains letters ({char!r}); only digits, '+' and separators are allowed.",
                "letters",
                raw,
            )
        elif char == "+":
            raise _reject(f"A '+' is only allowed at the start of the {what}.", "misplaced-plus", raw)
        else:
            raise _reject(
                f"The {what} contains the character {char!r}, which is not part of a phone number.",
                "bad-character",
                raw,
            )
    return "".join(out)


def parse_target(raw: str) -> ParsedTarget:
    """Parse what the user clicked. Raises :class:`InvalidNumber` (and nothing else) when it is not
    a number, with ``details['reason']`` saying why."""
    if not isinstance(raw, str):
        raise _reject("The number must be a string.", "not-a-string", None)
    if len(raw) > MAX_INPUT_LENGTH:
        raise _reject(
            f"The number is {len(raw)} characters long; at most {MAX_INPUT_LENGTH} are accepted.",
            "too-long",
            raw,
        )
    _check_characters(raw, raw)
    text = _normalize_spaces(raw).strip()
    if not text:
        raise _reject("The number is empty.", "empty", raw)

    scheme: str | None = None
    match = _SCHEME_RE.match(text)
    if match:
        candidate = match.group(1).lower()
        if candidate not in _KNOWN_SCHEMES:
            raise _reject(
                f"Unsupported link type '{candidate[:16]}:'; use tel:, callto:, sip: or a plain number.",
                "unsupported-scheme",
                raw,
            )
        scheme = candidate
        text = text[match.end() :].strip()
        if text.startswith("//"):
            text = text[2:]
    text = text.rstrip("/").strip()

    # One round of percent-decoding only: '%252B' stays '%2B' and is then refused as a bad character.
    try:
        decoded = unquote(text, errors="strict") if "%" in text else text
    except UnicodeDecodeError:
        raise _reject("The number contains percent-encoded bytes that are not text.", "bad-encoding", raw) from None
    _check_characters(decoded, raw)
    text = _normalize_spaces(decoded).strip()
    if not text:
        raise _reject("The number is empty.", "empty", raw)

    sip_host: str | None = None
    if scheme in ("sip", "sips"):
        text, sip_host = _split_sip(text, raw)
    elif "@" in text:
        raise _reject(
            "The number contains '@': only sip: links may name a host.",
            "at-sign",
            raw,
        )

    number_text, params = _split_params(text, raw)
    without_trunk_zero = None
    if number_text.lstrip().startswith("+") and "(0)" in number_text:
        # Some countries drop their trunk '0' after the country code (GB), others keep it (IT): decided
        # by the number plan in classify(), so both spellings are kept until then.
        without_trunk_zero = _digits_only(
            number_text.replace("(0)", "", 1), raw, what="number", allow_plus=True, allow_star_hash=True
        )
    number = _digits_only(number_text, raw, what="number", allow_plus=True, allow_star_hash=True)
    digits = number.lstrip("+")
    if not digits:
        raise _reject("The number has no digits.", "no-digits", raw)
    if number.startswith("+"):
        if any(ch in "*#" for ch in digits):
            raise _reject("An international number cannot contain '*' or '#'.", "bad-character", raw)
        if len(digits) > E164_MAX_DIGITS:
            raise _reject(
                f"The number has {len(digits)} digits; an international number has at most {E164_MAX_DIGITS} (E.164).",
                "too-many-digits",
                raw,
            )
    elif len(digits) > MAX_LOCAL_DIGITS:
        raise _reject(
            f"The number has {len(digits)} digits; at most {MAX_LOCAL_DIGITS} can be dialled.",
            "too-many-digits",
            raw,
        )

    extension = None
    if "ext" in params:
        extension = _digits_only(params["ext"], raw, what="extension", allow_plus=False, allow_star_hash=True)
        if not extension or len(extension) > MAX_EXTENSION_DIGITS:
            raise _reject(f"The ;ext= value must have 1 to {MAX_EXTENSION_DIGITS} digits.", "bad-extension", raw)
    phone_context = None
    if "phone-context" in params:
        phone_context = _parse_context(params["phone-context"], raw)
        if number.startswith("+"):
            raise _reject("A number that starts with '+' cannot also have ;phone-context=.", "bad-phone-context", raw)
    if "isub" in params and not _ISUB_RE.fullmatch(params["isub"]):
        raise _reject("The ;isub= value is not valid.", "bad-parameter", raw)

    return ParsedTarget(
        raw=raw,
        number=number,
        scheme=scheme,
        extension=extension,
        phone_context=phone_context,
        sip_host=sip_host,
        without_trunk_zero=without_trunk_zero,
    )


def _split_sip(text: str, raw: str) -> tuple[str, str | None]:
    if text.count("@") > 1:
        raise _reject("A sip: link may contain only one '@'.", "at-sign", raw)
    user, sep, host_part = text.partition("@")
    if not sep:
        return user, None
    host, _, uri_params = host_part.partition(";")
    host = host.strip()
    if not _SIP_HOST_RE.fullmatch(host):
        raise _reject("The host of the sip: link is not a valid host name or address.", "bad-sip-host", raw)
    for param in filter(None, uri_params.split(";")):
        if not _SIP_URI_PARAM_RE.fullmatch(param.strip()):
            raise _reject("The sip: link has a malformed parameter.", "bad-parameter", raw)
    # Headers (?...) after the host would be copied into a request: never accepted.
    if "?" in host_part:
        raise _reject("A sip: link with headers ('?') is not accepted.", "bad-parameter", raw)
    return user, host.lower()


def _parse_context(value: str, raw: str) -> str:
    if value.startswith("+"):
        digits = _digits_only(value, raw, what="phone-context", allow_plus=True, allow_star_hash=False)
        if len(digits) < 2 or len(digits) > 9:
            raise _reject("The ;phone-context= prefix must be '+' and 1 to 8 digits.", "bad-phone-context", raw)
        return digits
    if _DOMAIN_RE.fullmatch(value):
        return value.lower()
    raise _reject(
        "The ;phone-context= value must be a '+' prefix (e.g. +39) or a domain name.", "bad-phone-context", raw
    )


def classify(parsed: ParsedTarget, plan: DialPlan) -> Number:
    """Classify ``parsed`` with ``plan`` and compute the digits the switch sends to the trunk.

    Order matters: emergency numbers first (an outbound prefix already typed is not doubled), then
    internal extensions, then external numbers through phonenumbers.
    """
    number = parsed.number
    raw = parsed.raw
    outbound = plan.outbound_prefix

    emergency = _emergency_match(parsed, plan)
    if emergency is not None:
        return _finish(
            Number(
                kind=NumberKind.EMERGENCY,
                dialed=outbound + emergency,
                e164=None,
                display=emergency,
                extension=parsed.extension,
                region=plan.country,
            ),
            raw,
        )

    if not parsed.is_global and parsed.phone_context is None and plan.extension_regex.fullmatch(number):
        return _finish(
            Number(
                kind=NumberKind.EXTENSION,
                dialed=number,
                e164=None,
                display=number,
                extension=parsed.extension,
                region=plan.country,
            ),
            raw,
        )
    if any(ch in "*#" for ch in number):
        raise _reject(
            "Only internal extensions may contain '*' or '#'; external numbers are digits only.",
            "feature-code",
            raw,
        )

    pn = _to_phonenumber(parsed, plan)
    nsn = phonenumbers.national_significant_number(pn)
    home_code = phonenumbers.country_code_for_region(plan.country)
    # The short emergency numbers also arrive as '+39 112' or 'tel:112;phone-context=+39'.
    if pn.country_code == home_code and nsn in plan.emergency_numbers:
        return _finish(
            Number(
                kind=NumberKind.EMERGENCY,
                dialed=outbound + nsn,
                e164=None,
                display=nsn,
                extension=parsed.extension,
                region=plan.country,
            ),
            raw,
        )

    if phonenumbers.region_code_for_country_code(pn.country_code or 0) in (None, "ZZ"):
        raise _reject(f"There is no country with the code +{pn.country_code}.", "invalid-country-code", raw)
    reason = phonenumbers.is_possible_number_with_reason(pn)
    if reason == ValidationResult.TOO_LONG:
        raise _reject("The number is too long for its country.", "too-many-digits", raw)
    if reason in (ValidationResult.TOO_SHORT, ValidationResult.INVALID_LENGTH):
        raise _reject("The number has the wrong number of digits for its country.", "invalid-length", raw)
    if reason == ValidationResult.INVALID_COUNTRY_CODE:
        raise _reject("The number's country code does not exist.", "invalid-country-code", raw)
    if len(str(pn.country_code)) + len(nsn) > E164_MAX_DIGITS:
        raise _reject(f"The number has more than {E164_MAX_DIGITS} digits (E.164).", "too-many-digits", raw)

    e164 = phonenumbers.format_number(pn, PhoneNumberFormat.E164)
    region = phonenumbers.region_code_for_number(pn)

    if pn.country_code == home_code:
        # Same country code (NANP's +1, +44 for GB/JE/GG...): dialled the way callers there dial it.
        national_digits = re.sub(r"[^0-9]", "", phonenumbers.format_out_of_country_calling_number(pn, plan.country))
        kind = NumberKind.NATIONAL if region in (None, plan.country) else NumberKind.INTERNATIONAL
        dialed = outbound + national_digits
    else:
        kind = NumberKind.INTERNATIONAL
        dialed = outbound + plan.idd + str(pn.country_code) + nsn
    display = _display(pn, plan.country)

    return _finish(
        Number(
            kind=kind,
            dialed=dialed,
            e164=e164,
            display=display,
            extension=parsed.extension,
            region=region,
        ),
        raw,
    )


def _display(pn: phonenumbers.PhoneNumber, country: str) -> str:
    """National format for the dial plan's country, international for every other one."""
    region = phonenumbers.region_code_for_number(pn)
    home = pn.country_code == phonenumbers.country_code_for_region(country) and region in (None, country)
    return phonenumbers.format_number(pn, PhoneNumberFormat.NATIONAL if home else PhoneNumberFormat.INTERNATIONAL)


@lru_cache(maxsize=65536)
def display_number(e164: str, country: str) -> str:
    """How screens show the stored number ``e164`` in an installation of ``country`` (one format for all)."""
    try:
        return _display(phonenumbers.parse(e164, None), country)
    except NumberParseException:
        return e164


def _emergency_match(parsed: ParsedTarget, plan: DialPlan) -> str | None:
    if parsed.is_global or parsed.phone_context is not None:
        return None
    number = parsed.number
    emergency = plan.emergency_numbers
    if number in emergency:
        return number
    outbound = plan.outbound_prefix
    if outbound and number.startswith(outbound) and number[len(outbound) :] in emergency:
        return number[len(outbound) :]
    return None


def _to_phonenumber(parsed: ParsedTarget, plan: DialPlan) -> phonenumbers.PhoneNumber:
    return _parse_in(parsed, plan.country, plan.idd)


def _parse_in(parsed: ParsedTarget, country: str, idd: str) -> phonenumbers.PhoneNumber:
    """``parsed`` as a phonenumbers number read in ``country``; raises :class:`InvalidNumber`."""
    pn = _parse_digits(parsed, parsed.number, country, idd)
    if parsed.without_trunk_zero is not None and not phonenumbers.is_valid_number(pn):
        try:
            other = _parse_digits(parsed, parsed.without_trunk_zero, country, idd)
        except InvalidNumber:
            return pn
        if phonenumbers.is_valid_number(other):
            return other
    return pn


def _parse_digits(parsed: ParsedTarget, number: str, country: str, idd: str) -> phonenumbers.PhoneNumber:
    context = parsed.phone_context
    try:
        if number.startswith("+"):
            return phonenumbers.parse(number, None)
        if context is not None and context.startswith("+"):
            cc_region = _region_for_context(context)
            if cc_region is not None:
                return phonenumbers.parse(number, cc_region)
            return phonenumbers.parse(context + number, None)
        # The plan's own international prefix wins over the metadata (an admin may have set '011').
        if number.startswith(idd) and len(number) > len(idd):
            return phonenumbers.parse("+" + number[len(idd) :], None)
        return phonenumbers.parse(number, country)
    except NumberParseException as exc:
        reason, message = _PARSE_ERRORS.get(
            exc.error_type, ("not-a-phone-number", "This is not a phone number that can be dialled.")
        )
        raise _reject(message, reason, parsed.raw) from None


_PARSE_ERRORS: dict[int, tuple[str, str]] = {
    NumberParseException.INVALID_COUNTRY_CODE: (
        "invalid-country-code",
        "The number's country code does not exist.",
    ),
    NumberParseException.TOO_SHORT_AFTER_IDD: ("invalid-length", "The number is too short after the prefix."),
    NumberParseException.TOO_SHORT_NSN: ("invalid-length", "The number is too short."),
    NumberParseException.TOO_LONG: ("too-many-digits", "The number is too long."),
}


def _region_for_context(context: str) -> str | None:
    code = context.lstrip("+")
    if not code.isdigit() or len(code) > 3:
        return None
    region = phonenumbers.region_code_for_country_code(int(code))
    return None if region in (None, "ZZ", "001") else region


def _finish(number: Number, raw: str) -> Number:
    if not DIALED_RE.fullmatch(number.dialed):
        raise _reject(
            "After applying the dial plan the number would be longer than 20 digits.", "too-long-to-dial", raw
        )
    if number.extension is not None and not re.fullmatch(r"[0-9*#]{1,10}", number.extension):
        raise _reject("The ;ext= value is not valid.", "bad-extension", raw)
    return number


_ALLOWED: dict[OutboundClass, frozenset[NumberKind]] = {
    OutboundClass.INTERNAL: frozenset({NumberKind.EXTENSION, NumberKind.EMERGENCY}),
    OutboundClass.NATIONAL: frozenset({NumberKind.EXTENSION, NumberKind.EMERGENCY, NumberKind.NATIONAL}),
    OutboundClass.INTERNATIONAL: frozenset(NumberKind),
}


def allowed(kind: NumberKind | str, outbound_class: OutboundClass | str) -> bool:
    """May a user of ``outbound_class`` dial a number of ``kind``? Emergency is always allowed;
    an unknown class allows nothing else (fail closed)."""
    try:
        kind_value = NumberKind(kind)
    except ValueError:
        return False
    if kind_value is NumberKind.EMERGENCY:
        return True
    try:
        klass = OutboundClass(outbound_class)
    except ValueError:
        return False
    return kind_value in _ALLOWED[klass]


def check_allowed(number: Number, outbound_class: OutboundClass | str) -> None:
    """Raise :class:`NumberNotPermitted` (403 ``number-not-permitted``) unless allowed."""
    if not allowed(number.kind, outbound_class):
        raise NumberNotPermitted(
            f"Your outbound permission ({outbound_class}) does not allow {number.kind.value} numbers.",
            details={"kind": number.kind.value, "outbound_class": str(outbound_class)},
        )


def normalize(raw: str, plan: DialPlan) -> Number:
    """``parse_target`` then ``classify``: the one call the click-to-call service needs."""
    return classify(parse_target(raw), plan)


# Stored numbers (phonebook, card sources, DIDs): the same parser, no dial plan permission involved.
MIN_STORED_DIGITS = 2


@dataclass(frozen=True, slots=True)
class NumberForms:
    """Every form of one stored number that look-ups and search compare on."""

    digits: str
    # E.164 digits without '+' when the number can be placed in the country, else the bare digits.
    key: str
    e164: str | None
    # The digits dialled inside the number's own country (national prefix included): IT 0721405516.
    national: str | None

    @property
    def national_digits(self) -> str | None:
        return self.national


def _only_digits(text: str) -> str:
    return "".join(ch for ch in text if "0" <= ch <= "9")


def read_number(raw: str) -> ParsedTarget:
    """Check a number someone stores (a phonebook entry, an imported cell, a card look-up, a DID).

    Every form ``parse_target`` accepts is accepted; a stored number is digits only (no ``*``/``#``
    feature codes) and has at least two of them. Raises :class:`InvalidNumber` with the same reasons
    the click-to-call endpoint gives.
    """
    parsed = parse_target(raw)
    if any(ch in "*#" for ch in parsed.number):
        raise _reject(
            "A stored number is digits only: '*' and '#' are for feature codes dialled by hand.",
            "feature-code",
            raw,
        )
    if len(parsed.number.lstrip("+")) < MIN_STORED_DIGITS:
        raise _reject(f"The number has fewer than {MIN_STORED_DIGITS} digits.", "too-few-digits", raw)
    return parsed


@lru_cache(maxsize=65536)
def number_forms(raw: str, country: str) -> NumberForms:
    """The forms of ``raw`` read in ``country``. Never raises: text this parser refuses (and numbers
    phonenumbers cannot place, such as extensions) keeps its bare digits as its key."""
    try:
        parsed = parse_target(raw)
        pn = _parse_in(parsed, country, default_international_prefix(country))
    except InvalidNumber:
        digits = _only_digits(raw)
        return NumberForms(digits=digits, key=digits, e164=None, national=None)
    digits = _only_digits(parsed.number)
    if not phonenumbers.is_possible_number(pn):
        return NumberForms(digits=digits, key=digits, e164=None, national=None)
    # Built from the parts rather than format_number(), which costs several regex passes per number.
    nsn = phonenumbers.national_significant_number(pn)
    region = phonenumbers.region_code_for_country_code(pn.country_code or 0)
    meta = phonenumbers.PhoneMetadata.metadata_for_region(region) if region else None
    prefix = (meta.national_prefix or "") if meta is not None else ""
    national = nsn if not prefix or nsn.startswith(prefix) else prefix + nsn
    e164 = f"+{pn.country_code}{nsn}"
    return NumberForms(digits=digits, key=e164[1:], e164=e164, national=national)


# Dates, times and plain amounts that a CRM keeps next to its numbers and that digit-wise could pass for
# one ('2026-11-20' is 8 digits): never phone numbers, whatever the number plan says.
_NOT_A_PHONE_RE = re.compile(
    r"^\s*(?:\d{4}-\d{1,2}-\d{1,2}(?:[T ].*)?|\d{1,2}[./-]\d{1,2}[./-]\d{2,4}|\d{1,2}:\d{2}(?::\d{2})?|"
    r"\d+[.,]\d{1,2})\s*$"
)


def phone_display(value: object, country: str) -> str | None:
    """The display form of ``value`` when it is a phone number (a valid one for its country), else None.

    For data from other systems (customer-card sources): only text counts (a CRM's integers are ids
    and amounts), a date or time never does, and the number must be valid, not merely possible.
    """
    if not isinstance(value, str) or len(value) > 40 or _NOT_A_PHONE_RE.match(value):
        return None
    try:
        parsed = read_number(value)
        pn = _parse_in(parsed, country, default_international_prefix(country))
    except InvalidNumber:
        return None
    if not phonenumbers.is_valid_number(pn):
        return None
    return _display(pn, country)
