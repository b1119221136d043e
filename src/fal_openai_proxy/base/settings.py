"""Every option of the proxy, read from the environment and `.env`."""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_RUN_URL = "https://fal.run"
DEFAULT_QUEUE_URL = "https://queue.fal.run"
DEFAULT_REST_URL = "https://rest.fal.ai"
DEFAULT_API_URL = "https://api.fal.ai"  # docs/fal-protocol.md §11
DEFAULT_DATABASE_URL = "sqlite:///./fal-openai-proxy.db"
MIN_ADMIN_KEY = 16  # characters


def split_keys(raw: SecretStr | None) -> list[str]:
    """Comma-separated secrets -> list, blanks dropped."""
    if raw is None:
        return []
    return [part.strip() for part in raw.get_secret_value().split(",") if part.strip()]


class Settings(BaseSettings):
    """Configuration. Names are the seed's: unprefixed environment variables."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    # Serving
    port: int = Field(3000, ge=0, le=65535, description="Listen port.")
    host: str = Field(
        "127.0.0.1",
        description="Listen address. A non-loopback address needs `API_KEY` "
        "(or `ALLOW_UNAUTHENTICATED=1`, or pass-through mode).",
    )
    workers: int = Field(
        1,
        ge=1,
        le=64,
        description="Worker processes sharing the port; each has its own key pool and "
        "limits (shared with `REDIS_URL`), and /metrics adds up all of them.",
    )
    log_level: str = Field("info", description="Log level: debug, info, warning, error.")
    log_format: Literal["auto", "json", "text"] = Field(
        "auto",
        description="`json` (one object per line), `text` (readable lines) or `auto`: text "
        "when stderr is a terminal, JSON otherwise.",
    )
    log_prompts: bool = Field(
        False,
        description="Log the fal input and the answer of each request. "
        "Off: prompts are never logged.",
    )

    # fal
    fal_key: SecretStr | None = Field(
        None,
        description="fal key(s), comma-separated. Unset: pass-through mode, where the client's "
        "Bearer key is sent to fal as `Key <key>`.",
    )
    fal_run_url: str = Field(
        DEFAULT_RUN_URL,
        description="Base URL of direct and `/stream` calls; may carry a path.",
    )
    fal_queue_url: str = Field(
        DEFAULT_QUEUE_URL,
        description="Base URL of queue calls; may carry a path.",
    )
    fal_chat_app: str = Field(
        "openrouter/router",
        description="fal app for text chat. `openrouter/router` (any OpenRouter model id, "
        "returns usage), `fal-ai/any-llm` (fixed model list, no usage) and their `/enterprise` "
        "variants all work.",
    )
    fal_vision_app: str = Field(
        "openrouter/router/vision",
        description="fal app for requests whose messages contain image parts; "
        "`fal-ai/any-llm/vision` works too.",
    )
    prompt_limit: int = Field(
        4800,
        ge=1,
        description="Characters of recent turns sent as `prompt`.",
    )
    fal_nonstream_mode: Literal["queue", "run"] = Field(
        "queue",
        description="How non-stream requests reach fal. `queue`: submit, status, result; robust "
        "to a dropped connection, and fal's platform retries failed runners. `run`: one direct "
        "`POST {FAL_RUN_URL}/{app}`; one round trip, so lower latency and less proxy CPU, but a "
        "dropped connection loses the answer and fal does not retry.",
    )
    system_prompt_limit: int = Field(
        4800, ge=1, description="Characters of system text and older turns sent as `system_prompt`."
    )
    models_file: Path | None = Field(
        None,
        description="JSON or YAML file that replaces the built-in model catalog: a list of "
        'ids, of `{id, owned_by?, created?}`, or OpenAI\'s `{"data": [...]}`. For an any-llm '
        "app it is also the list of accepted ids.",
    )
    model_routes: str = Field(
        "",
        description="Comma-separated PATTERN=ROUTE pairs (glob over model ids, first match "
        "wins; ROUTE is prompt, openai or auto). Unmatched models take auto.",
    )

    fal_models_refresh: bool = Field(
        False,
        description="List fal's own models in /v1/models too: fal's platform list "
        "(`FAL_API_URL`), refreshed in the background, keeping the categories the proxy "
        "serves. Falls back to the built-in list (or `MODELS_FILE`) on any error.",
    )
    fal_models_refresh_interval: float = Field(
        3600.0,
        gt=0,
        description="Seconds between refreshes of the live model list (after a failure: at "
        "most 60).",
    )
    fal_api_url: str = Field(
        DEFAULT_API_URL,
        description="Base URL of fal's platform API (the model list is `{FAL_API_URL}/v1/models`).",
    )

    # Cost
    prices_file: Path | None = Field(
        None,
        description="JSON or YAML price table (USD per input token, output token, image, "
        "megapixel, second of audio or video, request; per model or fal app) used when neither "
        "OpenRouter's cost nor fal's billable units price a request. Unset: the table shipped "
        "with the package (docs/operations.md, Cost of every request).",
    )
    fal_pricing_refresh_interval: float = Field(
        3600.0,
        ge=0,
        description="Seconds between reads of fal's unit prices (`{FAL_API_URL}/v1/models/"
        "pricing`, with the first FAL_KEY, in the background). 0 turns the reads off; "
        "without FAL_KEY there are none.",
    )

    # Clients
    api_key: SecretStr | None = Field(
        None,
        description="Comma-separated keys clients must send as `Authorization: Bearer <key>`, "
        "compared in constant time. Unset: no client auth. Setting it without `FAL_KEY` is "
        "refused at start.",
    )
    allow_unauthenticated: bool = Field(
        False,
        description="Allow a non-loopback `HOST` without `API_KEY` (refused otherwise, except "
        "in pass-through mode, where clients bring their own fal key).",
    )
    require_key_for_metrics_and_docs: bool = Field(
        False,
        description="With a non-loopback `HOST`: `/metrics`, `/docs` and `/openapi.json` need "
        "a client key (`Authorization: Bearer <API_KEY>`) too. Needs `API_KEY`.",
    )
    cors_origins: str = Field(
        "", description="Comma-separated allowed CORS origins (`*` for any). Empty: CORS off."
    )

    # Key pool, retries and timeouts
    fal_key_concurrency: int | Literal["auto"] = Field(
        "auto",
        description="Requests in flight per fal key, per process (with `REDIS_URL`: across all "
        "replicas): `auto` learns each key's limit from fal's 429s; a number is a fixed cap.",
    )
    max_queue_wait: float = Field(
        30.0,
        ge=0,
        description="Seconds a request waits for a free key when every key is at its cap, "
        "before 429.",
    )
    key_auth_cooldown: float = Field(
        600.0, ge=0, description="Seconds a key that fal refused (401/403) is left out."
    )
    key_rate_limit_cooldown: float = Field(
        5.0,
        ge=0,
        description="Seconds a key that fal rate-limited (429) is left out (longer if fal's "
        "`Retry-After` says so).",
    )
    retry_budget: float = Field(
        20.0, ge=0, description="Total seconds spent retrying one request before fal started it."
    )
    connect_timeout: float = Field(10.0, gt=0, description="Seconds to connect to fal.")
    pool_idle_timeout: float = Field(
        30.0,
        gt=0,
        description="Seconds an unused connection to fal is kept for reuse. Keep it well below "
        "fal's keep-alive timeout (its ingress is nginx: 75 s by default), so that the proxy, "
        "not fal, closes idle connections: a POST on a connection fal is closing fails, and "
        "is never sent twice.",
    )
    first_event_timeout: float = Field(
        120.0,
        gt=0,
        description="Seconds for fal to answer a stream call or a queue submit, and to send "
        "the first stream event.",
    )
    idle_timeout: float = Field(120.0, gt=0, description="Seconds allowed between stream events.")
    request_timeout: float = Field(
        600.0, gt=0, description="Total seconds for one upstream request; expiry gives 504."
    )
    max_upstream_body_bytes: int = Field(
        32 * 1024 * 1024,
        ge=1024,
        description="Largest answer from fal read whole (a non-stream answer, a queue result), "
        "and largest line or event of a stream; larger gives 502 (in a stream: an error event).",
    )
    max_retry_after: float = Field(
        60.0,
        ge=0,
        description="Longest `Retry-After` from fal that is believed, in seconds: a longer one "
        "is cut to this, and no rate-limited key (nor the last healthy one) is left out longer.",
    )
    keepalive_interval: float = Field(
        15.0, gt=0, description="Seconds between `: keep-alive` comments on a silent stream."
    )

    # Limits and shutdown
    max_body_bytes: int = Field(
        20 * 1024 * 1024,
        ge=1,
        description="Largest request body in bytes (20 MiB: image data URIs are large); "
        "larger gives 413.",
    )
    max_messages: int = Field(
        1000, ge=1, description="Most messages in one request; more gives 400."
    )
    max_content_parts: int = Field(
        1000,
        ge=1,
        description="Most content parts in one message; more gives 400. Also fixed: a `model` "
        "id of at most 256 characters, 4 `stop` sequences of at most 1,000 characters, 128 "
        "`tools`, and 50,000 JSON array items and object members in one body (counted on the raw "
        "bytes before parsing).",
    )
    max_header_bytes: int = Field(
        64 * 1024,
        ge=1024,
        description="Largest request line plus headers; larger gives 431 and the connection "
        "is closed.",
    )
    header_timeout: float = Field(
        10.0,
        gt=0,
        description="Seconds a connection has, from its first byte (or from opening), to send a "
        "complete request head; then it is closed.",
    )
    body_timeout: float = Field(
        30.0, gt=0, description="Seconds a client has to send its whole request body; then 408."
    )
    write_timeout: float = Field(
        120.0,
        gt=0,
        description="Seconds a stream waits for a client that does not read what it was sent; "
        "then the connection is dropped and the fal stream closed.",
    )
    max_connections: int = Field(
        2048,
        ge=1,
        description="Open client connections per process; further ones get 503 and are closed.",
    )
    allowed_hosts: str = Field(
        "",
        description="Comma-separated Host names served (`*`: any). Empty: loopback names "
        "when HOST is loopback, else any.",
    )
    forwarded_allow_ips: str = Field(
        "", description="Comma-separated proxy IPs whose X-Forwarded-For is trusted. Empty: none."
    )
    rate_limit_rpm: int = Field(
        0,
        ge=0,
        description="Requests per minute per client (per `API_KEY` key, per fal key in "
        "pass-through mode, else per IP); 0 is no limit.",
    )
    max_concurrent_per_client: int = Field(
        0, ge=0, description="Requests in flight per client key, per process (0: no limit)."
    )
    redis_url: str | None = Field(
        None,
        description="`redis://host:port/db`: workers and replicas share the per-minute counters, "
        "the fal keys' slots and learned limits, and which keys are left out. Unset, or while "
        "Redis is down: per-process state.",
    )
    drain_timeout: float = Field(
        30.0, ge=0, description="Seconds in-flight requests get to finish after SIGTERM."
    )

    # Accounts: virtual keys, budgets, usage and the request log (docs/accounts.md)
    database_url: str = Field(
        DEFAULT_DATABASE_URL,
        description="Where virtual keys, budgets, usage and the request log are kept: "
        "`sqlite:///path` (a file; `sqlite:///./x.db` is relative to the working directory), "
        "`postgresql://user:password@host:5432/db` (one database for every replica), or "
        "`none`: no accounts at all, and the proxy is a plain pipe (GET /v1/videos and "
        "DELETE /v1/videos/{id} then answer 501). Migrated at start.",
    )
    admin_key: SecretStr | None = Field(
        None,
        description="Secret of the admin API (`Authorization: Bearer <ADMIN_KEY>`, at least 16 "
        "characters): virtual keys, usage and the request log; and the console at `/console` "
        "(docs/console.md), which signs in with it. Unset: the admin API answers 403 and the "
        "console says how to set it. Set: every /v1/ request needs a key, from `API_KEY` or a "
        "virtual key.",
    )
    request_log_retention_days: int = Field(
        30,
        ge=0,
        description="Days the request log keeps a request; older ones are deleted in the "
        "background, while the per-day usage totals stay. 0: keep them all.",
    )
    usage_queue_max: int = Field(
        100_000,
        ge=1,
        description="Usage records waiting to be written (while the database is slow or down), "
        "per process; beyond, new records are dropped and counted in /metrics.",
    )
    console_session_ttl: int = Field(
        43200,
        ge=60,
        le=30 * 86400,
        description="Seconds a console sign-in lasts (its cookie expires then; signing out "
        "ends it sooner).",
    )

    # Media (images and audio)
    fal_image_app: str = Field(
        "fal-ai/flux/schnell", description="fal app for dall-e-2, dall-e-3 and gpt-image-1."
    )
    fal_edit_app: str = Field(
        "fal-ai/flux-pro/kontext", description="fal app for images.edit with an OpenAI model id."
    )
    fal_transcribe_app: str = Field(
        "fal-ai/whisper",
        description="fal app for whisper-1, gpt-4o-transcribe and gpt-4o-mini-transcribe.",
    )
    fal_speech_app: str = Field(
        "fal-ai/kokoro/american-english",
        description="fal app for tts-1, tts-1-hd and gpt-4o-mini-tts.",
    )
    fal_rest_url: str = Field(DEFAULT_REST_URL, description="Base URL of fal's storage API.")
    max_file_bytes: int = Field(
        16 * 1024 * 1024, ge=1, description="Largest uploaded file (image or audio); 400 above."
    )
    inline_file_bytes: int = Field(
        1024 * 1024,
        ge=0,
        description="Files up to this size go to fal as data URIs; larger "
        "ones are uploaded to fal's storage.",
    )
    max_media_bytes: int = Field(
        32 * 1024 * 1024, ge=1, description="Largest image or audio file read from fal's URLs."
    )
    media_bytes_per_request: int = Field(
        64 * 1024 * 1024,
        ge=1,
        description="Most bytes of fal's files one request may read in all (the images of "
        "one `b64_json` answer, one speech's audio); 502 above.",
    )
    media_fetch_timeout: float = Field(
        60.0, gt=0, description="Seconds allowed between bytes when reading fal's files."
    )
    media_hosts: str = Field(
        "",
        description="Comma-separated hosts, besides fal's own (`fal.media`, `*.fal.media`, "
        "`fal.run`, `*.fal.run`, `fal.ai`, `*.fal.ai`, `storage.googleapis.com/falserverless/`), "
        "that files named in fal's answers may be read from or uploaded to: `name`, `*.name` "
        "(its subdomains) or `name/path/prefix`. Always https, and never a private address; the "
        "hosts of the `FAL_*_URL` settings count as they are.",
    )
    max_upload_bytes_in_flight: int = Field(
        128 * 1024 * 1024,
        ge=1,
        description="Most bytes of multipart bodies (image edits, transcriptions) in memory at "
        "once per process, counted by their Content-Length (`MAX_BODY_BYTES` without one); "
        "further uploads wait up to half of `BODY_TIMEOUT`, then get 503.",
    )

    # Video
    fal_video_app: str = Field(
        "fal-ai/veo3.1/fast",
        description="fal app for sora-2 and sora-2-pro (with `input_reference`, its "
        "image-to-video app).",
    )
    video_id_secret: SecretStr | None = Field(
        None,
        description="Signs video ids, so that any replica can answer for a video and nobody "
        "can forge one. Unset: derived from `FAL_KEY` (ids stop verifying if `FAL_KEY` "
        "changes); in pass-through mode, from each client's own fal key.",
    )
    video_webhook_url: str | None = Field(
        None,
        description="Where `video.completed` and `video.failed` events are POSTed, signed as "
        "OpenAI signs webhooks (needs `VIDEO_WEBHOOK_SECRET` and `FAL_KEY`).",
    )
    video_webhook_secret: SecretStr | None = Field(
        None,
        description="The webhook signing secret: `whsec_<base64>` as OpenAI issues them, or "
        "any string (used as is), as `client.webhooks.unwrap()` takes it.",
    )
    video_watch_interval: float = Field(
        5.0,
        gt=0,
        description="Seconds between the background checks of unfinished videos (for the list "
        "and the webhooks); with `REDIS_URL` one replica checks for all.",
    )

    # fal's own clients (/api/fal/proxy)
    fal_proxy_allowed_apps: str = Field(
        "*",
        description="Comma-separated globs over fal app ids (`fal-ai/flux/*`) that fal's own "
        "clients may call through `/api/fal/proxy`; `*`: any. Empty: the endpoint refuses "
        "every call. Virtual keys' model globs apply too.",
    )

    @field_validator("fal_run_url", "fal_queue_url", "fal_rest_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("fal_key_concurrency", mode="before")
    @classmethod
    def _concurrency(cls, value: Any) -> int | str:
        text = str(value).strip().lower()
        if text == "auto":
            return "auto"
        number = isinstance(value, int | str) and not isinstance(value, bool) and text.isdigit()
        if number and int(text) >= 1:
            return int(text)
        raise ValueError(f"must be `auto` or a whole number >= 1, not {str(value)[:40]!r}")

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        value = value.strip()
        if value.lower() == "none":
            return "none"
        scheme = value.partition("://")[0].lower()
        if not value.partition("://")[1] or scheme.partition("+")[0] not in _DATABASES:
            raise ValueError(
                "must be `sqlite:///path`, `postgresql://user:password@host:port/db` or `none`"
            )
        return value

    @property
    def accounts_enabled(self) -> bool:
        """Virtual keys, usage and the admin API (DATABASE_URL is not `none`)."""
        return self.database_url != "none"

    @property
    def admin_secret(self) -> str | None:
        return self.admin_key.get_secret_value() if self.admin_key is not None else None

    @property
    def keys_required(self) -> bool:
        """Whether every /v1/ request must carry a key (API_KEY, or ADMIN_KEY's virtual keys)."""
        return bool(self.api_keys) or (self.accounts_enabled and self.admin_key is not None)

    @property
    def key_concurrency_cap(self) -> int | None:
        """The fixed cap per key, or None for `auto`."""
        value = self.fal_key_concurrency
        return None if value == "auto" else int(value)

    @field_validator("fal_api_url")
    @classmethod
    def _strip_api_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator(
        "fal_chat_app",
        "fal_vision_app",
        "fal_image_app",
        "fal_edit_app",
        "fal_transcribe_app",
        "fal_speech_app",
        "fal_video_app",
    )
    @classmethod
    def _strip_app(cls, value: str) -> str:
        return value.strip("/")

    @field_validator("model_routes")
    @classmethod
    def _check_routes(cls, value: str) -> str:
        parse_model_routes(value)
        return value

    @property
    def model_route_table(self) -> list[tuple[str, str]]:
        return parse_model_routes(self.model_routes)

    @property
    def fal_keys(self) -> list[str]:
        return split_keys(self.fal_key)

    @property
    def api_keys(self) -> list[str]:
        return split_keys(self.api_key)

    @property
    def pass_through(self) -> bool:
        return not self.fal_keys

    @property
    def cors_origin_list(self) -> list[str]:
        return [o.strip() for o in self.cors_origins.split(",") if o.strip()]

    @property
    def allowed_host_list(self) -> list[str] | None:
        """Host names (lower case, no port) that requests may name; None: any."""
        names = [h.strip().lower() for h in self.allowed_hosts.split(",") if h.strip()]
        if "*" in names or (not names and not is_loopback(self.host)):
            return None
        return names or ["localhost", "127.0.0.1", "[::1]"]

    def startup_problems(self) -> list[str]:
        """Configurations refused at start, each with the reason."""
        problems = []
        if self.api_keys and self.pass_through:
            problems.append(
                "API_KEY is set but FAL_KEY is not: in pass-through mode clients send their own "
                "fal key as the Bearer token, so API_KEY cannot also be checked. Set FAL_KEY, "
                "or unset API_KEY."
            )
        admin = self.admin_secret
        if admin is not None and len(admin.strip()) < MIN_ADMIN_KEY:
            problems.append(
                f"ADMIN_KEY is shorter than {MIN_ADMIN_KEY} characters: anyone who guesses it "
                "controls every key and budget. Use a long random secret, e.g. the output of "
                "`python -c 'import secrets; print(secrets.token_urlsafe(32))'`."
            )
        if admin is not None and not self.accounts_enabled:
            problems.append(
                "ADMIN_KEY is set but DATABASE_URL is none: the admin API keeps its keys and "
                "usage in the database. Set DATABASE_URL (the default is a SQLite file), or "
                "unset ADMIN_KEY."
            )
        if (
            not is_loopback(self.host)
            and not self.keys_required
            and not self.pass_through
            and not self.allow_unauthenticated
        ):
            problems.append(
                f"HOST={self.host} is reachable from other machines, and without API_KEY anyone "
                "there could spend your fal credit. Set API_KEY (or ADMIN_KEY, and give clients "
                "virtual keys), or ALLOW_UNAUTHENTICATED=1."
            )
        if self.video_webhook_url and self.video_webhook_secret is None:
            problems.append(
                "VIDEO_WEBHOOK_URL is set but VIDEO_WEBHOOK_SECRET is not: webhooks are always "
                "signed. Set VIDEO_WEBHOOK_SECRET (e.g. whsec_ and 24+ random bytes in base64)."
            )
        if self.video_webhook_url and self.pass_through:
            problems.append(
                "VIDEO_WEBHOOK_URL needs FAL_KEY: in pass-through mode the proxy holds no key "
                "to follow the videos with."
            )
        if self.require_key_for_metrics_and_docs and not self.api_keys:
            problems.append(
                "REQUIRE_KEY_FOR_METRICS_AND_DOCS needs API_KEY: the key clients send is the one "
                "checked. Set API_KEY, or unset REQUIRE_KEY_FOR_METRICS_AND_DOCS."
            )
        return problems

    @property
    def info_endpoints_need_key(self) -> bool:
        """Whether /metrics, /docs and /openapi.json need a client key."""
        return self.require_key_for_metrics_and_docs and not is_loopback(self.host)

    @property
    def media_host_list(self) -> list[str]:
        return [h.strip() for h in self.media_hosts.split(",") if h.strip()]


ROUTES = ("prompt", "openai", "auto")
_DATABASES = ("sqlite", "postgresql", "postgres")


def parse_model_routes(raw: str) -> list[tuple[str, str]]:
    """`"openai/*=openai, *=auto"` -> [("openai/*", "openai"), ("*", "auto")]."""
    table = []
    for pair in raw.split(","):
        if not pair.strip():
            continue
        pattern, sep, route = pair.rpartition("=")
        pattern, route = pattern.strip(), route.strip().lower()
        if not sep or not pattern or route not in ROUTES:
            raise ValueError(
                f"MODEL_ROUTES: {pair.strip()!r} is not PATTERN=ROUTE with ROUTE one of "
                "prompt, openai, auto"
            )
        table.append((pattern, route))
    return table


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
