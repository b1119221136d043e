"""Every code example in README.md and docs/*.md runs, as written, against the proxy.

The Python blocks of one document run in order in one interpreter (a reader's session: a later
block may use the `client` an earlier one made); curl blocks run in bash, failing on an HTTP
error. The only change to the text is the address: `http://127.0.0.1:3000` becomes the test
proxy's (in front of the simulator). They run in a scratch folder holding `examples/` (the
sample files the examples open). LiteLLM is told to use the price list it ships instead of
fetching GitHub's at import (this machine has no internet; it would retry for 20 s). Other
blocks (installing, starting servers, YAML, diagrams) are not examples of calls and are not
run; a bash block counts as a call when every command in it is curl.
"""

from __future__ import annotations

import json
import os
import re
import runpy
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from ..support.servers import ADMIN_KEY, RunningProxy

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
DOC_ADDRESS = "http://127.0.0.1:3000"
_FENCE = re.compile(r"^```(\w*)[^\n]*\n(.*?)^```", re.MULTILINE | re.DOTALL)


@dataclass(frozen=True)
class Block:
    document: str
    language: str
    line: int
    code: str


def blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    return [
        Block(path.name, m.group(1), text.count("\n", 0, m.start()) + 1, m.group(2))
        for m in _FENCE.finditer(text)
    ]


def shell_commands(code: str) -> list[str]:
    """The commands of a shell block: lines, joined where a quote or a backslash goes on."""
    commands, current, quote = [], "", ""
    for char in code.replace("\\\n", " "):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "\n":
            commands.append(current)
            current = ""
            continue
        current += char
    return [c.strip() for c in [*commands, current] if c.strip() and not c.strip().startswith("#")]


def is_curl_only(code: str) -> bool:
    commands = shell_commands(code)
    return bool(commands) and all(c.startswith("curl ") for c in commands)


PYTHON = {p.name: [b for b in blocks(p) if b.language == "python"] for p in DOCUMENTS}
CURL = [
    b for p in DOCUMENTS for b in blocks(p) if b.language in ("bash", "sh") and is_curl_only(b.code)
]

# Runs a document's blocks in one namespace; names the block that failed.
_RUNNER = """
import json, sys, traceback
namespace = {"__name__": "__main__"}
for block in json.loads(sys.stdin.read()):
    try:
        exec(compile(block["code"], f"{block['document']}:{block['line']}", "exec"), namespace)
    except BaseException:
        traceback.print_exc()
        sys.exit(f"the example at {block['document']}:{block['line']} failed")
"""


@pytest.fixture
def scratch(tmp_path: Path) -> Path:
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    return tmp_path


def run(
    command: list[str],
    stdin: str,
    cwd: Path,
    secret_audit: list[str],
    extra_env: dict[str, str] | None = None,
) -> str:
    env = {
        **os.environ,
        "API_KEY": "unused",
        "OPENAI_API_KEY": "unused",
        "LITELLM_LOCAL_MODEL_COST_MAP": "True",
        **(extra_env or {}),
    }
    done = subprocess.run(
        command, input=stdin, cwd=cwd, env=env, capture_output=True, text=True, timeout=90
    )
    output = done.stdout + done.stderr
    secret_audit.append(output)
    assert done.returncode == 0, output[-4000:]
    return output


def test_the_documents_have_examples() -> None:
    assert sum(len(b) for b in PYTHON.values()) >= 8
    assert len(CURL) >= 3
    readme_media = "".join(b.code for b in PYTHON["README.md"])
    assert 'open("examples/cat.png", "rb")' in readme_media
    assert 'open("examples/talk.wav", "rb")' in readme_media


@pytest.mark.parametrize("document", [name for name, found in PYTHON.items() if found])
def test_python_examples_run(
    document: str, proxy: RunningProxy, scratch: Path, secret_audit: list[str]
) -> None:
    code = [
        {**b.__dict__, "code": b.code.replace(DOC_ADDRESS, proxy.base_url)}
        for b in PYTHON[document]
    ]
    run([sys.executable, "-c", _RUNNER], json.dumps(code), scratch, secret_audit)


@pytest.fixture(scope="module")
def admin_proxy(proxy_factory: Callable[..., RunningProxy]) -> RunningProxy:
    """For docs/accounts.md: the admin API on (ADMIN_KEY), `unused` a client key."""
    return proxy_factory(admin_key=ADMIN_KEY, api_key="unused")


def accounts_env(proxy: RunningProxy, http: httpx.Client) -> dict[str, str]:
    """What docs/accounts.md's examples take from the reader's shell: ADMIN_KEY, and the id
    (KEY_ID) and secret (VIRTUAL_KEY) of a key of theirs (a fresh one for each example)."""
    created = http.post(
        proxy.base_url + "/admin/keys",
        json={"name": "docs"},
        headers={"Authorization": f"Bearer {ADMIN_KEY}"},
    ).json()
    return {"ADMIN_KEY": ADMIN_KEY, "KEY_ID": created["id"], "VIRTUAL_KEY": created["key"]}


@pytest.mark.parametrize("block", CURL, ids=lambda b: f"{b.document}:{b.line}")
def test_curl_examples_run(
    block: Block,
    proxy: RunningProxy,
    scratch: Path,
    secret_audit: list[str],
    request: pytest.FixtureRequest,
    http: httpx.Client,
) -> None:
    env: dict[str, str] = {}
    if block.document == "accounts.md":
        proxy = request.getfixturevalue("admin_proxy")
        env = accounts_env(proxy, http)
    # curl itself is what the reader runs; only its failure on an HTTP error is added.
    script = 'curl() { command curl --fail-with-body -sS "$@"; }\n' + block.code.replace(
        DOC_ADDRESS, proxy.base_url
    )
    run(["bash", "-e", "-c", script], "", scratch, secret_audit, env)


def test_the_sample_files_are_what_make_samples_makes() -> None:
    maker = runpy.run_path(str(ROOT / "examples" / "make_samples.py"))
    for name, data in maker["samples"]().items():
        assert (ROOT / "examples" / name).read_bytes() == data, name
