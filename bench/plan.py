"""How much load each mode sends, per upstream (plain and TLS): full (about 12 minutes)
and quick (CI, under 90 s)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Upstream:
    """The simulator's timing: latency before the answer, then events this far apart."""

    latency_ms: float
    interval_ms: float
    events: int

    def as_dict(self) -> dict[str, float]:
        return {
            "latency_ms": self.latency_ms,
            "interval_ms": self.interval_ms,
            "events": self.events,
        }


@dataclass(frozen=True)
class Case:
    name: str
    concurrency: int
    upstream: Upstream


FAST = Upstream(latency_ms=0, interval_ms=0, events=8)
SLOW = Upstream(latency_ms=50, interval_ms=5, events=10)
ZERO = Upstream(latency_ms=0, interval_ms=0, events=10)
CHUNKY = Upstream(latency_ms=0, interval_ms=20, events=50)

CASES = (
    Case("c32@50ms", 32, SLOW),
    Case("c128@50ms", 128, SLOW),
    Case("c32@0ms", 32, ZERO),
)
MODES = ("non_stream", "stream")


@dataclass(frozen=True)
class Plan:
    quick: bool
    warmup_pairs: int
    warmup_loop_s: float
    latency_pairs: int
    loop_s: float  # one closed-loop segment
    loop_warmup_s: float  # its first part, not counted
    rounds: int  # direct/proxy segments per case, alternating which goes first
    chunk_streams: int
    chunk_rounds: int
    idle_streams: int
    idle_burst: int
    settle_s: float
    workers: tuple[int, ...]
    # The throughput cases run against the TLS upstream (None: all of them).
    tls_cases: tuple[str, ...] | None = None

    def runs_case(self, case: str, upstream: str) -> bool:
        return upstream != "tls" or self.tls_cases is None or case in self.tls_cases

    def as_dict(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}


FULL = Plan(
    quick=False,
    warmup_pairs=100,
    warmup_loop_s=1.5,
    latency_pairs=2000,
    loop_s=4.0,
    loop_warmup_s=0.5,
    rounds=3,
    chunk_streams=100,
    chunk_rounds=3,
    idle_streams=2000,
    idle_burst=100,
    settle_s=2.0,
    workers=(1, 2),
)

QUICK = Plan(
    quick=True,
    warmup_pairs=20,
    warmup_loop_s=0.5,
    latency_pairs=300,
    loop_s=1.5,
    loop_warmup_s=0.3,
    rounds=1,
    chunk_streams=100,
    chunk_rounds=3,  # one stall that hits all 100 streams must stay under 1 % of the gaps
    idle_streams=1000,
    idle_burst=100,
    settle_s=1.0,
    workers=(1,),
    tls_cases=("c32@50ms", "c128@50ms"),  # the ones with targets: --quick stays under 90 s
)
