"""fal's own JavaScript client (`@fal-ai/client` from npm, under Node) through /api/fal/proxy
against the simulator: subscribe, queue, stream, storage upload and errors, with no fal key
ever reaching the client (docs/fal-proxy.md)."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from fal_openai_proxy.simulator.app import key_label
from fal_openai_proxy.simulator.server import SimulatorThread

from ..support.fal_js import SCRIPT, install_fal_js, node_binary
from ..support.servers import API_KEY, FAL_KEY, SECRETS, RunningProxy

ALLOWED_APPS = "fal-ai/flux/*,fal-ai/flux-pro/*,fal-ai/any-llm"


@pytest.fixture(scope="module")
def run(
    sim: SimulatorThread,
    proxy_factory: Callable[..., RunningProxy],
    secret_audit: list[str],
) -> dict[str, Any]:
    """One run of the Node script; its output, and what the simulator saw meanwhile."""
    node = node_binary()
    fal_js = install_fal_js()
    proxy = proxy_factory(api_key=API_KEY, fal_proxy_allowed_apps=ALLOWED_APPS)
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ.get("HOME", ""),
        "FAL_JS_DIR": str(fal_js),
        "PROXY_URL": proxy.base_url,
        "PROXY_API_KEY": API_KEY,
    }  # and no FAL_KEY: the client has no fal credentials
    start = len(sim.state.log)
    done = subprocess.run(
        [node, str(SCRIPT)], env=env, capture_output=True, text=True, timeout=120, check=False
    )
    secret_audit.extend([done.stdout, done.stderr])
    assert done.returncode == 0, done.stderr[-2000:]
    out: dict[str, Any] = json.loads(done.stdout)
    out["sim_log"] = sim.state.log[start:]
    return out


def ok(result: dict[str, Any]) -> Any:
    assert result["ok"], result.get("error")
    return result["value"]


def fal_records(run: dict[str, Any], kind: str, app: str | None = None) -> list[dict[str, Any]]:
    return [
        r for r in run["sim_log"] if r["kind"] == kind and (app is None or r["app"] == app)
    ]  # fmt: skip


def test_subscribe_runs_an_image_app_through_the_queue(run: dict[str, Any]) -> None:
    result = ok(run["subscribe"])
    assert result["requestId"]
    images = result["data"]["images"]
    assert len(images) == 2
    for image in images:
        assert httpx.get(image["url"], timeout=10).content.startswith(b"\x89PNG")
    assert run["subscribeUpdates"][-1] == "COMPLETED"
    assert set(run["subscribeUpdates"]) <= {"IN_QUEUE", "IN_PROGRESS", "COMPLETED"}
    (submit,) = fal_records(run, "submit", "fal-ai/flux/schnell")
    assert submit["key"] == FAL_KEY  # the pool's key, added by the proxy
    assert submit["body"]["num_images"] == 2  # the body unchanged
    assert submit["body"]["prompt"].startswith("a red fox")
    polls = [r for r in fal_records(run, "status") if result["requestId"] in r["path"]]
    assert polls and all(r["key"] == FAL_KEY for r in polls)


def test_subscribe_follows_the_status_stream(run: dict[str, Any]) -> None:
    result = ok(run["subscribeStreaming"])
    assert result["data"]["images"]
    assert run["subscribeStreamingUpdates"][-1] == "COMPLETED"
    streams = [r for r in fal_records(run, "status_stream") if result["requestId"] in r["path"]]
    assert len(streams) == 1


def test_queue_submit_status_result_and_cancel(run: dict[str, Any]) -> None:
    queue = ok(run["queue"])
    request_id = queue["submitted"]["request_id"]
    assert queue["statuses"][-1] == "COMPLETED"
    assert queue["result"]["requestId"] == request_id
    assert queue["result"]["data"]["images"]
    submit = next(r for r in fal_records(run, "submit") if r["request_id"] == request_id)
    assert submit["headers"]["x-fal-queue-priority"] == "low"  # x-fal-* headers pass through
    assert "x-fal-target-url" in submit["headers"]
    status = next(r for r in fal_records(run, "status") if request_id in r["path"])
    assert status["key"] == FAL_KEY  # the key that submitted it
    cancelled = ok(run["cancel"])
    (cancel,) = [r for r in fal_records(run, "cancel") if cancelled in r["path"]]
    assert cancel["method"] == "PUT" and cancel["key"] == FAL_KEY


def test_stream_relays_server_sent_events(run: dict[str, Any]) -> None:
    stream = ok(run["stream"])
    events = stream["events"]
    assert len(events) > 1
    assert events[0]["partial"] is True
    assert stream["done"] == events[-1] and events[-1]["output"]
    assert stream["requestId"]
    (record,) = fal_records(run, "stream", "fal-ai/any-llm")
    assert record["key"] == FAL_KEY
    assert "text/event-stream" in record["headers"]["accept"]  # as the client sent it
    answer = next(
        r for r in run["received"] if r["headers"].get("x-fal-request-id") == stream["requestId"]
    )
    assert answer["headers"]["content-type"].startswith("text/event-stream")


def test_storage_upload_goes_straight_to_the_signed_url(
    run: dict[str, Any], sim: SimulatorThread
) -> None:
    upload = ok(run["upload"])
    assert upload["sameBytes"]
    initiates = fal_records(run, "upload_initiate")
    assert initiates and all(r["key"] == FAL_KEY for r in initiates)
    puts = fal_records(run, "upload_put")
    assert len(puts) == 2 and not any(r["body"]["authorization"] for r in puts)
    # Node sent the PUT to the simulator itself, with no key of any kind.
    put = next(s for s in run["sent"] if s["method"] == "PUT" and "/_sim/uploads/" in s["url"])
    assert put["url"].startswith(sim.base_url)
    assert "authorization" not in put["headers"]
    edit = ok(run["edit"])  # a Blob in the input: uploaded by the client, then submitted
    assert edit["data"]["images"]
    (submit,) = fal_records(run, "submit", "fal-ai/flux-pro/kontext")
    assert "/_sim/files/" in submit["body"]["image_url"]


def test_errors_reach_the_client_as_fal_errors(run: dict[str, Any]) -> None:
    invalid = run["invalidInput"]["error"]
    assert invalid["isValidationError"] and invalid["status"] == 422  # fal's answer, unchanged
    assert any(e["loc"][-1] == "image_size" for e in invalid["fieldErrors"])
    refused = run["notAllowed"]["error"]
    assert refused["isApiError"] and refused["status"] == 403
    assert "FAL_PROXY_ALLOWED_APPS" in refused["message"]  # fal-js reads `message`
    assert refused["body"]["detail"] == refused["message"]
    assert not fal_records(run, "submit", "fal-ai/whisper")  # nothing was sent


def test_no_fal_key_reaches_the_client(run: dict[str, Any], sim: SimulatorThread) -> None:
    assert run["received"], "nothing recorded"
    for answer in run["received"]:
        text = json.dumps(answer)
        assert not [s for s in SECRETS if s in text], answer["url"]
        assert "Key " not in json.dumps(answer["headers"])
    to_proxy = [s for s in run["sent"] if "/api/fal/proxy" in s["url"]]
    assert len(to_proxy) > 10
    for request in to_proxy:
        assert request["headers"]["authorization"] == "Bearer <PROXY_API_KEY>"
        assert request["headers"]["x-fal-target-url"].startswith("https://")
    # Every other request went to the simulator's files, never to fal's hosts directly.
    others = [s for s in run["sent"] if s not in to_proxy]
    assert others and all(s["url"].startswith(sim.base_url) for s in others)
    assert key_label(FAL_KEY) not in json.dumps(run["received"])
