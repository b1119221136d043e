"""fal/urls.py: which queue URLs are followed, and onto which host they are moved."""

from __future__ import annotations

import pytest

from fal_openai_proxy.base.settings import DEFAULT_QUEUE_URL, DEFAULT_RUN_URL
from fal_openai_proxy.fal.errors import FalUnsafeURL
from fal_openai_proxy.fal.urls import QueueURLs, is_fal_host

FAL = "https://queue.fal.run/openrouter/router/requests/r1/status"


def urls(queue_url: str = DEFAULT_QUEUE_URL, run_url: str = DEFAULT_RUN_URL) -> QueueURLs:
    return QueueURLs(queue_url=queue_url, run_url=run_url, default_queue_url=DEFAULT_QUEUE_URL)


def test_with_fal_default_the_url_is_followed_as_returned() -> None:
    assert urls().follow(FAL) == FAL
    other = "https://queue-2.fal.ai/openrouter/router/requests/r1"
    assert urls().follow(other) == other


@pytest.mark.parametrize(
    "url",
    [
        "http://queue.fal.run/openrouter/router/requests/r1",
        "https://example.com/openrouter/router/requests/r1",
        "https://notfal.run/x",
        "https://fal.run.example.com/x",
        "ftp://queue.fal.run/x",
        "https:///x",
    ],
)
def test_with_fal_default_other_hosts_and_http_are_refused(url: str) -> None:
    with pytest.raises(FalUnsafeURL):
        urls().follow(url)


@pytest.mark.parametrize(
    ("queue_url", "expected"),
    [
        ("https://relay.example", "https://relay.example/openrouter/router/requests/r1/status"),
        (
            "http://127.0.0.1:9000/queue",
            "http://127.0.0.1:9000/queue/openrouter/router/requests/r1/status",
        ),
        ("https://queue-backup.fal.run", FAL.replace("queue.fal.run", "queue-backup.fal.run")),
    ],
)
def test_a_configured_queue_url_takes_every_call(queue_url: str, expected: str) -> None:
    assert urls(queue_url).follow(FAL) == expected


def test_a_url_that_already_has_the_prefix_keeps_it_once() -> None:
    got = urls("http://127.0.0.1:9000/queue").follow(
        "http://localhost:9000/queue/fal-ai/any-llm/requests/r1?logs=0"
    )
    assert got == "http://127.0.0.1:9000/queue/fal-ai/any-llm/requests/r1?logs=0"


def test_a_configured_https_queue_never_downgrades() -> None:
    got = urls("https://relay.example").follow("http://relay.example/a/requests/r1")
    assert got == "https://relay.example/a/requests/r1"


@pytest.mark.parametrize(
    ("host", "ours"),
    [("fal.run", True), ("queue.fal.run", True), ("FAL.AI", True), ("evilfal.run", False)],
)
def test_fal_hosts(host: str, ours: bool) -> None:
    assert is_fal_host(host) is ours


@pytest.mark.parametrize("queue_url", [DEFAULT_QUEUE_URL, "http://127.0.0.1:9000/queue"])
@pytest.mark.parametrize(
    "url",
    [
        FAL,
        FAL + "?logs=0",
        FAL + "?",
        "https://queue.fal.run:8443/a/requests/r1/status",
        "https://QUEUE.FAL.RUN/a/requests/r1",
        "http://127.0.0.1:9000/queue/a/requests/r1?logs=1&x=2",
        "http://localhost:9000/queuex/a",
        "https://example.com/a/requests/r1",
        "http://queue.fal.run/a",
        "https://user:pw@queue.fal.run/a",
        "https://queue.fal.run/a#frag",
        "https://[::1]:9000/a",
        "HTTPS://queue.fal.run/a",
    ],
)
def test_the_quick_form_follows_as_urlsplit_does(queue_url: str, url: str) -> None:
    """Plain URLs take a regular expression and a per-origin check; every answer (or refusal)
    is the one urlsplit's full parse gives, the first time an origin is seen and after."""
    quick = urls(queue_url)
    for _ in range(2):
        try:
            expected: str | type[Exception] = urls(queue_url)._follow_parsed(url)
        except FalUnsafeURL:
            expected = FalUnsafeURL
        try:
            got: str | type[Exception] = quick.follow(url)
        except FalUnsafeURL:
            got = FalUnsafeURL
        assert got == expected
