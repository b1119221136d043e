"""Accounts on the request path (DATABASE_URL): who a virtual key is and whether it may call
now (for the guard, `serve/middleware.py`), and the hand-over of every ended request to the
usage writer.

All of it is in memory on the request path: a key this process has seen is checked against its
cached record (refreshed in the background, `store/accounts.py`); only a key never seen here
awaits one indexed read. The usage record is built and written in the background.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import time
from typing import Any, Final

import orjson

from ..base.metrics import Metrics
from ..base.settings import Settings
from ..openai.errors import AUTHENTICATION, ProxyError, unavailable
from ..store.accounts import KeyCache, KeyRecord, KeyStore, Refusal, hash_secret, same_hash
from ..store.db import Database
from ..store.usage import Retention, UsageQueries, UsageRecord, UsageWriter
from .context import Client, RequestContext

log = logging.getLogger(__name__)

KEY_PATH = "/v1/key"  # a virtual key's view of itself (routes/admin.py)
MIGRATE_TIMEOUT = 30.0  # seconds the start waits for the database before going on without it
MIGRATE_RETRY = 5.0  # seconds between migration attempts while the database is unreachable
INSUFFICIENT_QUOTA: Final = "insufficient_quota"
MAX_LOGGED_TEXT = 64 * 1024  # characters of prompt or answer stored (LOG_PROMPTS)


class Accounts:
    """Everything DATABASE_URL turns on, for one process."""

    def __init__(self, settings: Settings, metrics: Metrics, db: Database | None = None) -> None:
        # The process's one engine (the video store shares it, `serve/app.py`); its own if none.
        self.db = db if db is not None else Database(settings.database_url)
        self.keys = KeyStore(self.db)
        self.cache = KeyCache(self.keys)
        self.queries = UsageQueries(self.db, self.keys)
        self.writer = UsageWriter(
            self.db,
            self.keys,
            self.cache,
            metrics,
            convert=self._usage_record,
            converted=self.count_batch,
            max_queue=settings.usage_queue_max,
        )
        self.retention = Retention(self.db, settings.request_log_retention_days)
        self._metrics = metrics
        self._log_prompts = settings.log_prompts
        self.migrated = False
        self._migrating: asyncio.Task[None] | None = None
        self._children: dict[tuple[int, str], Any] = {}
        self._tally: dict[tuple[int, str], float] = {}  # (metric, label) -> amount

    # -- life ------------------------------------------------------------------------------

    async def start(self) -> None:
        """Migrate, then start the background tasks. A database that cannot be reached does
        not stop the start: usage waits in the queue and migrations are retried."""
        try:
            async with asyncio.timeout(MIGRATE_TIMEOUT):
                await self.db.upgrade()
            self.migrated = True
        except Exception as exc:
            log.error(
                "cannot migrate %s (%s); retrying every %.0f s. Until then virtual keys not "
                "seen before are refused with 503 and usage waits in memory.",
                self.db.where,
                type(exc).__name__,
                MIGRATE_RETRY,
            )
            self._migrating = asyncio.create_task(self._migrate_later(), name="db-migrate")
        self.cache.start()
        self.writer.start()
        self.retention.start()

    async def _migrate_later(self) -> None:
        while not self.migrated:
            await asyncio.sleep(MIGRATE_RETRY)
            try:
                await self.db.upgrade()
            except Exception:
                continue
            self.migrated = True
            log.warning("%s is migrated and reachable again", self.db.where)

    async def close(self) -> None:
        if self._migrating is not None:
            self._migrating.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._migrating
        await self.retention.close()
        await self.cache.close()
        await self.writer.close()  # writes what is queued, within a bound
        await self.db.close()

    # -- the guard: virtual keys -------------------------------------------------------------

    def identify_cached(self, token: str, client: Client, spends: bool = True) -> bool:
        """Fill `client` from a virtual key this process knows, or raise its refusal; False
        when the key must be looked up first (`identify`). `spends`: the request can spend
        the key's budget (GET /v1/key only reads it, and is answered even when it is spent)."""
        key_hash = hash_secret(token)
        found = self.cache.get(key_hash, time.monotonic())
        if found is False:
            return False
        self._admit(found, key_hash, client, spends)  # type: ignore[arg-type]
        return True

    async def identify(self, token: str, client: Client, spends: bool = True) -> None:
        """`identify_cached` for a key this process has not seen: one indexed read."""
        key_hash = hash_secret(token)
        try:
            record = await self.cache.lookup(key_hash)
        except Exception as exc:
            log.warning("cannot look a virtual key up (%s)", type(exc).__name__)
            raise unavailable(
                "The key store is unreachable, so this key cannot be checked; retry shortly."
            ) from None
        self._admit(record, key_hash, client, spends)

    def _admit(self, record: KeyRecord | None, key_hash: str, client: Client, spends: bool) -> None:
        if record is None or not same_hash(record.key_hash, key_hash):
            raise invalid_key("Incorrect API key provided.")
        refusal = record.refusal(time.time(), self.cache.pending_for(record.id), budget=spends)
        if refusal is not None and refusal is not Refusal.BUDGET:
            raise _refused(record, refusal)
        # The key is known: from here on its requests are its usage, refused ones included.
        client.kind, client.id, client.name = "virtual", f"vk-{record.id}", record.name
        client.models, client.key_id, client.rpm = record.models, record.id, record.rpm
        client.identified = True
        if refusal is not None:
            raise _refused(record, refusal)

    def own_key(self, client: Client) -> KeyRecord | None:
        """GET /v1/key: the caller's own record, as cached (None for non-virtual clients)."""
        return self.cache.find_id(client.key_id) if client.key_id is not None else None

    # -- the end of every request ------------------------------------------------------------

    def request_ended(
        self, context: RequestContext, endpoint: str, status: int, started: float, seconds: float
    ) -> None:
        """Queue the request's usage (an append; the record is built in the background)."""
        item = (context, endpoint, status, started, time.time() - seconds, seconds)
        if not self.writer.submit(item):
            return
        client, cost = context.client, context.usage.cost
        if cost and client.key_id is not None:
            self.cache.add_pending(client.key_id, cost)  # this replica's budget checks see it now

    def _usage_record(self, item: Any) -> UsageRecord:
        context, endpoint, status, started, created_at, seconds = item
        assert isinstance(context, RequestContext)
        fields, usage, client = context.log, context.usage, context.client
        if client.kind == "virtual":
            key_id, key_label = str(client.key_id), client.name or str(client.key_id)
        elif client.kind == "passthrough":
            key_id, key_label = f"passthrough:{client.id.removeprefix('fal-')}", "passthrough"
        else:
            key_id = key_label = client.kind
        cost = usage.cost
        # Counted per batch, not per request (`count_batch`): a labelled inc costs a lock.
        tally = self._tally
        tally[(0, key_label)] = tally.get((0, key_label), 0.0) + 1
        if cost is not None:
            model_key = (1, fields.model_label or "other")
            tally[model_key] = tally.get(model_key, 0.0) + cost
            tally[(2, key_label)] = tally.get((2, key_label), 0.0) + cost
        first = usage.first_byte_at
        model, fal_app = fields.model, usage.fal_app
        return UsageRecord(  # positionally, in the request log's column order
            created_at,
            fields.request_id,
            key_id,
            usage.endpoint or endpoint,
            model if model is None or len(model) <= 256 else model[:256],
            fields.route,
            fal_app if fal_app is None or len(fal_app) <= 256 else fal_app[:256],
            _clip(fields.fal_request_id, 128),
            status,
            _clip(fields.error_type, 64),
            round(seconds * 1000, 3),
            round((first - started) * 1000, 3) if first is not None else None,
            fields.stream,
            usage.input_tokens,
            usage.output_tokens,
            usage.images,
            usage.audio_seconds_in,
            usage.audio_seconds_out,
            usage.video_seconds,
            cost,
            usage.cost_source,
            usage.billable_units,
            self._logged(context.prompt) if self._log_prompts else None,
            self._logged(context.answer) if self._log_prompts else None,
        )

    def count_batch(self) -> None:
        """The metrics of the requests converted since the last call (the writer calls it
        once per batch): `fal_proxy_key_requests`, `fal_proxy_cost_usd`, `..._key_cost_usd`."""
        metrics = self._metrics
        families = (metrics.key_requests, metrics.cost, metrics.key_cost)
        for (family, label), amount in self._tally.items():
            self._counter(families[family], label).inc(amount)
        self._tally.clear()

    def _counter(self, metric: Any, label: str) -> Any:
        """A labelled child, found once (prometheus-client's labels() is slow to repeat)."""
        key = (id(metric), label)
        child = self._children.get(key)
        if child is None:
            child = self._children[key] = metric.labels(label)
        return child

    def _logged(self, value: object) -> str | None:
        if value is None:
            return None
        text = value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
        return text[:MAX_LOGGED_TEXT]


def _clip(value: str | None, limit: int) -> str | None:
    return value[:limit] if value is not None else None


def invalid_key(message: str) -> ProxyError:
    return ProxyError(401, message, type=AUTHENTICATION, code="invalid_api_key")


def insufficient_quota(message: str) -> ProxyError:
    # `x-should-retry: false`: the openai SDKs do not retry a 429 that says so.
    return ProxyError(
        429,
        message,
        type=INSUFFICIENT_QUOTA,
        code=INSUFFICIENT_QUOTA,
        headers={"x-should-retry": "false"},
    )


def _refused(record: KeyRecord, refusal: Refusal) -> ProxyError:
    if refusal is Refusal.DELETED:
        return invalid_key("This API key has been deleted.")
    if refusal is Refusal.DISABLED:
        return invalid_key("This API key is disabled.")
    if refusal is Refusal.EXPIRED:
        when = dt.datetime.fromtimestamp(record.expires_at or 0, dt.UTC).isoformat()
        return invalid_key(f"This API key expired at {when.replace('+00:00', 'Z')}.")
    period = f"this {record.budget_period}'s" if record.budget_period else "its"
    return insufficient_quota(
        f"This API key has spent {period} budget of ${record.max_budget:g}."
        + (" It resets at the start of the next period (UTC)." if record.budget_period else "")
    )
