"""A client that goes away stops the work at fal: queue jobs are cancelled, streams closed.

The default proxy has long timeouts: whatever ends the fal work here is the client leaving.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import openai
import pytest

from ..support.asserts import wait_for
from ..support.chat import MODEL, Records, ask, of, sim, tagged
from ..support.servers import RunningProxy


def test_non_stream_client_leaving_cancels_the_queue_job(
    proxy: RunningProxy, http: httpx.Client, sim_log: Records
) -> None:
    token, text = tagged(sim({"hang": True}))
    body = {"model": MODEL, "messages": ask(text)}
    with pytest.raises(httpx.ReadTimeout):
        http.post(proxy.v1 + "/chat/completions", json=body, timeout=httpx.Timeout(5, read=0.5))
    (submit,) = of(sim_log("submit"), token)
    rid = submit["request_id"]
    cancels = wait_for(
        lambda: [r for r in sim_log("cancel") if r["request_id"] == rid], 2, "fal's PUT .../cancel"
    )
    assert cancels[0]["method"] == "PUT"
    assert cancels[0]["path"].endswith(f"/requests/{rid}/cancel")
    assert [r for r in sim_log("cancelled") if r["request_id"] == rid]  # the job was running


def test_stream_closed_after_first_content_disconnects_fal(
    proxy: RunningProxy, make_client: Callable[..., openai.OpenAI], sim_log: Records
) -> None:
    token, text = tagged(sim({"interval_ms": 500, "events": 20}))
    stream = make_client(proxy).chat.completions.create(
        model=MODEL, messages=ask(text + " " + " ".join(f"w{i}" for i in range(30))), stream=True
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            break
    stream.close()
    (opened,) = of(sim_log("stream"), token)
    rid = opened["request_id"]
    gone = wait_for(
        lambda: [r for r in sim_log("disconnect") if r["request_id"] == rid],
        1.5,
        "fal's stream to be closed",
    )
    assert gone[0]["path"].endswith("/stream")


def test_stream_abandoned_before_fal_answers_disconnects_fal(
    proxy: RunningProxy, make_client: Callable[..., openai.OpenAI], sim_log: Records
) -> None:
    token, text = tagged(sim({"latency_ms": 5000}))
    client = make_client(proxy).with_options(timeout=0.5)
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model=MODEL, messages=ask(text), stream=True)
    (opened,) = of(sim_log("stream"), token)
    rid = opened["request_id"]
    wait_for(
        lambda: [r for r in sim_log("disconnect") if r["request_id"] == rid],
        1.5,
        "fal's stream request to be abandoned",
    )


def test_non_stream_abandoned_during_queue_latency_is_cancelled(
    proxy: RunningProxy, make_client: Callable[..., openai.OpenAI], sim_log: Records
) -> None:
    token, text = tagged(sim({"latency_ms": 5000}))
    client = make_client(proxy).with_options(timeout=0.5)
    with pytest.raises(openai.APITimeoutError):
        client.chat.completions.create(model=MODEL, messages=ask(text))
    (submit,) = of(sim_log("submit"), token)
    rid = submit["request_id"]
    wait_for(
        lambda: [r for r in sim_log("cancel") if r["request_id"] == rid], 2, "fal's PUT .../cancel"
    )
