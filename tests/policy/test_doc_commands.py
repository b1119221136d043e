"""Every command README.md and docs/ name works as written: the proxy's command by its path
(`make run` puts it in `.venv/bin`, not on the PATH), with subcommands and flags it has, and
make targets the Makefile defines."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from fal_openai_proxy.serve.cli import COMMANDS, build_parser

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", ROOT / "deploy" / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
COMMAND = "fal-openai-proxy"
# Names of the image, the Deployment, … on these tools' command lines, not the command.
NAMING_TOOLS = {"docker", "docker-compose", "kubectl", "helm"}
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.MULTILINE | re.DOTALL)
SPAN = re.compile(r"(?<!`)`([^`\n]+)`(?!`)")


def fragments(text: str) -> list[tuple[str, bool]]:
    """Shell lines of the bash blocks (comments dropped), then inline code spans; each with
    whether it is a line of a block (where even the bare command is a command line)."""
    found: list[tuple[str, bool]] = []
    for language, body in FENCE.findall(text):
        if language in ("", "bash", "sh", "shell", "console"):
            found += [(line.split(" #", 1)[0], True) for line in body.splitlines()]
    found += [(span, False) for span in SPAN.findall(FENCE.sub("", text))]
    return [(f.strip(), block) for f, block in found if f.strip() and not f.strip().startswith("#")]


def commands(fragment: str) -> list[list[str]]:
    """The simple commands of a line: split at `&&`, `;` and `|`, env assignments dropped."""
    try:
        tokens = shlex.split(fragment.replace("…", "x"))
    except ValueError:
        return []
    out: list[list[str]] = [[]]
    for token in tokens:
        if token in ("&&", ";", "|", "||"):
            out.append([])
        elif not out[-1] and re.fullmatch(r"[A-Z_]+=\S*", token):
            continue
        else:
            out[-1].append(token.strip("[]"))
    return [c for c in out if c]


def problems_of(
    fragment: str, targets: set[str], flags: set[str], block: bool = False
) -> list[str]:
    problems = []
    for words in commands(fragment):
        head, args = words[0], words[1:]
        if head in NAMING_TOOLS:
            continue
        if head == COMMAND and (args or block):
            problems.append(f"`{fragment}`: say .venv/bin/{COMMAND} or a make target")
        elif head.endswith("/" + COMMAND):
            for arg in args:
                if arg.startswith("-") and arg.split("=", 1)[0] not in flags:
                    problems.append(f"`{fragment}`: {COMMAND} has no option {arg}")
                elif (
                    not arg.startswith("-")
                    and arg == args[0]
                    and arg not in COMMANDS
                    and not arg.isupper()  # the metavariables of a usage line: H, P, N, L
                ):
                    problems.append(f"`{fragment}`: {COMMAND} has no command {arg}")
        elif head == "make":
            for arg in args:
                if not arg.startswith("-") and "=" not in arg and arg not in targets:
                    problems.append(f"`{fragment}`: the Makefile has no target {arg}")
        elif head in ("python", "python3") and args[:1] == ["-m"] and len(args) > 1:
            module = args[1].split(".")[0]
            if module in ("fal_openai_proxy", "bench"):
                problems.append(f"`{fragment}`: say .venv/bin/python (make run installs there)")
    return problems


def make_targets() -> set[str]:
    text = (ROOT / "Makefile").read_text()
    return set(re.findall(r"^([a-z][a-z-]*):", text, re.MULTILINE))


def cli_flags() -> set[str]:
    return {flag for action in build_parser()._actions for flag in action.option_strings}


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_every_command_a_page_names_works_as_written(page: Path) -> None:
    targets, flags = make_targets(), cli_flags()
    problems = [
        problem
        for fragment, block in fragments(page.read_text())
        for problem in problems_of(fragment, targets, flags, block)
    ]
    assert problems == []


@pytest.mark.parametrize(
    ("fragment", "fine"),
    [
        ("FAL_KEY=… fal-openai-proxy", True),  # a span: the name, with a setting
        ("fal-openai-proxy check-config", False),
        ("FAL_KEY=… fal-openai-proxy --simulate", False),
        ("fal-openai-proxy", True),  # the command's name in prose
        (".venv/bin/fal-openai-proxy check-config", True),
        (".venv/bin/fal-openai-proxy --no-such-flag", False),
        (".venv/bin/fal-openai-proxy [--host H] [--port P]", True),
        ("make check-config", True),
        ("make deploy-everything", False),
        ("python -m fal_openai_proxy", False),
        ("python3 -m venv .venv && .venv/bin/pip install .", True),
        ("docker run --rm -e FAL_KEY fal-openai-proxy check-config", True),
    ],
)
def test_the_checker_itself(fragment: str, fine: bool) -> None:
    assert (problems_of(fragment, make_targets(), cli_flags()) == []) is fine


def test_a_bare_command_line_in_a_block_is_refused() -> None:
    assert problems_of("FAL_KEY=… fal-openai-proxy", set(), set(), block=True)
