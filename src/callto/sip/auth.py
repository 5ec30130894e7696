"""Digest authentication for SIP (RFC 2617, RFC 7616, RFC 8760): MD5 and SHA-256, qop=auth.

Server side (:class:`DigestServer`): stateless nonces (timestamp + random + a keyed-BLAKE2b MAC of both under
a secret), so nothing is stored when challenging; an expired nonce gets ``stale=true``; replays are refused by
tracking the highest nonce-count seen per nonce in a bounded table. Nonces issued before anything the table
forgot are refused, so eviction never re-opens a replay window. Client side (:class:`DigestClient`): answers
a provider's 401/407 for outbound REGISTER/INVITE, picking the strongest algorithm offered.

All time is passed in (``now``, seconds); nothing here reads a clock or does I/O.
"""

from __future__ import annotations

import base64
import binascii
import enum
import hashlib
import hmac
import re
import secrets
import struct
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from callto.sip.errors import SipMessageError
from callto.sip.grammar import parse_auth, quote
from callto.sip.message import random_bytes

HASHES = {
    "MD5": hashlib.md5,
    "MD5-SESS": hashlib.md5,
    "SHA-256": hashlib.sha256,
    "SHA-256-SESS": hashlib.sha256,
}
# strongest first: the order of our challenges and of the client's preference (RFC 8760 2.4)
PREFERENCE = ("SHA-256", "SHA-256-SESS", "MD5", "MD5-SESS")

# User-Agents (regexes) that fail on a challenge set containing SHA-256 instead of answering the MD5 one:
# libre before 2.x (baresip 1.x answers "Function not implemented"), SIPp 3.6 ("authentication must use MD5").
MD5_ONLY_USER_AGENTS = (r"^baresip v[01]\.", r"^sipp\b")


def _h(algorithm: str, data: str) -> str:
    return HASHES[algorithm.upper()](data.encode("utf-8")).hexdigest()


def compute_ha1(algorithm: str, username: str, realm: str, password: str, nonce: str = "", cnonce: str = "") -> str:
    ha1 = _h(algorithm, f"{username}:{realm}:{password}")
    if algorithm.upper().endswith("-SESS"):
        ha1 = _h(algorithm, f"{ha1}:{nonce}:{cnonce}")
    return ha1


def compute_response(
    *,
    algorithm: str,
    username: str,
    realm: str,
    password: str,
    method: str,
    uri: str,
    nonce: str,
    nc: str | None = None,
    cnonce: str | None = None,
    qop: str | None = None,
) -> str:
    """The ``response`` value of RFC 7616 3.4.1 (qop=auth, or RFC 2069 style without qop)."""
    ha1 = compute_ha1(algorithm, username, realm, password, nonce, cnonce or "")
    ha2 = _h(algorithm, f"{method}:{uri}")
    if qop:
        return _h(algorithm, f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}")
    return _h(algorithm, f"{ha1}:{nonce}:{ha2}")


class Verdict(enum.Enum):
    OK = "ok"
    CHALLENGE = "challenge"  # no usable credentials: answer 401 with fresh challenges
    STALE = "stale"  # right password, old nonce: 401 with stale=true
    FORBIDDEN = "forbidden"  # wrong password, unknown user, replayed nonce-count
    BAD_REQUEST = "bad-request"  # a Digest header we cannot parse


@dataclass(frozen=True, slots=True)
class AuthResult:
    verdict: Verdict
    username: str | None = None
    reason: str = ""


class NonceCounter:
    """Highest nonce-count seen per nonce, bounded; forgetting a nonce raises the floor of accepted ones."""

    def __init__(self, max_entries: int = 50_000) -> None:
        self.max_entries = max_entries
        self._seen: OrderedDict[str, int] = OrderedDict()
        self.floor = -1.0  # nonces issued at or before this time are no longer tracked

    def accept(self, nonce: str, issued: float, nc: int) -> bool:
        last = self._seen.get(nonce)
        if last is None:
            if issued <= self.floor:
                return False
            self._seen[nonce] = nc
            self._evict()
            return True
        if nc <= last:
            return False
        self._seen[nonce] = nc
        self._seen.move_to_end(nonce)
        return True

    def _evict(self) -> None:
        while len(self._seen) > self.max_entries:
            nonce, _ = self._seen.popitem(last=False)
            issued = _nonce_time(nonce)
            if issued is not None:
                self.floor = max(self.floor, issued)

    def forget_older_than(self, cutoff: float) -> None:
        """Drop expired nonces (they are refused as stale anyway)."""
        for nonce in list(self._seen):
            issued = _nonce_time(nonce)
            if issued is None or issued < cutoff:
                del self._seen[nonce]

    def __len__(self) -> int:
        return len(self._seen)


# base64url <-> base64, as base64.urlsafe_b64decode/encode do it (called directly: fewer Python frames on
# every REGISTER; the decoding stays as lenient as urlsafe_b64decode's, the MAC decides what is ours)
_FROM_URLSAFE = bytes.maketrans(b"-_", b"+/")
_TO_URLSAFE = bytes.maketrans(b"+/", b"-_")


def _nonce_time(nonce: str) -> float | None:
    try:
        raw = base64.urlsafe_b64decode(nonce.encode("ascii") + b"=" * (-len(nonce) % 4))
    except (ValueError, UnicodeEncodeError):
        return None
    if len(raw) != 8 + 8 + 16:
        return None
    micros: int = struct.unpack(">Q", raw[:8])[0]
    return micros / 1e6


class DigestServer:
    """Issues challenges and verifies Authorization headers for one realm."""

    def __init__(
        self,
        realm: str,
        secret: bytes | None = None,
        *,
        lifetime: float = 300.0,
        algorithms: tuple[str, ...] = ("SHA-256", "MD5"),
        max_tracked_nonces: int = 50_000,
        md5_only_user_agents: tuple[str, ...] = MD5_ONLY_USER_AGENTS,
    ) -> None:
        self.realm = realm
        self.md5_only_user_agents = md5_only_user_agents
        self._md5_only = [re.compile(p) for p in md5_only_user_agents]
        self._md5_only_seen: dict[str, bool] = {}  # User-Agent -> matched: a few values, asked per REGISTER
        self.secret = secret or secrets.token_bytes(32)
        self.lifetime = lifetime
        self.algorithms = algorithms
        self._offered = frozenset(a.upper() for a in algorithms)
        self.counter = NonceCounter(max_tracked_nonces)
        # derived from the key, so every node that shares the key sends the same opaque
        self._key = self.secret[:64]
        self.opaque = hashlib.blake2b(b"opaque", key=self._key, digest_size=8).hexdigest()
        self._realm_bytes = realm.encode()
        self._ha2: dict[tuple[str, str, str], str] = {}  # (algorithm, method, uri) -> HA2: a few values

    def _mac(self, data: bytes) -> bytes:
        # keyed BLAKE2b is a MAC on its own (RFC 7693 2.5): one C call where HMAC-SHA256 took several
        return hashlib.blake2b(data + self._realm_bytes, key=self._key, digest_size=16).digest()

    def make_nonce(self, now: float) -> str:
        head = struct.pack(">Q", int(now * 1e6)) + random_bytes(8)
        # 32 bytes: 43 base64 characters and one "=" of padding, left off
        return binascii.b2a_base64(head + self._mac(head), newline=False).translate(_TO_URLSAFE)[:43].decode("ascii")

    def check_nonce(self, nonce: str, now: float) -> tuple[bool, float]:
        """(authentic, issued-at); an authentic nonce may still be expired."""
        try:
            raw = binascii.a2b_base64(nonce.encode("ascii").translate(_FROM_URLSAFE) + b"=" * (-len(nonce) % 4))
        except (ValueError, UnicodeEncodeError):
            return False, 0.0
        if len(raw) != 32:
            return False, 0.0
        if not hmac.compare_digest(self._mac(raw[:16]), raw[16:]):
            return False, 0.0
        (micros,) = struct.unpack(">Q", raw[:8])
        return True, micros / 1e6

    def _expected(self, algorithm: str, username: str, password: str, method: str, uri: str, nonce: str,
                  nc: str, cnonce: str, qop: str) -> str:
        """:func:`compute_response` for our realm and qop=auth, with HA2 remembered (one per method and URI)."""
        hasher = HASHES[algorithm]
        ha1 = hasher(f"{username}:{self.realm}:{password}".encode()).hexdigest()
        if algorithm.endswith("-SESS"):
            ha1 = hasher(f"{ha1}:{nonce}:{cnonce}".encode()).hexdigest()
        key = (algorithm, method, uri)
        ha2 = self._ha2.get(key)
        if ha2 is None:
            ha2 = hasher(f"{method}:{uri}".encode()).hexdigest()
            if len(self._ha2) >= 1024:  # bounded: clients choose the URI
                self._ha2.clear()
            self._ha2[key] = ha2
        return hasher(f"{ha1}:{nonce}:{nc}:{cnonce}:{qop}:{ha2}".encode()).hexdigest()

    def challenges(self, now: float, *, stale: bool = False, user_agent: str | None = None) -> list[str]:
        """One ``WWW-Authenticate`` value per algorithm, SHA-256 first, sharing one nonce.

        A client whose ``User-Agent`` matches :attr:`md5_only_user_agents` gets the MD5 challenge alone:
        those stacks give up on the whole challenge when any algorithm in it is unknown to them, instead
        of picking the one they support (RFC 8760 2.4).
        """
        nonce = self.make_nonce(now)
        tail = ", stale=true" if stale else ""
        algorithms = self.algorithms
        if user_agent and "MD5" in algorithms and self._md5_only_agent(user_agent):
            algorithms = ("MD5",)
        return [
            f'Digest realm={quote(self.realm)}, nonce="{nonce}", opaque="{self.opaque}", '
            f'algorithm={alg}, qop="auth"{tail}'
            for alg in algorithms
        ]

    def _md5_only_agent(self, user_agent: str) -> bool:
        found = self._md5_only_seen.get(user_agent)
        if found is None:
            found = any(p.search(user_agent) for p in self._md5_only)
            if len(self._md5_only_seen) >= 1024:  # bounded: peers choose their User-Agent
                self._md5_only_seen.clear()
            self._md5_only_seen[user_agent] = found
        return found

    def verify(
        self,
        header_value: str | None,
        method: str,
        lookup: Callable[[str], str | None],
        *,
        now: float,
    ) -> AuthResult:
        """Check one Authorization value; ``lookup(username)`` gives the password or None."""
        if header_value is None:
            return AuthResult(Verdict.CHALLENGE, reason="no credentials")
        try:
            scheme, params = parse_auth(header_value, "Authorization")
        except SipMessageError:
            return AuthResult(Verdict.BAD_REQUEST, reason="malformed Authorization")
        if scheme.lower() != "digest":
            return AuthResult(Verdict.CHALLENGE, reason=f"unsupported scheme {scheme}")
        for field in ("username", "realm", "nonce", "uri", "response"):
            if field not in params:
                return AuthResult(Verdict.BAD_REQUEST, reason=f"Authorization without {field}")
        username = params["username"]
        if params["realm"] != self.realm:
            return AuthResult(Verdict.CHALLENGE, username, "credentials for another realm")
        algorithm = params.get("algorithm", "MD5").upper()
        if algorithm not in HASHES or algorithm not in self._offered:
            return AuthResult(Verdict.CHALLENGE, username, f"algorithm {algorithm} not offered")
        qop = params.get("qop")
        if qop != "auth":
            return AuthResult(Verdict.CHALLENGE, username, "qop=auth required")
        nc_text = params.get("nc", "")
        cnonce = params.get("cnonce")
        if len(nc_text) != 8 or not cnonce:
            return AuthResult(Verdict.BAD_REQUEST, username, "qop=auth without nc/cnonce")
        try:
            nc = int(nc_text, 16)
        except ValueError:
            return AuthResult(Verdict.BAD_REQUEST, username, "nc is not hexadecimal")
        nonce = params["nonce"]
        authentic, issued = self.check_nonce(nonce, now)
        if not authentic:
            return AuthResult(Verdict.CHALLENGE, username, "nonce not issued here")
        password = lookup(username)
        if password is None:
            return AuthResult(Verdict.FORBIDDEN, username, "unknown user")
        expected = self._expected(algorithm, username, password, method, params["uri"], nonce, nc_text, cnonce, qop)
        if not hmac.compare_digest(expected, params["response"].lower()):
            return AuthResult(Verdict.FORBIDDEN, username, "wrong password")
        if now - issued > self.lifetime or issued - now > 60:
            return AuthResult(Verdict.STALE, username, "nonce expired")
        if not self.counter.accept(nonce, issued, nc):
            return AuthResult(Verdict.FORBIDDEN, username, "nonce-count replayed")
        return AuthResult(Verdict.OK, username)

    def expire(self, now: float) -> None:
        self.counter.forget_older_than(now - self.lifetime)


@dataclass
class _Challenge:
    realm: str
    nonce: str
    algorithm: str
    qop: str | None
    opaque: str | None
    stale: bool


class DigestClient:
    """Answers WWW-Authenticate / Proxy-Authenticate challenges (toward a trunk provider)."""

    def __init__(self, username: str, password: str) -> None:
        self.username = username
        self.password = password
        self._nc: dict[str, int] = {}

    @staticmethod
    def pick(challenges: list[str]) -> _Challenge | None:
        """The strongest Digest challenge we support among several header values."""
        parsed: list[_Challenge] = []
        for value in challenges:
            try:
                scheme, params = parse_auth(value, "WWW-Authenticate")
            except SipMessageError:
                continue
            if scheme.lower() != "digest" or "nonce" not in params:
                continue
            algorithm = params.get("algorithm", "MD5").upper()
            if algorithm not in HASHES:
                continue
            qops = [q.strip() for q in params.get("qop", "").split(",") if q.strip()]
            if qops and "auth" not in qops:
                continue
            parsed.append(
                _Challenge(
                    params.get("realm", ""),
                    params["nonce"],
                    algorithm,
                    "auth" if qops else None,
                    params.get("opaque"),
                    params.get("stale", "").lower() == "true",
                )
            )
        if not parsed:
            return None
        parsed.sort(key=lambda c: PREFERENCE.index(c.algorithm))
        return parsed[0]

    def authorization(self, challenges: list[str], method: str, uri: str, *, cnonce: str | None = None) -> str | None:
        """The Authorization (or Proxy-Authorization) value for a retried request, or None."""
        ch = self.pick(challenges)
        if ch is None:
            return None
        count = self._nc.get(ch.nonce, 0) + 1
        if len(self._nc) > 64:
            self._nc.clear()
        self._nc[ch.nonce] = count
        nc = f"{count:08x}"
        cnonce = cnonce or secrets.token_hex(8)
        response = compute_response(
            algorithm=ch.algorithm,
            username=self.username,
            realm=ch.realm,
            password=self.password,
            method=method,
            uri=uri,
            nonce=ch.nonce,
            nc=nc if ch.qop else None,
            cnonce=cnonce if ch.qop else None,
            qop=ch.qop,
        )
        parts = [
            f"username={quote(self.username)}",
            f"realm={quote(ch.realm)}",
            f"nonce={quote(ch.nonce)}",
            f"uri={quote(uri)}",
            f'response="{response}"',
            f"algorithm={ch.algorithm}",
        ]
        if ch.qop:
            parts += [f"qop={ch.qop}", f"nc={nc}", f'cnonce="{cnonce}"']
        if ch.opaque is not None:
            parts.append(f"opaque={quote(ch.opaque)}")
        return "Digest " + ", ".join(parts)
