"""Token guessing on the provisioning server is throttled per address (own server: the block is global).

After ten wrong tokens or unknown MACs within a minute, every provisioning request from that address
gets 429 with Retry-After, the right token included, so a guesser cannot tell a hit from a miss.
"""

from __future__ import annotations

import secrets

import httpx

from support.server import ADMIN_PASSWORD, Api, ServerProcess

LIMIT = 10


def test_token_guessing_is_rate_limited_per_address(server: ServerProcess) -> None:
    admin = Api(server.url).login("admin", ADMIN_PASSWORD)
    try:
        user = admin.create_user()
        mac = "805ec0" + secrets.token_hex(3)
        r = admin.post("/api/v1/admin/phones", json={"mac": mac, "model": "T54W", "user_id": user["id"]})
        assert r.status_code == 201, r.text
        good = r.json()["provisioning_url"] + f"{mac}.cfg"
        ua = {"User-Agent": "Yealink SIP-T54W 96.85.0.5"}
        with httpx.Client(base_url=server.url, headers=ua, timeout=10) as phone:
            # A right token for a file the phone does not use is not a guess.
            assert phone.get(r.json()["provisioning_url"] + "nothing.cfg").status_code == 404
            for i in range(LIMIT - 1):
                miss = phone.get(f"/provisioning/{secrets.token_urlsafe(24)}/{mac}.cfg")
                assert miss.status_code == 404, (i, miss.text)
                assert miss.json()["error"] == "not-found"
            # An unknown MAC without a token is a guess too (it would enumerate phones' accounts).
            assert phone.get(f"/provisioning/805ec0{secrets.token_hex(3)}.cfg").status_code == 404
            blocked = phone.get(f"/provisioning/{secrets.token_urlsafe(24)}/{mac}.cfg")
            assert blocked.status_code == 429, blocked.text
            assert blocked.json()["error"] == "too-many-guesses"
            assert 0 < int(blocked.headers["Retry-After"]) <= 60
            assert phone.get(good).status_code == 429, "while blocked, a hit looks like a miss"
            assert phone.get(f"/provisioning/{mac}.cfg").status_code == 429
        # The admin API is not part of the block.
        assert admin.get("/api/v1/admin/phones").status_code == 200
    finally:
        admin.close()
