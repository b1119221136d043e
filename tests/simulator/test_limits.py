"""The simulator's directives are bounded (it is reachable in `--simulate` mode), and
`--simulate` never hands it the real fal key."""

from __future__ import annotations

import time

from pydantic import SecretStr

from fal_openai_proxy.base.settings import Settings
from fal_openai_proxy.serve.cli import SIMULATED_KEY, simulated_settings
from fal_openai_proxy.simulator.directives import MAX_DELAY_MS, MAX_EVENTS, MAX_TEXT, build
from fal_openai_proxy.simulator.text import MAX_STREAM_BYTES, Answer, stream_events


def test_directives_are_clamped() -> None:
    d = build(
        [
            {
                "events": 10**12,
                "latency_ms": 1e300,
                "interval_ms": float("inf"),
                "queue_ms": 10**30,
                "text": "x" * (MAX_TEXT + 10),
                "status": 10**9,
                "headers": {f"h{i}": "v" for i in range(1000)},
            }
        ]
    )
    assert d.events == MAX_EVENTS
    assert d.latency_ms == d.interval_ms == d.queue_ms == MAX_DELAY_MS
    assert d.text is not None and len(d.text) == MAX_TEXT
    assert d.status is None
    assert d.headers is not None and len(d.headers) <= 50


def test_cumulative_events_stay_under_the_byte_cap() -> None:
    # 10,000 events of a 1 MiB answer would be 5 GB of cumulative output.
    text = " ".join(["w" * 100] * 10_000)
    started = time.monotonic()
    events = stream_events(Answer(text, None, None), MAX_EVENTS, None)
    # n prefixes weigh about T*(n+1)/2, plus the final event: under the cap plus 1.5 T.
    assert sum(len(e["output"]) for e in events) <= MAX_STREAM_BYTES + 2 * len(text)
    assert events[-1]["output"] == text
    assert time.monotonic() - started < 5


def test_simulate_never_passes_the_real_key_to_the_simulator() -> None:
    real = "real-fal-key-that-must-stay-home"
    settings = Settings(_env_file=None, fal_key=SecretStr(real))  # type: ignore[call-arg]
    simulated = simulated_settings(settings, "http://127.0.0.1:1")
    assert simulated.fal_keys == [SIMULATED_KEY]
    assert simulated.fal_run_url == "http://127.0.0.1:1/run"
    assert simulated.fal_api_url == "http://127.0.0.1:1/platform"  # prices from the simulator
