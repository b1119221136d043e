"""Claude Code itself (`@anthropic-ai/claude-code` from npm, run with `claude -p … --output-format
json`) against the proxy and the simulator: it must read a file with its Read tool and answer
from it. The simulator is told, by a directive in the prompt, to call Read on that file
(docs/simulator.md); after the tool result it answers quoting it.

2.1.112 is the last release whose npm package is JavaScript (`cli.js`, Node >= 18); later ones
ship a native binary and ask for Node 22. npm installs it once into `.venv/` (the tests' own
folder); without node or npm the test skips saying so, and fails under CI=1 (.ci/run
installs them).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from ..support.chat import Records, sim
from ..support.servers import RunningProxy

CLAUDE_CODE = "@anthropic-ai/claude-code@2.1.112"
ROOT = Path(__file__).resolve().parents[2]
INSTALL_DIR = ROOT / ".venv" / "claude-code-2.1.112"
CLI = INSTALL_DIR / "node_modules" / "@anthropic-ai" / "claude-code" / "cli.js"
MODEL = "anthropic/claude-sonnet-4.5"
ROUTE = "openrouter/router/openai/v1/chat/completions"


def _missing(message: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="session")
def claude_cli() -> Path:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        _missing("node and npm are needed to run Claude Code (apt-get install nodejs npm)")
    if not CLI.exists():
        INSTALL_DIR.mkdir(parents=True, exist_ok=True)
        done = subprocess.run(
            [str(npm), "install", "--no-audit", "--no-fund", "--silent", "--prefix",
             str(INSTALL_DIR), CLAUDE_CODE],
            capture_output=True, text=True, timeout=300, check=False,
        )  # fmt: skip
        if done.returncode != 0 or not CLI.exists():
            _missing(f"npm could not install {CLAUDE_CODE}: {done.stderr[-500:]}")
    return CLI


def test_claude_code_reads_a_file_and_answers_from_it(
    claude_cli: Path, proxy: RunningProxy, sim_log: Records, tmp_path: Path,
    secret_audit: list[str],
) -> None:  # fmt: skip
    work, home = tmp_path / "work", tmp_path / "home"
    work.mkdir()
    home.mkdir()
    notes = work / "notes.txt"
    notes.write_text("The secret word is PINEAPPLE.\n")
    directive = sim({"tool": "Read", "tool_args": {"file_path": str(notes)}})
    prompt = f"Read {notes} and tell me the secret word. {directive}"
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "CLAUDE_CONFIG_DIR": str(home / ".claude"),
        "ANTHROPIC_BASE_URL": proxy.base_url,
        "ANTHROPIC_API_KEY": "unused-by-this-proxy",
        # Claude Code's documented switch for its other traffic (updates, telemetry, error
        # reports, the bug command); and no proxy between it and the loopback server.
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
        "NO_PROXY": "127.0.0.1,localhost",
    }
    done = subprocess.run(
        ["node", str(claude_cli), "-p", prompt, "--output-format", "json", "--model", MODEL,
         "--allowedTools", "Read", "--max-turns", "4"],
        cwd=work, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    secret_audit.extend([done.stdout, done.stderr])
    assert done.returncode == 0, done.stderr[-2000:] or done.stdout[-2000:]
    result: dict[str, Any] = json.loads(done.stdout)
    assert result["is_error"] is False and result["subtype"] == "success"
    assert "PINEAPPLE" in result["result"]
    assert result["num_turns"] == 2  # one tool call, then the answer
    sent = [r["body"] for r in sim_log() if r["path"].endswith(ROUTE) and
            "tell me the secret word" in json.dumps(r["body"])]  # fmt: skip
    assert len(sent) == 2
    first, second = sent
    assert "Read" in [t["function"]["name"] for t in first["tools"]]
    assert first["stream"] is True and first["model"] == MODEL
    tool_messages = [m for m in second["messages"] if m["role"] == "tool"]
    assert len(tool_messages) == 1 and "PINEAPPLE" in json.dumps(tool_messages[0])
    calls = [m for m in second["messages"] if m.get("tool_calls")]
    assert json.loads(calls[0]["tool_calls"][0]["function"]["arguments"]) == {
        "file_path": str(notes)
    }
    # Nothing but the Messages API was asked of the proxy (no other traffic reached fal).
    assert all(r["path"].endswith(ROUTE) for r in sim_log() if r.get("kind") == "openai")
