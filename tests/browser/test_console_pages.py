"""Each console page's own features in chromium, beyond a key's life (test_console.py): the
key pool benching a key live and each key's learned or fixed limit, a key copied, edited and
deleted only when confirmed, the request log's filters and pages, the usage range, reasoning
shown apart, the sign-in's limits and its end, and every page on a phone in light and dark."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest

from fal_openai_proxy.simulator.server import SimulatorThread

from ..support.browser import PHONE
from ..support.servers import ADMIN_KEY, API_KEY, FAL_KEY, FAL_KEY_2, REVOKED_FAL_KEY, RunningProxy
from .conftest import Tab
from .test_console import PAGES, fingerprint

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
CHAT = {"model": "google/gemini-2.5-flash", "messages": [{"role": "user", "content": "Hello"}]}


def rows(tab: Tab, caption: str) -> list[str]:
    """The texts of a table's body rows (the table found by its caption)."""
    table = tab.page.get_by_role("table", name=caption)
    return [text for text in table.locator("tbody tr").all_inner_texts()]


def create_key(http: httpx.Client, proxy: RunningProxy, **fields: Any) -> dict[str, Any]:
    response = http.post(proxy.base_url + "/admin/keys", json=fields, headers=ADMIN)
    assert response.status_code == 201, response.text
    created: dict[str, Any] = response.json()
    return created


def logged(http: httpx.Client, proxy: RunningProxy, key_id: str, count: int) -> None:
    """Wait until the request log holds `count` requests of a key (written in the
    background, after each request ends)."""
    url = f"{proxy.base_url}/admin/requests?key_id={key_id}&limit=100"
    deadline = time.monotonic() + 20
    while len(http.get(url, headers=ADMIN).json()["data"]) < count:
        assert time.monotonic() < deadline, f"{count} requests of {key_id} never logged"
        time.sleep(0.1)


def test_the_overview_benches_a_refused_fal_key_live(
    new_tab: Callable[..., Tab], proxy_factory: Callable[..., RunningProxy], http: httpx.Client
) -> None:
    running = proxy_factory(admin_key=ADMIN_KEY, fal_key=f"{REVOKED_FAL_KEY},{FAL_KEY}",
                            api_key=API_KEY, key_auth_cooldown=600)  # fmt: skip
    tab = new_tab(running)
    tab.signed_in()
    page = tab.page
    caption = "The server's fal keys by fingerprint"
    page.get_by_role("table", name=caption).wait_for()
    revoked = page.get_by_role("row").filter(has_text=fingerprint(REVOKED_FAL_KEY))
    assert "Healthy" in revoked.inner_text()
    services = page.get_by_role("region", name="Services")
    assert re.search(r"Redis\s+Not configured", services.inner_text())
    assert re.search(r"Database\s+Up", services.inner_text())
    page.evaluate("window.notReloaded = true")

    # fal refuses the first key: the proxy benches it and answers from the other.
    client = {"Authorization": f"Bearer {API_KEY}"}
    assert http.post(running.v1 + "/chat/completions", json=CHAT, headers=client).status_code == 200
    revoked.filter(has_text="Benched until").wait_for(timeout=15_000)  # the next refresh
    assert "refused by fal" in revoked.inner_text()
    good = page.get_by_role("row").filter(has_text=fingerprint(FAL_KEY))
    assert "Healthy" in good.inner_text() and "None learned yet" in good.inner_text()
    traffic = page.get_by_role("region", name="Traffic")
    assert re.search(r"Requests per minute\s+1\b", traffic.inner_text()), traffic.inner_text()
    assert page.evaluate("window.notReloaded") is True  # live, not reloaded
    assert REVOKED_FAL_KEY not in page.content() and FAL_KEY not in page.content()
    assert not tab.problems.all(), tab.problems.all()


ACCOUNT_LIMIT = 4  # fal's concurrency limit for the simulator's account (test_key_limits.py)


@pytest.fixture
def account_limit(sim: SimulatorThread) -> Iterator[None]:
    sim.state.config.key_concurrency = ACCOUNT_LIMIT
    yield
    sim.state.config.key_concurrency = None


def overrun(running: RunningProxy, count: int = 32) -> None:
    """`count` slow streams at once, more than fal's account takes: fal answers 429s and the
    proxy learns the key's limit (every stream still completes)."""
    slow = '[[sim {"latency_ms": 50, "events": 3, "interval_ms": 10}]] limits'
    body = {**CHAT, "messages": [{"role": "user", "content": slow}], "stream": True}

    def one(_: int) -> None:
        with httpx.stream("POST", running.v1 + "/chat/completions", json=body, timeout=60,
                          headers={"Authorization": f"Bearer {API_KEY}"}) as answer:  # fmt: skip
            assert answer.status_code == 200
            assert b"data: [DONE]" in answer.read()

    with ThreadPoolExecutor(count) as pool:
        list(pool.map(one, range(count)))


@pytest.mark.usefixtures("account_limit")
def test_the_overview_shows_each_key_s_learned_or_fixed_limit(
    new_tab: Callable[..., Tab], proxy_factory: Callable[..., RunningProxy]
) -> None:
    learning = proxy_factory(admin_key=ADMIN_KEY, api_key=API_KEY, fal_key=FAL_KEY_2)
    overrun(learning)
    learned = httpx.get(learning.base_url + "/admin/overview", headers=ADMIN).json()["keys"][0]
    assert learned["limit_learned"] is True and 1 <= learned["limit"] <= ACCOUNT_LIMIT + 2
    tab = new_tab(learning)
    tab.signed_in()
    row = tab.page.get_by_role("row").filter(has_text=fingerprint(FAL_KEY_2))
    row.wait_for()
    assert f"{learned['limit']} (learned)" in row.inner_text()

    assert not tab.problems.all(), tab.problems.all()

    fixed = new_tab(proxy_factory(admin_key=ADMIN_KEY, fal_key=FAL_KEY_2, fal_key_concurrency=3))
    fixed.signed_in()
    row = fixed.page.get_by_role("row").filter(has_text=fingerprint(FAL_KEY_2))
    row.wait_for()
    assert "3 (fixed)" in row.inner_text()
    assert not fixed.problems.all(), fixed.problems.all()


def test_a_key_is_copied_edited_and_deleted_only_when_confirmed(
    new_tab: Callable[..., Tab], console_proxy: RunningProxy, http: httpx.Client
) -> None:
    tab = new_tab(console_proxy, permissions=["clipboard-read", "clipboard-write"])
    tab.signed_in()
    tab.go("Keys")
    page = tab.page
    page.get_by_role("button", name="Create key").click()
    page.get_by_label("Name").fill("edit-me")
    page.get_by_label("Budget (USD)").fill("2")
    page.get_by_label("Budget period").select_option("day")
    page.get_by_label("Requests per minute").fill("0")  # refused in the page, naming why
    page.get_by_role("button", name="Create", exact=True).click()
    page.get_by_role("alert").filter(has_text="Requests per minute is a whole number").wait_for()
    page.get_by_label("Requests per minute").fill("30")
    page.get_by_role("button", name="Create", exact=True).click()
    secret = page.get_by_label("New key").input_value()
    page.get_by_role("button", name="Copy").click()
    page.get_by_role("button", name="Copied").wait_for()
    assert page.evaluate("navigator.clipboard.readText()") == secret
    page.get_by_role("button", name="Done").click()

    row = page.get_by_role("row").filter(has_text="edit-me")
    assert "of $2.00 a day" in row.inner_text() and "30" in row.inner_text()
    row.get_by_role("button", name="Edit").click()
    dialog = page.get_by_role("dialog")
    assert dialog.get_by_label("Name").input_value() == "edit-me"  # the form starts filled
    dialog.get_by_label("Models").fill("openai/*, google/gemini-2.5-flash")
    dialog.get_by_label("Requests per minute").fill("7")
    dialog.get_by_label("Budget period").select_option("week")
    dialog.get_by_role("button", name="Save").click()
    dialog.wait_for(state="detached")
    row.filter(has_text="of $2.00 a week").wait_for()
    assert "openai/*, google/gemini-2.5-flash" in row.inner_text()
    (stored,) = [
        k for k in http.get(console_proxy.base_url + "/admin/keys", headers=ADMIN).json()["data"]
        if k["name"] == "edit-me"
    ]  # fmt: skip
    assert stored["rpm"] == 7 and stored["budget_period"] == "week"
    assert stored["models"] == ["openai/*", "google/gemini-2.5-flash"]

    # Delete asks first; Cancel keeps the key.
    row.get_by_role("button", name="Delete").click()
    row.get_by_role("button", name="Cancel").click()
    row.get_by_role("button", name="Edit").wait_for()
    row.get_by_role("button", name="Delete").click()
    row.get_by_role("button", name="Confirm").click()
    row.wait_for(state="detached")
    keys = http.get(console_proxy.base_url + "/admin/keys", headers=ADMIN).json()["data"]
    assert stored["id"] not in [k["id"] for k in keys]
    assert secret not in page.content()
    assert not tab.problems.all(), tab.problems.all()


def test_values_are_shown_as_text_never_as_markup(
    tab: Tab, console_proxy: RunningProxy, http: httpx.Client
) -> None:
    name = '<img src=x id=injected onerror="window.pwned=1">'
    create_key(http, console_proxy, name=name)
    tab.signed_in()
    tab.go("Keys")
    page = tab.page
    page.get_by_role("row").filter(has_text=name).wait_for()  # the name, as its letters
    assert page.locator("#injected").count() == 0
    assert page.evaluate("window.pwned") is None
    assert not tab.problems.all(), tab.problems.all()


def test_the_request_log_filters_and_pages(
    tab: Tab, console_proxy: RunningProxy, http: httpx.Client
) -> None:
    key = create_key(http, console_proxy, name="pager", models=["google/*"])
    auth = {"Authorization": f"Bearer {key['key']}"}
    for _ in range(26):
        assert http.post(console_proxy.v1 + "/chat/completions", json=CHAT,
                         headers=auth).status_code == 200  # fmt: skip
    refused = {**CHAT, "model": "openai/gpt-4.1"}  # outside the key's models: 403
    assert http.post(console_proxy.v1 + "/chat/completions", json=refused,
                     headers=auth).status_code == 403  # fmt: skip
    logged(http, console_proxy, key["id"], 27)

    tab.signed_in()
    tab.go("Requests")
    page = tab.page
    caption = "Requests, newest first; open one for its details"
    info = page.locator(".pager .hint")
    page.get_by_label("Per page").select_option("25")
    page.get_by_label("Key").select_option(label="pager")
    info.filter(has_text="Page 1: 25 requests").wait_for()
    first_page = rows(tab, caption)
    assert all("pager" in row for row in first_page)
    assert "openai/gpt-4.1" in first_page[0]  # newest first
    page.get_by_role("button", name="Older").click()
    info.filter(has_text="Page 2: 2 requests").wait_for()
    assert page.get_by_role("button", name="Older").is_disabled()
    assert all("google/gemini-2.5-flash" in row for row in rows(tab, caption))
    page.get_by_role("button", name="Newer").click()
    info.filter(has_text="Page 1: 25 requests").wait_for()
    assert rows(tab, caption) == first_page

    page.get_by_label("Status").fill("403")
    page.get_by_role("button", name="Filter").click()
    info.filter(has_text="Page 1: 1 requests").wait_for()
    (only,) = rows(tab, caption)
    assert "openai/gpt-4.1" in only and "403" in only

    page.get_by_label("Status").fill("")
    page.get_by_label("Since").fill("2099-01-01T00:00")  # the change filters by itself
    page.get_by_text("No request matches").wait_for()
    page.get_by_label("Since").fill("2020-01-01T00:00")
    info.filter(has_text="Page 1: 25 requests").wait_for()
    assert not tab.problems.all(), tab.problems.all()


def test_usage_covers_the_chosen_days(tab: Tab) -> None:
    tab.signed_in()
    tab.go("Usage")
    page = tab.page
    per_day = page.get_by_role("figure").filter(has_text="Cost per day")
    days = per_day.locator("tbody tr")
    per_day.wait_for()
    assert days.count() == 30  # the default: the last 30 UTC days, every one shown
    page.get_by_label("Range", exact=True).select_option(label="Last 7 days")
    page.wait_for_function("() => document.querySelector('figure tbody').rows.length === 7")
    page.get_by_label("From", exact=True).fill("2026-01-01")
    page.get_by_label("To", exact=True).fill("2026-01-03")
    assert page.get_by_label("Range", exact=True).input_value() == "custom"
    page.wait_for_function("() => document.querySelector('figure tbody').rows.length === 3")
    assert days.locator("th").all_text_contents() == [
        "2026-01-01", "2026-01-02", "2026-01-03",
    ]  # fmt: skip
    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    assert download.value.suggested_filename == "usage-2026-01-01-to-2026-01-03.csv"
    page.get_by_label("From", exact=True).fill("2026-01-05")  # after the last day
    page.get_by_role("alert").filter(has_text="Choose a first day on or before").wait_for()
    assert not tab.problems.all(), tab.problems.all()


def test_reasoning_is_shown_apart_from_the_answer(tab: Tab) -> None:
    tab.signed_in()
    tab.go("Playground")
    page = tab.page
    page.get_by_label("Model").select_option("google/gemini-2.5-flash")
    page.get_by_label("Ask for reasoning").check()
    page.get_by_label("Message").fill('[[sim {"reasoning_text": "Weighing the tides"}]] Why?')
    page.get_by_role("button", name="Send").click()
    response = page.get_by_role("region", name="Response")
    thoughts = response.get_by_role("group").filter(has_text="Reasoning")
    thoughts.get_by_text("Weighing the tides").wait_for()
    response.locator(".usage").wait_for()  # the stream is over: its usage came last
    answer = response.locator(".answer").inner_text()
    assert answer and "Weighing the tides" not in answer
    assert not tab.problems.all(), tab.problems.all()


def test_the_playground_answers_as_a_virtual_key_s_client_is_answered(
    tab: Tab, console_proxy: RunningProxy, http: httpx.Client
) -> None:
    key = create_key(http, console_proxy, name="chat-only", models=["google/*"])
    tab.signed_in()
    tab.go("Playground")
    page = tab.page
    page.get_by_label("API key (optional)").fill(key["key"])
    page.get_by_role("tab", name="Image").click()
    page.get_by_label("Prompt").fill("A lighthouse at dawn")
    page.get_by_role("button", name="Generate").click()
    refusal = page.get_by_role("region", name="Result").get_by_role("alert")
    refusal.filter(has_text="This key may not use the model").wait_for()
    assert tab.problems.statuses and all(s.startswith("403 ") for s in tab.problems.statuses)
    tab.problems.clear()
    page.get_by_role("tab", name="Chat").click()
    page.get_by_label("Message").fill("Hello as chat-only")
    page.get_by_role("button", name="Send").click()
    page.get_by_role("region", name="Response").locator(".usage").wait_for()
    logged(http, console_proxy, key["id"], 2)  # both made with the key, not the session
    assert key["key"] not in page.content()  # typed in a password field: never in the DOM
    assert not tab.problems.all(), tab.problems.all()


def test_without_admin_key_the_page_says_how_to_set_it(
    new_tab: Callable[..., Tab], proxy: RunningProxy
) -> None:
    tab = new_tab(proxy)  # the suite's default proxy has no ADMIN_KEY
    tab.open()
    page = tab.page
    page.get_by_role("heading", name="Set ADMIN_KEY to use the console").wait_for()
    assert "ADMIN_KEY=" in page.get_by_role("code").inner_text()
    assert page.get_by_label("Admin key").count() == 0
    assert page.get_by_role("link", name="Keys").count() == 0
    assert not tab.problems.all(), tab.problems.all()


def test_wrong_keys_are_rate_limited_in_the_page(
    new_tab: Callable[..., Tab], proxy_factory: Callable[..., RunningProxy]
) -> None:
    tab = new_tab(proxy_factory(admin_key=ADMIN_KEY))  # its own: the limit is per address
    tab.open()
    page = tab.page
    alert = page.get_by_role("alert")
    for attempt in range(5):
        tab.sign_in(f"wrong-admin-key-{attempt:08d}")
        alert.filter(has_text="Wrong admin key").wait_for()
        page.get_by_role("button", name="Sign in").wait_for()
        page.wait_for_function("() => !document.querySelector('button[type=submit]').disabled")
    tab.sign_in("wrong-admin-key-again")
    alert.filter(has_text="Too many wrong admin keys").wait_for()
    tab.sign_in()  # for the rest of the minute, even the right key
    alert.filter(has_text="Too many wrong admin keys").wait_for()
    assert page.get_by_role("button", name="Sign out").count() == 0


def test_a_session_ended_elsewhere_takes_the_page_back_to_sign_in(tab: Tab) -> None:
    tab.signed_in()  # on the overview, which refreshes itself
    other = tab.page.context.new_page()  # the same browser, the same session
    other.goto(tab.proxy.base_url + "/console")
    other.get_by_role("button", name="Sign out").click()
    other.get_by_label("Admin key").wait_for()
    tab.page.get_by_label("Admin key").wait_for(timeout=15_000)
    assert tab.page.get_by_role("link", name="Keys").count() == 0


@pytest.mark.parametrize("scheme", ["light", "dark"])
def test_every_page_fits_a_phone(
    new_tab: Callable[..., Tab], console_proxy: RunningProxy, scheme: str
) -> None:
    tab = new_tab(console_proxy, viewport=PHONE, color_scheme=scheme)
    tab.signed_in()
    page = tab.page
    background = "getComputedStyle(document.body).backgroundColor"
    for name in PAGES:
        tab.go(name)
        page.wait_for_load_state("networkidle")
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= PHONE["width"], (name, width)  # nothing scrolls sideways
        for link in PAGES:
            assert page.get_by_role("link", name=link, exact=True).is_visible()
        red, green, blue = map(int, re.findall(r"\d+", page.evaluate(background))[:3])
        light = (red + green + blue) / 3 > 128
        assert light is (scheme == "light"), (name, page.evaluate(background))
    hidden_tabs = page.evaluate("""() => {
        const list = document.querySelector('[role=tablist]').getBoundingClientRect();
        return [...document.querySelectorAll('[role=tab]')]
            .filter(tab => tab.getBoundingClientRect().right > list.right + 0.5)
            .map(tab => tab.textContent);
    }""")
    assert hidden_tabs == []  # the playground's tabs all show, none cut off
    assert not tab.problems.all(), tab.problems.all()
