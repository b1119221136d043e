"""README is the user's manual: every setting and endpoint must be in it."""

from __future__ import annotations

import re
from pathlib import Path

from fal_openai_proxy.app import create_app
from fal_openai_proxy.settings import Settings

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_every_setting_is_documented() -> None:
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", README, flags=re.MULTILINE))
    settings = {name.upper() for name in Settings.model_fields}
    assert settings - documented == set()
    assert documented - settings == set()


def test_every_endpoint_is_documented() -> None:
    app = create_app(Settings(_env_file=None))  # type: ignore[call-arg]
    for route in app.routes:  # type: ignore[attr-defined]
        path = route.path
        shown = path.replace("{model_id:path}", "{id}").replace("{response_id:path}", "{id}")
        method = "GET" if "GET" in route.methods else "POST"
        assert f"`{method} {shown}`" in README, path


def test_the_two_commands_come_first() -> None:
    first_block = README.split("```bash", 1)[1].split("```", 1)[0]
    assert [line.split("#")[0].strip() for line in first_block.strip().splitlines()] == [
        "make run",
        "make test",
    ]
