"""Just enough SDP (RFC 4566 / RFC 8866) for the switch to decide how to carry a call's media.

Owns parsing an SDP body into session lines and media sections, serialising it back byte-compatibly
(lines are kept as sent, so a pass-through SDP is never altered), telling a WebRTC offer
(``UDP/TLS/RTP/SAVPF`` with ICE and a DTLS fingerprint) from a plain ``RTP/AVP`` one, reading the
direction attribute (hold / resume), and building the port-0 answer that rejects every stream (used when
a third-party call control attempt fails after the device already offered).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from callto.sip.media import MediaProfile

DIRECTIONS = ("sendrecv", "sendonly", "recvonly", "inactive")


@dataclass
class MediaSection:
    """One ``m=`` line and the lines under it, kept as text."""

    media: str
    port: int
    proto: str
    formats: list[str]
    lines: list[str] = field(default_factory=list)  # every line after m= (c=, a=, b=, ...)

    def attributes(self, name: str) -> list[str]:
        """Values of ``a=name:value`` (or ``""`` for a flag ``a=name``)."""
        out: list[str] = []
        for line in self.lines:
            if not line.startswith("a="):
                continue
            key, _, value = line[2:].partition(":")
            if key == name:
                out.append(value)
        return out

    def has(self, name: str) -> bool:
        return bool(self.attributes(name))

    @property
    def m_line(self) -> str:
        return f"m={self.media} {self.port} {self.proto} {' '.join(self.formats)}"


@dataclass
class SessionDescription:
    session: list[str]
    media: list[MediaSection]

    def session_attributes(self, name: str) -> list[str]:
        out = []
        for line in self.session:
            if line.startswith("a="):
                key, _, value = line[2:].partition(":")
                if key == name:
                    out.append(value)
        return out

    @property
    def audio(self) -> MediaSection | None:
        return next((m for m in self.media if m.media == "audio"), None)

    def to_text(self) -> str:
        lines = list(self.session)
        for m in self.media:
            lines.append(m.m_line)
            lines.extend(m.lines)
        return "\r\n".join(lines) + "\r\n"

    def to_bytes(self) -> bytes:
        return self.to_text().encode("utf-8")


class SdpError(ValueError):
    """The body is not an SDP we can read (the caller answers 488 or 400)."""


def parse_sdp(body: bytes | str) -> SessionDescription:
    text = body.decode("utf-8", "replace") if isinstance(body, bytes) else body
    lines = [line.rstrip("\r") for line in text.split("\n")]
    lines = [line for line in lines if line]
    if not lines or not lines[0].startswith("v="):
        raise SdpError("SDP does not start with v=")
    session: list[str] = []
    media: list[MediaSection] = []
    for line in lines:
        if len(line) < 2 or line[1] != "=":
            raise SdpError(f"malformed SDP line {line[:40]!r}")
        if line.startswith("m="):
            parts = line[2:].split()
            if len(parts) < 3:
                raise SdpError("malformed m= line")
            port_text = parts[1].split("/", 1)[0]
            if not port_text.isdigit():
                raise SdpError("m= line port is not a number")
            media.append(MediaSection(parts[0], int(port_text), parts[2], parts[3:]))
        elif media:
            media[-1].lines.append(line)
        else:
            session.append(line)
    return SessionDescription(session, media)


def is_webrtc(sdp: SessionDescription) -> bool:
    """WebRTC media: a secure AVPF profile over (D)TLS, or ICE together with a DTLS fingerprint."""
    audio = sdp.audio or (sdp.media[0] if sdp.media else None)
    if audio is None:
        return False
    proto = audio.proto.upper()
    if "TLS" in proto or "SAVP" in proto:
        return True
    ice = audio.has("ice-ufrag") or bool(sdp.session_attributes("ice-ufrag"))
    dtls = audio.has("fingerprint") or bool(sdp.session_attributes("fingerprint"))
    return ice and dtls


def profile_of(body: bytes | None) -> MediaProfile | None:
    """The media profile of an SDP body; None when there is no body (a delayed offer)."""
    if not body:
        return None
    try:
        sdp = parse_sdp(body)
    except SdpError:
        return MediaProfile.PLAIN
    return MediaProfile.WEBRTC if is_webrtc(sdp) else MediaProfile.PLAIN


def direction(sdp: SessionDescription) -> str:
    """The audio stream's direction (media level wins over session level); ``inactive`` for port 0."""
    audio = sdp.audio
    if audio is not None and audio.port == 0:
        return "inactive"
    if audio is not None:
        for d in DIRECTIONS:
            if audio.has(d):
                return d
    for d in DIRECTIONS:
        if sdp.session_attributes(d):
            return d
    return "sendrecv"


def is_hold(body: bytes | None) -> bool:
    """An offer that puts the peer on hold (RFC 3264 8.4: sendonly / inactive, or the old c=0.0.0.0)."""
    if not body:
        return False
    try:
        sdp = parse_sdp(body)
    except SdpError:
        return False
    if direction(sdp) in ("sendonly", "inactive"):
        return True
    connection = [line for line in sdp.session if line.startswith("c=")]
    if sdp.audio is not None:
        connection = [line for line in sdp.audio.lines if line.startswith("c=")] or connection
    return any(line.split()[-1] == "0.0.0.0" for line in connection)


def reject_all(offer: bytes) -> bytes:
    """An answer refusing every stream of ``offer`` (port 0, RFC 3264 6), e.g. when the bridge failed."""
    sdp = parse_sdp(offer)
    session = [line for line in sdp.session if not line.startswith("a=group")]
    media = [MediaSection(m.media, 0, m.proto, m.formats[:1] or ["0"], []) for m in sdp.media]
    return SessionDescription(session, media).to_bytes()
