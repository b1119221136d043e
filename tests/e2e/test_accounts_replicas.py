"""Accounts across replicas: three proxy processes on one Postgres database. A budget spent
through one replica is refused by all of them, a key deleted on one is refused by all, and
every replica reports the same usage totals.

The replicas share nothing but the database: each writes its own usage and re-reads the keys
it knows every 0.5 s, so what one replica charges reaches the others' budget checks within
about 2 s (its write, then their refresh). The waits below allow more, for a loaded machine.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from fal_openai_proxy.simulator.server import SimulatorThread

from ..support.accounts import SETTLE, Admin
from ..support.asserts import wait_for
from ..support.chat import MODEL
from ..support.postgres import PostgresServer
from ..support.processes import ProxyProcess, start_proxy_process
from ..support.servers import ADMIN_KEY, API_KEY, FAL_KEY

REPLICAS = 3
HELLO = {"model": MODEL, "messages": [{"role": "user", "content": "hello there"}]}


@pytest.fixture(scope="module")
def replicas(
    sim: SimulatorThread, postgres: PostgresServer, secret_audit: list[str]
) -> Iterator[list[ProxyProcess]]:
    env = {
        "FAL_KEY": FAL_KEY,
        "FAL_RUN_URL": sim.run_url,
        "FAL_QUEUE_URL": sim.queue_url,
        "API_KEY": API_KEY,
        "ADMIN_KEY": ADMIN_KEY,
        "DATABASE_URL": postgres.create_database(),  # migrated by whichever starts first
        "LOG_FORMAT": "json",
    }
    started: list[ProxyProcess] = []
    try:
        for _ in range(REPLICAS):
            started.append(start_proxy_process(env))
        yield started
    finally:
        for replica in started:
            replica.stop()
            secret_audit.append(replica.output())


@pytest.fixture
def admins(replicas: list[ProxyProcess], http: httpx.Client) -> list[Admin]:
    return [Admin(http, r.base_url) for r in replicas]


def chat(http: httpx.Client, replica: ProxyProcess, key: str) -> httpx.Response:
    return http.post(
        replica.base_url + "/v1/chat/completions",
        json=HELLO,
        headers={"Authorization": f"Bearer {key}"},
        timeout=30,
    )


def own_key(http: httpx.Client, replica: ProxyProcess, key: str) -> httpx.Response:
    return http.get(
        replica.base_url + "/v1/key", headers={"Authorization": f"Bearer {key}"}, timeout=30
    )


def test_a_budget_spent_on_one_replica_is_refused_on_every_one(
    replicas: list[ProxyProcess], admins: list[Admin], http: httpx.Client
) -> None:
    created = admins[0].create_key(name="shared-budget", max_budget=1)
    key = created["key"]
    for replica in replicas:  # every replica knows the key before its budget is spent
        assert chat(http, replica, key).status_code == 200
    # What one chat costs: the three rows and their charges are written together.
    wait_for(
        lambda: admins[1].total(created["id"]) == 3, what="the three chats' usage", within=SETTLE
    )
    one = admins[1].key(created["id"])["spend"] / 3
    admins[2].patch(created["id"], max_budget=3.5 * one)  # one more chat, not two
    assert chat(http, replicas[0], key).status_code == 200  # spend: 4 chats, over the budget
    for replica in replicas:  # each sees the spend without a request of its own
        wait_for(
            lambda r=replica: own_key(http, r, key).json()["budget_remaining"] == 0,
            within=SETTLE,
            what=f"replica {replica.port} to see the budget spent",
        )
        refused = chat(http, replica, key)
        assert refused.status_code == 429
        assert refused.json()["error"]["code"] == "insufficient_quota"
        assert refused.headers["x-should-retry"] == "false"
    assert chat(http, replicas[1], API_KEY).status_code == 200  # the static key is untouched


def test_a_key_deleted_on_one_replica_is_refused_on_every_one(
    replicas: list[ProxyProcess], admins: list[Admin], http: httpx.Client
) -> None:
    created = admins[1].create_key(name="revoked")
    key = created["key"]
    for replica in replicas:
        assert chat(http, replica, key).status_code == 200
    assert admins[1].request("DELETE", f"/admin/keys/{created['id']}").status_code == 200
    for replica in replicas:
        response = wait_for(
            lambda r=replica: (resp := own_key(http, r, key)).status_code == 401 and resp,
            within=SETTLE,
            what=f"replica {replica.port} to refuse the deleted key",
        )
        assert response.json()["error"]["code"] == "invalid_api_key"
        assert chat(http, replica, key).status_code == 401
    for admin in admins:
        assert admin.request("GET", f"/admin/keys/{created['id']}").status_code == 404


def test_every_replica_reports_the_usage_of_all(
    replicas: list[ProxyProcess], admins: list[Admin], http: httpx.Client
) -> None:
    created = admins[2].create_key(name="spread")
    for n in range(12):
        assert chat(http, replicas[n % REPLICAS], created["key"]).status_code == 200

    def totals() -> list[Any]:
        return [admin.total(created["id"]) for admin in admins]

    wait_for(
        lambda: totals() == [12] * REPLICAS, what="12 requests on every replica", within=SETTLE
    )
    spends = {round(admin.key(created["id"])["spend"], 12) for admin in admins}
    assert len(spends) == 1 and spends.pop() > 0
    log = admins[0].requests(key_id=created["id"], limit=100)["data"]
    assert len(log) == 12 and {r["key_name"] for r in log} == {"spread"}
