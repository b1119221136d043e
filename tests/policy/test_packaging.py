"""requirements.txt installs exactly pyproject.toml's runtime dependencies."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def pyproject_dependencies() -> list[str]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        return list(tomllib.load(f)["project"]["dependencies"])


def requirements_lines() -> list[str]:
    lines = (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines()
    stripped = (line.split(" #", 1)[0].strip() for line in lines)
    return [line for line in stripped if line and not line.startswith("#")]


def normalized(requirement: str) -> str:
    try:
        from packaging.requirements import Requirement
        from packaging.utils import canonicalize_name
    except ImportError:  # pragma: no cover - packaging ships with pip's environments
        return "".join(requirement.split()).lower()
    parsed = Requirement(requirement)
    extras = ",".join(sorted(parsed.extras))
    marker = f";{parsed.marker}" if parsed.marker else ""
    return f"{canonicalize_name(parsed.name)}[{extras}]{parsed.specifier}{marker}"


def test_requirements_match_pyproject_dependencies() -> None:
    declared = [normalized(r) for r in pyproject_dependencies()]
    listed = [normalized(r) for r in requirements_lines()]
    assert len(listed) == len(set(listed)), "requirements.txt repeats a requirement"
    assert sorted(listed) == sorted(declared)


def test_requirements_are_plain_requirement_lines() -> None:
    # Options (-e ., -r other.txt, --index-url) would make pip install something else.
    assert not [line for line in requirements_lines() if line.startswith("-")]
