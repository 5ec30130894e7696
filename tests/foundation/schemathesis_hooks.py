"""Schemathesis hooks for tests/foundation/test_schemathesis.py (loaded through ``SCHEMATHESIS_HOOKS``).

They keep a fuzzing run able to go on and inside this machine, and nothing else: every operation is still
called. Each rule says why:

- the caller's own account (``CALLTO_ST_OWN_USER_ID``) is never changed or deleted through
  ``/admin/users/{user_id}`` (the case goes to a missing id instead): a password reset, a role change or
  a deletion of oneself logs the run out, and every later case would test only the 401;
- trunks always point at 127.0.0.1: a trunk the server registers with, or sends calls to, would otherwise
  send SIP (and DNS look-ups of generated names) off this machine;
- card sources never reach another machine: an SQL source's ``url`` becomes an in-memory SQLite database
  and an HTTP source's ``url_template`` 127.0.0.1 port 9 (nothing listens); ``POST .../test`` would
  otherwise connect to generated hosts;
- webhooks always point at 127.0.0.1 port 9 (nothing listens): deliveries and ``POST .../test`` would
  otherwise send HTTP (and DNS look-ups of generated names) off this machine.
"""

from __future__ import annotations

import os
from typing import Any

import schemathesis

OWN_USER_ID = os.environ.get("CALLTO_ST_OWN_USER_ID", "")
SAFE_CONFIG = {"url": "sqlite://", "url_template": "http://127.0.0.1:9/{number}"}
MISSING_ID = "2147483647"  # in range, and no test server has that many users


@schemathesis.hook
def before_call(context: Any, case: Any, **kwargs: Any) -> None:
    """Applied to every request of every phase (generation-time hooks miss the coverage phase)."""
    path = case.operation.path
    params = case.path_parameters or {}
    own = str(params.get("user_id")) == OWN_USER_ID
    if path.startswith("/api/v1/admin/users/{user_id}") and case.method.upper() != "GET" and own:
        params["user_id"] = MISSING_ID
    body = case.body
    if not isinstance(body, dict):
        return
    if path.startswith("/api/v1/admin/trunks") and "host" in body:
        body["host"] = "127.0.0.1"
    if path.startswith("/api/v1/admin/webhooks") and "url" in body:
        body["url"] = "http://127.0.0.1:9/hook"
    if path.startswith("/api/v1/admin/card-sources") and isinstance(body.get("config"), dict):
        config = body["config"]
        body["config"] = {**config, **{k: v for k, v in SAFE_CONFIG.items() if k in config}}
