"""Number parsing, the dial plan and outbound permissions: every clicked form, every refusal."""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from callto.dialer.dialplan import DialPlan, InvalidDialPlan, default_international_prefix
from callto.dialer.numbers import (
    DIALED_RE,
    InvalidNumber,
    NumberKind,
    NumberNotPermitted,
    allowed,
    check_allowed,
    classify,
    display_number,
    normalize,
    number_forms,
    parse_target,
    phone_display,
    read_number,
)

IT = DialPlan(country="IT", outbound_prefix="0")
IT_NO_PREFIX = DialPlan(country="IT")

ACCEPTED = [
    # (clicked, dialed, e164, kind)
    ("tel:+39-0721-405516", "00721405516", "+390721405516", "national"),
    ("tel:+390721405516;ext=23", "00721405516", "+390721405516", "national"),
    ("tel:0721405516;phone-context=+39", "00721405516", "+390721405516", "national"),
    ("tel:%2B39%20071%20123456", "0071123456", "+39071123456", "national"),
    ("callto:+390721405516", "00721405516", "+390721405516", "national"),
    ("callto:%2B390721405516", "00721405516", "+390721405516", "national"),
    ("callto://0721405516", "00721405516", "+390721405516", "national"),
    ("callto://+390721405516/", "00721405516", "+390721405516", "national"),
    ("tel://0721405516", "00721405516", "+390721405516", "national"),
    ("TEL:+390721405516", "00721405516", "+390721405516", "national"),
    ("CallTo:+39 0721 405516", "00721405516", "+390721405516", "national"),
    ("tel:0721.405.516", "00721405516", "+390721405516", "national"),
    ("tel:+39(0721)405-516", "00721405516", "+390721405516", "national"),
    ("+39 (0721) 40 55 16", "00721405516", "+390721405516", "national"),
    ("+39\u00a00721\u00a0405516", "00721405516", "+390721405516", "national"),
    ("0721/405516", "00721405516", "+390721405516", "national"),
    ("  0721 405516  ", "00721405516", "+390721405516", "national"),
    ("201", "201", None, "extension"),
    ("sip:201@pbx.example.com", "201", None, "extension"),
    ("sips:201@10.0.0.1:5061;transport=tls", "201", None, "extension"),
    ("SIP:201@[::1]", "201", None, "extension"),
    ("sip:+390721405516@pbx.example.com", "00721405516", "+390721405516", "national"),
    ("+44 20 7946 0958", "000442079460958", "+442079460958", "international"),
    ("0044 20 7946 0958", "000442079460958", "+442079460958", "international"),
    ("tel:+1-201-555-0123", "00012015550123", "+12015550123", "international"),
    ("112", "0112", None, "emergency"),
    ("0112", "0112", None, "emergency"),
    ("113", "0113", None, "emergency"),
    ("tel:+39112", "0112", None, "emergency"),
    ("tel:118;phone-context=+39", "0118", None, "emergency"),
]


@pytest.mark.parametrize(("clicked", "dialed", "e164", "kind"), ACCEPTED)
def test_clicked_form_reaches_the_trunk_as_these_digits(clicked: str, dialed: str, e164: str | None, kind: str) -> None:
    number = normalize(clicked, IT)
    assert (number.dialed, number.e164, number.kind.value) == (dialed, e164, kind)
    assert DIALED_RE.fullmatch(number.dialed)


def test_ext_parameter_becomes_the_dtmf_suffix_not_part_of_the_number() -> None:
    number = normalize("tel:+390721405516;ext=23", IT)
    assert number.extension == "23"
    assert number.dialed == "00721405516"


def test_parse_keeps_the_plus_until_the_dial_plan_decides() -> None:
    assert parse_target("tel:+39-0721-405516").number == "+390721405516"
    assert parse_target("callto:%2B39 071 123456").number == "+39071123456"
    assert parse_target("0721/405516").number == "0721405516"


def test_national_display_is_the_pretty_national_format() -> None:
    assert normalize("+390721405516", IT).display == "0721 405516"
    assert normalize("+442079460958", IT).display == "+44 20 7946 0958"


def test_without_outbound_prefix_the_number_is_dialled_as_written_nationally() -> None:
    assert normalize("+39 0721 405516", IT_NO_PREFIX).dialed == "0721405516"
    assert normalize("+44 20 7946 0958", IT_NO_PREFIX).dialed == "00442079460958"
    assert normalize("112", IT_NO_PREFIX).dialed == "112"


def test_emergency_is_recognised_before_the_extension_pattern() -> None:
    # 112 also matches the default extension pattern ^[1-9][0-9]{1,4}$.
    assert IT.extension_regex.fullmatch("112")
    assert normalize("112", IT).kind is NumberKind.EMERGENCY


def test_us_plan_uses_011_and_911() -> None:
    us = DialPlan(country="US", outbound_prefix="9")
    assert us.international_prefix == "011"
    assert "911" in us.emergency_numbers
    assert normalize("911", us).dialed == "9911"
    assert normalize("+39 0721 405516", us).dialed == "9011390721405516"
    assert normalize("(201) 555-0123", us).dialed == "912015550123"


REJECTED = [
    ("0721 CALL ME", "letters"),
    ("tel:+39 0721 405516@evil.example", "at-sign"),
    ("callto:201@host", "at-sign"),
    ("tel:0721405516\r\nVia: SIP/2.0/UDP evil", "control-character"),
    ("tel:0721%0D%0A405516", "control-character"),
    ("0721\u202e405516", "control-character"),
    ("tel:0721\x00405516", "control-character"),
    ("", "empty"),
    ("   ", "empty"),
    ("tel:", "empty"),
    ("1" * 40, "too-many-digits"),
    ("+1234567890123456", "too-many-digits"),
    ("tel:+390721405516;foo=bar", "unsupported-parameter"),
    ("tel:+390721405516;user=phone", "unsupported-parameter"),
    ("tel:+390721405516;ext=", "empty-parameter"),
    ("tel:+390721405516;ext=1;ext=2", "duplicate-parameter"),
    ("tel:+390721405516;ext=abc", "letters"),
    ("http://example.com/0721", "unsupported-scheme"),
    ("javascript:alert(1)", "unsupported-scheme"),
    ("sip:201@evil host", "bad-sip-host"),
    ("sip:201@host?Subject=x", "bad-sip-host"),
    ("sip:201<sip:x>@host", "bad-character"),
    ("0721+405516", "misplaced-plus"),
    ("%252B390721405516", "bad-character"),
    ("tel:%FF%FE", "bad-encoding"),
    ('0721"405516', "bad-character"),
    ("*97", "feature-code"),
    ("3", "not-a-phone-number"),
    ("+999 1234", "invalid-country-code"),
    ("tel:0721405516;phone-context=+39;phone-context=+44", "duplicate-parameter"),
    ("tel:0721405516;phone-context=bad_domain!", "bad-phone-context"),
]


@pytest.mark.parametrize(("clicked", "reason"), REJECTED)
def test_not_a_number_is_422_invalid_number_saying_why(clicked: str, reason: str) -> None:
    with pytest.raises(InvalidNumber) as caught:
        normalize(clicked, IT)
    error = caught.value
    assert error.details["reason"] == reason, (clicked, error.details, error.message)
    assert (error.status, error.error) == (422, "invalid-number")
    assert error.message and error.message[0].isupper()
    assert error.to_json()["details"]["reason"] == reason


def test_non_string_input_is_invalid_number() -> None:
    with pytest.raises(InvalidNumber):
        parse_target(12345)  # type: ignore[arg-type]


def test_huge_input_is_refused_before_any_work() -> None:
    with pytest.raises(InvalidNumber) as caught:
        parse_target("1" * 100_000)
    assert caught.value.details["reason"] == "too-long"
    assert len(caught.value.details["input"]) <= 64


@pytest.mark.parametrize(
    ("kind", "klass", "expected"),
    [
        ("extension", "internal", True),
        ("emergency", "internal", True),
        ("national", "internal", False),
        ("international", "internal", False),
        ("national", "national", True),
        ("international", "national", False),
        ("international", "international", True),
        ("emergency", "no-such-class", True),
        ("extension", "no-such-class", False),
        ("no-such-kind", "international", False),
    ],
)
def test_outbound_class_permissions(kind: str, klass: str, expected: bool) -> None:
    assert allowed(kind, klass) is expected


def test_not_permitted_number_is_403_number_not_permitted() -> None:
    number = normalize("+44 20 7946 0958", IT)
    with pytest.raises(NumberNotPermitted) as caught:
        check_allowed(number, "national")
    assert (caught.value.status, caught.value.error) == (403, "number-not-permitted")
    check_allowed(normalize("112", IT), "internal")


def test_dial_plan_defaults_come_from_the_country() -> None:
    plan = DialPlan(country="it")
    assert plan.country == "IT"
    assert plan.international_prefix == "00"
    assert set(plan.emergency_numbers) == {"112", "113", "115", "118"}
    assert plan.extension_pattern == r"^[1-9][0-9]{1,4}$"
    assert default_international_prefix("JP") == "010"


@pytest.mark.parametrize(
    ("settings_", "field", "words"),
    [
        ({"extension_pattern": "^[0-9"}, "extension_pattern", "not a valid regular expression"),
        ({"extension_pattern": ".*"}, "extension_pattern", "digits only"),
        ({"country": "XX"}, "country", "not a known"),
        ({"outbound_prefix": "0a"}, "outbound_prefix", "up to 4 digits"),
        ({"international_prefix": "+"}, "international_prefix", "1 to 4 digits"),
        ({"emergency": ["112", "1a2"]}, "emergency", "2 to 6 digits"),
        ({"emergency": "112"}, "emergency", "list"),
        ({"unknown": 1}, "unknown", "Extra inputs"),
    ],
)
def test_bad_dial_plan_setting_is_a_clear_error(settings_: dict[str, object], field: str, words: str) -> None:
    with pytest.raises(InvalidDialPlan) as caught:
        DialPlan.from_settings(settings_)
    assert caught.value.status == 422
    assert field in caught.value.details["fields"]
    assert words in caught.value.details["fields"][field]


def test_custom_extension_pattern_is_honoured() -> None:
    plan = DialPlan(country="IT", extension_pattern=r"^[2-4][0-9]{3}$")
    assert normalize("2001", plan).kind is NumberKind.EXTENSION
    with pytest.raises(InvalidNumber):
        normalize("201", plan)  # no longer an extension, and too short for an Italian number


def test_admin_international_prefix_overrides_metadata() -> None:
    plan = DialPlan(country="IT", international_prefix="011")
    assert normalize("011 44 20 7946 0958", plan).e164 == "+442079460958"
    assert normalize("+44 20 7946 0958", plan).dialed == "011442079460958"


texts = st.one_of(
    st.text(max_size=60),
    st.text(alphabet="0123456789+-.() /;=%*#@:abcdefxtelsipcalto\r\n\t", max_size=60),
    st.builds(lambda s: "tel:" + s, st.text(alphabet="0123456789+-.() ;=%extphone-context", max_size=40)),
)


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(texts)
def test_any_input_either_dials_safe_digits_or_is_invalid_number(raw: str) -> None:
    for plan in (IT, IT_NO_PREFIX):
        try:
            number = classify(parse_target(raw), plan)
        except InvalidNumber:
            continue
        assert re.fullmatch(r"^[0-9*#+]{1,20}$", number.dialed), (raw, number)
        assert number.extension is None or re.fullmatch(r"[0-9*#]{1,10}", number.extension)


@settings(max_examples=200, deadline=None)
@given(st.from_regex(r"\+39 ?0[1-9][0-9]{1,2} ?[0-9]{5,7}", fullmatch=True))
def test_italian_landlines_in_e164_become_outbound_prefix_plus_national_digits(raw: str) -> None:
    try:
        number = normalize(raw, IT)
    except InvalidNumber as exc:
        assert exc.details["reason"] in ("invalid-length", "too-many-digits")
        return
    assert number.kind is NumberKind.NATIONAL
    assert number.dialed == "0" + raw.replace(" ", "")[3:]


# The one parser also serves stored numbers (phonebook, card look-ups, card sources).

@pytest.mark.parametrize(
    ("typed", "e164"),
    [
        ("+39 (0)721 405516", "+390721405516"),  # Italy keeps its 0 after +39
        ("+44 (0)20 7946 0958", "+442079460958"),  # Great Britain drops it
        ("+49 (0)30 12345678", "+493012345678"),
        ("(051) 6842684", "+390516842684"),
        ("0(721) 405516", "+390721405516"),
        ("00390814728038", "+390814728038"),
    ],
)
def test_trunk_zero_in_parentheses_and_parentheses_anywhere_follow_the_number_plan(typed: str, e164: str) -> None:
    assert normalize(typed, IT).e164 == e164
    assert number_forms(typed, "IT").e164 == e164


@pytest.mark.parametrize("bad", ["0721 4O5516", "mario@example.it", "12#", "*21*", "5", "tel:0721;drop=1"])
def test_stored_numbers_are_refused_with_the_same_reason_as_clicks(bad: str) -> None:
    with pytest.raises(InvalidNumber) as stored:
        read_number(bad)
    try:
        parse_target(bad)
    except InvalidNumber as clicked:
        assert stored.value.reason == clicked.reason
    else:
        # Feature codes and one-digit numbers can be clicked, never stored in a phonebook.
        assert stored.value.reason in ("feature-code", "too-few-digits")


@pytest.mark.parametrize(
    ("e164", "country", "shown"),
    [
        ("+390721405516", "IT", "0721 405516"),
        ("+390721405516", "GB", "+39 0721 405516"),
        ("+442079460958", "GB", "020 7946 0958"),
        ("+442079460958", "IT", "+44 20 7946 0958"),
        ("+14165550123", "US", "+1 416-555-0123"),  # Canada shares +1 but is another country
    ],
)
def test_display_is_national_at_home_and_international_elsewhere(e164: str, country: str, shown: str) -> None:
    assert display_number(e164, country) == shown
    assert normalize(e164, DialPlan(country=country)).display == shown


@pytest.mark.parametrize(
    ("value", "shown"),
    [
        ("0721 405516", "0721 405516"),
        ("tel:+393349912322", "334 991 2322"),
        ("2026-11-20", None),
        ("20/11/2026", None),
        ("20261120", None),
        ("12:30", None),
        ("1200.50", None),
        ("ACME", None),
        (20261120, None),
    ],
)
def test_only_phone_numbers_in_other_systems_data_count_as_numbers(value: object, shown: str | None) -> None:
    assert phone_display(value, "IT") == shown
