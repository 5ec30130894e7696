"""Typed errors of the media layer (rtpengine control).

``media-unavailable`` means no rtpengine can be reached (none configured, binary missing, timeouts);
``media-error`` means rtpengine answered but refused the request (its ``error-reason`` is kept).
"""

from __future__ import annotations

from callto.errors import CalltoError


class MediaUnavailable(CalltoError):
    """No media relay can serve the request; calls that need one must fail instead of going silent."""

    status = 503
    error = "media-unavailable"


class MediaError(CalltoError):
    """rtpengine answered ``result: error`` (or something that is not a valid ng reply)."""

    status = 502
    error = "media-error"
