"""Just enough of a Dockerfile parser to run the image's command outside a container: the
instructions of each stage, ENV with `$VAR` expansion, exec-form (JSON) arguments, HEALTHCHECK."""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

_VAR = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


@dataclass
class Stage:
    base: str
    name: str | None
    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [args for kw, args in self.instructions if kw == keyword]

    def last(self, keyword: str) -> str:
        found = self.all(keyword)
        assert found, f"no {keyword} in stage {self.name or self.base}"
        return found[-1]

    def env(self, outer: dict[str, str] | None = None) -> dict[str, str]:
        """The stage's ENV, each value expanded against earlier ones (then `outer`)."""
        values: dict[str, str] = {}
        for args in self.all("ENV"):
            for name, value in _env_pairs(args):
                values[name] = expand(value, {**(outer or {}), **values})
        return values


@dataclass
class Dockerfile:
    args: dict[str, str]  # ARGs before the first FROM, with their defaults
    stages: list[Stage]

    @property
    def final(self) -> Stage:
        return self.stages[-1]


def parse(path: Path) -> Dockerfile:
    args: dict[str, str] = {}
    stages: list[Stage] = []
    for line in _logical_lines(path.read_text(encoding="utf-8")):
        keyword, _, rest = line.partition(" ")
        keyword, rest = keyword.upper(), rest.strip()
        if keyword == "FROM":
            words = rest.split()
            base = expand(words[0], args)
            name = words[2] if len(words) == 3 and words[1].upper() == "AS" else None
            stages.append(Stage(base, name))
        elif not stages:
            assert keyword == "ARG", f"{keyword} before the first FROM"
            name, _, default = rest.partition("=")
            args[name] = default
        else:
            stages[-1].instructions.append((keyword, rest))
    return Dockerfile(args, stages)


def exec_form(args: str) -> list[str]:
    """ENTRYPOINT/CMD/HEALTHCHECK CMD arguments; only the exec (JSON) form is accepted."""
    value = json.loads(args)
    assert isinstance(value, list) and all(isinstance(v, str) for v in value), args
    return value


def healthcheck(args: str) -> tuple[dict[str, str], list[str]]:
    """HEALTHCHECK's options (`--timeout=3s` -> {"timeout": "3s"}) and its exec-form command."""
    options: dict[str, str] = {}
    rest = args
    while rest.startswith("--"):
        option, _, rest = rest.partition(" ")
        name, _, value = option[2:].partition("=")
        options[name] = value
        rest = rest.lstrip()
    keyword, _, command = rest.partition(" ")
    assert keyword.upper() == "CMD", f"HEALTHCHECK {rest}"
    return options, exec_form(command.strip())


def seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m)", duration)
    assert match, duration
    number, unit = float(match[1]), match[2]
    return number / 1000 if unit == "ms" else number * 60 if unit == "m" else number


def expand(value: str, variables: dict[str, str]) -> str:
    return _VAR.sub(lambda m: variables.get(m[1] or m[2], ""), value)


def _env_pairs(args: str) -> list[tuple[str, str]]:
    words = shlex.split(args)
    if "=" not in words[0]:  # the legacy `ENV NAME value` form
        return [(words[0], " ".join(words[1:]))]
    return [(w.partition("=")[0], w.partition("=")[2]) for w in words]


def _logical_lines(text: str) -> list[str]:
    """Comments dropped, backslash continuations joined."""
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if stripped.startswith("#") or (not stripped and not current):
            continue
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        if current.strip():
            lines.append(current.strip())
        current = ""
    if current.strip():
        lines.append(current.strip())
    return lines
