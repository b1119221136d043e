"""`make screenshots`: every page of the console at a laptop's and a phone's size, in light
and dark, for docs/console.md.

Starts the fal simulator and a proxy (accounts in a throwaway SQLite file), gives it a few
virtual keys and some traffic through the openai SDK, then drives Debian's chromium over
every page. Run from the repository's root: `python -m tests.support.screenshots docs/console`.
"""

from __future__ import annotations

import contextlib
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import openai

from fal_openai_proxy.simulator import SimulatorConfig
from fal_openai_proxy.simulator.server import start_simulator_thread

from .browser import LAPTOP, PHONE, PageProblems, chromium, chromium_path
from .servers import ADMIN_KEY, FAL_KEY, FAL_KEY_2, RunningProxy, proxy_settings, start_proxy

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
PAGES = ("Overview", "Keys", "Usage", "Requests", "Models", "Playground")
SIZES = {"laptop": LAPTOP, "phone": PHONE}
MAX_HEIGHT = {"laptop": 1400, "phone": 1700}  # long pages are cut there
KEYS: list[dict[str, Any]] = [
    {"name": "alice-laptop", "max_budget": 0.002, "budget_period": "month", "rpm": 60},
    {"name": "ci-pipeline", "models": ["openai/*", "google/*"], "max_budget": 1},
    {"name": "batch-images", "models": ["fal-ai/flux/*", "dall-e-3"]},
    {"name": "open-webui", "expires_at": int(time.time()) + 30 * 86400},
]


def seed(running: RunningProxy) -> None:
    """Virtual keys, and traffic made with them (chats, images, one refused model)."""
    secrets = {}
    with httpx.Client(base_url=running.base_url, headers=ADMIN, timeout=30) as admin:
        for fields in KEYS:
            created = admin.post("/admin/keys", json=fields)
            created.raise_for_status()
            secrets[fields["name"]] = created.json()["key"]
        plan = [
            ("alice-laptop", "google/gemini-2.5-flash", 4),
            ("ci-pipeline", "openai/gpt-4.1", 3),
            ("open-webui", "anthropic/claude-sonnet-4.5", 5),
            ("open-webui", "google/gemini-2.5-pro", 2),
        ]
        for name, model, count in plan:
            client = openai.OpenAI(base_url=running.v1, api_key=secrets[name], max_retries=0)
            for n in range(count):
                # The simulator charges by the word: a long question costs a visible amount.
                question = f"Question {n}: " + "tell me more about lighthouses " * 60
                client.chat.completions.create(
                    model=model, messages=[{"role": "user", "content": question}]
                )
            client.close()
        images = openai.OpenAI(base_url=running.v1, api_key=secrets["batch-images"], max_retries=0)
        for prompt in ("a lighthouse", "a harbour at night", "a red kite"):
            images.images.generate(model="fal-ai/flux/schnell", prompt=prompt)
        # Refused: outside the key's models (a 403 in the log).
        with contextlib.suppress(openai.PermissionDeniedError):
            images.chat.completions.create(
                model="openai/gpt-4.1", messages=[{"role": "user", "content": "hi"}]
            )
        images.close()
        admin.patch(f"/admin/keys/{_key_id(admin, 'batch-images')}", json={"disabled": True})
        expected = sum(count for _, _, count in plan) + 4
        deadline = time.monotonic() + 30
        while len(admin.get("/admin/requests", params={"limit": 100}).json()["data"]) < expected:
            if time.monotonic() > deadline:
                raise RuntimeError("the usage records did not arrive")
            time.sleep(0.2)


def _key_id(admin: httpx.Client, name: str) -> str:
    keys = admin.get("/admin/keys").json()["data"]
    return str(next(k["id"] for k in keys if k["name"] == name))


def shoot(page: Page, path: Path, size: str) -> None:
    page.mouse.move(0, 0)  # no hover effect in the picture
    page.wait_for_timeout(300)  # transitions and the last paint
    height = min(MAX_HEIGHT[size], page.evaluate("document.documentElement.scrollHeight"))
    width = SIZES[size]["width"]
    page.screenshot(
        path=str(path), full_page=True, clip={"x": 0, "y": 0, "width": width, "height": height}
    )


def chat_in_playground(page: Page) -> None:
    page.get_by_label("Message").fill("Say hello to the console.")
    page.get_by_role("button", name="Send").click()
    page.wait_for_function(
        "() => document.querySelector('[aria-label=\"Response\"]').getAttribute('aria-busy')"
        " === 'false' && document.querySelector('.answer')?.textContent.length > 0"
    )


def take_all(browser: Browser, running: RunningProxy, out: Path) -> list[str]:
    problems: list[str] = []
    for size, viewport in SIZES.items():
        for scheme in ("light", "dark"):
            context = browser.new_context(
                viewport=viewport,
                color_scheme=scheme,  # type: ignore[arg-type]
                is_mobile=size == "phone",
                has_touch=size == "phone",
            )
            page = context.new_page()
            watch = PageProblems().watch(page)
            page.goto(running.base_url + "/console")
            page.get_by_label("Admin key").wait_for()
            shoot(page, out / f"signin-{size}-{scheme}.png", size)
            page.get_by_label("Admin key").fill(ADMIN_KEY)
            page.get_by_role("button", name="Sign in").click()
            page.get_by_role("button", name="Sign out").wait_for()
            for name in PAGES:
                page.goto(f"{running.base_url}/console#/{name.lower()}")
                page.get_by_role("heading", name=name, level=1).wait_for()
                page.wait_for_load_state("networkidle")
                if name == "Playground":
                    chat_in_playground(page)
                shoot(page, out / f"{name.lower()}-{size}-{scheme}.png", size)
            problems += [f"{size} {scheme}: {p}" for p in watch.all()]
            context.close()
    return problems


def main(argv: list[str]) -> int:
    out = Path(argv[0] if argv else "docs/console")
    out.mkdir(parents=True, exist_ok=True)
    path = chromium_path()
    if path is None:
        print("chromium is not installed: apt-get install chromium", file=sys.stderr)
        return 1
    sim = start_simulator_thread(SimulatorConfig(keys={FAL_KEY, FAL_KEY_2}, events=6))
    with tempfile.TemporaryDirectory() as folder:
        settings = proxy_settings(
            sim,
            admin_key=ADMIN_KEY,
            fal_key=f"{FAL_KEY},{FAL_KEY_2}",
            database_url=f"sqlite:///{folder}/screenshots.db",
            fal_api_url=sim.base_url + "/platform",  # fal's prices, as the simulator has them
            log_level="warning",
        )
        running = start_proxy(settings)
        try:
            seed(running)
            with chromium(path) as browser:
                problems = take_all(browser, running, out)
        finally:
            running.stop()
            sim.stop()
    for problem in problems:
        print(problem, file=sys.stderr)
    print(f"screenshots in {out}/")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
