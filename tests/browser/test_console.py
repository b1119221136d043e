"""The console in a real browser (Debian's chromium through Playwright), found by the
accessible names its issue lists: sign-in, the key pool, the playground, and pages free of
errors under a strict Content-Security-Policy."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from pathlib import Path

import openai
import pytest

from ..support.browser import LAPTOP
from ..support.servers import FAL_KEY, FAL_KEY_2
from .conftest import Tab

PAGES = ("Overview", "Keys", "Usage", "Requests", "Models", "Playground")


def fingerprint(key: str) -> str:
    return "sha256:" + hashlib.sha256(key.encode()).hexdigest()[:12]


def test_sign_in_refuses_a_wrong_key_then_takes_the_right_one(tab: Tab) -> None:
    tab.open()
    page = tab.page
    tab.sign_in("not-the-admin-key-0000")
    page.get_by_role("alert").filter(has_text="Wrong admin key").wait_for()
    assert page.get_by_role("button", name="Sign out").count() == 0
    assert page.get_by_role("link", name="Keys").count() == 0
    tab.sign_in()
    page.get_by_role("button", name="Sign out").wait_for()
    for name in PAGES:
        assert page.get_by_role("link", name=name, exact=True).is_visible()
    (cookie,) = page.context.cookies()
    assert cookie["httpOnly"] is True and cookie["sameSite"] == "Strict"
    assert cookie["secure"] is False  # plain http here; see test_console_api.py for https
    # The key is gone from the page once used, and no script can read the session.
    assert page.get_by_label("Admin key").count() == 0
    assert page.evaluate("document.cookie") == ""
    page.get_by_role("button", name="Sign out").click()
    page.get_by_label("Admin key").wait_for()
    page.reload()
    page.get_by_label("Admin key").wait_for()  # signed out for good


def test_the_overview_shows_the_key_pool(tab: Tab) -> None:
    tab.signed_in()
    page = tab.page
    table = page.get_by_role("table", name="The server's fal keys by fingerprint")
    for key in (FAL_KEY, FAL_KEY_2):
        row = table.get_by_role("row").filter(has_text=fingerprint(key))
        row.wait_for()
        assert "Healthy" in row.inner_text()
    assert FAL_KEY not in page.content() and FAL_KEY_2 not in page.content()
    assert page.get_by_text("Requests per minute").is_visible()
    # Live: it refreshes by itself, without a reload.
    page.get_by_text(re.compile(r"^Live: updated")).wait_for()
    first = page.get_by_text(re.compile(r"^Live: updated")).inner_text()
    page.wait_for_function(
        "text => ![...document.querySelectorAll('p')].some(p => p.textContent === text)",
        arg=first,
        timeout=15_000,
    )


def test_a_chat_streams_into_the_playground_in_pieces(tab: Tab) -> None:
    tab.signed_in()
    tab.go("Playground")
    page = tab.page
    page.get_by_role("tab", name="Chat").click()
    page.get_by_label("Model").select_option("google/gemini-2.5-flash")
    response = page.get_by_role("region", name="Response")
    # Every text the answer had as it grew, recorded by the page itself.
    page.evaluate("""() => {
        window.seen = [];
        const region = document.querySelector('[aria-label="Response"]');
        new MutationObserver(() => {
            const answers = region.querySelectorAll('.answer');
            const last = answers[answers.length - 1];
            if (last) window.seen.push(last.textContent);
        }).observe(region, {subtree: true, childList: true, characterData: true});
    }""")
    message = '[[sim {"interval_ms": 150, "events": 6}]] Tell me about lighthouses.'
    page.get_by_label("Message").fill(message)
    page.get_by_role("button", name="Send").click()
    stop = page.get_by_role("button", name="Stop")
    page.wait_for_function("() => document.querySelector('.answer')?.textContent.length > 0")
    assert stop.is_enabled()  # while it streams
    page.wait_for_function("() => !document.querySelector('[aria-label=\"Response\"]')"
                           ".getAttribute('aria-busy')?.includes('true')")  # fmt: skip
    assert stop.is_disabled()
    seen = [text for text in page.evaluate("window.seen") if text]
    final = seen[-1]
    assert final and final in response.inner_text()
    growth = list(dict.fromkeys(seen))  # the distinct texts, in order
    assert len(growth) >= 3, growth  # it arrived in pieces, not at once
    assert all(final.startswith(text) for text in growth)
    assert not tab.problems.all()


def test_stop_ends_a_stream(tab: Tab) -> None:
    tab.signed_in()
    tab.go("Playground")
    page = tab.page
    page.get_by_label("Message").fill('[[sim {"interval_ms": 400, "events": 30}]] Go on.')
    page.get_by_role("button", name="Send").click()
    page.wait_for_function("() => document.querySelector('.answer')?.textContent.length > 0")
    page.get_by_role("button", name="Stop").click()
    page.get_by_role("region", name="Response").get_by_text("Stopped.").wait_for()
    assert page.get_by_role("button", name="Send").is_enabled()


def test_an_image_is_generated_and_shown(tab: Tab) -> None:
    tab.signed_in()
    tab.go("Playground")
    page = tab.page
    page.get_by_role("tab", name="Image").click()
    page.get_by_label("Prompt").fill("A lighthouse at dawn")
    page.get_by_role("button", name="Generate").click()
    image = page.get_by_role("region", name="Result").get_by_role("img")
    image.wait_for()
    assert image.evaluate("img => img.complete && img.naturalWidth > 0 && img.naturalHeight > 0")
    assert (image.get_attribute("alt") or "").endswith("A lighthouse at dawn")
    assert not tab.problems.all()


def test_speech_is_played_in_the_page(tab: Tab) -> None:
    tab.signed_in()
    tab.go("Playground")
    page = tab.page
    page.get_by_role("tab", name="Speech").click()
    page.get_by_label("Text").fill("Hello from the console.")
    page.get_by_role("button", name="Speak").click()
    audio = page.get_by_role("region", name="Result").locator("audio")
    audio.wait_for()
    page.wait_for_function("a => a.readyState >= 1 && a.duration > 0", arg=audio.element_handle())
    assert not tab.problems.all()


def test_a_file_is_transcribed(tab: Tab) -> None:
    from ..support.media import make_wav

    tab.signed_in()
    tab.go("Playground")
    page = tab.page
    page.get_by_role("tab", name="Transcription").click()
    page.get_by_label("Audio file").set_input_files(
        {"name": "talk.wav", "mimeType": "audio/wav", "buffer": make_wav(1.0)}
    )
    page.get_by_role("button", name="Transcribe").click()
    result = page.get_by_role("region", name="Result")
    result.locator(".transcription").wait_for()
    assert result.inner_text().strip()
    assert not tab.problems.all()


def test_the_models_page_lists_kinds_routes_and_apps(tab: Tab) -> None:
    tab.signed_in()
    tab.go("Models")
    page = tab.page
    row = page.get_by_role("row").filter(
        has=page.get_by_role("rowheader", name="whisper-1", exact=True)
    )
    row.wait_for()
    assert "Transcription" in row.inner_text() and "/v1/audio/transcriptions" in row.inner_text()
    page.get_by_label("Kind").select_option("speech")
    assert page.get_by_role("rowheader", name="whisper-1", exact=True).count() == 0
    assert page.get_by_role("rowheader", name="tts-1", exact=True).count() == 1


def test_every_page_is_clean_under_a_strict_policy(tab: Tab) -> None:
    response = tab.open()
    policy = response.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert "unsafe-eval" not in policy and response.headers["x-frame-options"] == "DENY"
    tab.sign_in()
    tab.page.get_by_role("button", name="Sign out").wait_for()
    for name in PAGES:
        tab.go(name)
        tab.page.wait_for_load_state("networkidle")
        assert not tab.problems.all(), (name, tab.problems.all())
        width = tab.page.evaluate("document.documentElement.scrollWidth")
        assert width <= LAPTOP["width"], (name, width)  # fits a laptop: no sideways scroll
    # Keyboard only: focus is on the page's heading; back from it, the navigation, whose
    # links Enter follows; and the first stop of the whole page skips to it.
    page = tab.page
    active = "document.activeElement.textContent"
    assert page.evaluate("document.activeElement.tagName") == "H1"
    page.keyboard.press("Shift+Tab")
    assert page.evaluate(active) == "Playground"
    page.keyboard.press("Shift+Tab")
    assert page.evaluate(active) == "Models"
    page.keyboard.press("Enter")
    page.get_by_role("heading", name="Models", level=1).wait_for()
    assert page.evaluate("document.activeElement.outerHTML").startswith("<h1")
    first = page.evaluate(
        "[...document.querySelectorAll('a[href], button, input, select, textarea')]"
        ".find(e => e.tabIndex >= 0 && !e.closest('[hidden]')).textContent"
    )
    assert first == "Skip to the page"
    assert not tab.problems.all()


def usd(tab: Tab, value: float) -> str:
    """`value` as the page writes dollars (its own formatter, in the browser's locale)."""
    script = "async v => (await import('./console/js/dom.js')).usd(v)"
    return str(tab.page.evaluate(script, value))


def test_a_key_made_in_the_page_serves_the_sdk_until_revoked_there(
    tab: Tab, make_client: Callable[..., openai.OpenAI]
) -> None:
    tab.signed_in()
    tab.go("Keys")
    page = tab.page
    page.get_by_role("button", name="Create key").click()
    page.get_by_label("Name").fill("browser-test")
    page.get_by_label("Models").fill("google/*")
    page.get_by_label("Budget (USD)").fill("5")
    page.get_by_label("Budget period").select_option("month")
    page.get_by_label("Requests per minute").fill("100")
    page.get_by_label("Expires").fill("2099-01-31T12:00")
    page.get_by_role("button", name="Create", exact=True).click()
    secret_field = page.get_by_label("New key")
    secret = secret_field.input_value()
    assert secret.startswith("sk-fal-") and secret_field.get_attribute("readonly") is not None
    page.get_by_role("button", name="Done").click()
    assert secret not in page.content()  # shown once, then gone from the page
    row = page.get_by_role("row").filter(has_text="browser-test")
    assert f"sk-fal-…{secret[-4:]}" in row.inner_text()

    client = make_client(tab.proxy, api_key=secret)
    raw = client.chat.completions.with_raw_response.create(
        model="google/gemini-2.5-flash", messages=[{"role": "user", "content": "Hello"}]
    )
    assert raw.parse().choices[0].message.content
    request_id = raw.headers["x-request-id"]
    with pytest.raises(openai.PermissionDeniedError):  # the key's models, set in the page
        client.chat.completions.create(
            model="openai/gpt-4.1", messages=[{"role": "user", "content": "Hello"}]
        )

    # The request in Requests (usage is written in the background: filter until it is there).
    tab.go("Requests")
    page.get_by_label("Key").select_option(label="browser-test")
    page.get_by_label("Model").fill("google/gemini-2.5-flash")
    found = page.get_by_role("row").filter(has_text="google/gemini-2.5-flash")
    for _ in range(50):
        page.get_by_role("button", name="Filter").click()
        page.wait_for_load_state("networkidle")
        if found.count():
            break
        page.wait_for_timeout(200)
    assert found.count() == 1
    found.get_by_role("button").click()
    details = page.get_by_role("dialog")
    assert request_id in details.inner_text()
    cost_text = details.get_by_role("definition").nth(
        [t.strip() for t in details.get_by_role("term").all_inner_texts()].index("cost")
    )
    cost = float(cost_text.inner_text())
    assert cost > 0
    details.get_by_role("button", name="Close").click()
    assert usd(tab, cost) in found.inner_text()

    # Its cost in Usage: the chart of cost per key, its numbers, and the CSV.
    tab.go("Usage")
    figure = page.get_by_role("figure").filter(has_text="Cost per key")
    figure.get_by_role("img").wait_for()
    assert "browser-test" in (figure.get_by_role("img").get_attribute("aria-label") or "")
    figure.get_by_text("The numbers").click()
    numbers = figure.get_by_role("row").filter(has_text="browser-test")
    assert usd(tab, cost) in numbers.inner_text()
    with page.expect_download() as download:
        page.get_by_role("button", name="Download CSV").click()
    csv = Path(download.value.path()).read_text()
    line = next(row for row in csv.splitlines() if row.startswith("key,") and "browser-test" in row)
    assert float(line.split(",")[-1]) == pytest.approx(cost)

    per_model = page.get_by_role("figure").filter(has_text="Cost per model")
    chart = per_model.get_by_role("img").get_attribute("aria-label") or ""
    assert "google/gemini-2.5-flash" in chart

    # Its spend against its budget in Keys, then revoked in the page: the SDK gets 401.
    tab.go("Keys")
    row = page.get_by_role("row").filter(has_text="browser-test")
    assert f"{usd(tab, cost)} of {usd(tab, 5)} a month" in row.inner_text()
    row.get_by_role("button", name="Disable").click()
    row.get_by_role("button", name="Enable").wait_for()
    with pytest.raises(openai.AuthenticationError):
        client.chat.completions.create(
            model="google/gemini-2.5-flash", messages=[{"role": "user", "content": "Hello"}]
        )
    row.get_by_role("button", name="Delete").click()
    row.get_by_role("button", name="Confirm").click()
    page.get_by_role("row").filter(has_text="browser-test").wait_for(state="detached")
    with pytest.raises(openai.AuthenticationError):
        client.models.list()
    assert not tab.problems.all(), tab.problems.all()
