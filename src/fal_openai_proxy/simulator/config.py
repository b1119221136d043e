"""Runtime configuration of the fal simulator."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any


@dataclass
class SimulatorConfig:
    """Server-wide behaviour; every field can be changed at runtime via ``PATCH /_sim/config``.

    ``keys=None`` accepts any non-empty key. Per-request ``[[sim {...}]]`` directives override
    ``latency_ms``, ``interval_ms`` and ``events``.
    """

    keys: set[str] | None = None
    # 403 for a key fal refuses (the simulator's own wording: a refusal that is not a lock).
    forbidden_keys: set[str] = field(default_factory=set)
    # 403 "User is locked. Reason: Exhausted balance." for a key whose account is out of
    # credit (docs/fal-protocol.md §9.2): a valid key that cannot pay.
    locked_keys: set[str] = field(default_factory=set)
    rate_limited_keys: set[str] = field(default_factory=set)
    latency_ms: float = 0
    interval_ms: float = 0
    events: int = 8
    run_prefix: str = "/run"
    queue_prefix: str = "/queue"
    # fal's account concurrency limit, per key here: direct and /stream calls over it get a
    # 429, queue requests over it stay IN_QUEUE until a slot frees (docs/fal-protocol.md §5).
    key_concurrency: int | None = None
    # A video job's time in the queue, then running (simulator/video.py).
    video_queue_ms: float = 150
    video_ms: float = 600
    # The status of a storage PUT (fal's signed upload URL): any 2xx is success for fal-js.
    upload_status: int = 200
    # Caps the request log and the job table so long benchmarks cannot exhaust memory.
    history_limit: int = 100_000
    # fal's billing API (docs/fal-protocol.md §14.3): the keys with the `billing:usage:read`
    # scope (None: every accepted key), and the account's balance in USD.
    billing_keys: set[str] | None = None
    balance: float = 100.0


_SET_FIELDS = frozenset(
    {"keys", "forbidden_keys", "locked_keys", "rate_limited_keys", "billing_keys"}
)
_FLOAT_FIELDS = frozenset({"latency_ms", "interval_ms", "balance", "video_queue_ms", "video_ms"})
_INT_FIELDS = frozenset({"events", "key_concurrency", "history_limit", "upload_status"})
_STR_FIELDS = frozenset({"run_prefix", "queue_prefix"})
_NULLABLE = frozenset({"keys", "key_concurrency", "billing_keys"})


class ConfigError(ValueError):
    """A ``PATCH /_sim/config`` body that cannot be applied."""


def _convert(name: str, value: Any) -> Any:
    if value is None and name in _NULLABLE:
        return None
    if name in _SET_FIELDS:
        if not isinstance(value, list | set | tuple) or not all(isinstance(v, str) for v in value):
            raise ConfigError(f"{name} must be a list of strings")
        return set(value)
    if name in _FLOAT_FIELDS:
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            raise ConfigError(f"{name} must be a non-negative number")
        return float(value)
    if name in _INT_FIELDS:
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ConfigError(f"{name} must be a non-negative integer")
        return value
    if name in _STR_FIELDS:
        if not isinstance(value, str) or not value.startswith("/") or value.endswith("/"):
            raise ConfigError(f"{name} must look like '/name'")
        return value
    raise ConfigError(f"unknown config field: {name}")


def patch_config(config: SimulatorConfig, changes: dict[str, Any]) -> None:
    """Validate every change first, then apply them all (all-or-nothing)."""
    converted = {name: _convert(name, value) for name, value in changes.items()}
    for name, value in converted.items():
        setattr(config, name, value)


def config_to_json(config: SimulatorConfig) -> dict[str, Any]:
    """JSON-friendly view of the config (sets become sorted lists)."""
    out: dict[str, Any] = {}
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        out[f.name] = sorted(value) if isinstance(value, set) else value
    return out
