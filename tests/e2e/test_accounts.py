"""Virtual keys and the admin API over HTTP, on SQLite and on Postgres: a key is created, used
with the openai SDK on chat, images and audio, limited (models, budget, period, rpm, expiry),
revoked; its usage and cost are read back; the store goes down and comes back; the proxy
restarts."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import openai
import pytest

from fal_openai_proxy.store.db import Database
from fal_openai_proxy.store.periods import next_period_start, period_start

from ..support.accounts import SETTLE, Admin, metric
from ..support.asserts import error_of, wait_for
from ..support.chat import MODEL
from ..support.media import make_wav
from ..support.schema import Recorder, ValidatingTransport
from ..support.servers import ADMIN_KEY, API_KEY, RunningProxy, proxy_settings, start_proxy

HELLO = [{"role": "user", "content": "hello there"}]


@dataclass
class Deployment:
    proxy: RunningProxy
    admin: Admin
    database_url: str
    make_client: Callable[..., openai.OpenAI]

    def client(self, key: str, **kwargs: Any) -> openai.OpenAI:
        return self.make_client(self.proxy, api_key=key, **kwargs)

    def chat(self, key: str) -> Any:
        return self.client(key).chat.completions.create(model=MODEL, messages=HELLO)

    def metrics(self) -> str:
        return httpx.get(self.proxy.base_url + "/metrics", timeout=10).text


@pytest.fixture
def deploy(
    sim: Any,
    database_url: str,
    http: httpx.Client,
    make_client: Callable[..., openai.OpenAI],
) -> Iterator[Callable[..., Deployment]]:
    """Proxies with accounts on this test's database (both engines), stopped after the test."""
    started: list[RunningProxy] = []

    def start(**overrides: Any) -> Deployment:
        values = {"database_url": database_url, "admin_key": ADMIN_KEY, "api_key": API_KEY}
        running = start_proxy(proxy_settings(sim, **{**values, **overrides}))
        started.append(running)
        return Deployment(running, Admin(http, running.base_url), database_url, make_client)

    yield start
    for running in started:
        running.stop()


# -- the admin API -------------------------------------------------------------------------


KEY_FIELDS = {
    "id", "name", "key_hint", "models", "max_budget", "budget_period", "rpm", "expires_at",
    "metadata", "created_at", "disabled", "spend", "period_spend", "period_resets_at",
}  # fmt: skip


def test_keys_are_created_listed_changed_and_deleted(deploy: Callable[..., Deployment]) -> None:
    d = deploy()
    admin = d.admin
    before = int(time.time())
    created = admin.create_key(
        name="alice", models=["openai/*"], max_budget=5, budget_period="month", rpm=60,
        expires_at=before + 86400, metadata={"team": "search"},
    )  # fmt: skip
    secret = created.pop("key")
    assert set(created) == KEY_FIELDS
    assert secret.startswith("sk-fal-") and len(secret) >= len("sk-fal-") + 32
    assert created["key_hint"] == secret[-4:]
    assert created["models"] == ["openai/*"] and created["max_budget"] == 5
    assert created["budget_period"] == "month" and created["rpm"] == 60
    assert created["metadata"] == {"team": "search"} and created["disabled"] is False
    assert created["spend"] == 0 and created["period_spend"] == 0
    assert before <= created["created_at"] <= time.time()
    assert created["period_resets_at"] == next_period_start("month", time.time())

    plain = admin.create_key(name="bob")
    assert plain["models"] is None and plain["max_budget"] is None and plain["rpm"] is None
    assert plain["period_resets_at"] is None and plain["metadata"] == {}

    listed = admin.request("GET", "/admin/keys").json()
    assert listed["object"] == "list"
    assert [k["id"] for k in listed["data"]] == [plain["id"], created["id"]]
    assert all("key" not in k and set(k) == KEY_FIELDS for k in listed["data"])
    assert admin.key(created["id"]) == created

    changed = admin.patch(created["id"], name="alice-2", max_budget=None, disabled=True)
    assert changed["name"] == "alice-2" and changed["max_budget"] is None
    assert changed["disabled"] is True and changed["rpm"] == 60  # the rest unchanged

    deleted = admin.request("DELETE", f"/admin/keys/{created['id']}")
    assert deleted.status_code == 200 and deleted.json() == {"id": created["id"], "deleted": True}
    for method in ("GET", "DELETE"):
        error = error_of(admin.request(method, f"/admin/keys/{created['id']}"), 404)
        assert error["code"] == "key_not_found" and error["param"] == "id"
    error = error_of(admin.request("PATCH", "/admin/keys/nope", json={"rpm": 1}), 404)
    assert error["code"] == "key_not_found"
    assert [k["id"] for k in admin.request("GET", "/admin/keys").json()["data"]] == [plain["id"]]
    # The secret is stored hashed only: nothing in the database holds it.
    assert secret not in dump_database(d.database_url)


def dump_database(url: str) -> str:
    async def dump() -> str:
        db = Database(url)
        try:
            async with db.connect() as connection:
                from sqlalchemy import text

                rows = (await connection.execute(text("SELECT * FROM api_keys"))).all()
            return repr(rows)
        finally:
            await db.close()

    return asyncio.run(dump())


BAD_BODIES: list[tuple[dict[str, Any], str]] = [
    ({}, "name"),
    ({"name": ""}, "name"),
    ({"name": 7}, "name"),
    ({"name": "a", "models": "openai/*"}, "models"),
    ({"name": "a", "models": ["openai/*", ""]}, "models[1]"),
    ({"name": "a", "max_budget": -1}, "max_budget"),
    ({"name": "a", "max_budget": "5"}, "max_budget"),
    ({"name": "a", "budget_period": "year"}, "budget_period"),
    ({"name": "a", "rpm": 0}, "rpm"),
    ({"name": "a", "rpm": 1.5}, "rpm"),
    ({"name": "a", "expires_at": "tomorrow"}, "expires_at"),
    ({"name": "a", "metadata": ["x"]}, "metadata"),
    ({"name": "a", "colour": "red"}, "colour"),
]


def test_bad_fields_are_400_naming_the_field(deploy: Callable[..., Deployment]) -> None:
    admin = deploy().admin
    for body, param in BAD_BODIES:
        error = error_of(admin.request("POST", "/admin/keys", json=body), 400)
        assert error["param"] == param, (body, error)
        assert error["type"] == "invalid_request_error"
        assert param.split("[")[0] in error["message"]
    assert admin.request("GET", "/admin/keys").json()["data"] == []


def test_admin_requests_are_checked(
    deploy: Callable[..., Deployment], sim: Any, http: httpx.Client
) -> None:
    d = deploy()
    error = error_of(d.admin.request("PATCH", "/admin/keys/x", json={"name": None}), 400)
    assert error["param"] == "name"
    wrong = Admin(http, d.proxy.base_url, key="not-the-admin-key")
    assert error_of(wrong.request("GET", "/admin/keys"), 401)["code"] == "invalid_api_key"
    bare = http.get(d.proxy.base_url + "/admin/keys")
    assert error_of(bare, 401)["code"] == "missing_api_key"
    # A client key is no admin key, and the admin key is no client key.
    client_key = Admin(http, d.proxy.base_url, key=API_KEY)
    assert error_of(client_key.request("GET", "/admin/usage"), 401)["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        d.chat(ADMIN_KEY)
    form = d.admin.request("POST", "/admin/keys", content=b"name=x")
    assert error_of(form, 415)["code"] == "unsupported_media_type"
    broken = d.admin.request(
        "POST", "/admin/keys", content=b"{", headers={"content-type": "application/json"}
    )
    assert error_of(broken, 400)["code"] == "invalid_json"
    for query, param in (
        ("group_by=week", "group_by"), ("start=yesterday", "start"), ("start=2026-02-30", "start"),
        ("start=2026-03-02&end=2026-03-01", "start"), ("colour=red", "colour"),
    ):  # fmt: skip
        assert error_of(d.admin.request("GET", f"/admin/usage?{query}"), 400)["param"] == param
    for query, param in (("limit=0", "limit"), ("status=abc", "status"), ("after=99999", "after"),
                         ("since=noon", "since")):  # fmt: skip
        assert error_of(d.admin.request("GET", f"/admin/requests?{query}"), 400)["param"] == param


def test_without_admin_key_the_admin_api_says_how_to_set_it(
    proxy_factory: Callable[..., RunningProxy], http: httpx.Client
) -> None:
    for running in (proxy_factory(), proxy_factory(database_url="none")):
        response = http.get(running.base_url + "/admin/keys", headers={"Authorization": "Bearer x"})
        error = error_of(response, 403)
        assert error["code"] == "admin_disabled"
        assert ("ADMIN_KEY" in error["message"]) or ("DATABASE_URL" in error["message"])
    assert (
        "set ADMIN_KEY"
        in error_of(http.get(proxy_factory().base_url + "/admin/usage"), 403)["message"]
    )


# -- using a key -----------------------------------------------------------------------------


def test_a_key_works_on_every_endpoint_and_its_usage_is_recorded(
    deploy: Callable[..., Deployment], http: httpx.Client, sim_log: Callable[..., Any]
) -> None:
    d = deploy()
    created = d.admin.create_key(name="app-one")
    key, key_id = created["key"], created["id"]
    client = d.client(key)
    answer = client.chat.completions.create(model=MODEL, messages=HELLO)
    assert answer.usage is not None
    stream = client.chat.completions.create(model=MODEL, messages=HELLO, stream=True)
    assert "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    # x-api-key works as Bearer does
    by_header = http.post(
        d.proxy.v1 + "/chat/completions",
        json={"model": MODEL, "messages": HELLO},
        headers={"x-api-key": key},
    )
    assert by_header.status_code == 200, by_header.text
    images = client.images.generate(prompt="a lighthouse", n=2)
    assert len(images.data) == 2
    transcript = client.audio.transcriptions.create(
        model="whisper-1", file=("talk.wav", make_wav(1.5), "audio/wav")
    )
    assert transcript.text
    speech = client.audio.speech.create(model="tts-1", input="hello", voice="alloy")
    assert speech.content
    models = client.models.list()
    assert models.data
    # the static API_KEY keeps working next to virtual keys
    d.chat(API_KEY)

    # Both: the static key's request ended last, and its row may come in a later batch.
    wait_for(
        lambda: (
            d.admin.total(key_id) == 7
            and any(r["group"] == "static" for r in d.admin.usage(group_by="key"))
        ),
        what="the key's 7 requests and the static key's one in /admin/usage",
        within=SETTLE,
    )
    (row,) = [r for r in d.admin.usage(group_by="key") if r["group"] == key_id]
    assert row["name"] == "app-one" and row["errors"] == 0
    assert row["input_tokens"] > 0 and row["output_tokens"] > 0
    assert row["images"] == 2
    assert row["audio_seconds"] >= 1.5  # the transcription's 1.5 s in, and the speech out
    assert row["cost"] > 0  # the chats' reported cost
    static = [r for r in d.admin.usage(group_by="key") if r["group"] == "static"]
    assert static and static[0]["requests"] == 1 and static[0].get("name") is None
    by_endpoint = {r["group"]: r["requests"] for r in d.admin.usage(group_by="endpoint")}
    assert by_endpoint["/v1/chat/completions"] == 4
    assert by_endpoint["/v1/images/generations"] == 1
    assert by_endpoint["/v1/audio/transcriptions"] == 1
    assert by_endpoint["/v1/audio/speech"] == 1
    by_model = {r["group"]: r for r in d.admin.usage(group_by="model")}
    assert by_model[MODEL]["requests"] == 4
    (today,) = d.admin.usage(group_by="day")
    assert today["requests"] == 8 and today["group"] == time.strftime("%Y-%m-%d", time.gmtime())

    log = d.admin.requests(key_id=key_id, limit=3)
    assert log["object"] == "list" and len(log["data"]) == 3 and log["has_more"] is True
    newest = log["data"][0]
    assert newest["endpoint"] == "/v1/models" and newest["key_name"] == "app-one"
    rest = d.admin.requests(key_id=key_id, limit=10, after=log["last_id"])
    every = log["data"] + rest["data"]
    assert len(every) == 7 and rest["has_more"] is False
    times = [r["created_at"] for r in every]
    assert times == sorted(times, reverse=True)
    chat = next(r for r in every if r["endpoint"] == "/v1/chat/completions" and r["stream"])
    assert chat["model"] == MODEL and chat["status"] == 200 and chat["route"] == "prompt"
    assert chat["fal_app"] == "openrouter/router" and chat["fal_request_id"]
    assert chat["input_tokens"] > 0 and chat["latency_ms"] > 0 and chat["ttfb_ms"] is not None
    assert chat["prompt"] is None and chat["answer"] is None  # LOG_PROMPTS is off
    heard = next(r for r in every if r["endpoint"] == "/v1/audio/transcriptions")
    assert heard["audio_seconds_in"] == pytest.approx(1.5, abs=0.01)
    spoken = next(r for r in every if r["endpoint"] == "/v1/audio/speech")
    audio_total = heard["audio_seconds_in"] + (spoken["audio_seconds_out"] or 0)
    assert row["audio_seconds"] == pytest.approx(audio_total, abs=0.01)
    image = next(r for r in every if r["endpoint"] == "/v1/images/generations")
    assert image["images"] == 2 and image["fal_app"] == "fal-ai/flux/schnell"
    assert (image["cost"] is None) == (image["cost_source"] is None)  # null: unknown, never 0
    assert chat["cost"] > 0 and chat["cost_source"] == "openrouter"
    only_images = (
        d.admin.requests(model="dall-e-2")["data"]
        + d.admin.requests(model="fal-ai/flux/schnell")["data"]
    )
    assert [r["id"] for r in only_images] == [image["id"]]
    assert all(r["status"] == 200 for r in d.admin.requests(status=200)["data"])

    text = d.metrics()
    assert metric(text, "fal_proxy_key_requests_total", key="app-one") == 7
    assert (metric(text, "fal_proxy_key_cost_usd_total", key="app-one") or 0) > 0
    assert (metric(text, "fal_proxy_cost_usd_total", model=MODEL) or 0) > 0
    assert metric(text, "fal_proxy_key_requests_total", key="static") == 1
    assert metric(text, "fal_proxy_database_up") == 1
    assert secret_free(text, key)


def secret_free(text: str, *secrets: str) -> bool:
    return not any(s in text for s in secrets)


def test_v1_key_describes_the_calling_key(
    deploy: Callable[..., Deployment], http: httpx.Client
) -> None:
    d = deploy()
    created = d.admin.create_key(
        name="reader", models=["google/*"], max_budget=1, budget_period="day", rpm=100
    )
    d.chat(created["key"])
    own = http.get(d.proxy.v1 + "/key", headers={"Authorization": f"Bearer {created['key']}"})
    assert own.status_code == 200, own.text
    body = own.json()
    assert body["name"] == "reader" and body["key_hint"] == created["key_hint"]
    assert body["models"] == ["google/*"] and body["rpm"] == 100
    assert body["max_budget"] == 1 and body["budget_period"] == "day"
    assert body["spend"] > 0 and body["period_spend"] == body["spend"]  # this replica's own
    assert body["budget_remaining"] == pytest.approx(1 - body["spend"])
    assert body["period_resets_at"] == next_period_start("day", time.time())
    static = http.get(d.proxy.v1 + "/key", headers={"Authorization": f"Bearer {API_KEY}"})
    assert error_of(static, 404)["code"] == "key_not_found"


# -- what a key is refused with -------------------------------------------------------------


def test_a_model_outside_the_allow_list_is_403_naming_it(
    deploy: Callable[..., Deployment],
) -> None:
    d = deploy()
    created = d.admin.create_key(name="narrow", models=["google/*", "fal-ai/flux/*"])
    client = d.client(created["key"])
    client.chat.completions.create(model=MODEL, messages=HELLO)
    client.images.generate(model="fal-ai/flux/dev", prompt="a cat")
    for call in (
        lambda: client.chat.completions.create(model="openai/gpt-4o", messages=HELLO),
        lambda: client.images.generate(model="dall-e-3", prompt="a cat"),
        lambda: client.audio.speech.create(model="tts-1", input="hi", voice="alloy"),
    ):
        with pytest.raises(openai.PermissionDeniedError) as refused:
            call()
        body = refused.value.body
        assert isinstance(body, dict)
        assert body["code"] == "model_not_allowed" and body["param"] == "model"
    assert "openai/gpt-4o" in str(_refusal(client, "openai/gpt-4o"))
    # The request log names each model refused (what the key tried is what its admin asks).
    refused = wait_for(
        lambda: (rows := d.admin.requests(key_id=created["id"], status=403)["data"])
        and len(rows) == 4 and rows,
        within=SETTLE, what="the refused requests in the log",
    )  # fmt: skip
    assert sorted(row["model"] for row in refused) == [
        "dall-e-3", "openai/gpt-4o", "openai/gpt-4o", "tts-1",
    ]  # fmt: skip


def _refusal(client: openai.OpenAI, model: str) -> Exception:
    try:
        client.chat.completions.create(model=model, messages=HELLO)
    except openai.APIStatusError as exc:
        return exc
    raise AssertionError("not refused")


def test_a_spent_budget_is_429_insufficient_quota_and_not_retried(
    deploy: Callable[..., Deployment], recorder: Recorder
) -> None:
    d = deploy()
    created = d.admin.create_key(name="small", max_budget=1)
    d.chat(created["key"])
    one = wait_for(
        lambda: d.admin.key(created["id"])["spend"], within=SETTLE
    )  # what one chat costs
    d.admin.patch(created["id"], max_budget=2.5 * one)  # room for two more chats, not three
    sent: list[str] = []
    http_client = httpx.Client(
        transport=ValidatingTransport(recorder),
        event_hooks={"request": [lambda request: sent.append(request.url.path)]},
    )
    # The SDK's own retries on (it retries a 429 unless told not to).
    client = openai.OpenAI(
        base_url=d.proxy.v1, api_key=created["key"], max_retries=3, http_client=http_client
    )
    answered, refused = until_refused(
        lambda: client.chat.completions.create(model=MODEL, messages=HELLO)
    )
    assert answered == 2
    assert len(sent) == answered + 1  # the 429 was not retried, though retries were allowed
    assert refused.response.headers["x-should-retry"] == "false"
    body = refused.body
    assert isinstance(body, dict) and body["code"] == "insufficient_quota"
    assert "budget" in body["message"]
    own = d.admin.http.get(d.proxy.v1 + "/key", headers={"x-api-key": created["key"]})
    assert own.status_code == 200 and own.json()["budget_remaining"] == 0  # it may still ask
    spent = wait_for(
        lambda: (k := d.admin.key(created["id"]))["spend"] >= 2.5 * one and k, within=SETTLE
    )
    assert spent["spend"] == pytest.approx(3 * one)
    assert spent["period_spend"] == spent["spend"]  # no period: the lifetime is the period
    # Raising the budget lets it through again, at once on this replica.
    d.admin.patch(created["id"], max_budget=1)
    client.chat.completions.create(model=MODEL, messages=HELLO)
    client.close()


def until_refused(call: Callable[[], object]) -> tuple[int, openai.RateLimitError]:
    """Calls until one is refused with a 429: how many were answered, and the refusal."""
    for answered in range(20):
        try:
            call()
        except openai.RateLimitError as exc:
            return answered, exc
    raise AssertionError("never refused")


def test_a_period_budget_resets_at_the_start_of_the_next_period(
    deploy: Callable[..., Deployment],
) -> None:
    d = deploy()
    created = d.admin.create_key(name="daily", max_budget=0.00005, budget_period="day")
    until_refused(lambda: d.chat(created["key"]))
    wait_for(lambda: d.admin.key(created["id"])["period_spend"] >= 0.00005, within=SETTLE)
    # Yesterday's spend: the row as it will be once today is over.
    yesterday = period_start("day", time.time()) - 86400
    run_sql(d.database_url, f"UPDATE api_keys SET period_start = {yesterday}")
    key = wait_for(
        lambda: (k := d.admin.key(created["id"]))["period_spend"] == 0 and k, within=SETTLE
    )
    assert key["spend"] >= 0.00005  # the lifetime spend stays
    wait_for(
        lambda: _works(d, created["key"]),
        what="the key to work again after the reset",
        within=SETTLE,
    )


def _works(d: Deployment, key: str) -> bool:
    try:
        d.chat(key)
    except openai.RateLimitError:
        return False
    return True


def run_sql(url: str, sql: str) -> None:
    async def run() -> None:
        db = Database(url)
        try:
            async with db.begin() as connection:
                from sqlalchemy import text

                await connection.execute(text(sql))
        finally:
            await db.close()

    asyncio.run(run())


def test_rpm_is_429_rate_limit_exceeded_with_retry_after(
    deploy: Callable[..., Deployment],
) -> None:
    d = deploy()
    key = d.admin.create_key(name="slow", rpm=2)["key"]
    d.chat(key)
    d.chat(key)
    with pytest.raises(openai.RateLimitError) as refused:
        d.chat(key)
    assert refused.value.response.headers["retry-after"].isdigit()
    body = refused.value.body
    assert isinstance(body, dict) and body["code"] == "rate_limit_exceeded"
    d.chat(d.admin.create_key(name="other")["key"])  # other keys have their own count


def test_disabled_deleted_and_expired_keys_are_401(
    deploy: Callable[..., Deployment], http: httpx.Client
) -> None:
    d = deploy()
    created = d.admin.create_key(name="temp")
    key = created["key"]
    d.chat(key)
    d.admin.patch(created["id"], disabled=True)
    assert "disabled" in _auth_refusal(d, key)
    d.admin.patch(created["id"], disabled=False)
    d.chat(key)
    other = d.admin.create_key(name="gone")
    d.chat(other["key"])
    assert d.admin.request("DELETE", f"/admin/keys/{other['id']}").status_code == 200
    assert "deleted" in _auth_refusal(d, other["key"])
    assert "Incorrect" in _auth_refusal(d, "sk-fal-" + "x" * 40)
    expires_at = int(time.time()) + 2
    brief = d.admin.create_key(name="brief", expires_at=expires_at)
    d.chat(brief["key"])
    time.sleep(max(0.0, expires_at - time.time()) + 0.05)  # the clock passes expires_at
    assert "expired" in _auth_refusal(d, brief["key"])
    d.chat(API_KEY)  # the static key is untouched
    # Refusals never reach an endpoint as the key: they are not usage.
    wait_for(
        lambda: d.admin.total(brief["id"]) == 1 and d.admin.total(created["id"]) == 2, within=SETTLE
    )


def _auth_refusal(d: Deployment, key: str, allow_success: bool = False) -> str:
    try:
        d.chat(key)
    except openai.AuthenticationError as exc:
        body = exc.body
        assert isinstance(body, dict) and body["code"] == "invalid_api_key"
        return str(body["message"])
    assert allow_success, "the key was not refused"
    return ""


def test_with_admin_key_set_every_v1_request_needs_a_key(
    deploy: Callable[..., Deployment], http: httpx.Client
) -> None:
    d = deploy(api_key=None)  # virtual keys only
    key = d.admin.create_key(name="only")["key"]
    d.chat(key)
    assert error_of(http.get(d.proxy.v1 + "/models"), 401)["code"] == "missing_api_key"
    refused = http.get(d.proxy.v1 + "/models", headers={"Authorization": "Bearer sk-other"})
    assert error_of(refused, 401)["code"] == "invalid_api_key"


# -- the store down, and a restart --------------------------------------------------------------


async def test_requests_complete_while_the_store_is_down_and_usage_follows(
    deploy: Callable[..., Deployment],
    store_outage: Callable[[bool], None],
    make_async_client: Callable[..., openai.AsyncOpenAI],
) -> None:
    d = deploy()
    created = d.admin.create_key(name="steady")
    client = make_async_client(d.proxy, api_key=created["key"])
    await client.chat.completions.create(model=MODEL, messages=HELLO)  # the key is known here
    wait_for(lambda: d.admin.total(created["id"]) == 1, within=SETTLE)
    store_outage(True)
    try:
        # Concurrent load while the database is gone: every request is answered.
        answers = await asyncio.gather(
            *(client.chat.completions.create(model=MODEL, messages=HELLO) for _ in range(20))
        )
        assert all(a.choices[0].message.content for a in answers)
        wait_for(lambda: metric(d.metrics(), "fal_proxy_database_up") == 0, 30)
        assert (metric(d.metrics(), "fal_proxy_usage_records_queued") or 0) >= 20
    finally:
        store_outage(False)
    wait_for(lambda: d.admin.total(created["id"]) == 21, 30, "the queued usage to be written")
    assert metric(d.metrics(), "fal_proxy_database_up") == 1
    assert metric(d.metrics(), "fal_proxy_usage_records_dropped_total") == 0


async def test_past_the_queue_bound_usage_is_dropped_and_counted(
    deploy: Callable[..., Deployment],
    store_outage: Callable[[bool], None],
    make_async_client: Callable[..., openai.AsyncOpenAI],
) -> None:
    d = deploy(usage_queue_max=5)
    created = d.admin.create_key(name="bounded")
    client = make_async_client(d.proxy, api_key=created["key"])
    await client.chat.completions.create(model=MODEL, messages=HELLO)
    wait_for(lambda: d.admin.total(created["id"]) == 1, within=SETTLE)
    store_outage(True)
    try:
        for _ in range(12):
            await client.chat.completions.create(model=MODEL, messages=HELLO)
        assert metric(d.metrics(), "fal_proxy_usage_records_dropped_total") == 7
    finally:
        store_outage(False)
    wait_for(lambda: d.admin.total(created["id"]) == 6, 30)  # 1 + the 5 the queue held


def test_a_restart_loses_nothing_and_keys_keep_working(
    deploy: Callable[..., Deployment],
) -> None:
    first = deploy()
    created = first.admin.create_key(name="durable", max_budget=10)
    for _ in range(5):
        first.chat(created["key"])
    first.proxy.stop()  # a graceful stop writes what is still queued
    second = deploy()
    assert second.admin.total(created["id"]) == 5
    assert second.admin.key(created["id"])["spend"] > 0
    second.chat(created["key"])
    wait_for(lambda: second.admin.total(created["id"]) == 6, within=SETTLE)


def test_prompts_are_stored_only_with_log_prompts(
    deploy: Callable[..., Deployment],
) -> None:
    d = deploy(log_prompts=True)
    key = d.admin.create_key(name="verbose")
    d.chat(key["key"])
    row = wait_for(lambda: d.admin.requests(key_id=key["id"])["data"], within=SETTLE)[0]
    assert "hello there" in row["prompt"] and row["answer"]


def test_old_requests_leave_the_log_and_their_totals_stay(
    deploy: Callable[..., Deployment],
) -> None:
    first = deploy(request_log_retention_days=1)
    key = first.admin.create_key(name="history")
    for _ in range(3):
        first.chat(key["key"])
    wait_for(lambda: len(first.admin.requests(key_id=key["id"])["data"]) == 3, within=SETTLE)
    first.proxy.stop()
    three_days_ago = time.time() - 3 * 86400
    run_sql(first.database_url, f"UPDATE requests SET created_at = {three_days_ago}")
    second = deploy(request_log_retention_days=1)  # the retention runs at start, then hourly
    wait_for(
        lambda: second.admin.requests(key_id=key["id"])["data"] == [],
        what="deletion",
        within=SETTLE,
    )
    assert second.admin.total(key["id"]) == 3  # the per-day totals are kept


def test_with_database_url_none_there_is_no_accounting(
    proxy_factory: Callable[..., RunningProxy],
    make_client: Callable[..., openai.OpenAI],
    tmp_path: Any,
) -> None:
    running = proxy_factory(database_url="none", api_key=API_KEY)
    assert running.state.accounts is None
    make_client(running, api_key=API_KEY).chat.completions.create(model=MODEL, messages=HELLO)
    text = httpx.get(running.base_url + "/metrics", timeout=10).text
    assert "fal_proxy_usage" not in text and "fal_proxy_database_up" not in text
    assert "fal_proxy_key_requests" not in text.replace("# HELP", "").replace("# TYPE", "")
    refused = httpx.get(running.v1 + "/key", headers={"Authorization": f"Bearer {API_KEY}"})
    assert error_of(refused, 404)["code"] == "key_not_found"
