"""fal's JavaScript client from npm, for the tests that drive the proxy with it.

Installed once into `.pytest_cache/d/fal-js-client` (pytest's cache folder, whether or not
its plugin runs), pinned to one major version. Without node and npm (or the npm registry) the
tests skip saying so, and fail under CI=1, which installs Debian's `nodejs` and `npm`
(`.ci/run`).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

FAL_JS_PACKAGE = "@fal-ai/client"
FAL_JS_MAJOR = 1  # `proxyUrl: {url, when}` needs 1.10 or later (docs/fal-protocol.md §13.1)
FAL_JS_RANGE = f"^{FAL_JS_MAJOR}.10"
SCRIPT = Path(__file__).with_name("fal_js_client.mjs")
CACHE = Path(__file__).resolve().parents[2] / ".pytest_cache" / "d" / "fal-js-client"


def unavailable(message: str) -> None:
    """Skip, or fail under CI (where everything needed is installed)."""
    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


def node_binary() -> str:
    node = shutil.which("node")
    if node is None or shutil.which("npm") is None:
        unavailable("node and npm are not installed (apt-get install nodejs npm; CI does)")
    assert node is not None
    return node


def install_fal_js(cache: Path = CACHE) -> Path:
    """The directory where `@fal-ai/client` is installed (installing it if needed)."""
    cache.mkdir(parents=True, exist_ok=True)
    installed = cache / "node_modules" / "@fal-ai" / "client" / "package.json"
    if installed.exists():
        version = json.loads(installed.read_text())["version"]
        if int(version.split(".")[0]) == FAL_JS_MAJOR:
            return cache
    (cache / "package.json").write_text('{"private": true}\n')
    npm = shutil.which("npm")
    assert npm is not None
    command = [npm, "install", "--no-audit", "--no-fund", "--silent", "--prefix", str(cache),
               f"{FAL_JS_PACKAGE}@{FAL_JS_RANGE}"]  # fmt: skip
    try:
        subprocess.run(command, check=True, capture_output=True, timeout=300)
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        output = getattr(exc, "stderr", b"") or b""
        unavailable(f"npm could not install {FAL_JS_PACKAGE}: {output.decode()[-300:]}")
    return cache
