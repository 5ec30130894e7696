"""Server settings: defaults, then a TOML file, then ``CALLTO_*`` environment variables.

The TOML file is ``$CALLTO_CONFIG`` when set, else ``<data dir>/callto.toml`` when it exists. Keys in the
file use the same names as the variables without the prefix, lower case (``http_port = 8080``), and may be
grouped in tables (``[media] rtpengine = "auto"`` is ``CALLTO_MEDIA_RTPENGINE``).
"""

from __future__ import annotations

import hashlib
import os
import socket
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from callto.errors import CalltoError


class ConfigError(CalltoError):
    error = "bad-config"


def _default_data_dir() -> Path:
    if os.geteuid() == 0:
        return Path("/var/lib/callto")
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "callto"


@dataclass(frozen=True)
class Settings:
    data_dir: Path = field(default_factory=_default_data_dir)
    bind: str = "0.0.0.0"
    http_port: int = 8080
    https_port: int = 8443
    sip_port: int = 5060
    sip_tls_port: int = 5061
    sip_domain: str = ""
    public_host: str = ""
    database_url: str = ""
    redis_url: str = ""
    # Keys and channels in Redis start with this, so two deployments on one Redis never mix
    # (empty: derived from the database, which is what a deployment is).
    redis_prefix: str = ""
    # This node's name among several (calls it left over after a crash are its own to end on restart);
    # empty: the host name and the SIP port, which stay the same across restarts.
    node_id: str = ""
    admin_password: str = ""
    # The key of the secrets stored encrypted in the database (base64url of 32 bytes); empty: the file
    # <data dir>/secret.key, created on first start. Nodes sharing a database must share it.
    secret_key: str = ""
    token_ttl_seconds: int = 12 * 3600
    max_body_bytes: int = 1024 * 1024
    web_dir: str = ""
    media_rtpengine: str = "auto"
    media_interface: str = "127.0.0.1"
    media_port_min: int = 30000
    media_port_max: int = 30999
    sip_ring_timeout: int = 30
    # Digest algorithms the switch challenges with, in order. Both MD5 and SHA-256 (RFC 8760) are
    # understood; the default offers MD5 only because clients such as baresip's libre (and older desk
    # phone firmware) abort on a SHA-256 challenge even when an MD5 one is also offered.
    sip_digest_algorithms: str = "MD5"
    # Bounds on SIP connections (TCP, TLS, WebSocket), see docs/sip.md: seconds a new connection has to send
    # its first whole message, seconds without a SIP message before one that carries no registration is
    # closed (registered ones: without any bytes, CRLF keep-alives count), and the caps per peer address
    # and in all (the global cap also stays 1,024 below the process's open-file limit).
    sip_connection_first_message_timeout: int = 10
    sip_connection_idle_timeout: int = 120
    sip_connection_registered_idle_timeout: int = 3900
    sip_connections_per_address: int = 200
    sip_connections_max: int = 10000
    log_level: str = "info"
    # "text" (human-readable lines) or "json" (one JSON object a line), both on stderr.
    log_format: str = "text"
    # Level per area, e.g. "sip=debug,api=warning" (areas: see callto.ops.logs.AREAS).
    log_levels: str = ""
    # Who may read /metrics without an admin token: "loopback" (127.0.0.0/8 and ::1) or "none".
    metrics_allow: str = "loopback"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'callto.db'}"

    @property
    def effective_node_id(self) -> str:
        return self.node_id or f"{socket.gethostname()}:{self.sip_port}"

    @property
    def effective_redis_prefix(self) -> str:
        """``callto:<8 hex of the database URL without its password>`` unless set: nodes of one deployment
        share a database, so they agree on it without being told, and two deployments differ."""
        if self.redis_prefix:
            return self.redis_prefix
        from sqlalchemy.engine import make_url

        try:
            ident = make_url(self.effective_database_url).render_as_string(hide_password=True)
        except Exception:
            ident = self.effective_database_url
        return "callto:" + hashlib.blake2b(ident.encode(), digest_size=4).hexdigest()

    @property
    def effective_sip_domain(self) -> str:
        return self.sip_domain or self.public_host or "callto.local"

    @property
    def tls_dir(self) -> Path:
        return self.data_dir / "tls"


_FIELD_TYPES = {f.name: f.type for f in fields(Settings)}


def _coerce(name: str, raw: Any) -> Any:
    kind = _FIELD_TYPES[name]
    try:
        if kind in ("int", int):
            value = int(raw)
            if name.endswith("_port") and not 0 <= value <= 65535:
                raise ValueError("port out of range")
            return value
        if kind in ("Path", Path):
            return Path(str(raw)).expanduser()
        return str(raw)
    except (TypeError, ValueError) as exc:
        raise ConfigError(
            f"setting {name!r} has a bad value {raw!r}: {exc}; change CALLTO_{name.upper()}",
            details={"setting": name},
        ) from exc


def _flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}".lower()
        if isinstance(value, dict):
            flat.update(_flatten(value, prefix=f"{name}_"))
        else:
            flat[name] = value
    return flat


_LEVELS = ("debug", "info", "warning", "error", "critical")
_CHOICES: dict[str, tuple[str, ...]] = {
    "log_level": _LEVELS,
    "log_format": ("text", "json"),
    "metrics_allow": ("loopback", "none"),
}

# One line per setting for ``callto serve --help`` and docs/operations.md.
DESCRIPTIONS: dict[str, str] = {
    "data_dir": "data folder: database (SQLite), TLS certificate, key files",
    "bind": "address every listener binds (HTTP, HTTPS, SIP)",
    "http_port": "HTTP port (API, web app, events, SIP over WebSocket at /sip)",
    "https_port": "HTTPS port (same as HTTP, with the certificate in <data>/tls)",
    "sip_port": "SIP port, UDP and TCP",
    "sip_tls_port": "SIP over TLS port (0: off)",
    "sip_domain": "SIP domain of the accounts (default: public_host, else callto.local)",
    "public_host": "host name clients and phones reach this server on (also put in the certificate)",
    "database_url": "SQLAlchemy URL (default: SQLite in the data folder; postgresql://... for PostgreSQL)",
    "redis_url": "Redis URL for events between several nodes (empty: one node)",
    "redis_prefix": "prefix of Redis keys and channels (default: derived from the database URL)",
    "node_id": "this node's name, stable across restarts (default: host name and SIP port)",
    "admin_password": "password of the first 'admin' (empty: generated and printed once)",
    "secret_key": "key of the secrets encrypted in the database (default: the file <data>/secret.key)",
    "token_ttl_seconds": "lifetime of login tokens",
    "max_body_bytes": "largest accepted request body",
    "web_dir": "folder with the built web app (default: the one shipped)",
    "media_rtpengine": "rtpengine: 'auto' (start one if installed), 'off', or host:port of a running one",
    "media_interface": "address rtpengine relays media on",
    "media_port_min": "lowest RTP port",
    "media_port_max": "highest RTP port",
    "sip_ring_timeout": "seconds a call rings before it is given up",
    "sip_digest_algorithms": "digest algorithms offered, in order (MD5, SHA-256)",
    "log_level": "log level: debug, info, warning, error, critical",
    "log_format": "log lines on stderr: text or json",
    "log_levels": "log level per area, e.g. sip=debug,api=warning",
    "metrics_allow": "/metrics without an admin token from: loopback or none",
}


def settings_reference() -> str:
    """Every setting with its variable, default and meaning (the text of ``callto serve --help``)."""
    defaults = Settings(data_dir=Path("<see below>"))
    lines = ["settings (variable, default; also in callto.toml as lower-case keys without CALLTO_):"]
    for f in fields(Settings):
        default = getattr(defaults, f.name)
        if f.name == "data_dir":
            default = "/var/lib/callto as root, else ~/.local/share/callto"
        lines.append(f"  CALLTO_{f.name.upper():<26} {str(default)!r:<12} {DESCRIPTIONS.get(f.name, '')}")
    lines += [
        "  CALLTO_CONFIG                     settings file (default: <data dir>/callto.toml)",
        "  CALLTO_EVENT_LOOP                 asyncio (default) or uvloop",
        "",
        "exit codes: 0 ok, 1 refused, 2 bad setting, 3 data folder unusable, 4 database unreachable,",
        "5 port taken, 6 not initialized (callto init), 7 server running (restore --force)",
    ]
    return "\n".join(lines)


def _check(settings: Settings) -> Settings:
    for name, allowed in _CHOICES.items():
        value = str(getattr(settings, name)).lower()
        if value not in allowed:
            raise ConfigError(
                f"setting {name!r} has a bad value {getattr(settings, name)!r}: use one of {', '.join(allowed)}; "
                f"change CALLTO_{name.upper()}",
                details={"setting": name},
            )
    if settings.media_port_min > settings.media_port_max:
        raise ConfigError(
            "setting 'media_port_min' is above 'media_port_max'; change CALLTO_MEDIA_PORT_MIN or _MAX",
            details={"setting": "media_port_min"},
        )
    if settings.log_levels:
        from callto.ops.logs import parse_levels  # the areas live with the logging set-up

        try:
            parse_levels(settings.log_levels)
        except ValueError as exc:
            raise ConfigError(
                f"setting 'log_levels' has a bad value {settings.log_levels!r}: {exc}; change CALLTO_LOG_LEVELS",
                details={"setting": "log_levels"},
            ) from exc
    return settings


def load_settings(env: dict[str, str] | None = None, **overrides: Any) -> Settings:
    """Build settings from defaults, the TOML file and the environment (later wins), then overrides."""
    env = dict(os.environ if env is None else env)
    values: dict[str, Any] = {}
    env_values = {
        key[len("CALLTO_") :].lower(): value for key, value in env.items() if key.startswith("CALLTO_")
    }
    data_dir = Path(env_values.get("data_dir") or overrides.get("data_dir") or _default_data_dir())
    config_path = Path(env["CALLTO_CONFIG"]) if env.get("CALLTO_CONFIG") else data_dir / "callto.toml"
    if config_path.is_file():
        try:
            file_values = _flatten(tomllib.loads(config_path.read_text(encoding="utf-8")))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"cannot read {config_path}: {exc}") from exc
        unknown = sorted(set(file_values) - set(_FIELD_TYPES))
        if unknown:
            raise ConfigError(f"unknown settings in {config_path}: {', '.join(unknown)}")
        values.update(file_values)
    values.update({k: v for k, v in env_values.items() if k in _FIELD_TYPES and k != "config"})
    values.update({k: v for k, v in overrides.items() if v is not None})
    values.setdefault("data_dir", data_dir)
    return _check(Settings(**{name: _coerce(name, value) for name, value in values.items()}))
