"""fal's protocol as fal answers it (the simulator models each detail) and as fal's own
clients speak it: 2xx statuses, failed queue requests, poll retries, ingress errors, SSE
framing, queue URLs, and FAL_NONSTREAM_MODE=run. Driven end to end with the openai SDK."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import httpx
import openai
import pytest

from fal_openai_proxy.simulator.server import SimulatorThread

from ..support.asserts import wait_for
from ..support.chat import MODEL, Records, ask, of, sim, tagged
from ..support.servers import RunningProxy


@pytest.fixture(scope="module")
def proxy(proxy_factory: Callable[..., RunningProxy]) -> RunningProxy:
    return proxy_factory(retry_budget=2, request_timeout=20)


@pytest.fixture(scope="module")
def run_proxy(proxy_factory: Callable[..., RunningProxy]) -> RunningProxy:
    return proxy_factory(fal_nonstream_mode="run", retry_budget=2, request_timeout=20)


@pytest.fixture
def client(proxy: RunningProxy, make_client: Callable[..., openai.OpenAI]) -> openai.OpenAI:
    return make_client(proxy)


def job_records(sim_log: Records, token: str, kind: str) -> list[dict[str, Any]]:
    (submit,) = of(sim_log("submit"), token)
    return [r for r in sim_log(kind) if r["request_id"] == submit["request_id"]]


def answer(client: openai.OpenAI, text: str) -> str:
    completion = client.chat.completions.create(model=MODEL, messages=ask(text))
    return completion.choices[0].message.content or ""


# -- 1. any 2xx is success: the status endpoint answers 202 until COMPLETED ------------------


def test_polling_through_202_statuses(client: openai.OpenAI, sim_log: Records) -> None:
    token, text = tagged(sim({"status_stream": False, "queue_ms": 150, "latency_ms": 150}))
    assert answer(client, text).startswith(f"Simulated answer to: {token}")
    assert len(job_records(sim_log, token, "status")) >= 2  # it polled through the 202s
    assert not [e for e in sim_log("cancelled")]


# -- 2. a failed queue request reports its real error ------------------------------------------


@pytest.mark.parametrize("status_stream", [True, False], ids=["status-stream", "polling"])
def test_a_prompt_over_fals_limit_is_a_400_with_fals_message(
    client: openai.OpenAI, sim_log: Records, status_stream: bool
) -> None:
    token, text = tagged(sim({"max_prompt_chars": 20, "status_stream": status_stream}))
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=ask(text))
    assert caught.value.status_code == 400
    assert "prompt: String should have at most 20 characters" in caught.value.message
    assert len(job_records(sim_log, token, "result")) == 1


@pytest.mark.parametrize(
    ("error_type", "status", "error"),
    [
        ("runner_disconnected", 503, openai.InternalServerError),
        ("request_timeout", 504, openai.InternalServerError),
        ("runner_server_error", 502, openai.InternalServerError),
    ],
)
def test_a_failed_runner_is_reported_by_its_result(
    client: openai.OpenAI,
    sim_log: Records,
    error_type: str,
    status: int,
    error: type[openai.APIStatusError],
) -> None:
    token, text = tagged(sim({"completed_error": "Runner went away", "error_type": error_type}))
    with pytest.raises(error) as caught:
        client.chat.completions.create(model=MODEL, messages=ask(text))
    assert caught.value.status_code == status
    assert "Runner went away" in caught.value.message
    assert len(job_records(sim_log, token, "result")) == 1  # the error is not retried


@pytest.mark.parametrize("status_stream", [True, False], ids=["status-stream", "polling"])
def test_a_cancelled_status_ends_the_wait(
    client: openai.OpenAI, sim_log: Records, status_stream: bool
) -> None:
    _, text = tagged(sim({"final_status": "CANCELLED", "status_stream": status_stream}))
    with pytest.raises(openai.InternalServerError) as caught:
        client.chat.completions.create(model=MODEL, messages=ask(text))
    assert caught.value.status_code == 502
    assert "CANCELLED" in caught.value.message


# -- 3. polls are retried like fal's clients retry them ----------------------------------------


@pytest.mark.parametrize(
    ("op", "status", "times"),
    [
        ("status", 503, 3),
        ("status", 429, 1),
        ("status", 0, 2),  # a dropped connection
        ("result", 502, 2),
        ("result", 0, 1),
    ],
)
def test_failed_polls_are_retried(
    client: openai.OpenAI, sim_log: Records, op: str, status: int, times: int
) -> None:
    poll_fail = {"op": op, "status": status, "times": times}
    token, text = tagged(sim({"poll_fail": poll_fail, "latency_ms": 50}))
    assert answer(client, text).startswith(f"Simulated answer to: {token}")
    assert len(job_records(sim_log, token, op)) >= times + 1


def test_polls_are_retried_only_a_few_times(client: openai.OpenAI, sim_log: Records) -> None:
    token, text = tagged(sim({"poll_fail": {"op": "result", "status": 503, "times": 50}}))
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model=MODEL, messages=ask(text))
    assert len(job_records(sim_log, token, "result")) == 4  # fal-js: 1 + 3 retries


def leave_early(running: RunningProxy, text: str) -> None:
    """A client that gives up before the answer."""
    body = {"model": MODEL, "messages": ask(text)}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{running.v1}/chat/completions", json=body, timeout=0.5)


def test_a_failed_cancel_is_retried(proxy: RunningProxy, sim_log: Records) -> None:
    token, text = tagged(sim({"hang": True, "poll_fail": {"op": "cancel", "times": 1}}))
    leave_early(proxy, text)
    wait_for(lambda: len(of(sim_log("submit"), token)) == 1)
    wait_for(lambda: len(job_records(sim_log, token, "cancel")) >= 2)
    (submit,) = of(sim_log("submit"), token)
    assert len(job_records(sim_log, token, "cancel")) == 2
    assert any(e["request_id"] == submit["request_id"] for e in sim_log("cancelled"))


# -- 4. retry only what fal did not start ------------------------------------------------------


@pytest.mark.parametrize("stream", [False, True], ids=["submit", "stream"])
def test_a_5xx_without_request_id_but_not_nginx_is_not_retried(
    client: openai.OpenAI, sim_log: Records, stream: bool
) -> None:
    tag = uuid.uuid4().hex
    directive = {"fail_times": 1, "status": 502, "ingress": True, "body": "Bad gateway", "tag": tag}
    token, text = tagged(sim(directive))
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model=MODEL, messages=ask(text), stream=stream)
    assert len(of(sim_log("stream" if stream else "submit"), token)) == 1


# -- 5. robust SSE -----------------------------------------------------------------------------


def test_events_without_blank_lines(client: openai.OpenAI) -> None:
    token, text = tagged(sim({"no_blank_lines": True}))
    chunks = list(client.chat.completions.create(model=MODEL, messages=ask(text), stream=True))
    content = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert content.startswith(f"Simulated answer to: {token}")
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 1


def test_a_stream_that_ends_while_partial_is_an_in_band_error(client: openai.OpenAI) -> None:
    _, text = tagged(sim({"end_at": 3}))
    stream = client.chat.completions.create(model=MODEL, messages=ask(text), stream=True)
    with pytest.raises(openai.APIError) as caught:
        for _ in stream:
            pass
    assert "before the answer was complete" in caught.value.message


# -- 6. queue URLs -----------------------------------------------------------------------------


@pytest.mark.parametrize("named", ["https://queue.fal.run", "http://localhost:{port}/queue"])
def test_queue_urls_are_moved_onto_fal_queue_url(
    client: openai.OpenAI, request: pytest.FixtureRequest, sim_log: Records, named: str
) -> None:
    simulator: SimulatorThread = request.getfixturevalue("sim")
    base = named.format(port=simulator.base_url.rsplit(":", 1)[1])
    token, text = tagged(sim({"queue_url_base": base, "status_stream": False}))
    assert answer(client, text).startswith(f"Simulated answer to: {token}")
    host = simulator.base_url.removeprefix("http://")
    for kind in ("status", "result"):
        records = job_records(sim_log, token, kind)
        assert records and all(r["headers"]["host"] == host for r in records)


@pytest.mark.parametrize("base", ["https://queue.fal.run/a path", "http://[::1"])
def test_an_unusable_queue_url_is_fals_failure_not_the_clients(
    client: openai.OpenAI, base: str
) -> None:
    """A URL fal names that cannot be called (a space, a broken host) was a 400 blaming the
    client's request; it is fal's answer that is broken: 502."""
    _, text = tagged(sim({"queue_url_base": base, "status_stream": False}))
    with pytest.raises(openai.APIStatusError) as caught:
        answer(client, text)
    assert caught.value.status_code == 502
    assert caught.value.code == "upstream_bad_url"


# -- 7. FAL_NONSTREAM_MODE=run -----------------------------------------------------------------


def test_run_mode_makes_one_direct_call(
    run_proxy: RunningProxy, make_client: Callable[..., openai.OpenAI], sim_log: Records
) -> None:
    client = make_client(run_proxy)
    token, text = tagged("hello")
    assert answer(client, text).startswith(f"Simulated answer to: {token}")
    assert len(of(sim_log("run"), token)) == 1
    assert not of(sim_log("submit"), token)


def test_run_mode_reports_fals_422(
    run_proxy: RunningProxy, make_client: Callable[..., openai.OpenAI]
) -> None:
    client = make_client(run_proxy)
    _, text = tagged(sim({"max_prompt_chars": 20}))
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=MODEL, messages=ask(text))
    assert "at most 20 characters" in caught.value.message


def test_run_mode_retries_fals_concurrency_429(
    run_proxy: RunningProxy, make_client: Callable[..., openai.OpenAI], sim_log: Records
) -> None:
    client = make_client(run_proxy)
    directive = {"fail_times": 1, "status": 429, "tag": uuid.uuid4().hex}
    token, text = tagged(sim(directive))
    assert answer(client, text).startswith(f"Simulated answer to: {token}")
    assert len(of(sim_log("run"), token)) == 2


def test_run_mode_closes_the_connection_when_the_client_leaves(
    run_proxy: RunningProxy, sim_log: Records
) -> None:
    token, text = tagged(sim({"hang": True}))
    leave_early(run_proxy, text)
    wait_for(lambda: len(of(sim_log("run"), token)) == 1)
    (run,) = of(sim_log("run"), token)

    def gone() -> bool:
        return any(e.get("request_id") == run["request_id"] for e in sim_log("disconnect"))

    wait_for(gone)
    assert gone()
