"""The media endpoints' paths, for route labels and the content-type rules."""

from __future__ import annotations

MEDIA_PATHS = (
    "/v1/images/generations",
    "/v1/images/edits",
    "/v1/audio/transcriptions",
    "/v1/audio/translations",
    "/v1/audio/speech",
)
# Multipart/form-data endpoints (as the SDK sends files); every other /v1/ POST is JSON.
MULTIPART_PATHS = ("/v1/images/edits", "/v1/audio/transcriptions", "/v1/audio/translations")
# POST routes that take either: videos.create is multipart from the SDK, JSON from others.
EITHER_PATHS = ("/v1/videos",)
