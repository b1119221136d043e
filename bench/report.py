"""The results as a console table, a JSON file and docs/benchmarks.md."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from .plan import CASES, MODES
from .targets import Verdict

PROFILE_HEADING = "## Profile"
PROFILE_PLACEHOLDER = (
    "_To be filled in: where the proxy spends its CPU time under load (py-spy or cProfile of "
    "the proxy process during the throughput and stream phases), and what could be done "
    "about it. This section is kept when `make bench` regenerates the page._"
)


@dataclass(frozen=True)
class Table:
    title: str
    headers: tuple[str, ...]
    rows: Sequence[tuple[str, ...]]


def num(value: Any, digits: int = 2) -> str:
    if not isinstance(value, int | float) or math.isnan(value):
        return "n/a"
    return f"{value:,.{digits}f}"


def _summary(s: dict[str, float]) -> tuple[str, str, str]:
    return num(s["p50_ms"], 3), num(s["p99_ms"], 3), num(s["max_ms"], 3)


Upstreams = dict[str, dict[str, Any]]  # name -> that upstream's figures, same shape for each


def _cell(v: Verdict) -> str:
    t = v.target
    digits = 3 if t.unit == " ms" else 2
    value = f"{num(v.value, digits)}{t.unit}"
    if t.errors_key:
        value += f", {v.errors} errors"
    return f"{value} {'met' if v.met else 'NOT MET'}"


def target_table(verdicts: list[Verdict]) -> Table:
    """One row per target, one column per upstream."""
    names = list(dict.fromkeys(v.upstream for v in verdicts))
    by_target: dict[str, dict[str, Verdict]] = {}
    for v in verdicts:
        by_target.setdefault(v.target.key, {})[v.upstream] = v
    rows = []
    for per in by_target.values():
        t = next(iter(per.values())).target
        sign = ">=" if t.higher_is_better else "<="
        gate = f"{sign} {t.gross:g}{t.unit}"
        if t.gross_tls is not None:
            gate += f" (tls: {sign} {t.gross_tls:g}{t.unit})"
        if t.gross_key:
            digits = 3 if t.unit == " ms" else 2
            values = " / ".join(num(per[n].gross_value, digits) if n in per else "" for n in names)
            gate += f" (on {t.gross_key.rsplit('.', 1)[-1]}: {values})"
        cells = tuple(_cell(per[n]) if n in per else "n/a" for n in names)
        rows.append((t.label, t.describe(), *cells, gate))
    headers = ("target", "limit", *names, "--quick fails unless")
    return Table("Targets (one worker), fal over plain HTTP and over TLS", headers, rows)


def latency_table(ups: Upstreams) -> Table:
    rows = []
    for label, name in (
        ("non-stream, whole request", "non_stream"),
        ("stream, first content", "stream_ttfc"),
    ):
        for upstream, figures in ups.items():
            f = figures["latency"][name]
            rows.append(
                (
                    f"{label}, {upstream}",
                    *_summary(f["direct"]),
                    *_summary(f["proxy"]),
                    *_summary(f["added"]),
                )
            )
    pairs = next(iter(ups.values()))["latency"]["pairs"]
    headers = ("c=1, 0 ms upstream (ms)", "direct p50", "p99", "max", "proxy p50", "p99", "max")
    return Table(
        f"Latency at concurrency 1 ({pairs} interleaved pairs each)",
        (*headers, "added p50", "p99", "max"),
        rows,
    )


def throughput_table(ups: Upstreams) -> Table:
    rows = []
    workers_seen = sorted({w for f in ups.values() for w in f["throughput"]})
    for workers in workers_seen:
        for case in CASES:
            for mode in MODES:
                for upstream, figures in ups.items():
                    f = figures["throughput"].get(workers, {}).get(case.name, {}).get(mode)
                    if f is not None:  # --quick runs fewer cases over TLS
                        rows.append(_throughput_row(f"{case.name} {mode}", upstream, workers, f))
    headers = (
        "case",
        "upstream",
        "workers",
        "direct req/s",
        "proxy req/s",
        "proxy/direct",
        "errors p/d",
        "proxy CPU ms/req",
        "proxy cores",
        "box CPU % d/p",
        "other cores d/p",
    )
    title = (
        "Throughput (closed loops; box CPU: harness + simulator + proxy over all cores; "
        "other cores: anything else running on the machine meanwhile)"
    )
    return Table(title, headers, rows)


def _throughput_row(case: str, upstream: str, workers: str, f: dict[str, Any]) -> tuple[str, ...]:
    return (
        case,
        upstream,
        workers[1:],
        num(f["direct_rps"], 0),
        num(f["proxy_rps"], 0),
        num(f["ratio"], 3),
        f"{f['errors_proxy']}/{f['errors_direct']}",
        num(f["proxy_cpu_ms_per_request"], 3),
        num(f["proxy_cpu_cores"], 2),
        _pair(f["box_cpu_pct"], 0),
        _pair(f["foreign_cpu_cores"], 1),
    )


def _pair(sides: dict[str, float], digits: int) -> str:
    return f"{num(sides['direct'], digits)}/{num(sides['proxy'], digits)}"


def chunk_table(ups: Upstreams) -> Table:
    rows = []
    for upstream, figures in ups.items():
        ic = figures["inter_chunk"]
        rows += [
            (f"{upstream}: direct (fal events)", *_summary(ic["direct_gap"])),
            (f"{upstream}: proxy (content chunks)", *_summary(ic["proxy_gap"])),
            (f"{upstream}: added", num(ic["added_p50_ms"], 3), num(ic["added_p99_ms"], 3), ""),
        ]
    ic = next(iter(ups.values()))["inter_chunk"]
    up = ic["upstream"]
    title = (
        f"Inter-chunk gaps: {ic['streams']} concurrent streams x {up['events']} events "
        f"{num(up['interval_ms'], 0)} ms apart, {ic['rounds']} round(s) per side"
    )
    return Table(title, ("gap (ms)", "p50", "p99", "max"), rows)


def memory_table(ups: Upstreams) -> Table:
    n = next(iter(ups.values()))["idle_streams"]["streams"]
    lines: list[tuple[str, Callable[[dict[str, Any], dict[str, Any]], str]]] = [
        ("idle after warm-up", lambda m, i: f"{m['baseline_kb']:,} KB"),
        (f"{n:,} idle open streams", lambda m, i: f"{i['rss_open_kb']:,} KB"),
        ("per open stream", lambda m, i: f"{num(i['per_open_stream_kb'], 2)} KB"),
        (
            "fal streams closed after clients left",
            lambda m, i: _seconds(i["upstream_closed_after_s"]),
        ),
        ("idle, after the streams closed", lambda m, i: f"{i['rss_after_first_burst_kb']:,} KB"),
        (
            f"a second burst of {n:,} streams adds",
            lambda m, i: f"{i['second_burst_growth_kb']:,} KB",
        ),
        ("after all load", lambda m, i: f"{m['after_load_kb']:,} KB"),
        (
            "after all load vs idle after warm-up",
            lambda m, i: f"{num(m['after_load_growth_pct'], 1)} %",
        ),
        (
            "after all load vs idle after the first burst",
            lambda m, i: f"{num(m['growth_after_first_burst_pct'], 1)} %",
        ),
    ]
    rows = [
        (label, *(cell(f["memory"], f["idle_streams"]) for f in ups.values()))
        for label, cell in lines
    ]
    headers = ("", *(f"RSS, {name}" for name in ups))
    return Table("Proxy memory (VmRSS, one worker)", headers, rows)


def _seconds(value: float | None) -> str:
    return "not within 15 s" if value is None else f"within {num(value, 2)} s"


def cpu_table(ups: Upstreams) -> Table:
    def c32(f: dict[str, Any], mode: str) -> Any:
        return (
            f["throughput"]["w1"].get("c32@50ms", {}).get(mode, {}).get("proxy_cpu_ms_per_request")
        )

    lines: list[tuple[str, Callable[[dict[str, Any]], str]]] = [
        (
            "per request, non-stream, c=1",
            lambda f: num(f["latency"]["non_stream"]["proxy_cpu_ms_per_request"], 3) + " ms",
        ),
        ("per request, non-stream, c=32 @ 50 ms", lambda f: num(c32(f, "non_stream"), 3) + " ms"),
        (
            "per request, stream (10 events), c=32 @ 50 ms",
            lambda f: num(c32(f, "stream"), 3) + " ms",
        ),
        (
            "per content chunk, 100 streams x 50 events",
            lambda f: num(f["inter_chunk"]["proxy_cpu_us_per_chunk"], 1) + " us",
        ),
    ]
    rows = [(label, *(cell(f) for f in ups.values())) for label, cell in lines]
    return Table("Proxy CPU time (utime + stime)", ("", *(f"CPU, {n}" for n in ups)), rows)


def accounts_table(figures: dict[str, Any]) -> Table:
    """CPU per request by accounts setting (bench/accounting.py), and the ratio to off."""
    rows = []
    for name, modes in figures["proxy_cpu_ms_per_request"].items():
        ratios = figures["ratio_to_off"].get(name, {})
        cells = [
            num(value, 3) + " ms" + (f" ({num(ratios[mode], 3)}x)" if mode in ratios else "")
            for mode, value in modes.items()
        ]
        rows.append((name, *cells))
    verdict = "met" if figures["met"] else "missed"
    title = (
        f"Accounts: proxy CPU per request, c={figures['concurrency']}, 0 ms upstream, plain "
        f"(target: default <= {figures['target_ratio']:g}x off: {verdict})"
    )
    return Table(title, ("DATABASE_URL / keys", "non-stream", "stream (8 events)"), rows)


def tables(results: dict[str, Any], verdicts: list[Verdict]) -> list[Table]:
    ups: Upstreams = results["upstreams"]
    found = [
        target_table(verdicts),
        latency_table(ups),
        throughput_table(ups),
        chunk_table(ups),
        memory_table(ups),
        cpu_table(ups),
    ]
    if "accounts" in results:
        found.append(accounts_table(results["accounts"]))
    return found


def _widths(t: Table) -> list[int]:
    cells = [t.headers, *t.rows]
    return [max(len(row[i]) for row in cells) for i in range(len(t.headers))]


def render_text(t: Table) -> str:
    widths = _widths(t)

    def line(row: tuple[str, ...]) -> str:
        first = row[0].ljust(widths[0])
        return "  ".join([first, *(c.rjust(w) for c, w in zip(row[1:], widths[1:], strict=True))])

    return "\n".join([t.title, line(t.headers), *(line(r) for r in t.rows)])


def render_markdown(t: Table) -> str:
    head = "| " + " | ".join(t.headers) + " |"
    rule = "|" + "|".join(["---", *["---:"] * (len(t.headers) - 1)]) + "|"
    body = ["| " + " | ".join(r) + " |" for r in t.rows]
    return "\n".join([f"### {t.title}", "", head, rule, *body])


def header_line(results: dict[str, Any]) -> str:
    m = results["machine"]
    dirty = " (src modified)" if m.get("src_dirty") else ""
    return (
        f"fal-openai-proxy benchmark, {results['mode']} mode, {results['date']}, "
        f"commit {m['commit']}{dirty}; {m['cores']} cores {m['cpu_model']}, Python {m['python']}"
    )


def noise_line(results: dict[str, Any]) -> str:
    cores = results.get("foreign_cpu_cores", math.nan)
    return (
        f"Other processes on the machine used {num(cores, 2)} cores on average during the run "
        "(shared-box noise; the figures are cleanest near 0)."
    )


def settings_line(results: dict[str, Any]) -> str:
    s = results["proxy_settings"]
    overrides = ", ".join(f"{k}={v}" for k, v in sorted(s["overrides"].items()))
    return (
        "The proxy ran at its default settings; the harness set only "
        + ", ".join(s["set_by_harness"])
        + (f". Overridden with --proxy-env: {overrides}." if overrides else ".")
    )


def upstreams_line(results: dict[str, Any]) -> str:
    tls = results["upstreams"].get("tls", {}).get("tls", {})
    return (
        "Upstreams: plain (the simulator over HTTP) and tls (the same simulator over HTTPS, "
        f"an {tls.get('key_type', '?')} certificate from a {tls.get('ca', '?')} CA); "
        "the direct client uses the same upstream as the proxy in each comparison."
    )


def console(results: dict[str, Any], verdicts: list[Verdict]) -> str:
    head = [header_line(results), noise_line(results), settings_line(results)]
    parts = ["\n".join([*head, upstreams_line(results)])]
    parts += [render_text(t) for t in tables(results, verdicts)]
    parts.append(_errors_text(results))
    parts.append(_log_text(results["proxy_log"]))
    return "\n\n".join(parts)


def _errors_text(results: dict[str, Any]) -> str:
    errors = results["errors"]
    if not errors["count"]:
        return "Errors: none (every answer checked against its unique question)."
    samples = "\n".join(f"  - {s}" for s in errors["samples"])
    return f"Errors: {errors['count']}\n{samples}"


def _log_text(log: dict[str, Any]) -> str:
    levels = ", ".join(f"{k}: {v}" for k, v in sorted(log["levels"].items())) or "none"
    lines = [f"Proxy log lines by level: {levels}"]
    lines += [f"  {n} x {msg}" for msg, n in log["notable"].items()]
    return "\n".join(lines)


def write_json(results: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS))
    tmp.replace(path)


def existing_profile(doc: Path) -> str | None:
    """The Profile section someone wrote, so that regenerating the page keeps it."""
    if not doc.exists():
        return None
    match = re.search(r"^## Profile\n(.*?)(?=^## |\Z)", doc.read_text(), re.S | re.M)
    return match.group(1).strip() if match else None


_HOW_TO_RUN = """\
```sh
make bench          # full run, about 12 minutes: rewrites this page and bench/results/<date>.json
make bench-quick    # CI smoke run, under 90 s: bench/results/quick-latest.json, page untouched
make bench-quick-run  # the same with FAL_NONSTREAM_MODE=run: quick-latest-run.json
.venv/bin/python -m bench.run [--quick] [--proxy-env NAME=VALUE ...]
```

The harness starts two fal simulators, one over plain HTTP and one over HTTPS (fal is only
reached over HTTPS in production), and a proxy for each, on free loopback ports, and stops
them on exit or Ctrl-C. For HTTPS it makes a throwaway CA with `trustme` (an ECDSA
certificate for 127.0.0.1, in a temporary folder), starts the simulator with `--tls-cert`
and `--tls-key`, and gives the proxy `SSL_CERT_FILE=<ca.pem>`; the harness's direct client
trusts the same CA, so both sides of each comparison pay for TLS alike.

The proxy runs at its default settings (`.venv/bin/python -m fal_openai_proxy`, stderr to a file):
the harness sets only `FAL_KEY`, `FAL_RUN_URL`, `FAL_QUEUE_URL`, `SSL_CERT_FILE` (TLS) and
`WORKERS` (the 2-worker run). So the key cap is whatever the default is (adaptive).
`--proxy-env NAME=VALUE` runs with another setting, and the results record it. The full
run measures one worker, plain and then TLS, then the throughput again with `WORKERS=2`;
`--quick` measures one worker with smaller counts, and over TLS only the throughput cases
that have targets (the 50 ms ones).

`--quick` exits 1 on any failed or wrong response, and on gross regressions only: a figure
beyond the last column of the targets table. Those limits are generous on purpose (CI is a
noisy shared 2-core box) and sit well clear of today's figures, including those that miss
their target, so that only a real regression turns CI red; they apply to both upstreams.
For the RSS target, `--quick` checks growth after the first burst of open streams (a leak)
rather than the high-water mark that the burst itself leaves. The full run exits 1 only on
failed or wrong responses. A run with failed responses keeps the proxies' and simulators'
logs in `bench/results/logs/`."""

_METHOD = """\
Every figure is taken twice, with fal over plain HTTP and over TLS, and each compares the
proxy with a **direct** client making the same fal calls against the same simulator (the
same upstream) in the same run: for non-stream, queue submit, status stream
(`/status/stream?logs=0`) and result; for stream, the run `/stream` call. Load comes from
the harness process (aiohttp, one keep-alive session, uvloop) over loopback. Each request
asks a unique question, and its answer must be exactly `Simulated answer to: <question>`,
in as many content chunks as the simulator sent events; anything else is an error.

- **Latency** (concurrency 1, 0 ms upstream): direct and proxy requests alternate, flipping
  which goes first. Non-stream: the whole request. Stream: time to the first chunk with
  non-empty `delta.content`, against the first fal event with non-empty `output`.
  *Added* = proxy quantile minus direct quantile.
- **Throughput**: closed loops of N clients for a few seconds (the first part not counted),
  alternating direct and proxy segments, the clients' starts spread over one upstream
  request time so that they do not run in lockstep; upstream 50 ms before the answer,
  streams of 10 events 5 ms apart; and 0 ms (pure overhead, 10 events back to back).
  Upstream timing is set with the simulator's `PATCH /_sim/config`.
- **Inter-chunk**: 100 concurrent streams of 50 events 20 ms apart, starts spread over
  20 ms, after one unmeasured round per side; gaps between consecutive content chunks
  (proxy) vs consecutive fal events (direct).
- **Memory**: VmRSS of the proxy from `/proc` after warm-up; with idle open streams (the
  simulator's `hang` directive: headers, then silence), opened right after the warm-up
  figure, then closed, then a second identical burst (growth again would be a leak); and
  after all the load, bursts included.
- **CPU**: utime + stime of the proxy from `/proc/<pid>/stat` over its own segments.
- **Accounts** (`bench/accounting.py`): three proxies that differ only in their accounts,
  `DATABASE_URL=none` (off), the default SQLite file (every request's usage written), and a
  virtual key on every request (`ADMIN_KEY` set), take the same closed loop (32 clients,
  0 ms upstream) in rotating turns; each proxy's CPU is counted whole, its background usage
  writer included (1.5 s after each segment, for the writer to finish). The query side,
  `GET /admin/usage` over a million recorded requests, is
  `.venv/bin/python -m bench.admin_usage`.
- *max* columns are single samples: one scheduler hiccup on either side decides them.
- The machine runs the harness, the simulator and the proxy at once: the *box CPU* column
  shows how busy it was. A ratio measured on a saturated box reflects CPU shared among the
  three processes as much as the proxy's own speed."""


def markdown_page(results: dict[str, Any], verdicts: list[Verdict], profile: str | None) -> str:
    m = results["machine"]
    dirty = " (with uncommitted changes in src/)" if m.get("src_dirty") else ""
    machine = f"{m['cores']} cores, {m['cpu_model']}, Python {m['python']}, Linux {m['kernel']}"
    parts = [
        "# Benchmarks",
        f"_Generated by `make bench` on {results['date']} at commit `{m['commit']}`{dirty}; "
        f"machine: {machine}. Raw figures: `bench/results/{results['date']}.json`. "
        f"{noise_line(results)}_",
        "## How to run",
        _HOW_TO_RUN,
        "## What is measured",
        _METHOD,
        "## Results",
        f"{settings_line(results)} {upstreams_line(results)}",
        *(render_markdown(t) for t in tables(results, verdicts)),
        "### Errors and proxy log",
        _errors_text(results).replace("\n  - ", "\n- "),
        "Proxy log lines by level: "
        + (
            ", ".join(f"{k} {v}" for k, v in sorted(results["proxy_log"]["levels"].items()))
            or "none"
        )
        + ".",
        PROFILE_HEADING,
        profile or PROFILE_PLACEHOLDER,
    ]
    return "\n\n".join(parts) + "\n"
