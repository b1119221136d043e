"""The performance targets (one worker), and what counts as a gross regression in CI; both
hold for each upstream: fal over plain HTTP and over HTTPS."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

# Each has the same figures under ``results["upstreams"][name]``.
UPSTREAMS = ("plain", "tls")


@dataclass(frozen=True)
class Target:
    key: str  # dotted path of the figure in one upstream's results
    label: str
    limit: float
    unit: str
    # --quick fails only beyond this: CI runs on a noisy shared 2-core box, and a target the
    # proxy misses today must not turn every CI run red (see docs/benchmarks.md).
    gross: float
    higher_is_better: bool = False
    errors_key: str | None = None  # a figure that must also be 0 (the error count)
    gross_key: str | None = None  # the figure --quick checks, if not ``key``
    # The gross limit over TLS, where today's figure already misses the target by more.
    gross_tls: float | None = None

    def gross_for(self, upstream: str) -> float:
        return self.gross_tls if upstream == "tls" and self.gross_tls is not None else self.gross

    def met(self, value: float, errors: int) -> bool:
        if math.isnan(value) or errors:
            return False
        return value >= self.limit if self.higher_is_better else value <= self.limit

    def grossly_missed(self, value: float, upstream: str) -> bool:
        if math.isnan(value):
            return True
        gross = self.gross_for(upstream)
        return value < gross if self.higher_is_better else value > gross

    def describe(self) -> str:
        sign = ">=" if self.higher_is_better else "<="
        return f"{sign} {self.limit:g}{self.unit}"


def _throughput(case: str, mode: str, gross: float, limit: float = 0.9) -> Target:
    key = f"throughput.w1.{case}.{mode}"
    return Target(
        key=f"{key}.ratio",
        label=f"throughput {case} {mode} (proxy/direct)",
        limit=limit,
        unit="x",
        gross=gross,
        higher_is_better=True,
        errors_key=f"{key}.errors",
    )


_NS = "latency.non_stream.added"
TARGETS: tuple[Target, ...] = (
    Target(f"{_NS}.p50_ms", "added latency c=1 non-stream p50", 0.5, " ms", gross=2),
    Target(f"{_NS}.p99_ms", "added latency c=1 non-stream p99", 2, " ms", gross=8),
    Target(
        "latency.stream_ttfc.added.p99_ms", "added first content c=1 stream p99", 2, " ms", gross=8
    ),
    _throughput("c32@50ms", "non_stream", gross=0.45),
    # Issue 14 (section 5) raised c=128 to 0.95x and set 0.2 ms of proxy CPU per request.
    _throughput("c128@50ms", "non_stream", gross=0.3, limit=0.95),
    _throughput("c32@50ms", "stream", gross=0.45),
    _throughput("c128@50ms", "stream", gross=0.3, limit=0.95),
    *(
        Target(
            f"throughput.w1.c128@50ms.{mode}.proxy_cpu_ms_per_request",
            f"proxy CPU per request c128@50ms {mode}",
            0.2,
            " ms",
            gross=3,
        )
        for mode in ("non_stream", "stream")
    ),
    # Since FAL_KEY_CONCURRENCY defaults to `auto` the proxy carries all 100 streams at once
    # (10 before, behind the old fixed cap): p99 measured 1.5-3.9 ms on the 2-core box (2026-11).
    Target("inter_chunk.added_p99_ms", "added inter-chunk p99, 100 streams", 1, " ms", gross=10),
    # Over TLS each open fal connection also holds its TLS state: about 50 KB in all (2026-11).
    Target(
        "memory.per_open_stream_kb", "memory per open stream", 16, " KB", gross=40, gross_tls=100
    ),
    Target(
        "memory.after_load_growth_abs_pct",
        "RSS after load vs baseline",
        10,
        " %",
        gross=20,
        gross_key="memory.growth_after_first_burst_pct",
    ),
)


def lookup(results: dict[str, Any], key: str) -> Any:
    node: Any = results
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node


@dataclass(frozen=True)
class Verdict:
    upstream: str
    target: Target
    value: float
    errors: int
    met: bool
    gross_value: float
    gross: bool

    def as_dict(self) -> dict[str, Any]:
        t = self.target
        return {
            "upstream": self.upstream,
            "figure": f"upstreams.{self.upstream}.{t.key}",
            "label": t.label,
            "target": t.describe(),
            "value": self.value,
            "errors": self.errors,
            "met": self.met,
            "quick_gate_figure": f"upstreams.{self.upstream}.{t.gross_key or t.key}",
            "quick_gate_value": self.gross_value,
            "quick_gate_limit": t.gross_for(self.upstream),
            "grossly_missed": self.gross,
        }


def _figure(results: dict[str, Any], key: str) -> float:
    raw = lookup(results, key)
    return float(raw) if isinstance(raw, int | float) else math.nan


def evaluate(results: dict[str, Any]) -> list[Verdict]:
    """Every target for every upstream, in that order (a missing figure misses its target)."""
    verdicts = []
    for upstream in UPSTREAMS:
        figures = lookup(results, f"upstreams.{upstream}") or {}
        for t in TARGETS:
            value = _figure(figures, t.key)
            gross_value = _figure(figures, t.gross_key) if t.gross_key else value
            errors = int(lookup(figures, t.errors_key) or 0) if t.errors_key else 0
            gross = t.grossly_missed(gross_value, upstream) or errors > 0
            met = t.met(value, errors)
            verdicts.append(Verdict(upstream, t, value, errors, met, gross_value, gross))
    return verdicts
