"""Videos across replicas: any replica answers for a video another made (the id says it all),
a deletion on one is seen by the others, and with Redis and Postgres shared, one watcher sends
each webhook once."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator

import openai
import pytest

from fal_openai_proxy.simulator.server import SimulatorThread
from fal_openai_proxy.simulator.video import SAMPLE_VIDEO

from ..support.chat import sim
from ..support.postgres import PostgresServer
from ..support.redis import RedisServer
from ..support.servers import RunningProxy, proxy_settings, start_proxy
from ..support.webhooks import WebhookReceiver, start_receiver

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")
SECRET = "a-shared-webhook-secret"
POLL_MS = 50


@pytest.fixture(scope="module")
def shared(postgres: PostgresServer) -> Iterator[tuple[RedisServer, str, WebhookReceiver]]:
    """Redis, a fresh database on the session's Postgres, and the webhook receiver."""
    redis_server, receiver = RedisServer(), start_receiver()
    redis_server.start()
    yield redis_server, postgres.create_database(), receiver
    receiver.stop()
    redis_server.stop()


@pytest.fixture(scope="module")
def replicas(
    sim: SimulatorThread, shared: tuple[RedisServer, str, WebhookReceiver]
) -> Iterator[list[RunningProxy]]:
    """Stopped with the module, before the Redis and Postgres they watch."""
    redis_server, database_url, receiver = shared
    running = [
        start_proxy(
            proxy_settings(
                sim,
                redis_url=redis_server.url,
                database_url=database_url,
                video_webhook_url=receiver.url,
                video_webhook_secret=SECRET,
                video_watch_interval=0.1,
            )
        )
        for _ in range(3)
    ]
    yield running
    for proxy in running:
        proxy.stop()


def test_any_replica_answers_for_a_video(
    replicas: list[RunningProxy], make_client: Callable[..., openai.OpenAI]
) -> None:
    a, b, c = (make_client(r) for r in replicas)
    video = a.videos.create(prompt="made on a", seconds="4")
    done = b.videos.poll(video.id, poll_interval_ms=POLL_MS)
    assert done.status == "completed"
    assert c.videos.download_content(video.id).read() == SAMPLE_VIDEO
    assert c.videos.retrieve(video.id).completed_at == done.completed_at  # shared in Redis
    assert video.id in [v.id for v in c.videos.list(limit=100).data]
    b.videos.delete(video.id)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # each replica learns of it from the table
        try:
            c.videos.retrieve(video.id)
        except openai.NotFoundError:
            break
        time.sleep(0.05)
    else:
        raise AssertionError("replica c still answers for a deleted video")


def test_one_webhook_per_video_across_replicas(
    replicas: list[RunningProxy],
    make_client: Callable[..., openai.OpenAI],
    shared: tuple[RedisServer, str, WebhookReceiver],
) -> None:
    receiver = shared[2]
    clients = [make_client(r) for r in replicas]
    made = [
        clients[n % 3].videos.create(prompt=f"hook {n} " + sim({"latency_ms": 300}))
        for n in range(6)
    ]
    for video in made:
        clients[0].videos.poll(video.id, poll_interval_ms=POLL_MS)
    ids = {v.id for v in made}
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        got = [json.loads(d.body)["data"]["id"] for d in receiver.deliveries]
        if ids <= set(got):
            break
        time.sleep(0.05)
    time.sleep(0.5)  # any duplicate would have arrived by now
    got = [json.loads(d.body)["data"]["id"] for d in receiver.deliveries]
    assert sorted(i for i in got if i in ids) == sorted(ids)
    for delivery in receiver.deliveries:
        event = clients[0].webhooks.unwrap(delivery.body, delivery.headers, secret=SECRET)
        assert event.type == "video.completed"  # type: ignore[comparison-overlap]
