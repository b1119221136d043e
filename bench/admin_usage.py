"""``python -m bench.admin_usage [--rows N] [--engines sqlite,postgres]``: the admin API's
reads over a million recorded requests, on SQLite and on Postgres.

For each engine: a fresh database (a temporary SQLite file; a throwaway Postgres server from
Debian's binaries, or ``--postgres-url``), N requests generated over the last 30 days and
written as the usage writer writes them (request-log rows and per-day totals), then a proxy
process on it, and each query timed over HTTP. The target: ``GET /admin/usage`` under 200 ms.

Generated traffic: 100 keys, each using 4 of 40 models on 2 of 6 endpoints, every day.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import pwd
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson
from sqlalchemy import func, select

from fal_openai_proxy.store.accounts import KeyStore
from fal_openai_proxy.store.db import Database
from fal_openai_proxy.store.schema import requests, usage_daily
from fal_openai_proxy.store.usage import (
    UsageRecord,
    daily_totals,
    insert_sql,
    upsert_daily_sql,
)

from .processes import _clean_env, free_port

REPO = Path(__file__).resolve().parent.parent
RESULTS = REPO / "bench" / "results"
ADMIN_KEY = "bench-admin-key-5b0e8c1f9d"
KEYS, MODELS, ENDPOINTS = 100, 40, 6
BATCH = 20_000
TIMES = 20  # calls of each query
TARGET_MS = 200.0
QUERIES = (
    "/admin/usage?group_by=key",
    "/admin/usage?group_by=model",
    "/admin/usage?group_by=day",
    "/admin/usage?group_by=endpoint",
    "/admin/requests?limit=50",
    "/admin/requests?limit=50&key_id={key}",
    "/admin/requests?limit=50&model=model-07",
)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.admin_usage", description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--engines", default="sqlite,postgres")
    parser.add_argument("--postgres-url", help="an empty Postgres database to use instead")
    return parser.parse_args(argv)


async def generate(url: str, rows: int) -> dict[str, Any]:
    """`rows` requests over the last 30 days, written in batches; the counts written."""
    db = Database(url)
    rng = random.Random(15)
    try:
        await db.upgrade()
        keys = KeyStore(db)
        ids = [(await keys.create({"name": f"key-{n:03d}"}))[0].id for n in range(KEYS)]
        uses = {k: (rng.sample(range(MODELS), 4), rng.sample(range(ENDPOINTS), 2)) for k in ids}
        now = time.time()
        started = time.perf_counter()
        for start in range(0, rows, BATCH):
            batch = [_record(rng, now, ids, uses) for _ in range(min(BATCH, rows - start))]
            async with db.begin() as connection:
                await connection.exec_driver_sql(insert_sql(db), batch)
                await connection.exec_driver_sql(upsert_daily_sql(db), daily_totals(batch))
        seconds = time.perf_counter() - started
        async with db.connect() as connection:
            logged = (await connection.execute(select(func.count()).select_from(requests))).scalar()
            daily = (
                await connection.execute(select(func.count()).select_from(usage_daily))
            ).scalar()
        return {"requests": logged, "daily_rows": daily, "write_s": seconds, "key": ids[0]}
    finally:
        await db.close()


def _record(
    rng: random.Random, now: float, ids: list[str], uses: dict[str, tuple[list[int], list[int]]]
) -> UsageRecord:
    key = rng.choice(ids)
    models, endpoints = uses[key]
    status = 200 if rng.random() > 0.02 else 429
    tokens = rng.randint(10, 2000)
    return UsageRecord(
        created_at=now - rng.random() * 30 * 86400,
        request_id=os.urandom(8).hex(),
        key_id=key,
        endpoint=f"/v1/endpoint-{rng.choice(endpoints)}",
        model=f"model-{rng.choice(models):02d}",
        route="prompt",
        fal_app="openrouter/router",
        fal_request_id=None,
        status=status,
        error_type=None if status == 200 else "rate_limit_exceeded",
        latency_ms=rng.uniform(50, 3000),
        ttfb_ms=rng.uniform(20, 500),
        stream=rng.random() < 0.5,
        input_tokens=tokens,
        output_tokens=tokens // 3,
        images=None,
        audio_seconds_in=None,
        audio_seconds_out=None,
        video_seconds=None,
        cost=tokens * 2e-6,
        cost_source="openrouter",
        billable_units=None,
        prompt=None,
        answer=None,
    )


@contextmanager
def proxy(url: str, workdir: Path) -> Iterator[str]:
    port = free_port()
    env = _clean_env() | {"DATABASE_URL": url, "ADMIN_KEY": ADMIN_KEY, "FAL_KEY": "bench-key"}
    env |= {"REQUEST_LOG_RETENTION_DAYS": "0", "LOG_LEVEL": "warning"}
    log = (workdir / f"proxy-{port}.log").open("wb")
    args = [sys.executable, "-m", "fal_openai_proxy", "--host", "127.0.0.1", "--port", str(port)]
    child = subprocess.Popen(args, env=env, cwd=workdir, stdout=log, stderr=log)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(base + "/healthz", timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        yield base
    finally:
        child.terminate()
        child.wait(timeout=15)
        log.close()


def timed(base: str, path: str) -> dict[str, Any]:
    request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {ADMIN_KEY}"})
    with urllib.request.urlopen(request, timeout=30) as reply:  # once: connections, caches
        reply.read()
    samples = []
    for _ in range(TIMES):
        started = time.perf_counter()
        with urllib.request.urlopen(request, timeout=30) as reply:
            body = reply.read()
        samples.append(1000 * (time.perf_counter() - started))
    return {
        "median_ms": statistics.median(samples),
        "max_ms": max(samples),
        "groups": len(orjson.loads(body)["data"]),
    }


@contextmanager
def throwaway_postgres() -> Iterator[str]:
    """initdb and pg_ctl from Debian's packages, on a free port, as `postgres` under root."""
    folder = next(
        (Path(f"/usr/lib/postgresql/{v}/bin") for v in (17, 16, 15)
         if Path(f"/usr/lib/postgresql/{v}/bin/initdb").exists()),
        None,
    )  # fmt: skip
    if folder is None:
        raise SystemExit("PostgreSQL is not installed: `apt-get install postgresql` (Debian)")
    home = Path(tempfile.mkdtemp(prefix="pg-bench-"))  # not in workdir: root's 0700 folder
    user = None
    if os.geteuid() == 0:
        account = pwd.getpwnam("postgres")
        user = account.pw_uid
        os.chown(home, account.pw_uid, account.pw_gid)
    port = free_port()

    def run(*args: str) -> None:
        subprocess.run(args, check=True, capture_output=True, user=user, cwd=home)

    run(str(folder / "initdb"), "-D", str(home / "data"), "-U", "postgres", "--auth=trust")
    options = f"-p {port} -c listen_addresses=127.0.0.1 -k {home} -c fsync=off"
    run(str(folder / "pg_ctl"), "-D", str(home / "data"), "-o", options, "-l", str(home / "log"),
        "-w", "start")  # fmt: skip
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        run(str(folder / "pg_ctl"), "-D", str(home / "data"), "-m", "fast", "-w", "stop")
        shutil.rmtree(home, ignore_errors=True)


def bench_engine(url: str, rows: int, workdir: Path) -> dict[str, Any]:
    generated = asyncio.run(generate(url, rows))
    print(
        f"  {generated['requests']} requests, {generated['daily_rows']} per-day rows, "
        f"written in {generated['write_s']:.1f} s",
        file=sys.stderr,
    )
    with proxy(url, workdir) as base:
        queries = {q: timed(base, q.format(key=generated["key"])) for q in QUERIES}
    usage = [v["median_ms"] for q, v in queries.items() if q.startswith("/admin/usage")]
    return {**generated, "queries": queries, "usage_met": max(usage) < TARGET_MS}


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    results: dict[str, Any] = {
        "date": datetime.date.today().isoformat(),
        "rows": args.rows,
        "target_ms": TARGET_MS,
        "engines": {},
    }
    with tempfile.TemporaryDirectory(prefix="admin-usage-") as tmp:
        workdir = Path(tmp)
        for engine in args.engines.split(","):
            print(f"{engine}:", file=sys.stderr)
            if engine == "sqlite":
                url = f"sqlite:///{workdir}/usage.db"
                results["engines"][engine] = bench_engine(url, args.rows, workdir)
            elif args.postgres_url:
                results["engines"][engine] = bench_engine(args.postgres_url, args.rows, workdir)
            else:
                with throwaway_postgres() as url:
                    results["engines"][engine] = bench_engine(url, args.rows, workdir)
    for engine, figures in results["engines"].items():
        print(f"\n{engine}: {figures['requests']} requests, {figures['daily_rows']} per-day rows")
        for query, q in figures["queries"].items():
            print(f"  {query:<44} median {q['median_ms']:7.1f} ms  max {q['max_ms']:7.1f} ms")
        verdict = "met" if figures["usage_met"] else "MISSED"
        print(f"  GET /admin/usage under {TARGET_MS:g} ms: {verdict}")
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / f"admin-usage-{results['date']}.json"
    out.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2) + b"\n")
    print(f"\nwrote {out}")
    return 0 if all(f["usage_met"] for f in results["engines"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())
