"""A chromium for the console's tests, and a page in it that records what went wrong.

Every response the browser gets goes to the suite's secret audit too (`recorder.bodies`)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import pytest

from ..support.browser import LAPTOP, PageProblems, chromium, require_chromium
from ..support.schema import Recorder
from ..support.servers import ADMIN_KEY, FAL_KEY, FAL_KEY_2, RunningProxy

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page, Response


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    path = require_chromium()
    with chromium(path) as running:
        yield running


@pytest.fixture(scope="module")
def console_proxy(proxy_factory: Callable[..., RunningProxy]) -> RunningProxy:
    """A proxy with the admin key and two fal keys."""
    return proxy_factory(admin_key=ADMIN_KEY, fal_key=f"{FAL_KEY},{FAL_KEY_2}")


class Tab:
    """A browser tab on the console, and what went wrong in it."""

    def __init__(self, page: Page, proxy: RunningProxy, problems: PageProblems) -> None:
        self.page = page
        self.proxy = proxy
        self.problems = problems

    def open(self) -> Response:
        response = self.page.goto(self.proxy.base_url + "/console")
        assert response is not None and response.status == 200
        return response

    def sign_in(self, key: str = ADMIN_KEY) -> None:
        self.page.get_by_label("Admin key").fill(key)
        self.page.get_by_role("button", name="Sign in").click()

    def signed_in(self) -> None:
        self.open()
        self.sign_in()
        self.page.get_by_role("button", name="Sign out").wait_for()

    def go(self, name: str) -> None:
        self.page.get_by_role("link", name=name, exact=True).click()
        self.page.get_by_role("heading", name=name, level=1).wait_for()


@pytest.fixture
def new_tab(browser: Browser, recorder: Recorder) -> Iterator[Callable[..., Tab]]:
    """Tabs on any proxy, each in its own browser context (its own cookies), with options
    of `Browser.new_context` (viewport, color_scheme, permissions)."""
    contexts: list[BrowserContext] = []

    def audit(response: Response) -> None:
        recorder.bodies.append(str(response.headers).encode())
        body = b""
        with contextlib.suppress(Exception):  # a redirect or an aborted stream has no body
            body = response.body()
        request = response.request
        if request.method == "POST" and response.status == 201 and "/admin/keys" in request.url:
            # The one answer that carries a virtual key's secret: audited everywhere else.
            secret = json.loads(body)["key"]
            recorder.virtual_keys.append(secret)
            body = body.replace(secret.encode(), b"<shown once>")
        recorder.bodies.append(body)

    def make(proxy: RunningProxy, **options: Any) -> Tab:
        options.setdefault("viewport", LAPTOP)
        context = browser.new_context(**options)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(15_000)
        problems = PageProblems().watch(page)
        page.on("response", audit)
        return Tab(page, proxy, problems)

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def tab(new_tab: Callable[..., Tab], console_proxy: RunningProxy) -> Tab:
    return new_tab(console_proxy)
