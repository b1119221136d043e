"""Small statistics helpers (the standard library's quantiles need at least two points)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


def quantile(values: Sequence[float], q: float) -> float:
    """Linear-interpolated quantile of ``values`` (0 <= q <= 1); NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


@dataclass(frozen=True)
class Summary:
    """p50 / p99 / max of a sample, in milliseconds."""

    n: int
    p50: float
    p99: float
    max: float

    @classmethod
    def of_seconds(cls, values: Sequence[float]) -> Summary:
        ms = [v * 1000 for v in values]
        return cls(len(ms), quantile(ms, 0.5), quantile(ms, 0.99), max(ms, default=float("nan")))

    def minus(self, other: Summary) -> Summary:
        """The added figures: this sample's quantiles minus the other's."""
        return Summary(
            min(self.n, other.n), self.p50 - other.p50, self.p99 - other.p99, self.max - other.max
        )

    def as_dict(self) -> dict[str, float]:
        return {"n": self.n, "p50_ms": self.p50, "p99_ms": self.p99, "max_ms": self.max}
