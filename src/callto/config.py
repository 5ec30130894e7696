"""Server settings: defaults, then a TOML file, then ``CALLTO_*`` environment variables.

The TOML file is ``$CALLTO_CONFIG`` when set, else ``<data dir>/callto.toml`` when it exists. Keys in the
file use the same names as the variables without the prefix, lower case (``http_port = 8080``), and may be
grouped in tables (``[media] rtpengine = "auto"`` is ``CALLTO_MEDIA_RTPENGINE``).
"""

from __future__ import annotations

import os
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
    admin_password: str = ""
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
    log_level: str = "info"

    @property
    def effective_database_url(self) -> str:
        return self.database_url or f"sqlite:///{self.data_dir / 'callto.db'}"

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
            f"setting {name!r} has a bad value {raw!r}: {exc}", details={"setting": name}
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
    return Settings(**{name: _coerce(name, value) for name, value in values.items()})
