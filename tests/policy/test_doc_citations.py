"""Comments cite documents of this repo only: every `.md` named under src/, tests/ and bench/
exists (as a path from the repo's root), every `docs/X.md §N` names a section X.md has, and
no section number stands without the document it belongs to (RFC sections excepted)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SCANNED = ("src", "tests", "bench")
SUFFIXES = {".py", ".json", ".md", ".toml", ".txt", ".yaml", ".yml", ".cfg", ".sh"}
SECTION = "\u00a7"  # spelled out, so that this file cites nothing itself

# A `.md` path not inside a URL or a longer path.
_DOC = r"(?<![\w./:-])((?:[\w-]+/)*[\w-]+\.md)\b"
# What may follow it: `SN`, `SN, SM`, `SN-SM`, `SN (what) and SM`, ...
_NUMBER = SECTION + r"\d+(?:\.\d+)*"
_CHAIN = rf"((?:(?:\s*\([^()\n{SECTION}]{{0,40}}\))?\s*(?:,|and|-|–)?\s*{_NUMBER})*)"
CITATION = re.compile(_DOC + _CHAIN)
HEADING = re.compile(r"^#{1,6} (\d+(?:\.\d+)*)\.? ", re.MULTILINE)


def sections(doc: Path) -> set[str]:
    return set(HEADING.findall(doc.read_text()))


def citation_problems(text: str, root: Path = ROOT) -> list[str]:
    """What is wrong with the citations in `text`, one line each."""
    problems: list[str] = []
    covered: set[int] = set()
    for match in CITATION.finditer(text):
        name = match[1]
        start, end = match.span(1)
        quote = text[start - 1 : start]
        if "/" not in name and quote in ("'", '"') and text[end : end + 1] in (quote, "#"):
            continue  # a file name as a string in code (`ROOT / "docs" / "errors.md"`)
        if text[start - 2 : start] == "](":
            continue  # a Markdown link: test_docs.py checks those where they are rendered
        doc = root / name
        if not doc.is_file():
            problems.append(f"{name}: no such document in the repo (cite it from the root)")
            continue
        chain_start = match.start(2)
        known = sections(doc)
        for number in re.finditer(_NUMBER, match[2]):
            covered.add(chain_start + number.start())
            if number[0][1:] not in known:
                problems.append(f"{name} {number[0]}: the document has no such section")
    for bare in re.finditer(SECTION, text):
        before = text[max(0, bare.start() - 16) : bare.start()]
        if bare.start() not in covered and not re.search(r"RFC \d+ $", before):
            line = text.count("\n", 0, bare.start()) + 1
            problems.append(f"line {line}: a section number without its document")
    return problems


def scanned_files() -> list[Path]:
    return sorted(
        path
        for top in SCANNED
        for path in (ROOT / top).rglob("*")
        if path.is_file()
        and path.suffix in SUFFIXES
        and "__pycache__" not in path.parts
        and path != Path(__file__).resolve()  # its examples of bad citations
    )


def test_every_cited_document_and_section_exists() -> None:
    files = scanned_files()
    assert len(files) > 50
    problems = [
        f"{path.relative_to(ROOT)}: {problem}"
        for path in files
        for problem in citation_problems(path.read_text(errors="replace"))
    ]
    assert problems == []


def test_the_protocol_doc_has_the_sections_the_code_cites() -> None:
    known = sections(ROOT / "docs" / "fal-protocol.md")
    assert {"1", "3.3", "4.3", "9.5", "10", "11", "12.1", "12.4"} <= known
    assert (ROOT / "docs" / "openai-clients.md").is_file()


def test_the_check_catches_bad_citations() -> None:
    s = SECTION
    good = [
        f"# cited (docs/fal-protocol.md {s}9.3-{s}9.5)",
        f"from docs/fal-protocol.md {s}10 (image apps), {s}12.2 (edits) and {s}12.4.",
        "see docs/openai-clients.md and README.md",
        'DOC = ROOT / "docs" / "errors.md"',
        f"tunnel (RFC 9110 {s}9.3.6)",
        "https://example.com/notes/other.md is a URL",
    ]
    for text in good:
        assert citation_problems(text) == [], text
    bad = [
        f"# (fal-protocol.md {s}2.4.2)",  # the shared doc's name, not a repo path
        "# (openai-conformance.md)",
        f"# (docs/fal-protocol.md {s}99)",  # no such section
        f"# (docs/fal-protocol.md {s}9.1, {s}2.4.1)",  # the second one
        f"# (docs/openai-clients.md {s}1.1)",  # a doc without numbered sections
        f"# the route's errors ({s}2.4.2)",  # a bare section number
    ]
    for text in bad:
        assert citation_problems(text) != [], text
