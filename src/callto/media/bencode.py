"""Strict bencode for the rtpengine ng protocol.

Owns the wire format only: byte strings, integers, lists and dictionaries (BEP 3). Decoding is strict:
no leading zeros, no ``-0``, dictionary keys must be byte strings without duplicates, nesting is
bounded and nothing may follow the value. Key *order* is only enforced with ``canonical=True``:
rtpengine itself writes its reply dictionaries unsorted (``sdp`` before ``result``). Encoding
accepts ``str`` as a convenience (UTF-8) and sorts dictionary keys as the format requires.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

MAX_DEPTH = 64
"""Deepest list/dict nesting accepted; rtpengine replies never come close, a hostile peer might."""

Value = bytes | int | list[Any] | dict[bytes, Any]
"""What :func:`decode` returns (recursively)."""


class BencodeError(ValueError):
    """The input is not valid bencode (decoding) or holds a type bencode cannot carry (encoding)."""


def encode(value: object) -> bytes:
    """Encode ``value`` (bytes/str, int, list/tuple, dict with bytes/str keys) to bencode."""
    out: list[bytes] = []
    _encode(value, out, 0)
    return b"".join(out)


def _key_bytes(key: object) -> bytes:
    if isinstance(key, bytes):
        return key
    if isinstance(key, str):
        return key.encode("utf-8")
    raise BencodeError(f"dictionary keys must be str or bytes, not {type(key).__name__}")


def _encode(value: object, out: list[bytes], depth: int) -> None:
    if depth > MAX_DEPTH:
        raise BencodeError("nesting too deep")
    # bool is an int subclass; a True reaching the wire is almost always a bug in the caller.
    if isinstance(value, bool):
        raise BencodeError("booleans have no bencode form")
    if isinstance(value, int):
        out.append(b"i%de" % value)
    elif isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        out.append(b"%d:" % len(raw))
        out.append(raw)
    elif isinstance(value, str):
        raw = value.encode("utf-8")
        out.append(b"%d:" % len(raw))
        out.append(raw)
    elif isinstance(value, Mapping):
        items: dict[bytes, object] = {}
        for key, item in value.items():
            kb = _key_bytes(key)
            if kb in items:
                raise BencodeError(f"duplicate dictionary key {kb!r}")
            items[kb] = item
        out.append(b"d")
        for kb in sorted(items):
            out.append(b"%d:" % len(kb))
            out.append(kb)
            _encode(items[kb], out, depth + 1)
        out.append(b"e")
    elif isinstance(value, Sequence):
        out.append(b"l")
        for item in value:
            _encode(item, out, depth + 1)
        out.append(b"e")
    else:
        raise BencodeError(f"cannot bencode {type(value).__name__}")


def decode(data: bytes, *, canonical: bool = False) -> Value:
    """Decode one complete bencoded value; raise :class:`BencodeError` on anything malformed.

    ``canonical=True`` also rejects dictionaries whose keys are not in sorted order.
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise BencodeError("bencode input must be bytes")
    raw = bytes(data)
    value, end = _decode(raw, 0, 0, canonical)
    if end != len(raw):
        raise BencodeError(f"trailing data at offset {end}")
    return value


def _decode_int(data: bytes, pos: int, terminator: bytes) -> tuple[int, int]:
    end = data.find(terminator, pos)
    if end < 0:
        raise BencodeError(f"unterminated integer at offset {pos}")
    text = data[pos:end]
    digits = text[1:] if text.startswith(b"-") else text
    if not digits or not digits.isdigit():
        raise BencodeError(f"invalid integer {text!r} at offset {pos}")
    if digits.startswith(b"0") and (len(digits) > 1 or text.startswith(b"-")):
        raise BencodeError(f"non-canonical integer {text!r} at offset {pos}")
    return int(text), end + 1


def _decode_bytes(data: bytes, pos: int) -> tuple[bytes, int]:
    length, start = _decode_int(data, pos, b":")
    if data[pos : pos + 1] == b"-":
        raise BencodeError(f"negative string length at offset {pos}")
    end = start + length
    if end > len(data):
        raise BencodeError(f"string at offset {pos} runs past the end")
    return data[start:end], end


def _decode(data: bytes, pos: int, depth: int, canonical: bool) -> tuple[Value, int]:
    if depth > MAX_DEPTH:
        raise BencodeError("nesting too deep")
    if pos >= len(data):
        raise BencodeError("unexpected end of input")
    lead = data[pos : pos + 1]
    if lead == b"i":
        return _decode_int(data, pos + 1, b"e")
    if lead.isdigit():
        return _decode_bytes(data, pos)
    if lead == b"l":
        items: list[Any] = []
        pos += 1
        while data[pos : pos + 1] != b"e":
            item, pos = _decode(data, pos, depth + 1, canonical)
            items.append(item)
        return items, pos + 1
    if lead == b"d":
        result: dict[bytes, Any] = {}
        previous: bytes | None = None
        pos += 1
        while data[pos : pos + 1] != b"e":
            if pos >= len(data):
                raise BencodeError("unterminated dictionary")
            if not data[pos : pos + 1].isdigit():
                raise BencodeError(f"dictionary key at offset {pos} is not a string")
            key, pos = _decode_bytes(data, pos)
            if key in result:
                raise BencodeError(f"duplicate dictionary key {key!r}")
            if canonical and previous is not None and key < previous:
                raise BencodeError(f"dictionary key {key!r} out of order")
            previous = key
            result[key], pos = _decode(data, pos, depth + 1, canonical)
        return result, pos + 1
    raise BencodeError(f"unexpected byte {lead!r} at offset {pos}")


def to_text(value: Any) -> Any:
    """Turn decoded bytes into ``str`` recursively (keys too), for callers that speak JSON-like data.

    rtpengine sends UTF-8 text everywhere (SDP included); undecodable bytes are kept as ``bytes``.
    """
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError:
            return value
    if isinstance(value, list):
        return [to_text(item) for item in value]
    if isinstance(value, dict):
        return {to_text(key): to_text(item) for key, item in value.items()}
    return value
