"""The command line as an operator meets it: --version, --help, check-config, and the
package built as a wheel."""

from __future__ import annotations

import os
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import pytest

from fal_openai_proxy import __version__
from fal_openai_proxy.base.settings import Settings
from fal_openai_proxy.store.db import head_revision

from ..support.processes import REPO, free_port
from ..support.servers import API_KEY, FAL_KEY


def cli(
    args: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """The command in a clean environment: no proxy variable from the developer's shell."""
    names = {name.upper() for name in Settings.model_fields}
    full_env = {k: v for k, v in os.environ.items() if k.upper() not in names}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "fal_openai_proxy", *args],
        env=full_env,
        cwd=cwd or REPO,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_version() -> None:
    result = cli(["--version"])
    assert result.returncode == 0
    assert result.stdout.strip() == f"fal-openai-proxy {__version__}"


def test_help_lists_every_setting_with_its_default() -> None:
    result = cli(["--help"])
    assert result.returncode == 0
    for name, field in Settings.model_fields.items():
        assert f"\n  {name.upper()} (default: " in result.stdout, name
        first_words = " ".join((field.description or "").replace("`", "").split()[:3])
        assert first_words in result.stdout, name
    assert "check-config" in result.stdout


def test_check_config_accepts_a_good_configuration(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(f"FAL_KEY={FAL_KEY}\nAPI_KEY={API_KEY}\nHOST=0.0.0.0\n")
    result = cli(["check-config"], cwd=tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "valid" in result.stdout


def test_check_config_reports_every_problem_at_once(tmp_path: Path) -> None:
    models = tmp_path / "models.json"
    models.write_text("[]")
    models.chmod(0)
    unreadable = os.access(models, os.R_OK) is False  # root can read anything
    secret_port = "not-a-port-" + FAL_KEY
    (tmp_path / ".env").write_text(f"FAL_KEY={FAL_KEY}\nPORT={secret_port}\nthis line is junk\n")
    env = {
        "HOST": "0.0.0.0",
        "WORKERS": "0",
        "LOG_FORMAT": "xml",
        "MODELS_FILE": str(models if unreadable else tmp_path / "missing.json"),
        "REDIS_URL": f"redis://:{API_KEY}@127.0.0.1:{free_port()}/0",
        "PRICES_FILE": str(tmp_path / "prices.yaml"),
    }
    (tmp_path / "prices.yaml").write_text("models:\n  some/model: {image: free}\n")
    result = cli(["check-config"], env=env, cwd=tmp_path)
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    lines = [line for line in result.stdout.splitlines() if line.startswith("  - ")]
    expected = ["line 3", "PORT:", "WORKERS:", "LOG_FORMAT:", "HOST=0.0.0.0", "MODELS_FILE:"]
    expected.append("PRICES_FILE")  # naming the model and the field: image
    expected.append("REDIS_URL: cannot reach Redis")
    for marker in expected:
        assert sum(marker in line for line in lines) == 1, (marker, output)
    assert len(lines) == len(expected), output
    assert "Traceback" not in output
    assert FAL_KEY not in output and API_KEY not in output
    assert "not-a-port" not in output  # malformed values are named, never echoed


def test_check_config_takes_the_flags_into_account(tmp_path: Path) -> None:
    result = cli(["check-config", "--host", "0.0.0.0"], env={"FAL_KEY": FAL_KEY}, cwd=tmp_path)
    assert result.returncode == 1
    assert "HOST=0.0.0.0" in result.stdout


def test_malformed_setting_at_start_is_one_line_each_without_traceback(tmp_path: Path) -> None:
    result = cli([], env={"PORT": "x", "WORKERS": "-1"}, cwd=tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    assert "PORT:" in result.stderr and "WORKERS:" in result.stderr


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(out), str(REPO)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (built,) = out.glob("fal_openai_proxy-*.whl")
    return built


def test_wheel_has_the_command_the_version_and_the_data(wheel: Path) -> None:
    assert wheel.name.startswith(f"fal_openai_proxy-{__version__}-")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        info = f"fal_openai_proxy-{__version__}.dist-info"
        entry_points = archive.read(f"{info}/entry_points.txt").decode()
        metadata = archive.read(f"{info}/METADATA").decode()
    assert "fal-openai-proxy = fal_openai_proxy.serve.cli:main" in entry_points
    assert f"\nVersion: {__version__}\n" in metadata
    assert "fal_openai_proxy/py.typed" in names
    assert "fal_openai_proxy/store/migrations/script.py.mako" in names  # Alembic's template
    source = REPO / "src"
    modules = {str(p.relative_to(source)) for p in source.glob("fal_openai_proxy/**/*.py")}
    assert modules - names == set()
    # The console's page, styles and scripts ship in the wheel (it loads nothing from elsewhere).
    console = {
        str(p.relative_to(source))
        for p in source.glob("fal_openai_proxy/console/**/*")
        if p.is_file()
    }
    assert "fal_openai_proxy/console/index.html" in console and console - names == set()


def test_installed_wheel_runs(wheel: Path, tmp_path: Path) -> None:
    """Installed into a fresh venv (dependencies borrowed from ours, not downloaded)."""
    target = tmp_path / "venv"
    venv.create(target, with_pip=False)
    subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(target / "bin" / "python"), "install",
         "--quiet", "--no-deps", "--no-index", str(wheel)],
        check=True, capture_output=True, timeout=120,
    )  # fmt: skip
    deps = next(p for p in sys.path if p.endswith("site-packages"))
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": deps}
    command = target / "bin" / "fal-openai-proxy"
    result = subprocess.run(
        [str(command), "--version"], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert result.stdout.strip() == f"fal-openai-proxy {__version__}", result.stderr
    where = "import fal_openai_proxy; print(fal_openai_proxy.__file__)"
    located = subprocess.run(
        [str(target / "bin" / "python"), "-c", where],
        env=env, cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert located.stdout.startswith(str(target)), located  # the wheel's copy, not the source
    result = subprocess.run(
        [str(command), "check-config"], env=env, cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # The migrations ship in the wheel and run from it.
    migrated = subprocess.run(
        [str(command), "db", "upgrade"], env={**env, "DATABASE_URL": "sqlite:///./wheel.db"},
        cwd=tmp_path, capture_output=True, text=True,
    )  # fmt: skip
    assert migrated.returncode == 0, migrated.stdout + migrated.stderr
    assert f"is at schema revision {head_revision()}" in migrated.stdout  # 0002: videos too
