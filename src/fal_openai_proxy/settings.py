"""Every option of the proxy, read from the environment and `.env`."""

from __future__ import annotations

import ipaddress
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_RUN_URL = "https://fal.run"
DEFAULT_QUEUE_URL = "https://queue.fal.run"


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
    host: str = Field("127.0.0.1", description="Listen address.")
    workers: int = Field(1, ge=1, le=64, description="Worker processes (each has its own pools).")
    log_level: str = Field("info", description="Log level: debug, info, warning, error.")
    log_prompts: bool = Field(False, description="Log prompts and outputs (off: never logged).")

    # fal
    fal_key: SecretStr | None = Field(
        None,
        description="fal key(s), comma-separated. Unset: pass-through mode, where the client's "
        "Bearer key is sent to fal as `Key <key>`.",
    )
    fal_run_url: str = Field(DEFAULT_RUN_URL, description="Base URL of direct and /stream calls.")
    fal_queue_url: str = Field(DEFAULT_QUEUE_URL, description="Base URL of queue calls.")
    fal_chat_app: str = Field("openrouter/router", description="fal app for text chat.")
    fal_vision_app: str = Field(
        "openrouter/router/vision", description="fal app for messages with image parts."
    )
    prompt_limit: int = Field(4800, ge=1, description="Characters of recent turns in `prompt`.")
    system_prompt_limit: int = Field(
        4800, ge=1, description="Characters of system text and history in `system_prompt`."
    )
    models_file: Path | None = Field(
        None, description="JSON or YAML file that replaces the built-in model catalog."
    )

    # Clients
    api_key: SecretStr | None = Field(
        None, description="Comma-separated keys clients must send as `Authorization: Bearer`."
    )
    allow_unauthenticated: bool = Field(
        False, description="Allow a non-loopback HOST without API_KEY."
    )
    cors_origins: str = Field(
        "", description="Comma-separated allowed CORS origins (`*` for any). Empty: CORS off."
    )

    # Key pool, retries and timeouts
    fal_key_concurrency: int = Field(
        10, ge=1, description="Requests in flight per fal key, per process."
    )
    max_queue_wait: float = Field(
        30.0, ge=0, description="Seconds a request waits for a free fal key before 429."
    )
    key_auth_cooldown: float = Field(
        600.0, ge=0, description="Seconds a key refused with 401/403 is left out."
    )
    key_rate_limit_cooldown: float = Field(
        5.0, ge=0, description="Seconds a key answered with 429 is left out."
    )
    retry_budget: float = Field(
        20.0, ge=0, description="Total seconds spent retrying one request before fal started it."
    )
    connect_timeout: float = Field(10.0, gt=0, description="Seconds to connect to fal.")
    first_event_timeout: float = Field(
        120.0, gt=0, description="Seconds to wait for fal's first stream event or queue answer."
    )
    idle_timeout: float = Field(120.0, gt=0, description="Seconds allowed between stream events.")
    request_timeout: float = Field(
        600.0, gt=0, description="Total seconds for one upstream request; expiry gives 504."
    )
    keepalive_interval: float = Field(
        15.0, gt=0, description="Seconds between `: keep-alive` comments on a silent stream."
    )

    # Limits and shutdown
    max_body_bytes: int = Field(20 * 1024 * 1024, ge=1, description="Largest request body.")
    max_messages: int = Field(1000, ge=1, description="Most messages in one request.")
    max_content_parts: int = Field(1000, ge=1, description="Most content parts in one message.")
    max_header_bytes: int = Field(
        64 * 1024, ge=1024, description="Largest request line plus headers; larger gives 431."
    )
    header_timeout: float = Field(
        10.0, gt=0, description="Seconds a connection has to send a complete request head."
    )
    body_timeout: float = Field(
        30.0, gt=0, description="Seconds a client has to send its whole request body."
    )
    write_timeout: float = Field(
        120.0, gt=0, description="Seconds a stream waits for a client that does not read."
    )
    max_connections: int = Field(
        2048, ge=1, description="Open client connections per process; more are refused."
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
        0, ge=0, description="Requests per minute per client key (0: no limit)."
    )
    max_concurrent_per_client: int = Field(
        0, ge=0, description="Requests in flight per client key, per process (0: no limit)."
    )
    redis_url: str | None = Field(
        None, description="Redis URL for rate-limit counters shared by all replicas."
    )
    drain_timeout: float = Field(
        30.0, ge=0, description="Seconds in-flight requests get to finish after SIGTERM."
    )

    @field_validator("fal_run_url", "fal_queue_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @field_validator("fal_chat_app", "fal_vision_app")
    @classmethod
    def _strip_app(cls, value: str) -> str:
        return value.strip("/")

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
        if (
            not is_loopback(self.host)
            and not self.api_keys
            and not self.pass_through
            and not self.allow_unauthenticated
        ):
            problems.append(
                f"HOST={self.host} is reachable from other machines, and without API_KEY anyone "
                "there could spend your fal credit. Set API_KEY, or ALLOW_UNAUTHENTICATED=1."
            )
        return problems


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
