"""`fal-openai-proxy doctor` as an operator runs it: the command in a child process, against
the simulator as a real server (its billing API refuses a key without the billing scope)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fal_openai_proxy.base.settings import Settings
from fal_openai_proxy.simulator import SimulatorConfig
from fal_openai_proxy.simulator.platform import PRICES
from fal_openai_proxy.simulator.server import SimulatorThread, start_simulator_thread
from fal_openai_proxy.store.db import head_revision

from ..support.processes import free_port
from ..support.redis import RedisServer
from ..support.servers import API_KEY, FAL_KEY, FAL_KEY_2, REVOKED_FAL_KEY


@pytest.fixture(scope="module")
def fal() -> Iterator[SimulatorThread]:
    # FAL_KEY may read the balance; FAL_KEY_2 is an inference-only key.
    config = SimulatorConfig(keys={FAL_KEY, FAL_KEY_2}, billing_keys={FAL_KEY}, balance=24.5)
    thread = start_simulator_thread(config)
    yield thread
    thread.stop()


def doctor(
    fal: SimulatorThread,
    args: list[str],
    tmp_path: Path,
    secret_audit: list[str],
    **env: str,
) -> subprocess.CompletedProcess[str]:
    names = {name.upper() for name in Settings.model_fields}
    full_env = {k: v for k, v in os.environ.items() if k.upper() not in names}
    full_env.update(
        FAL_KEY=f"{FAL_KEY},{FAL_KEY_2}",
        FAL_RUN_URL=fal.run_url,
        FAL_QUEUE_URL=fal.queue_url,
        FAL_REST_URL=fal.base_url + "/rest",
        FAL_API_URL=fal.base_url + "/platform",
        API_KEY=API_KEY,
    )
    full_env.update(env)
    result = subprocess.run(
        [sys.executable, "-m", "fal_openai_proxy", "doctor", *args],
        env={k: v for k, v in full_env.items() if v},
        cwd=tmp_path,  # no .env of the developer's
        capture_output=True,
        text=True,
        timeout=120,
    )
    secret_audit.extend([result.stdout, result.stderr])
    return result


def checks(result: subprocess.CompletedProcess[str]) -> dict[str, dict[str, Any]]:
    return {c["name"]: c for c in json.loads(result.stdout)["checks"]}


def test_a_healthy_deployment_passes_every_family(
    fal: SimulatorThread, tmp_path: Path, secret_audit: list[str]
) -> None:
    result = doctor(fal, ["--all", "--json"], tmp_path, secret_audit)
    assert result.returncode == 0, result.stdout + result.stderr
    found = checks(result)
    assert json.loads(result.stdout)["ok"] is True
    assert found["configuration"]["status"] == "ok"
    assert found["fal key #1"] == found["fal key #1"] | {
        "status": "ok",
        "detail": "accepted; balance 24.50 USD",
    }
    second = found["fal key #2"]
    assert second["status"] == "ok"
    assert "scope does not allow reading it" in second["detail"]
    chat = found["chat"]
    assert (chat["status"], chat["cost_source"]) == ("ok", "openrouter")
    assert chat["cost"] > 0 and chat["latency_ms"] > 0
    # One image of fal-ai/flux/schnell, one (rounded-up) megapixel: price x units.
    images = found["images"]
    assert (images["status"], images["cost_source"]) == ("ok", "billable_units")
    assert images["cost"] == pytest.approx(PRICES["fal-ai/flux/schnell"][0])
    audio = found["audio"]
    assert audio["cost"] == pytest.approx(PRICES["fal-ai/kokoro/american-english"][0])
    # One short video through /v1/videos, created and followed to completion.
    assert (found["video"]["status"], found["video"]["detail"]) == ("ok", "1 video")
    assert found["redis"]["status"] == "skip"
    database = found["database"]  # the default: a SQLite file in the working directory
    assert database["status"] == "ok" and f"schema {head_revision()}" in database["detail"]
    assert [r["kind"] for r in fal.state.log if r["kind"] == "billing"]  # really asked


def test_the_table_shows_the_chat_call_by_default(
    fal: SimulatorThread, tmp_path: Path, secret_audit: list[str]
) -> None:
    result = doctor(fal, [], tmp_path, secret_audit)
    assert result.returncode == 0, result.stdout + result.stderr
    rows = {line.split()[0] for line in result.stdout.splitlines() if line.strip()}
    assert {"CHECK", "configuration", "chat", "redis", "database"} <= rows
    assert "images" not in rows
    assert "all checks passed" in result.stdout
    assert "(openrouter)" in result.stdout  # the chat call's cost and its source


def test_a_refused_key_fails_the_run(
    fal: SimulatorThread, tmp_path: Path, secret_audit: list[str]
) -> None:
    result = doctor(fal, ["--json"], tmp_path, secret_audit, FAL_KEY=f"{FAL_KEY},{REVOKED_FAL_KEY}")
    assert result.returncode == 1
    found = checks(result)
    assert found["fal key #2"]["status"] == "fail"
    assert found["fal key #2"]["detail"] == "refused by fal (HTTP 401)"
    assert found["fal key #1"]["status"] == "ok"


def test_a_failing_call_fails_the_run(
    fal: SimulatorThread, tmp_path: Path, secret_audit: list[str]
) -> None:
    result = doctor(fal, ["--images", "--json"], tmp_path, secret_audit,
                    FAL_IMAGE_APP="fal-ai/not-served")  # fmt: skip
    assert result.returncode == 1
    images = checks(result)["images"]
    assert images["status"] == "fail"
    assert images["detail"].startswith("HTTP 400: fal rejected the request")


def test_redis_is_pinged_and_a_dead_one_fails(
    fal: SimulatorThread, tmp_path: Path, secret_audit: list[str]
) -> None:
    redis = RedisServer()
    redis.start()
    try:
        result = doctor(fal, ["--json"], tmp_path, secret_audit, REDIS_URL=redis.url)
    finally:
        redis.close()
    assert result.returncode == 0, result.stdout
    assert checks(result)["redis"]["status"] == "ok"
    dead = f"redis://127.0.0.1:{free_port()}"
    result = doctor(fal, ["--json"], tmp_path, secret_audit, REDIS_URL=dead)
    assert result.returncode == 1
    found = checks(result)
    assert found["redis"]["status"] == "fail"
    assert found["configuration"]["status"] == "fail"  # check-config's own Redis check


def test_pass_through_has_no_key_to_check_or_call_with(
    fal: SimulatorThread, tmp_path: Path, secret_audit: list[str]
) -> None:
    result = doctor(fal, ["--json"], tmp_path, secret_audit, FAL_KEY="", API_KEY="")
    assert result.returncode == 0, result.stdout
    found = checks(result)
    assert found["fal keys"]["status"] == "skip"
    assert found["chat"]["status"] == "skip"


def test_a_malformed_setting_is_reported_and_fails(
    fal: SimulatorThread, tmp_path: Path, secret_audit: list[str]
) -> None:
    result = doctor(fal, [], tmp_path, secret_audit, PORT="not-a-port")
    assert result.returncode == 1
    assert "PORT" in result.stdout


def test_an_unreachable_database_fails_without_its_password(
    fal: SimulatorThread, tmp_path: Path, secret_audit: list[str]
) -> None:
    url = f"postgresql://proxy:pg-doctor-secret-41@127.0.0.1:{free_port()}/accounts"
    result = doctor(fal, ["--json"], tmp_path, secret_audit, DATABASE_URL=url)
    assert result.returncode == 1
    database = checks(result)["database"]
    assert database["status"] == "fail" and "unreachable" in database["detail"]
    assert "pg-doctor-secret-41" not in result.stdout + result.stderr
