"""OpenAI's Videos API over fal's video apps: create, retrieve, content, list, delete, remix.

A video is one fal queue job (docs/fal-protocol.md §15). `create` submits it and answers at
once; the id it returns carries the app, fal's request id and the submitting key, signed
(`video_ids.py`), so that `retrieve` and `content` work on any replica from the id alone, by
asking fal. A client that disconnects never cancels a video: fal has already accepted it.
`list` and `delete` need the database (`store/videos.py`); `delete` cancels the job at fal.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
import time
from collections import OrderedDict
from collections.abc import AsyncIterator, Coroutine
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from ..base.settings import Settings
from ..fal.errors import FalError, FalStatusError
from ..fal.files import FalFiles
from ..fal.jobs import FalJobs
from ..fal.video_apps import SORA_MODELS, VIDEO_APPS, VideoApp, generic_video_app
from ..openai.errors import ProxyError, invalid_request, unavailable
from ..openai.forms import FormFile
from ..openai.videos import VideoCreate, video_object
from ..serve.context import RequestContext
from ..store.redis import RedisStore
from ..store.videos import Outcome, VideoRow, VideoStore
from ..translate.cost import Measure
from ..translate.videos import (
    build_video_input,
    coerce_form_field,
    output_urls,
    parse_seconds,
    parse_size,
    progress_estimate,
    video_error,
)
from .catalog import Catalog
from .images import sniff_image
from .pricing import CostMeter
from .video_ids import VideoIds, VideoRef, derive_secret

log = logging.getLogger(__name__)

# fal's CDN keeps outputs at least 7 days (docs/fal-protocol.md §10): when they may expire.
KEEP_SECONDS = 7 * 24 * 3600
_APP_ID = re.compile(r"^[A-Za-z0-9_-][A-Za-z0-9._-]*(/[A-Za-z0-9_-][A-Za-z0-9._-]*)+$")
_CACHE_SIZE = 10_000
# Seconds a list or delete waits for the rows being written (more: the database is down).
FLUSH_WAIT = 2.0
CLOSE_WAIT = 5.0  # seconds the shutdown gives them
FIRST_RETRY, LAST_RETRY = 0.5, 30.0  # seconds between attempts at a row, doubling
_TERMINAL = ("completed", "failed")


@dataclass(frozen=True)
class JobState:
    """What fal says of a job now, in OpenAI's terms, and where its files are."""

    outcome: Outcome
    urls: dict[str, str] = field(default_factory=dict)

    @property
    def terminal(self) -> bool:
        return self.outcome.status in _TERMINAL


def not_found(video_id: str) -> ProxyError:
    return ProxyError(
        404,
        f"No video found with id '{video_id[:80]}'.",
        param="video_id",
        code="video_not_found",
    )


class VideoService:
    def __init__(
        self,
        settings: Settings,
        jobs: FalJobs,
        files: FalFiles,
        catalog: Catalog,
        store: VideoStore | None,
        shared: RedisStore | None,
        meter: CostMeter,
    ) -> None:
        self._settings = settings
        self._jobs = jobs
        self._files = files
        self._catalog = catalog
        self.store = store
        self._shared = shared
        self._meter = meter
        self._keys = settings.fal_keys
        secret = settings.video_id_secret
        self._server_ids: VideoIds | None = None
        if secret is not None:
            self._server_ids = VideoIds(secret.get_secret_value().encode())
        elif self._keys:
            self._server_ids = VideoIds(derive_secret(*sorted(self._keys)))
        self._key_by_tag = (
            {self._server_ids.key_tag(k): k for k in self._keys} if self._server_ids else {}
        )
        # Finished jobs, so that fal is asked once; LRU, per process (and in Redis if set).
        self._finished: OrderedDict[str, JobState] = OrderedDict()
        self.deleted: set[str] = set()  # ids deleted here or, via the table, on any replica
        self.open_jobs: dict[str, VideoRef] = {}  # no database: what the watcher follows
        # Writes to the table and to Redis, off the request path; `list` waits for them.
        self._writes: set[asyncio.Future[None]] = set()
        self._tail: asyncio.Future[None] | None = None

    def _background(self, work: Coroutine[Any, Any, object]) -> None:
        """Run `work` after the writes before it: rows keep the order videos were made in."""
        previous = self._tail

        async def in_turn() -> None:
            if previous is not None:
                await asyncio.gather(previous, return_exceptions=True)
            await work

        task = asyncio.ensure_future(in_turn())
        self._tail = task
        self._writes.add(task)
        task.add_done_callback(self._written)

    def _written(self, task: asyncio.Future[None]) -> None:
        self._writes.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.warning("video record not written: %s", type(task.exception()).__name__)

    async def flush(self, within: float | None = None) -> None:
        """Wait for the writes under way (so that a list sees what was just created), for at
        most `within` seconds: a database that is down keeps its rows retrying."""
        if self._writes:
            await asyncio.wait(set(self._writes), timeout=within)

    async def close(self) -> None:
        """At shutdown: the rows still being written get a bound, then are given up, loudly."""
        await self.flush(CLOSE_WAIT)
        left = list(self._writes)
        for task in left:
            task.cancel()
        if left:
            await asyncio.wait(left)
            log.error(
                "%d video record(s) not written at shutdown (the database was unreachable): "
                "those videos still run and answer retrieve, but are missing from GET /v1/videos "
                "and send no webhook",
                len(left),
            )

    async def _add_until_written(self, store: VideoStore, row: VideoRow) -> None:
        """A video fal accepted is never dropped from the list silently: while the database is
        down (or not migrated yet) its row is retried with backoff until written."""
        pause = FIRST_RETRY
        while True:
            try:
                await store.add(row)
                return
            except IntegrityError:
                return  # an attempt that seemed to fail was written after all
            except (SQLAlchemyError, OSError, TimeoutError) as exc:
                if pause == FIRST_RETRY:
                    log.warning(
                        "video record not written yet (%s); retrying until the database is back",
                        type(exc).__name__,
                    )
            await asyncio.sleep(pause)
            pause = min(pause * 2, LAST_RETRY)

    # -- ids and owners -----------------------------------------------------------------------

    def ids(self, context: RequestContext) -> VideoIds:
        """The signer: VIDEO_ID_SECRET, else one derived from FAL_KEY; in pass-through
        mode, from the client's own fal key (an id then only verifies with that key)."""
        if self._server_ids is not None:
            return self._server_ids
        if context.fal_key is None:
            raise ProxyError(401, "A fal key is needed.", code="missing_api_key")
        return VideoIds(derive_secret("pass-through", context.fal_key))

    @property
    def server_ids(self) -> VideoIds | None:
        return self._server_ids

    def find(self, video_id: str, context: RequestContext) -> VideoRef:
        """The video named, if the caller created it: any other caller gets a 404."""
        ids = self.ids(context)
        ref = ids.decode(video_id)
        if ref is None or ref.owner != ids.owner_tag(context.client.id) or video_id in self.deleted:
            raise not_found(video_id)
        return ref

    def key_for(self, ref: VideoRef, context: RequestContext | None) -> str | None:
        if not ref.key_tag:
            return context.fal_key if context is not None else None
        return self._key_by_tag.get(ref.key_tag)

    # -- create -------------------------------------------------------------------------------

    async def create(self, request: VideoCreate, context: RequestContext) -> dict[str, Any]:
        has_image = request.image_file is not None or request.image_url is not None
        model, app, generic = self._resolve(request.model, has_image)
        context.check_model(model)
        extras = request.extras
        if request.form_extras:
            extras = {k: coerce_form_field(k, str(v)) for k, v in extras.items()}
        ask = build_video_input(
            app,
            request.prompt,
            parse_seconds(request.seconds),
            parse_size(request.size),
            extras,
            generic=generic,
        )
        self._note(context, model, app, ask.seconds)
        if has_image:
            ask.fal_input[app.image_field or "image_url"] = await self._image_url(request, context)
        if self._settings.log_prompts:
            log.info(
                "prompt", extra={"request_id": context.log.request_id, "fal_input": ask.fal_input}
            )
        submitted = await self._jobs.submit(app.app_id, ask.fal_input, context.fal_key)
        context.log.fal_request_id = submitted.request_id
        self._settle(context, model)
        ids = self.ids(context)
        key_tag = ids.key_tag(self._keys[submitted.key_index]) if submitted.key_index >= 0 else ""
        ref = VideoRef(
            app.app_id,
            submitted.request_id,
            key_tag,
            ids.owner_tag(context.client.id),
            int(time.time()),
            model,
            ask.seconds,
            ask.size,
        )
        return await self._created(ref, ids, request.prompt, context)

    async def remix(self, video_id: str, prompt: str, context: RequestContext) -> dict[str, Any]:
        """A new video from a completed one, where the table names an app for it."""
        source = self.find(video_id, context)
        row = VIDEO_APPS.get(source.app)
        remix_app = VIDEO_APPS.get(row.remix_app) if row is not None else None
        if remix_app is None:
            raise invalid_request(
                f"The model `{source.model}` ({source.app}) cannot remix videos: no fal app "
                "extends its videos. Remix works for the Veo 3.1 apps.",
                param="model",
                code="model_not_supported",
            )
        context.check_model(source.model)
        state = await self.state(source, context)
        if state.outcome.status != "completed":
            raise _not_ready(video_id, state.outcome.status)
        ask = build_video_input(remix_app, prompt, None, None, {})
        self._note(context, source.model, remix_app, ask.seconds)
        ask.fal_input[remix_app.video_field] = state.urls["video"]
        submitted = await self._jobs.submit(remix_app.app_id, ask.fal_input, context.fal_key)
        context.log.fal_request_id = submitted.request_id
        self._settle(context, source.model)
        ids = self.ids(context)
        key_tag = ids.key_tag(self._keys[submitted.key_index]) if submitted.key_index >= 0 else ""
        ref = VideoRef(
            remix_app.app_id,
            submitted.request_id,
            key_tag,
            source.owner,
            int(time.time()),
            source.model,
            ask.seconds,
            source.size,
            source,
        )
        return await self._created(ref, ids, prompt, context)

    async def _created(
        self, ref: VideoRef, ids: VideoIds, prompt: str, context: RequestContext
    ) -> dict[str, Any]:
        video_id = ids.encode(ref)
        remixed_from = ids.encode(ref.source) if ref.source is not None else None
        if self.store is not None:
            row = VideoRow(
                video_id, ref.owner, ref.created_at, ref.model, ref.app, ref.request_id,
                prompt, ref.seconds, ref.size, remixed_from=remixed_from,
            )  # fmt: skip
            self._background(self._add_until_written(self.store, row))
        elif self._server_ids is not None:
            self.open_jobs[video_id] = ref
        return video_object(
            video_id=video_id,
            model=ref.model,
            status="queued",
            progress=0,
            created_at=ref.created_at,
            seconds=ref.seconds,
            size=ref.size,
            prompt=prompt,
            remixed_from_video_id=remixed_from,
        )

    def _resolve(self, model: str | None, has_image: bool) -> tuple[str, VideoApp, bool]:
        """(the model reported, the app to run, whether the app is outside the table)."""
        named = model or self._settings.fal_video_app
        app_id = self._settings.fal_video_app if named in SORA_MODELS else named
        row = VIDEO_APPS.get(app_id)
        if row is None:
            if not _APP_ID.match(app_id) or self._catalog.metric_label(app_id) != "other":
                served = ", ".join(a for a, r in VIDEO_APPS.items() if r.kind != "extend")
                raise invalid_request(
                    f"The model `{named}` is not a video model. Use sora-2, sora-2-pro, one of "
                    f"{served}, or any fal video app id (owner/app).",
                    param="model",
                    code="model_not_supported",
                )
            return named, generic_video_app(app_id, has_image), True
        if row.kind == "extend":
            raise invalid_request(
                f"The model `{named}` extends a video: use POST /v1/videos/{{id}}/remix.",
                param="model",
                code="model_not_supported",
            )
        if has_image and row.kind == "text-to-video":
            image_row = VIDEO_APPS.get(row.image_app)
            if image_row is None:
                raise invalid_request(
                    f"The model `{named}` has no image-to-video app: `input_reference` is not "
                    "supported with it.",
                    param="input_reference",
                    code="unsupported_parameter",
                )
            row = image_row
        if not has_image and row.kind == "image-to-video":
            raise invalid_request(
                f"Missing required parameter: 'input_reference' ({row.app_id} animates an image).",
                param="input_reference",
                code="missing_required_parameter",
            )
        return named, row, False

    async def _image_url(self, request: VideoCreate, context: RequestContext) -> str:
        if request.image_url is not None:
            return request.image_url
        file = request.image_file
        assert file is not None
        content_type = _image_type(file)
        if len(file.data) <= self._settings.inline_file_bytes:
            return f"data:{content_type};base64,{base64.b64encode(file.data).decode('ascii')}"
        budget = self._files.budget()  # the upload's deadline is the request's
        return await self._files.upload(file.data, content_type, context.fal_key, budget)

    def _note(self, context: RequestContext, model: str, app: VideoApp, seconds: str) -> None:
        """The model and app in the log, usage and metrics."""
        self._catalog.note(context, model, stream=False, route="video", fal_app=app.app_id)
        context.usage.video_seconds = float(seconds) if seconds.isdigit() else None

    def _settle(self, context: RequestContext, model: str) -> None:
        """The video's cost, once fal has accepted the job: the seconds asked for at the
        app's price (fal bills the seconds it makes). It is counted on the request that
        starts the video, so that a virtual key's budget holds before the video runs; a
        submit fal refused costs nothing."""
        used = Measure(video_seconds=context.usage.video_seconds)
        self._meter.settle(context.usage, model=model, used=used)

    # -- retrieve -----------------------------------------------------------------------------

    async def retrieve(self, video_id: str, context: RequestContext) -> dict[str, Any]:
        ref = self.find(video_id, context)
        return self.object(video_id, ref, await self.state(ref, context, video_id), context)

    def object(
        self, video_id: str, ref: VideoRef, state: JobState, context: RequestContext | None
    ) -> dict[str, Any]:
        outcome = state.outcome
        error = None
        if outcome.error_code is not None:
            error = {"code": outcome.error_code, "message": outcome.error_message or ""}
        ids = self._server_ids or (self.ids(context) if context is not None else None)
        return video_object(
            video_id=video_id,
            model=ref.model,
            status=outcome.status,
            progress=outcome.progress,
            created_at=ref.created_at,
            completed_at=outcome.completed_at,
            expires_at=outcome.expires_at,
            seconds=ref.seconds,
            size=ref.size,
            remixed_from_video_id=(
                ids.encode(ref.source) if ref.source is not None and ids is not None else None
            ),
            error=error,
        )

    async def state(
        self, ref: VideoRef, context: RequestContext | None, video_id: str | None = None
    ) -> JobState:
        """The job's state, from fal unless it is known to be finished. A retrieve that learns
        the end (`video_id` given) records it in the table too, in the background: the list
        is then right after a restart, and in pass-through mode, where no watcher runs."""
        cache_key = f"{ref.app}\0{ref.request_id}"
        cached = self._finished.get(cache_key)
        if cached is None and self._shared is not None:
            cached = _state_from_json(await self._shared.get_json(_shared_name(cache_key)))
        if cached is not None:
            self._remember(cache_key, cached)
            return cached
        state = await self._ask_fal(ref, context)
        if state.terminal:
            if self._shared is not None:  # the first replica to learn the end sets its time
                value = {"outcome": state.outcome.__dict__, "urls": state.urls}
                first = await self._shared.first_json(_shared_name(cache_key), value, KEEP_SECONDS)
                state = _state_from_json(first) or state
            self._remember(cache_key, state)
            if video_id is not None and self.store is not None:
                self._background(self.store.record(video_id, state.outcome))
        return state

    def _remember(self, cache_key: str, state: JobState) -> None:
        self._finished[cache_key] = state
        self._finished.move_to_end(cache_key)
        while len(self._finished) > _CACHE_SIZE:
            self._finished.popitem(last=False)

    async def _ask_fal(self, ref: VideoRef, context: RequestContext | None) -> JobState:
        key = self.key_for(ref, context)
        if key is None:
            return _failed(
                "fal_key_unavailable",
                "The fal key that submitted this video is no longer configured on this server.",
            )
        try:
            status = await self._jobs.status(ref.app, ref.request_id, key)
        except FalStatusError as exc:
            if exc.status == 404:
                return _failed("not_found", "fal no longer knows this request.")
            raise
        name = status.get("status")
        if name == "IN_QUEUE":
            return JobState(Outcome("queued", 0))
        if name == "IN_PROGRESS":
            row = VIDEO_APPS.get(ref.app)
            typical = row.typical_seconds if row is not None else 60.0
            elapsed = time.time() - ref.created_at
            return JobState(Outcome("in_progress", max(1, progress_estimate(elapsed, typical))))
        if name != "COMPLETED":
            return _failed("cancelled", f"fal ended the request with status {str(name)[:40]!r}.")
        try:
            output = await self._jobs.result(
                ref.app, ref.request_id, key, failed=bool(status.get("error"))
            )
        except FalStatusError as exc:
            if exc.status in (429, 500, 502, 503, 504) and not status.get("error"):
                raise  # fal could not answer now: ask again later
            return JobState(_failed_outcome(exc))
        urls = output_urls(output)
        if "video" not in urls:
            return _failed("video_generation_failed", "fal's answer has no video.")
        now = int(time.time())
        return JobState(Outcome("completed", 100, now, now + KEEP_SECONDS), urls)

    # -- content ------------------------------------------------------------------------------

    async def content_url(self, video_id: str, variant: str, context: RequestContext) -> str:
        ref = self.find(video_id, context)
        state = await self.state(ref, context)
        if state.outcome.status != "completed":
            raise _not_ready(video_id, state.outcome.status)
        url = state.urls.get(variant)
        if url is None:
            raise ProxyError(
                404,
                f"The video '{video_id[:80]}' has no {variant} variant: {ref.app} gives "
                + ", ".join(sorted(state.urls))
                + ".",
                param="variant",
                code="variant_not_found",
            )
        return url

    # -- list and delete ----------------------------------------------------------------------

    def _require_store(self) -> VideoStore:
        if self.store is None:
            raise ProxyError(
                501,
                "Listing and deleting videos need the database, and DATABASE_URL is `none`. "
                "Retrieve and content work without it.",
                type="server_error",
                code="database_disabled",
            )
        return self.store

    async def list(
        self, context: RequestContext, after: str | None, limit: int, newest_first: bool
    ) -> tuple[list[dict[str, Any]], bool]:
        store = self._require_store()
        ids = self.ids(context)
        await self.flush(FLUSH_WAIT)
        owner = ids.owner_tag(context.client.id)
        async with _database_call(context):
            rows, more = await store.page(owner, after, limit, newest_first)
        videos = []
        for row in rows:
            ref = ids.decode(row.id)
            if ref is None:  # signed with another secret: no longer one of ours
                continue
            cached = self._finished.get(f"{ref.app}\0{ref.request_id}")
            outcome = cached.outcome if cached is not None else _row_outcome(row)
            video = self.object(row.id, ref, JobState(outcome), context)
            video["prompt"] = row.prompt
            videos.append(video)
        return videos, more

    async def delete(self, video_id: str, context: RequestContext) -> None:
        store = self._require_store()
        ref = self.find(video_id, context)
        cached = self._finished.get(f"{ref.app}\0{ref.request_id}")
        key = self.key_for(ref, context)
        if (cached is None or not cached.terminal) and key is not None:
            try:
                code = await self._jobs.cancel(ref.app, ref.request_id, key)
                log.info("cancelled video at fal (HTTP %d)", code)
            except FalError as exc:  # forgotten here either way; fal ends it in time
                log.warning("could not cancel video at fal: %s", exc.kind)
        await self.flush(FLUSH_WAIT)
        async with _database_call(context):
            await store.delete(video_id)
        self.deleted.add(video_id)
        self.open_jobs.pop(video_id, None)


@contextlib.asynccontextmanager
async def _database_call(context: RequestContext) -> AsyncIterator[None]:
    """A database that is down or not yet migrated is a 503 the client can retry, not a 500."""
    try:
        yield
    except (SQLAlchemyError, OSError, TimeoutError) as exc:
        context.log.error_type = "database_unavailable"
        log.warning("videos: the database failed (%s)", type(exc).__name__)
        raise unavailable(
            f"The database is unreachable ({type(exc).__name__}), so the list of videos cannot "
            "be read or changed now; retry shortly. Retrieve and content still work."
        ) from None


def _failed(code: str, message: str) -> JobState:
    return JobState(Outcome("failed", 100, int(time.time()), None, code, message))


def _failed_outcome(exc: FalError) -> Outcome:
    error = video_error(exc)
    return Outcome("failed", 100, int(time.time()), None, error["code"], error["message"])


def _row_outcome(row: VideoRow) -> Outcome:
    return Outcome(
        row.status, row.progress, row.completed_at, row.expires_at, row.error_code,
        row.error_message,
    )  # fmt: skip


def _not_ready(video_id: str, status: str) -> ProxyError:
    what = "failed" if status == "failed" else f"is {status.replace('_', ' ')}"
    return ProxyError(
        409,
        f"The video '{video_id[:80]}' {what}: its content exists only once it is completed.",
        param="video_id",
        code="video_not_ready",
    )


def _image_type(file: FormFile) -> str:
    content_type = sniff_image(file.data)
    if content_type is None:
        raise invalid_request(
            f"Invalid 'input_reference': {file.filename or 'the file'} is not a PNG, JPEG, "
            "WebP or GIF image.",
            "input_reference",
            "invalid_image_format",
        )
    return content_type


def _shared_name(cache_key: str) -> str:
    return "video:" + base64.urlsafe_b64encode(cache_key.encode()).decode("ascii")


def _state_from_json(value: Any) -> JobState | None:
    if not isinstance(value, dict) or not isinstance(value.get("outcome"), dict):
        return None
    try:
        return JobState(Outcome(**value["outcome"]), dict(value.get("urls") or {}))
    except TypeError:
        return None
