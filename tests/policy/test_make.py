"""What the make targets install: running needs the runtime dependencies only; testing,
linting and benchmarking add the `dev` extra (read from `make -n`, which prints the commands
make would run, on a venv that does not exist yet)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def planned(target: str, tmp_path: Path) -> list[str]:
    result = subprocess.run(
        ["make", "-n", target, f"VENV={tmp_path / 'venv'}"],
        cwd=REPO, capture_output=True, text=True, timeout=30, check=True,
    )  # fmt: skip
    return [line for line in result.stdout.splitlines() if "pip install" in line]


@pytest.mark.parametrize("target", ["run", "check-config", "docs"])
def test_running_installs_the_runtime_dependencies_only(target: str, tmp_path: Path) -> None:
    installs = planned(target, tmp_path)
    assert installs[-1].endswith("pip install --quiet -e .")
    assert not any("[dev]" in line for line in installs)


@pytest.mark.parametrize("target", ["test", "lint", "bench", "install"])
def test_testing_and_linting_add_the_dev_extra(target: str, tmp_path: Path) -> None:
    assert any(
        line.endswith("pip install --quiet -e '.[dev]'") for line in planned(target, tmp_path)
    )


def test_coverage_data_is_never_committed() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", ".coverage*"], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert tracked.stdout == ""
    ignored = subprocess.run(["git", "check-ignore", "-q", ".coverage"], cwd=REPO, check=False)
    assert ignored.returncode == 0
