"""The console over HTTP: its page and headers, the sign-in, the session cookie and its CSRF
token, and the admin endpoints it reads (/admin/overview, /admin/models). The page itself is
driven in a real browser in tests/browser/."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Callable, Iterator

import httpx
import pytest

from fal_openai_proxy.serve.console_auth import COOKIE, SIGN_IN_ATTEMPTS

from ..support.asserts import error_of, wait_for
from ..support.redis import RedisServer
from ..support.servers import (
    ADMIN_KEY,
    API_KEY,
    FAL_KEY,
    REVOKED_FAL_KEY,
    SECRETS,
    RunningProxy,
)

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
CHAT = {"model": "google/gemini-2.5-flash", "messages": [{"role": "user", "content": "hi"}]}


class Signed:
    """A signed-in browser, as far as HTTP goes: the cookie and the CSRF token."""

    def __init__(self, cookie: str, csrf: str, set_cookie: str) -> None:
        self.cookie = cookie
        self.csrf = csrf
        self.set_cookie = set_cookie

    def headers(self, *, csrf: bool = True, **extra: str) -> dict[str, str]:
        headers = {"Cookie": f"{COOKIE}={self.cookie}", **extra}
        if csrf:
            headers["X-CSRF-Token"] = self.csrf
        return headers


def sign_in(running: RunningProxy, key: str = ADMIN_KEY, **headers: str) -> Signed:
    response = httpx.post(running.base_url + "/console/session", json={"admin_key": key},
                          headers=headers)  # fmt: skip
    assert response.status_code == 200, response.text
    set_cookie = response.headers["set-cookie"]
    cookie = re.match(rf"{COOKIE}=([^;]+);", set_cookie)
    assert cookie is not None, set_cookie
    body = response.json()
    assert body["signed_in"] is True
    return Signed(cookie[1], body["csrf_token"], set_cookie)


def overview(running: RunningProxy, **headers: str) -> httpx.Response:
    return httpx.get(running.base_url + "/admin/overview", headers=headers, timeout=10)


@pytest.fixture(scope="module")
def admin_proxy(proxy_factory: Callable[..., RunningProxy]) -> RunningProxy:
    return proxy_factory(admin_key=ADMIN_KEY, api_key=API_KEY)


# -- the page --------------------------------------------------------------------------------


def test_the_page_and_its_files_carry_a_strict_policy(admin_proxy: RunningProxy) -> None:
    page = httpx.get(admin_proxy.base_url + "/console")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy
    assert page.headers["x-frame-options"] == "DENY"
    assert page.headers["x-content-type-options"] == "nosniff"
    # Scripts only from files; nothing from another origin.
    assert re.findall(r"<script[^>]*>", page.text) == [
        '<script type="module" src="console/js/main.js">'
    ]
    assert "http://" not in page.text and "https://" not in page.text
    for name, media_type in (("js/main.js", "text/javascript"), ("console.css", "text/css")):
        asset = httpx.get(f"{admin_proxy.base_url}/console/{name}")
        assert asset.status_code == 200
        assert asset.headers["content-type"].startswith(media_type)
        assert asset.headers["content-security-policy"] == policy
        again = httpx.get(f"{admin_proxy.base_url}/console/{name}",
                          headers={"If-None-Match": asset.headers["etag"]})  # fmt: skip
        assert again.status_code == 304 and again.content == b""


def test_the_scripts_fetch_nothing_from_elsewhere(admin_proxy: RunningProxy) -> None:
    from fal_openai_proxy.routes.console import ASSETS

    for name, asset in ASSETS.items():
        text = asset.body.decode()
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), name
        assert "innerHTML" not in text and "eval(" not in text, name


def test_an_unknown_file_is_a_404(admin_proxy: RunningProxy) -> None:
    for name in ("nope.js", "index.html", "../routes/console.py"):
        response = httpx.get(f"{admin_proxy.base_url}/console/{name}")
        assert error_of(response, 404)["code"] == "unknown_url"


# -- signing in ------------------------------------------------------------------------------


def test_without_admin_key_the_console_says_how_to_set_it(proxy: RunningProxy) -> None:
    state = httpx.get(proxy.base_url + "/console/session").json()
    assert state["admin_key_set"] is False and state["signed_in"] is False
    refused = httpx.post(proxy.base_url + "/console/session", json={"admin_key": "x" * 20})
    error = error_of(refused, 403)
    assert error["code"] == "admin_disabled" and "ADMIN_KEY" in error["message"]
    assert error_of(overview(proxy, **ADMIN), 403)["code"] == "admin_disabled"


def test_sign_in_gives_a_strict_cookie_once_the_key_is_right(admin_proxy: RunningProxy) -> None:
    wrong = httpx.post(admin_proxy.base_url + "/console/session",
                       json={"admin_key": "not-the-admin-key-0000"})  # fmt: skip
    assert error_of(wrong, 401)["code"] == "invalid_api_key"
    assert "set-cookie" not in wrong.headers
    signed = sign_in(admin_proxy)
    attributes = [a.strip() for a in signed.set_cookie.split(";")]
    assert {"HttpOnly", "SameSite=Strict", "Path=/", "Max-Age=43200"} <= set(attributes)
    assert "Secure" not in attributes  # plain http
    assert ADMIN_KEY not in signed.set_cookie and ADMIN_KEY not in signed.csrf
    state = httpx.get(admin_proxy.base_url + "/console/session", headers=signed.headers()).json()
    assert state["signed_in"] is True and state["csrf_token"] == signed.csrf
    assert state["expires_at"] > time.time() + 43000


def test_sign_in_needs_json_from_this_origin(admin_proxy: RunningProxy) -> None:
    url = admin_proxy.base_url + "/console/session"
    form = httpx.post(url, data={"admin_key": ADMIN_KEY})
    assert error_of(form, 415)["code"] == "unsupported_media_type"
    foreign = httpx.post(
        url, json={"admin_key": ADMIN_KEY}, headers={"Origin": "https://evil.example"}
    )
    assert error_of(foreign, 403)["code"] == "origin_not_allowed"
    assert "set-cookie" not in foreign.headers
    bad = httpx.post(url, json={"key": ADMIN_KEY})
    assert error_of(bad, 400)["param"] == "admin_key"


def test_the_cookie_is_secure_over_https(proxy_factory: Callable[..., RunningProxy]) -> None:
    # Behind a TLS-terminating proxy the proxy trusts (FORWARDED_ALLOW_IPS).
    running = proxy_factory(admin_key=ADMIN_KEY, forwarded_allow_ips="127.0.0.1")
    https = {"X-Forwarded-Proto": "https"}
    signed = sign_in(running, **https, Origin=f"https://127.0.0.1:{running.port}")
    assert "Secure" in [a.strip() for a in signed.set_cookie.split(";")]
    ok = overview(running, **signed.headers(**https, Origin=f"https://127.0.0.1:{running.port}"))
    assert ok.status_code == 200


def test_wrong_keys_are_rate_limited(proxy_factory: Callable[..., RunningProxy]) -> None:
    running = proxy_factory(admin_key=ADMIN_KEY)
    url = running.base_url + "/console/session"
    for _ in range(SIGN_IN_ATTEMPTS):
        assert httpx.post(url, json={"admin_key": "guess-guess-guess-1"}).status_code == 401
    limited = httpx.post(url, json={"admin_key": "guess-guess-guess-2"})
    assert error_of(limited, 429)["code"] == "rate_limit_exceeded"
    assert 1 <= int(limited.headers["retry-after"]) <= 60
    # Until the minute has passed, even the right key waits: guessing cannot go on.
    assert httpx.post(url, json={"admin_key": ADMIN_KEY}).status_code == 429
    # The admin API's own Bearer check is another door, and stays open to the right key.
    assert overview(running, **ADMIN).status_code == 200


# -- the session on the admin API ------------------------------------------------------------


def test_the_admin_api_takes_the_key_or_a_session_with_its_csrf_token(
    admin_proxy: RunningProxy,
) -> None:
    assert overview(admin_proxy, **ADMIN).status_code == 200
    wrong = overview(admin_proxy, Authorization="Bearer not-the-admin-key-0000")
    assert error_of(wrong, 401)["code"] == "invalid_api_key"
    assert error_of(overview(admin_proxy), 401)["code"] == "missing_api_key"
    api_key = overview(admin_proxy, Authorization=f"Bearer {API_KEY}")  # a client's key
    assert error_of(api_key, 401)["code"] == "invalid_api_key"

    signed = sign_in(admin_proxy)
    assert overview(admin_proxy, **signed.headers()).status_code == 200
    here = f"http://127.0.0.1:{admin_proxy.port}"
    assert overview(admin_proxy, **signed.headers(Origin=here)).status_code == 200
    same = signed.headers(**{"Sec-Fetch-Site": "same-origin"})
    assert overview(admin_proxy, **same).status_code == 200
    refusals = {
        "no token": signed.headers(csrf=False),
        "a wrong token": {**signed.headers(), "X-CSRF-Token": signed.csrf[:-2] + "xx"},
        "another site": signed.headers(**{"Sec-Fetch-Site": "cross-site"}),
    }
    for why, headers in refusals.items():
        error = error_of(overview(admin_proxy, **headers), 401)
        assert error["code"] == "csrf_failed", why
    # Another origin is refused before any key is looked at (CORS_ORIGINS lists none here).
    foreign = overview(admin_proxy, **signed.headers(Origin="https://evil.example"))
    assert error_of(foreign, 403)["code"] == "origin_not_allowed"


def test_a_forged_or_foreign_cookie_is_no_session(
    admin_proxy: RunningProxy, proxy_factory: Callable[..., RunningProxy]
) -> None:
    signed = sign_in(admin_proxy)
    payload, _, mac = signed.cookie.rpartition(".")
    version, issued, expires, session_id = payload.split(".")
    longer = f"{version}.{issued}.{int(expires) + 86400}.{session_id}.{mac}"
    for cookie in (f"{payload}.{mac[:-2]}AA", longer, "v1.1.2.3.4", "garbage"):
        headers = {"Cookie": f"{COOKIE}={cookie}", "X-CSRF-Token": signed.csrf}
        assert error_of(overview(admin_proxy, **headers), 401)["code"] == "missing_api_key"
    other = proxy_factory(admin_key="another-admin-key-7c0e9d2b")
    assert overview(other, **signed.headers()).status_code == 401


def test_sign_out_ends_the_session(admin_proxy: RunningProxy) -> None:
    signed = sign_in(admin_proxy)
    out = httpx.delete(admin_proxy.base_url + "/console/session", headers=signed.headers())
    assert out.status_code == 200 and out.json()["signed_in"] is False
    assert "Max-Age=0" in out.headers["set-cookie"]
    assert overview(admin_proxy, **signed.headers()).status_code == 401
    state = httpx.get(admin_proxy.base_url + "/console/session", headers=signed.headers())
    assert state.json()["signed_in"] is False


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    server = RedisServer()
    server.start()
    yield server
    server.close()


def test_a_session_works_on_every_replica_and_sign_out_reaches_them(
    proxy_factory: Callable[..., RunningProxy], redis_server: RedisServer
) -> None:
    first = proxy_factory(admin_key=ADMIN_KEY, redis_url=redis_server.url)
    second = proxy_factory(admin_key=ADMIN_KEY, redis_url=redis_server.url)
    wait_for(lambda: first.state.upstream.redis and first.state.upstream.redis.up, what="Redis")
    signed = sign_in(first)
    assert overview(second, **signed.headers()).status_code == 200  # no lookup needed
    httpx.delete(first.base_url + "/console/session", headers=signed.headers())
    wait_for(lambda: overview(second, **signed.headers()).status_code == 401,
             within=5, what="the other replica to learn of the sign-out")  # fmt: skip


# -- the playground's calls ------------------------------------------------------------------


def test_the_session_is_a_client_of_the_api(admin_proxy: RunningProxy, http: httpx.Client) -> None:
    signed = sign_in(admin_proxy)
    url = admin_proxy.v1 + "/chat/completions"
    answer = http.post(url, json=CHAT, headers=signed.headers())
    assert answer.status_code == 200
    assert answer.json()["choices"][0]["message"]["content"]
    # The cookie alone is no key (a page of another site could make the browser send it).
    assert error_of(http.post(url, json=CHAT, headers=signed.headers(csrf=False)), 401)
    foreign = signed.headers(**{"Sec-Fetch-Site": "cross-site"})
    assert http.post(url, json=CHAT, headers=foreign).status_code in (401, 403)


# -- GET /admin/overview and GET /admin/models ------------------------------------------------


def fingerprint(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()[:12]


def test_the_overview_shows_traffic_and_the_key_pool(
    proxy_factory: Callable[..., RunningProxy], http: httpx.Client
) -> None:
    # The revoked key first: the first request is refused on it, benches it and fails over.
    running = proxy_factory(admin_key=ADMIN_KEY, fal_key=f"{REVOKED_FAL_KEY},{FAL_KEY}",
                            api_key=API_KEY, key_auth_cooldown=600)  # fmt: skip
    client = {"Authorization": f"Bearer {API_KEY}"}
    for _ in range(4):
        answer = http.post(running.v1 + "/chat/completions", json=CHAT, headers=client)
        assert answer.status_code == 200
    bad = http.post(running.v1 + "/chat/completions", json={"model": "x", "messages": []},
                    headers=client)  # fmt: skip
    assert bad.status_code == 400
    response = overview(running, **ADMIN)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert not [s for s in SECRETS if s in response.text]
    body = response.json()
    traffic = body["traffic"]
    assert traffic["requests"] == 5 and traffic["requests_per_minute"] >= 5
    assert traffic["error_rate"] == pytest.approx(0.2)
    assert 0 < traffic["latency_p50_ms"] <= traffic["latency_p99_ms"]
    revoked, good = body["keys"]
    assert revoked["fingerprint"] == fingerprint(REVOKED_FAL_KEY)
    assert revoked["state"] == "benched" and revoked["bench_reason"] == "auth"
    assert time.time() + 500 < revoked["benched_until"] <= time.time() + 601
    assert good["fingerprint"] == fingerprint(FAL_KEY)
    assert good["state"] == "healthy" and good["benched_until"] is None
    assert good["limit"] is None and good["limit_learned"] is True  # auto, no 429 yet
    assert body["mode"] == "pool" and body["redis"] == "off"
    assert body["database"] == "up"  # the suite's proxies keep accounts in SQLite
    # The day's usage, from the database (written in the background, so soon, not at once).
    today = wait_for(
        lambda: (t := overview(running, **ADMIN).json()["today"]) and t["requests"] == 5 and t,
        within=15, what="the day's usage",
    )  # fmt: skip
    assert today["cost"] > 0


def test_the_overview_counts_only_client_traffic(admin_proxy: RunningProxy) -> None:
    before = overview(admin_proxy, **ADMIN).json()["traffic"]["requests"]
    for _ in range(3):
        httpx.get(admin_proxy.base_url + "/healthz")
        overview(admin_proxy, **ADMIN)
    assert overview(admin_proxy, **ADMIN).json()["traffic"]["requests"] == before


def test_models_lists_every_model_with_its_kind_route_and_app(
    proxy_factory: Callable[..., RunningProxy], http: httpx.Client
) -> None:
    running = proxy_factory(admin_key=ADMIN_KEY, model_routes="openai/*=openai")
    response = httpx.get(running.base_url + "/admin/models", headers=ADMIN)
    assert response.status_code == 200
    rows = {row["id"]: row for row in response.json()["data"]}
    signed = sign_in(running)  # with ADMIN_KEY set, /v1/ needs a key: the session is one
    listed = {
        m["id"] for m in http.get(running.v1 + "/models", headers=signed.headers()).json()["data"]
    }
    assert set(rows) == listed
    settings = running.state.settings
    expected = {
        "google/gemini-2.5-flash": ("chat", "/v1/chat/completions", "auto", settings.fal_chat_app),
        "openai/gpt-4.1": ("chat", "/v1/chat/completions", "openai", "openrouter/router/openai/v1"),
        "fal-ai/flux/dev": ("image", "/v1/images/generations", None, "fal-ai/flux/dev"),
        "dall-e-3": ("image", "/v1/images/generations", None, settings.fal_image_app),
        "fal-ai/flux-pro/kontext": ("edit", "/v1/images/edits", None, "fal-ai/flux-pro/kontext"),
        "whisper-1": (
            "transcription",
            "/v1/audio/transcriptions",
            None,
            settings.fal_transcribe_app,
        ),
        "fal-ai/wizper": ("transcription", "/v1/audio/transcriptions", None, "fal-ai/wizper"),
        "tts-1": ("speech", "/v1/audio/speech", None, settings.fal_speech_app),
    }
    for model, (kind, route, model_route, app) in expected.items():
        row = rows[model]
        assert (row["kind"], row["route"], row["model_route"], row["fal_app"]) == (
            kind, route, model_route, app,
        ), model  # fmt: skip
