"""Which fal failures are retried (only while fal has certainly not started the work),
and how long the proxy waits between attempts."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

import openai
import pytest

from ..support.chat import MODEL, Records, ask, of, sim, tagged
from ..support.servers import RunningProxy


@pytest.fixture(scope="module")
def retrying(proxy_factory: Callable[..., RunningProxy]) -> RunningProxy:
    return proxy_factory(retry_budget=3, key_rate_limit_cooldown=0.2)


@pytest.fixture
def client(retrying: RunningProxy, make_client: Callable[..., openai.OpenAI]) -> openai.OpenAI:
    return make_client(retrying)


def failing_once(status: int, **extra: Any) -> tuple[str, str]:
    return tagged(sim({"fail_times": 1, "status": status, "tag": uuid.uuid4().hex, **extra}))


@pytest.mark.parametrize(
    ("status", "extra"),
    [
        (408, {}),
        (409, {}),
        (429, {}),
        (502, {"ingress": True}),
        (503, {"ingress": True}),
        (504, {"ingress": True}),
    ],
    ids=["408", "409", "429", "ingress-502", "ingress-503", "ingress-504"],
)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_retried_failures_succeed_on_the_second_attempt(
    client: openai.OpenAI, sim_log: Records, status: int, extra: dict[str, Any], stream: bool
) -> None:
    token, text = failing_once(status, **extra)
    completion = client.chat.completions.create(model=MODEL, messages=ask(text), stream=stream)
    if stream:
        answer = "".join(c.choices[0].delta.content or "" for c in completion)  # type: ignore[union-attr]
    else:
        answer = completion.choices[0].message.content or ""  # type: ignore[union-attr]
    assert answer.startswith(f"Simulated answer to: {token}")
    assert len(of(sim_log("stream" if stream else "submit"), token)) == 2


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (502, openai.InternalServerError),
        (503, openai.InternalServerError),
        (500, openai.InternalServerError),
        (422, openai.BadRequestError),
    ],
)
@pytest.mark.parametrize("stream", [False, True], ids=["json", "stream"])
def test_failures_from_fal_itself_are_not_retried(
    client: openai.OpenAI,
    sim_log: Records,
    status: int,
    error: type[openai.APIStatusError],
    stream: bool,
) -> None:
    """With an x-fal-request-id, fal may have started the work: one attempt only."""
    token, text = failing_once(status)
    with pytest.raises(error):
        client.chat.completions.create(model=MODEL, messages=ask(text), stream=stream)
    assert len(of(sim_log("stream" if stream else "submit"), token)) == 1


def test_retry_after_is_honoured(client: openai.OpenAI, sim_log: Records) -> None:
    token, text = failing_once(429, headers={"Retry-After": "1"})
    client.chat.completions.create(model=MODEL, messages=ask(text))
    first, second = of(sim_log("submit"), token)
    assert second["t"] - first["t"] >= 0.95


def test_retry_after_beyond_the_budget_is_not_waited_for(
    client: openai.OpenAI, sim_log: Records
) -> None:
    token, text = failing_once(429, headers={"Retry-After": "30"})
    with pytest.raises(openai.RateLimitError):
        client.chat.completions.create(model=MODEL, messages=ask(text))
    assert len(of(sim_log("submit"), token)) == 1
