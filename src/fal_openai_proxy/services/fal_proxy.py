"""fal's own clients through the proxy: `/api/fal/proxy` (docs/fal-proxy.md).

One call of fal's client per request: the target (`x-fal-target-url`) is checked against fal's
allow-list and FAL_PROXY_ALLOWED_APPS, sent to fal with a pool key (or the client's own in
pass-through mode) and `x-fal-*` headers, and fal's answer is relayed unchanged (status,
headers, body) as it arrives, SSE included (docs/fal-protocol.md §13). Refusals and failures
of the proxy itself are in fal's error shape.

Which pool key submitted a queued request is remembered (`SubmittedRequests`), so that its
status, result and cancel go with the same key (pools may hold keys of several accounts) and
only the client that submitted it may follow it up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.types import Receive, Scope, Send

from ..base.metrics import Metrics
from ..base.watchdog import Watchdog
from ..fal.errors import FalError, FalStatusError, FalTransportError
from ..fal.proxy_client import Answer, FalProxyClient, Opened, RelayRefused
from ..fal.proxy_protocol import (
    TARGET_HEADER,
    Target,
    TargetRefused,
    app_allowed,
    error_body,
    parse_target,
)
from ..fal.timeouts import deadline
from ..fal.wire import billable_units
from ..openai.errors import PERMISSION, ProxyError
from ..openai.sse import (
    ABORT_KEY,
    ClientGone,
    ClientStalled,
    cancelled_on_disconnect,
    send_within,
)
from ..serve.context import Client, RequestContext, Usage
from ..store.redis import RedisStore
from ..translate.cost import Measure
from ..translate.errors import to_openai_error
from .catalog import Catalog
from .pricing import CostMeter

log = logging.getLogger(__name__)

# Response headers never relayed. fal's proxy drops content-length and content-encoding
# (docs/fal-protocol.md §13.2); hop-by-hop headers belong to one connection
# (RFC 9110 §7.6.1) and the server frames the body itself; fal's cookies, CORS answers and
# Alt-Svc speak of fal's origin, and would apply to the proxy's.
_DROPPED = frozenset(
    {
        "content-length", "content-encoding", "connection", "keep-alive", "proxy-connection",
        "transfer-encoding", "te", "trailer", "upgrade", "proxy-authenticate", "set-cookie",
        "alt-svc",
    }
)  # fmt: skip
# A submit's answer is small JSON; more than this and its request id is not looked for.
_SUBMIT_PEEK = 64 * 1024
# How long the key and owner of a submitted request are remembered: fal keeps results for a
# while (*unverified* how long), and clients follow their requests up within minutes.
SUBMITTED_TTL = 24 * 3600.0
SUBMITTED_CAPACITY = 100_000


@dataclass(frozen=True, slots=True)
class Submitted:
    app: str  # the full app id the submit named
    key_index: int
    owner: str  # the client identity (never a key)


class SubmittedRequests:
    """Submitted requests: in this process (the most recent SUBMITTED_CAPACITY), and with
    REDIS_URL in Redis, so that another replica can answer the follow-ups."""

    def __init__(self, store: RedisStore | None, capacity: int = SUBMITTED_CAPACITY) -> None:
        self._store = store
        self._capacity = capacity
        self._recent: OrderedDict[str, Submitted] = OrderedDict()

    async def remember(self, request_id: str, submitted: Submitted) -> None:
        self._recent[request_id] = submitted
        if len(self._recent) > self._capacity:
            self._recent.popitem(last=False)
        if self._store is not None and self._store.up:
            value = [submitted.app, submitted.key_index, submitted.owner]
            await self._store.set_json(_store_name(request_id), value, SUBMITTED_TTL)

    async def lookup(self, request_id: str) -> Submitted | None:
        found = self._recent.get(request_id)
        if found is not None or self._store is None or not self._store.up:
            return found
        value = await self._store.get_json(_store_name(request_id))
        if isinstance(value, list) and len(value) == 3:
            app, index, owner = value
            if isinstance(app, str) and isinstance(index, int) and isinstance(owner, str):
                found = Submitted(app, index, owner)
                self._recent[request_id] = found
        return found


def _store_name(request_id: str) -> str:
    return f"fal-proxy:request:{request_id}"


class FalProxyService:
    def __init__(
        self,
        client: FalProxyClient,
        requests: SubmittedRequests,
        *,
        allowed_apps: tuple[str, ...],
        pass_through: bool,
        catalog: Catalog,
        metrics: Metrics,
        open_streams: set[asyncio.Task[None]],
        write_timeout: float,
        meter: CostMeter,
    ) -> None:
        self._meter = meter
        self._client = client
        self._requests = requests
        self._allowed = allowed_apps
        self._pass_through = pass_through
        self._catalog = catalog
        self._metrics = metrics
        self._open_streams = open_streams
        self._write_timeout = write_timeout

    async def handle(self, request: Request, context: RequestContext) -> Response:
        """fal's answer, relayed; or a refusal in fal's shape."""
        try:
            return await self._handle(request, context)
        except TargetRefused as exc:
            return _refused_by_proxy(ProxyError(400, str(exc), code="invalid_target"), context)
        except ProxyError as exc:
            return _refused_by_proxy(exc, context)
        except RelayRefused as exc:
            return self._refused(exc, context)
        except FalError as exc:
            return self._failed(exc, context)

    async def _handle(self, request: Request, context: RequestContext) -> Response:
        target = parse_target(request.headers.get(TARGET_HEADER))
        submitted = await self._check(target, context)
        self._metrics.upstream_routes.labels("fal_proxy", target.kind).inc()
        method = request.method
        body = None if method == "GET" else await request.body()
        total_deadline = asyncio.get_running_loop().time() + self._client.timeouts.total
        opening = self._client.open(
            target,
            method,
            _forwarded_headers(request.headers),
            body,
            client_key=context.fal_key,
            key_index=submitted.key_index if submitted is not None else None,
            total_deadline=total_deadline,
        )
        async with cancelled_on_disconnect(request.receive):  # ClientGone: the app's 499
            opened = await opening
        return self._relay(opened, target, context, total_deadline)

    async def _check(self, target: Target, context: RequestContext) -> Submitted | None:
        """Refuse an app outside FAL_PROXY_ALLOWED_APPS or the key's models, and a follow-up
        of another client's request; note the app in the log and usage. The submit a
        follow-up names, when known."""
        if not self._allowed:
            raise ProxyError(
                403, "The fal proxy is off here (FAL_PROXY_ALLOWED_APPS is empty).",
                type=PERMISSION, code="app_not_allowed",
            )  # fmt: skip
        submitted = None
        if target.follows_up and not self._pass_through:
            assert target.request_id is not None
            submitted = await self._requests.lookup(target.request_id)
            client = context.client
            if submitted is not None and _owned(client) and submitted.owner != client.id:
                # As fal answers for a request it does not know (the simulator plays it).
                raise ProxyError(
                    404, f"Request '{target.request_id}' not found", code="request_not_found"
                )
        app = submitted.app if submitted is not None else target.app
        # A follow-up whose submit is unknown names only owner/alias (docs/fal-protocol.md §1).
        base_only = target.follows_up and submitted is None
        if app is not None and not app_allowed(app, self._allowed, base_only=base_only):
            raise ProxyError(
                403, f"The fal app `{app}` may not be called through this proxy "
                "(FAL_PROXY_ALLOWED_APPS).", type=PERMISSION, code="app_not_allowed",
            )  # fmt: skip
        self._note(target, app, base_only, context)
        return submitted

    def _note(
        self, target: Target, app: str | None, base_only: bool, context: RequestContext
    ) -> None:
        """The app as the model: in the log, the usage record, and against a virtual key's
        globs (a storage upload names no app: nothing the globs speak of)."""
        fields = context.log
        fields.route, fields.stream, fields.model_label = target.kind, target.streams, "other"
        if app is None:
            return
        context.usage.fal_app = fields.model = app  # first: a refused app is logged too
        fields.model_label = self._catalog.metric_label(app)
        models = context.client.models
        if not base_only:
            context.check_model(app)
        elif models is not None and not app_allowed(app, models, base_only=True):
            raise ProxyError(
                403, f"This key may not use the model '{app}'.", type=PERMISSION,
                param="model", code="model_not_allowed",
            )  # fmt: skip

    def _relay(
        self, opened: Opened, target: Target, context: RequestContext, total_deadline: float
    ) -> Response:
        response = opened.response
        fields = context.log
        fields.fal_request_id = response.headers.get("x-fal-request-id")
        if not 200 <= response.status < 300:
            fields.error_type = f"fal_{response.status}"
        context.usage.billable_units = billable_units(response.headers)
        # fal's billable units x its unit price, if both are known
        self._meter.settle(context.usage, model=context.usage.fal_app, used=Measure())
        on_end: Callable[[bytes], Awaitable[None]] | None = None
        lease = opened.lease
        if target.kind == "submit" and lease.pool is not None and target.app is not None:
            on_end = self._remembering(target.app, lease.index, context)
        return RelayResponse(
            opened,
            timeouts=(self._client.timeouts.idle, self._client.timeouts.total, total_deadline),
            write_timeout=self._write_timeout,
            open_streams=self._open_streams,
            on_end=on_end,
            metrics=self._metrics if target.streams else None,
            usage=context.usage,
        )

    def _remembering(
        self, app: str, key_index: int, context: RequestContext
    ) -> Callable[[bytes], Awaitable[None]]:
        async def remember(head: bytes) -> None:
            request_id = _request_id(head)
            if request_id is not None:
                context.log.fal_request_id = request_id
                owner = context.client.id
                await self._requests.remember(request_id, Submitted(app, key_index, owner))

        return remember

    def _refused(self, exc: RelayRefused, context: RequestContext) -> Response:
        """fal's own answer, after every retry and key: unchanged, unless fal refused the
        server's keys (the client's credentials were fine: a 502, as elsewhere)."""
        context.log.fal_request_id = exc.request_id
        if exc.status in (401, 403) and not self._pass_through:
            return self._failed(exc, context)
        context.log.error_type = f"fal_{exc.status}"
        return _whole(exc.answer)

    def _failed(self, exc: FalError, context: RequestContext) -> Response:
        """The proxy's view of a failure that left no answer of fal's to relay."""
        error = to_openai_error(exc, pass_through=self._pass_through)
        context.log.error_type = exc.kind
        if isinstance(exc, FalStatusError) and exc.status in (401, 403):
            log.error("fal refused the server's key #%s (HTTP %d)", exc.key_index, exc.status)
        return _fal_error(error.status, error.message, error.headers)


def _owned(client: Client) -> bool:
    """Whether the proxy tells the client apart by a key of its own (an API key, a virtual
    key): only then is a request its own. Open mode (by address) has no such identity, and in
    pass-through mode fal itself keeps accounts apart."""
    return client.kind in ("static", "virtual")


def _forwarded_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """What goes to fal besides the key: every `x-fal-*` header, as fal's proxy forwards them
    (docs/fal-protocol.md §13.2), and the client's Accept and Content-Type (fal's client
    sends JSON, and `text/event-stream` to `/stream`)."""
    forwarded = {k: v for k, v in headers.items() if k.startswith("x-fal-")}
    forwarded["Accept"] = headers.get("accept") or "application/json"
    forwarded["Content-Type"] = headers.get("content-type") or "application/json"
    return forwarded


def _relayed_headers(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    return [
        (name.encode("latin-1"), value.encode("latin-1"))
        for name, value in headers.items()
        if name not in _DROPPED and not name.startswith("access-control-")
    ]


def _request_id(head: bytes) -> str | None:
    """The `request_id` of a submit's answer (docs/fal-protocol.md §3.3)."""
    try:
        answer: Any = orjson.loads(head)
    except orjson.JSONDecodeError:
        return None
    value = answer.get("request_id") if isinstance(answer, dict) else None
    return value if isinstance(value, str) and value else None


def _whole(answer: Answer) -> Response:
    response = Response(answer.body, answer.status)
    response.raw_headers = [*_relayed_headers(answer.headers), _length(answer.body)]
    return response


def _length(body: bytes) -> tuple[bytes, bytes]:
    return (b"content-length", str(len(body)).encode())


def _fal_error(status: int, message: str, headers: Mapping[str, str] | None = None) -> Response:
    return Response(error_body(message), status, headers=headers, media_type="application/json")


def _refused_by_proxy(exc: ProxyError, context: RequestContext) -> Response:
    context.log.error_type = exc.code or exc.type
    return _fal_error(exc.status, exc.message, exc.headers)


class RelayResponse(Response):
    """fal's answer as it arrives: status and headers, then each piece of the body.

    The key's lease is held until the end. The client leaving closes fal's connection (fal
    cancels a direct run whose connection closes); a failure after the first byte, a client
    that stops reading for WRITE_TIMEOUT, or the drain's end drops the client's connection,
    so that a cut body is never taken for a whole one.
    """

    def __init__(
        self,
        opened: Opened,
        *,
        timeouts: tuple[float, float, float],  # idle, total, the total's deadline
        write_timeout: float,
        open_streams: set[asyncio.Task[None]],
        on_end: Callable[[bytes], Awaitable[None]] | None,
        metrics: Metrics | None,
        usage: Usage,
    ) -> None:
        self.status_code = opened.response.status
        self.background = None
        self._opened = opened
        self._timeouts = timeouts
        self._write_timeout = write_timeout
        self._open_streams = open_streams
        self._on_end = on_end
        self._metrics = metrics
        self._usage = usage

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        task: asyncio.Task[None] = asyncio.current_task()  # type: ignore[assignment]
        response, lease = self._opened.response, self._opened.lease
        self._open_streams.add(task)
        if self._metrics is not None:
            self._metrics.streams_in_flight.inc()
        writes = Watchdog()  # WRITE_TIMEOUT for each write that waits
        try:
            start = {"status": response.status, "headers": _relayed_headers(response.headers)}
            await send({"type": "http.response.start", **start})
            self._usage.first_byte_at = time.perf_counter()
            async with cancelled_on_disconnect(receive):
                await self._pump(send, writes)
        except ClientGone:
            pass
        except ClientStalled:
            log.info("dropping a relay client that read nothing for %g s", self._write_timeout)
            _abort(scope)
        except FalTransportError as exc:  # broken or timed out after the first byte
            log.info("fal proxy relay cut short: %s", exc)
            _abort(scope)
        except asyncio.CancelledError:
            if task in self._open_streams:
                raise
            task.uncancel()  # the drain ended the relay
            _abort(scope)
        finally:
            writes.close()
            self._open_streams.discard(task)
            if self._metrics is not None:
                self._metrics.streams_in_flight.dec()
            response.close()  # pools a finished connection, drops an unfinished one
            lease.release()

    async def _pump(self, send: Send, writes: Watchdog) -> None:
        response = self._opened.response
        idle, total, total_deadline = self._timeouts
        head = b""
        while True:
            async with deadline(idle, "idle", total_deadline, total):
                chunk = await response.read_chunk()
            if not chunk:
                break
            if self._on_end is not None and len(head) < _SUBMIT_PEEK:
                head += chunk
            message = {"type": "http.response.body", "body": chunk, "more_body": True}
            await send_within(writes, send, message, self._write_timeout)
        if self._on_end is not None and 200 <= response.status < 300:
            await self._on_end(head)  # before the end: the client may follow up at once
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def _abort(scope: Scope) -> None:
    abort: Callable[[], None] | None = scope.get(ABORT_KEY)
    if abort is not None:
        abort()


__all__ = ["FalProxyService", "RelayResponse", "Submitted", "SubmittedRequests"]
