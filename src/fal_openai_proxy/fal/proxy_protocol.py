"""fal's server-proxy protocol: the target a fal client names, whether it may be forwarded,
what kind of call it is, and where it goes (docs/fal-protocol.md §13).

fal's clients send every call to the proxy with the real URL in `x-fal-target-url`
(docs/fal-protocol.md §13.1). Only what fal's own server proxy allows is forwarded (its
`DEFAULT_ALLOWED_URL_PATTERNS`, docs/fal-protocol.md §13.2): `fal.run/**`, `queue.fal.run/**`
and two storage calls on `rest.fal.ai`. Stricter than fal's on purpose, since our key goes
there: https only, no user info or port, no dot segments, no `%` or `\\` in the path (fal-js
never builds them, and a server could read them differently from the check).

No I/O here: parsing, the allow-list, host rewriting and app-id globs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Literal
from urllib.parse import urlsplit

import orjson

TARGET_HEADER = "x-fal-target-url"
# fal-js `DEFAULT_PROXY_ROUTE` (docs/fal-protocol.md §13.1): where fal's clients look by default.
PROXY_PATH = "/api/fal/proxy"

RUN_HOST = "fal.run"
QUEUE_HOST = "queue.fal.run"
REST_HOST = "rest.fal.ai"
# The storage calls fal's proxy allows, exactly (path, query) (docs/fal-protocol.md §13.2).
_STORAGE_CALLS = frozenset(
    {
        ("/storage/upload/initiate", "storage_type=fal-cdn-v3"),
        ("/storage/upload/complete-multipart", "storage_type=fal-cdn-v3"),
    }
)
# fal-js `ENDPOINT_NAMESPACES` (utils.ts): ids that take three segments before the path.
_NAMESPACES = frozenset({"workflows", "comfy"})
# One path segment: RFC 3986 pchar without `%` (so nothing decodes to `/`, `.` or `\`).
_SEGMENT = re.compile(r"^[A-Za-z0-9._~!$&'()*+,;=:@-]+$")
MAX_TARGET_CHARS = 4096
# Answer headers fal's client reads (fal-js response.ts, streaming.ts, headers.ts): a browser
# sees them only if CORS exposes them.
EXPOSED_HEADERS = ("x-fal-request-id", "x-fal-request-timeout-type", "x-fal-billable-units")

Kind = Literal[
    "run", "stream", "submit", "status", "status_stream", "result", "cancel", "request", "upload"
]
# Follow-up calls on a queued request: the operation after `requests/{id}` (fal-js queue.ts);
# any other is forwarded as "request", as fal's proxy forwards all of queue.fal.run/**.
_REQUEST_OPS: dict[tuple[str, ...], Kind] = {
    (): "result",
    ("status",): "status",
    ("status", "stream"): "status_stream",
    ("cancel",): "cancel",
}
_STARTS_WORK = frozenset({"run", "stream", "submit"})
_STREAMS = frozenset({"stream", "status_stream"})


class TargetRefused(ValueError):
    """A target the proxy will not forward: answered 400 and nothing is sent."""


@dataclass(frozen=True, slots=True)
class Target:
    """One call of fal's client, as named by `x-fal-target-url`."""

    url: str  # as the client named it
    kind: Kind
    host: str  # RUN_HOST, QUEUE_HOST or REST_HOST
    path: str  # starts with "/"
    query: str  # without "?"
    app: str | None  # the app id the call names; None for storage
    request_id: str | None = None  # follow-ups of a queued request

    @property
    def starts_work(self) -> bool:
        """A run, stream or submit: it takes a key slot, and may be retried on another key."""
        return self.kind in _STARTS_WORK

    @property
    def streams(self) -> bool:
        return self.kind in _STREAMS

    @property
    def follows_up(self) -> bool:
        """A call on a request already submitted (status, result, cancel…)."""
        return self.request_id is not None


def parse_target(raw: str | None) -> Target:
    """The target of one proxied call, or TargetRefused saying why not."""
    if not raw:
        raise TargetRefused(
            f"Missing the {TARGET_HEADER} header: this endpoint serves fal's client "
            "(fal.config({proxyUrl})), which names the fal URL there."
        )
    if len(raw) > MAX_TARGET_CHARS:
        raise TargetRefused(f"The {TARGET_HEADER} is longer than {MAX_TARGET_CHARS} characters.")
    if any(c <= " " or c in "\x7f\\#" for c in raw):
        raise TargetRefused(
            f"The {TARGET_HEADER} contains a space, a control character, '\\' or '#'."
        )
    try:
        parts = urlsplit(raw)
        port = parts.port
    except ValueError:
        raise TargetRefused(f"The {TARGET_HEADER} is not a URL.") from None
    if parts.scheme.lower() != "https":
        raise TargetRefused(f"The {TARGET_HEADER} must be an https URL on fal's hosts.")
    host = (parts.hostname or "").lower()
    if parts.username is not None or port not in (None, 443) or host not in _HOSTS:
        raise TargetRefused(
            f"The {TARGET_HEADER} names a host this proxy does not forward to: only "
            f"{RUN_HOST}, {QUEUE_HOST} and fal's storage upload calls."
        )
    return _HOSTS[host](raw, parts.path, parts.query)


def _app_segments(path: str) -> list[str]:
    """The path's segments, each plain (an app id, a request id), naming an app."""
    segments = path.split("/")[1:] if path.startswith("/") else []
    if not segments or not all(_SEGMENT.match(s) and s not in (".", "..") for s in segments):
        raise TargetRefused(f"The {TARGET_HEADER} has an empty, dotted or escaped path segment.")
    if len(segments) < _base_length(segments):
        raise TargetRefused(
            f"The {TARGET_HEADER} names no fal app: expected https://{RUN_HOST}/owner/app/…"
        )
    return segments


def _run_target(raw: str, path: str, query: str) -> Target:
    segments = _app_segments(path)
    if segments[-1] == "stream" and len(segments) > _base_length(segments):
        return Target(raw, "stream", RUN_HOST, path, query, "/".join(segments[:-1]))
    return Target(raw, "run", RUN_HOST, path, query, "/".join(segments))


def _queue_target(raw: str, path: str, query: str) -> Target:
    segments = _app_segments(path)
    n = _base_length(segments)
    if len(segments) > n + 1 and segments[n] == "requests":
        # The per-request URLs drop the app's sub-path (docs/fal-protocol.md §1).
        kind = _REQUEST_OPS.get(tuple(segments[n + 2 :]), "request")
        app = "/".join(segments[:n])
        return Target(raw, kind, QUEUE_HOST, path, query, app, request_id=segments[n + 1])
    return Target(raw, "submit", QUEUE_HOST, path, query, "/".join(segments))


def _rest_target(raw: str, path: str, query: str) -> Target:
    if (path, query) not in _STORAGE_CALLS:
        raise TargetRefused(
            f"The {TARGET_HEADER} names a {REST_HOST} call this proxy does not forward: only "
            "fal's storage upload calls (storage/upload/initiate and complete-multipart)."
        )
    return Target(raw, "upload", REST_HOST, path, query, None)


_HOSTS = {RUN_HOST: _run_target, QUEUE_HOST: _queue_target, REST_HOST: _rest_target}


def _base_length(segments: Sequence[str]) -> int:
    """Segments of `[namespace/]owner/alias`."""
    return 3 if segments and segments[0] in _NAMESPACES else 2


@dataclass(frozen=True, slots=True)
class Upstreams:
    """Where fal's hosts really are: fal's own, or FAL_RUN_URL / FAL_QUEUE_URL / FAL_REST_URL
    (a relay, the simulator), which may carry a path."""

    run_url: str
    queue_url: str
    rest_url: str

    def url_for(self, target: Target) -> str:
        base = {RUN_HOST: self.run_url, QUEUE_HOST: self.queue_url, REST_HOST: self.rest_url}
        url = base[target.host].rstrip("/") + target.path
        return f"{url}?{target.query}" if target.query else url


# -- which apps may be called ------------------------------------------------------------------


def parse_app_globs(raw: str) -> tuple[str, ...]:
    """FAL_PROXY_ALLOWED_APPS: comma-separated globs over app ids."""
    return tuple(p.strip().strip("/") for p in raw.split(",") if p.strip().strip("/"))


def app_allowed(app: str, globs: Sequence[str], *, base_only: bool = False) -> bool:
    """Whether a glob matches `app`. `base_only`: `app` is only `[namespace/]owner/alias` (a
    follow-up whose submit is not known here), matched against each glob's first segments,
    so that `fal-ai/flux/dev` lets the status of its request through."""
    if not base_only:
        return any(fnmatchcase(app, glob) for glob in globs)
    n = _base_length(app.split("/"))
    return any(fnmatchcase(app, "/".join(glob.split("/")[:n])) for glob in globs)


# -- the answers the proxy itself gives --------------------------------------------------------


def error_body(message: str) -> bytes:
    """An error in fal's shape: `detail` is what fal's platform sends and fal_client reads;
    fal-js makes `ApiError.message` of `message` (docs/fal-protocol.md §13.3)."""
    return orjson.dumps({"detail": message, "message": message})


__all__ = [
    "EXPOSED_HEADERS",
    "PROXY_PATH",
    "TARGET_HEADER",
    "Kind",
    "Target",
    "TargetRefused",
    "Upstreams",
    "app_allowed",
    "error_body",
    "parse_app_globs",
    "parse_target",
]
