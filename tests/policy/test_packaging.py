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


def project() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as f:
        table: dict[str, object] = tomllib.load(f)["project"]
    return table


def test_the_license_is_an_spdx_expression() -> None:
    # A table (`{text = "MIT"}`) is deprecated: pip warns on every install (PEP 639).
    assert project()["license"] == "MIT"


def test_the_package_says_what_it_serves() -> None:
    from fal_openai_proxy import __doc__ as package_doc
    from fal_openai_proxy.serve.cli import build_parser

    what = "language, image, audio and video models"
    readme_first_lines = " ".join((ROOT / "README.md").read_text().splitlines()[2:4])
    for text in (str(project()["description"]), build_parser().description, package_doc,
                 readme_first_lines):  # fmt: skip
        assert what in " ".join(str(text).split()), text
