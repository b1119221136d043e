"""The console in a real browser (Debian's chromium through Playwright), found by the
accessible names its issue lists: sign-in, the key pool, the playground, and pages free of
errors under a strict Content-Security-Policy."""

from __future__ import annotations

import hashlib
import re

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
    # Keyboard only: the first Tab reaches "Skip to the page", then the navigation.
    tab.page.reload()
    tab.page.get_by_role("heading", name="Overview", level=1).wait_for()
    tab.page.locator("body").focus()
    tab.page.keyboard.press("Tab")
    assert tab.page.evaluate("document.activeElement.textContent") == "Skip to the page"
    assert not tab.problems.all()
