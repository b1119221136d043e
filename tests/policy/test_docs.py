"""README and docs/ are the user's manual: every setting and endpoint must be in them."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from fal_openai_proxy.base.settings import Settings
from fal_openai_proxy.base.settings_doc import markdown
from fal_openai_proxy.serve.app import create_app

ROOT = Path(__file__).resolve().parents[2]
README = (ROOT / "README.md").read_text()
CONFIGURATION = (ROOT / "docs" / "configuration.md").read_text()


def test_every_setting_is_documented() -> None:
    documented = set(re.findall(r"^\| `([A-Z_]+)` \|", CONFIGURATION, flags=re.MULTILINE))
    settings = {name.upper() for name in Settings.model_fields}
    assert settings - documented == set()
    assert documented - settings == set()


def test_readme_names_every_setting() -> None:
    section = README.split("## Settings", 1)[1].split("\n## ", 1)[0]
    named = set(re.findall(r"`([A-Z][A-Z_]+)`", section))
    settings = {name.upper() for name in Settings.model_fields}
    assert settings - named == set()
    assert named - settings == set()


def test_every_setting_has_a_description() -> None:
    assert [n for n, f in Settings.model_fields.items() if not f.description] == []


def test_configuration_page_is_generated_from_the_settings() -> None:
    assert markdown() == CONFIGURATION, "docs/configuration.md is stale: run `make docs`"


# The README stays short: the details live in these pages, and it must link every one.
DOC_PAGES = (
    "configuration", "deployment", "clients", "troubleshooting", "architecture", "routes",
    "translation", "prompt-strategy", "media", "errors", "operations", "simulator", "benchmarks",
    "fal-proxy", "accounts", "console",
)  # fmt: skip


def test_readme_links_the_docs() -> None:
    for page in DOC_PAGES:
        assert f"(docs/{page}.md)" in README, page
        assert (ROOT / "docs" / f"{page}.md").is_file(), page


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", flags=re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`[^`\n]*`")


def markdown_pages() -> list[Path]:
    return [
        ROOT / "README.md",
        ROOT / "deploy" / "README.md",
        *sorted((ROOT / "docs").glob("*.md")),
    ]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    seen: dict[str, int] = {}
    found = set()
    for heading in re.findall(r"^#{1,6} +(.+?) *#*$", FENCE.sub("", page.read_text()), re.M):
        base = slug(heading)
        found.add(f"{base}-{seen[base]}" if base in seen else base)
        seen[base] = seen.get(base, 0) + 1
    return found


def relative_links(page: Path) -> list[str]:
    text = INLINE_CODE.sub("", FENCE.sub("", page.read_text()))
    return [t for t in LINK.findall(text) if not re.match(r"^[a-z][a-z0-9+.-]*:", t)]


def test_relative_links_point_to_existing_files_and_anchors() -> None:
    broken, checked = [], 0
    for page in markdown_pages():
        for target in relative_links(page):
            checked += 1
            path, _, anchor = target.partition("#")
            dest = (page.parent / path).resolve() if path else page
            if not dest.exists():
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such file)")
            elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
                broken.append(f"{page.relative_to(ROOT)}: {target} (no such heading)")
    assert checked > 30  # the pattern still finds the links
    assert broken == []


def test_the_link_check_can_fail(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "# Top\n\n## A `b` c\n\n[x](page.md#a-b-c) [y](#top) [z](gone.md) `[w](gone.md)`\n"
    )
    assert relative_links(page) == ["page.md#a-b-c", "#top", "gone.md"]
    assert anchors(page) == {"top", "a-b-c"}
    assert not (tmp_path / "gone.md").exists()


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
        shown = shown.replace("{name:path}", "{name}")
        if (method, shown) == ("POST", "/v1/responses/{id}"):
            shown += "/cancel"  # the only POST OpenAI has under a response's id
        assert f"`{method} {shown}`" in README, path


def test_no_endpoint_row_names_a_path_that_does_not_exist() -> None:
    rows = [line for line in README.splitlines() if line.startswith("| `")]
    assert rows
    assert not any(row.startswith("| `POST /v1/responses/{id}` |") for row in rows)


def test_the_two_commands_come_first() -> None:
    first_block = README.split("```bash", 1)[1].split("```", 1)[0]
    assert [line.split("#")[0].strip() for line in first_block.strip().splitlines()] == [
        "make run",
        "make test",
    ]
