"""README and docs/ are the user's manual: every setting and endpoint must be in them."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from fal_openai_proxy.app import create_app
from fal_openai_proxy.settings import Settings
from fal_openai_proxy.settings_doc import markdown

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
CONFIGURATION = (ROOT / "docs" / "configuration.md").read_text()


def test_every_setting_is_documented() -> None:
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", CONFIGURATION, flags=re.MULTILINE))
    settings = {name.upper() for name in Settings.model_fields}
    assert settings - documented == set()
    assert documented - settings == set()


def test_every_setting_has_a_description() -> None:
    assert [n for n, f in Settings.model_fields.items() if not f.description] == []


def test_configuration_page_is_generated_from_the_settings() -> None:
    assert markdown() == CONFIGURATION, "docs/configuration.md is stale: run `make docs`"


def test_readme_links_the_docs() -> None:
    for page in ("configuration", "deployment", "clients", "troubleshooting", "architecture"):
        assert f"(docs/{page}.md)" in README, page
        assert (ROOT / "docs" / f"{page}.md").is_file(), page


ERROR_CODE_PATTERNS = (
    r'code="(\w+)"',  # ProxyError(..., code="...")
    r'code = "(\w+)"',
    r'"code": "(\w+)"',  # in-band stream errors
    r'param,\s*"(\w+)",?\s*\)',  # invalid_request(message, param, "code")
    r'"(\w+)" if kind',
)


def test_every_error_code_is_in_troubleshooting() -> None:
    source = "\n".join(
        p.read_text() for p in (ROOT / "src" / "fal_openai_proxy").rglob("*.py")
        if "simulator" not in p.parts
    )  # fmt: skip
    codes = {code for pattern in ERROR_CODE_PATTERNS for code in re.findall(pattern, source)}
    codes |= codes_in_calls(ast.parse(source))
    assert len(codes) > 10
    page = (ROOT / "docs" / "troubleshooting.md").read_text()
    assert {code for code in codes if f"| `{code}` |" not in page} == set()


def codes_in_calls(tree: ast.AST) -> set[str]:
    """`code=` arguments, and `invalid_request(message, param, code)`'s third, however the
    call is laid out over lines."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        values = [k.value for k in node.keywords if k.arg == "code"]
        name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
        if name in ("invalid_request", "_fail") and len(node.args) >= 3:
            values.append(node.args[2])
        for value in values:
            if isinstance(value, ast.BoolOp):  # `exc.error_type or "forbidden"`
                value = value.values[-1]
            if isinstance(value, ast.Constant) and isinstance(value.value, str):
                found.add(value.value)
    return found


def test_every_endpoint_is_documented() -> None:
    app = create_app(Settings(_env_file=None))  # type: ignore[call-arg]
    routes = {(route.path, method) for route in app.routes for method in route.methods}  # type: ignore[attr-defined]
    for path, method in routes:
        if method == "HEAD":
            continue
        shown = path.replace("{model_id:path}", "{id}").replace("{response_id:path}", "{id}")
        assert f"`{method} {shown}`" in README, path


def test_the_two_commands_come_first() -> None:
    first_block = README.split("```bash", 1)[1].split("```", 1)[0]
    assert [line.split("#")[0].strip() for line in first_block.strip().splitlines()] == [
        "make run",
        "make test",
    ]
