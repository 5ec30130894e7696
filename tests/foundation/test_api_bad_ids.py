"""Ordinary bad input never gets a 5xx: ids beyond what the database can hold are 404 (like any id that does
not exist), malformed ids 422, dates that leave the calendar once moved to UTC 422, all as JSON errors; and
the OpenAPI spec lists every error answer with the one error schema.

The id routes are read from the live spec, so a route added later is checked too. On PostgreSQL the id
columns are int4: 2147483647 is an ordinary missing id, 2147483648 used to be a 500.
"""

from __future__ import annotations

from typing import Any

import pytest

from support.server import Api

OUT_OF_RANGE = ["2147483648", "99999999999999999999", "-99999999999999999999", "-2147483649"]
EXTREME_DATES = [
    "0001-01-01T00:00:00+05:00",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:00:00-05:00",
    "9999-12-31T23:59:59-14:00",
]
METHODS = ("get", "put", "post", "patch", "delete")


def _spec(api: Api) -> dict[str, Any]:
    r = api.get("/api/v1/openapi.json")
    assert r.status_code == 200
    spec: dict[str, Any] = r.json()
    return spec


def _integer_path_operations(spec: dict[str, Any]) -> list[tuple[str, str, list[str]]]:
    found = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            if method not in METHODS:
                continue
            ints = [p["name"] for p in op.get("parameters", [])
                    if p["in"] == "path" and p.get("schema", {}).get("type") == "integer"]
            if ints:
                found.append((method, path, ints))
    return found


def _id_query_operations(spec: dict[str, Any]) -> list[tuple[str, str, str]]:
    found = []
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            for p in op.get("parameters", []) if method in METHODS else []:
                name = p["name"]
                schema = p.get("schema", {})
                types = {schema.get("type"), *(s.get("type") for s in schema.get("anyOf", []))}
                if p["in"] == "query" and (name == "id" or name.endswith("_id")) and "integer" in types:
                    found.append((method, path, name))
    return found


def _fill(path: str, names: list[str], value: str) -> str:
    for name in names:
        path = path.replace("{" + name + "}", value)
    return path


def _assert_error(r: Any, status: int, error: str) -> None:
    assert r.status_code == status, (r.request.method, str(r.request.url), r.status_code, r.text)
    body = r.json()
    assert set(body) == {"error", "message", "details"}, body
    assert body["error"] == error, body


def test_ids_beyond_the_database_range_are_not_found_on_every_id_route(admin_api: Api) -> None:
    operations = _integer_path_operations(_spec(admin_api))
    # the routes the issue names, so a spec that lost them cannot pass this by checking nothing
    paths = {path for _, path, _ in operations}
    for must in ("/api/v1/phonebook/{contact_id}", "/api/v1/admin/users/{user_id}", "/api/v1/admin/devices/{device_id}",
                 "/api/v1/admin/phones/{phone_id}", "/api/v1/admin/trunks/{trunk_id}",
                 "/api/v1/admin/card-sources/{source_id}", "/api/v1/me/devices/{device_id}/sip"):
        assert must in paths, must
    for method, path, names in operations:
        def call(value: str, method: str = method, path: str = path, names: list[str] = names) -> Any:
            params = {"number": "+390612345678"} if path.endswith("/test") else None
            body = {} if method != "get" else None  # valid wherever all fields are optional: the id decides
            return admin_api.http.request(method.upper(), _fill(path, names, value), params=params, json=body)

        # What a missing id in range gets: 404, or the route's own refusal (a device that is not yours is
        # a 403 whether it exists or not). An id out of range may get that or 404, never anything else.
        missing = call("2147483647")
        assert missing.status_code < 500, (method, path, missing.text)
        for value in OUT_OF_RANGE:
            r = call(value)
            if r.status_code == 422 and missing.status_code == 422:
                continue  # the body was refused before any look-up: not about the id
            allowed = {404, missing.status_code}
            assert r.status_code in allowed, (method, path, value, r.status_code, r.text)
            assert set(r.json()) == {"error", "message", "details"}, r.text


def test_a_malformed_id_is_invalid_input(admin_api: Api) -> None:
    for method, path, names in _integer_path_operations(_spec(admin_api)):
        if method != "get":
            continue
        _assert_error(admin_api.get(_fill(path, names, "12abc")), 422, "invalid-input")


def test_the_largest_int4_id_is_an_ordinary_missing_row(admin_api: Api) -> None:
    _assert_error(admin_api.get("/api/v1/phonebook/2147483647"), 404, "contact-not-found")
    _assert_error(admin_api.get("/api/v1/admin/users/2147483647"), 404, "user-not-found")


def test_id_query_parameters_beyond_the_range_are_not_found(admin_api: Api) -> None:
    operations = _id_query_operations(_spec(admin_api))
    assert ("get", "/api/v1/admin/history", "user_id") in operations
    for method, path, name in operations:
        if method != "get":
            continue
        for value in OUT_OF_RANGE:
            _assert_error(admin_api.get(path, params={name: value}), 404, "not-found")
    # an id in range that names nobody is an ordinary filter: nothing matches
    assert admin_api.get("/api/v1/admin/history", params={"user_id": "2147483647"}).status_code == 200


def test_an_id_beyond_the_range_in_a_body_is_not_a_server_error(admin_api: Api) -> None:
    for value in (2147483648, 99999999999999999999):
        r = admin_api.put("/api/v1/me/main-device", json={"device_id": value})
        assert r.status_code in (403, 404, 422), r.text  # 403: not one of yours, as for any missing device
        assert set(r.json()) == {"error", "message", "details"}


@pytest.mark.parametrize("path", ["/api/v1/history", "/api/v1/admin/history", "/api/v1/admin/history/export"])
def test_dates_that_leave_the_calendar_in_utc_are_invalid_input(admin_api: Api, path: str) -> None:
    for name in ("since", "until"):
        for value in EXTREME_DATES:
            r = admin_api.get(path, params={name: value})
            if r.status_code == 200:
                continue  # a date that still fits in UTC (e.g. year 1 with an offset west of it)
            _assert_error(r, 422, "invalid-input")


def test_every_operation_lists_its_error_answers_with_the_error_schema(anon_api: Api) -> None:
    spec = _spec(anon_api)
    error = spec["components"]["schemas"]["Error"]
    assert error["required"] == ["error", "message", "details"]
    assert "HTTPValidationError" not in spec["components"]["schemas"]
    for path, ops in spec["paths"].items():
        for method, op in ops.items():
            responses = op["responses"]
            for status, response in responses.items():
                if int(status) >= 400:
                    schema = response["content"]["application/json"]["schema"]
                    assert schema == {"$ref": "#/components/schemas/Error"}, (method, path, status)
            statuses = {int(s) for s in responses}
            if op.get("security"):
                assert {401, 403, 503} <= statuses, (method, path, statuses)
                assert "Retry-After" in responses["503"]["headers"]
            if any(p["in"] == "path" for p in op.get("parameters", [])):
                assert 404 in statuses, (method, path)
            if op.get("parameters") or "requestBody" in op:
                assert 422 in statuses, (method, path)
    login = spec["paths"]["/api/v1/auth/login"]["post"]["responses"]
    assert {"401", "429", "503"} <= set(login), sorted(login)


def test_a_trunk_host_that_is_neither_a_name_nor_an_address_is_invalid_input(admin_api: Api) -> None:
    # 250 hex digits once passed as an "IP literal", then broke the resolver (500) for every trunk change
    for host in ("0" * 250, "a" * 64, "abc:def"):
        body = {"name": "t1", "host": host, "port": 5060, "transport": "udp", "register": False}
        _assert_error(admin_api.post("/api/v1/admin/trunks", json=body), 422, "invalid-input")
    ok = admin_api.post("/api/v1/admin/trunks", json={"name": "t2", "host": "127.0.0.1", "register": False})
    assert ok.status_code == 201, ok.text


def test_a_string_id_parameter_of_digits_is_not_taken_for_a_row_id(admin_api: Api) -> None:
    # import_id is the client's own label for an import (a string): 20 digits are a valid one
    r = admin_api.post("/api/v1/phonebook/import", params={"import_id": "9" * 20},
                       content=b"name,phone\nAda,+390612345678\n", headers={"Content-Type": "text/csv"})
    assert r.status_code == 200, r.text


def test_a_nul_character_in_a_login_is_refused_not_a_server_error(anon_api: Api) -> None:
    # PostgreSQL refuses NUL in text: that was a 500 on login before the error layer knew DataError
    r = anon_api.post("/api/v1/auth/login", json={"username": "ad\u0000min", "password": "x\u0000"})
    assert 400 <= r.status_code < 500, r.text
    assert set(r.json()) == {"error", "message", "details"}
