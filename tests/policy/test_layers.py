"""The layers' arrows point down only: checked on the imports of every module."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "fal_openai_proxy"


def imports_of(path: Path) -> set[str]:
    """Absolute names of the package's own modules that `path` imports."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                names.add(".".join([*base, node.module] if node.module else base))
            elif node.module:
                names.add(node.module)
        elif isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
    return {n for n in names if n.startswith("fal_openai_proxy")}


def layer(name: str) -> str:
    """fal_openai_proxy.fal.keys -> "fal"; the package itself -> ""."""
    parts = name.split(".")
    return parts[1] if len(parts) > 1 else ""


def modules(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).rglob("*.py"))


# Top to bottom; a module may import its own layer and the layers below it, never above.
# `openai`/`anthropic` (the clients' protocols) and `fal` (the upstream's) stand side by side:
# neither imports the other, and only `translate` (pure) and `serve` see both.
LAYERS: dict[str, int] = {
    "serve": 5, "routes": 5, "services": 5,
    "translate": 4,
    "openai": 3, "anthropic": 3, "fal": 3,
    "store": 2,
    "base": 1,
}  # fmt: skip
SIDES = {"openai": "client", "anthropic": "client", "fal": "upstream"}


def product_modules() -> list[Path]:
    return sorted(
        p
        for p in PACKAGE.rglob("*.py")
        if p.relative_to(PACKAGE).parts[0] not in ("simulator", "__init__.py", "__main__.py")
    )


def test_every_module_is_in_a_layer() -> None:
    strays = [
        p.relative_to(PACKAGE).as_posix()
        for p in product_modules()
        if p.relative_to(PACKAGE).parts[0] not in LAYERS
    ]
    assert not strays, f"modules outside every layer: {strays}"


@pytest.mark.parametrize("path", product_modules(), ids=lambda p: p.relative_to(PACKAGE).as_posix())
def test_imports_point_down(path: Path) -> None:
    own = path.relative_to(PACKAGE).parts[0]
    bad = []
    for name in imports_of(path):
        other = layer(name)
        if other in ("", "simulator") or other == own:
            continue  # the package's __version__; the simulator has its own test below
        if LAYERS[other] > LAYERS[own]:
            bad.append(f"{name} (up: {other} is above {own})")
        elif LAYERS[other] == LAYERS[own] and SIDES.get(other) != SIDES.get(own):
            bad.append(f"{name} (across: {own} and {other} never import each other)")
    assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}"


@pytest.mark.parametrize("path", modules("fal"), ids=lambda p: p.name)
def test_fal_never_imports_the_client_side(path: Path) -> None:
    forbidden = ("openai", "anthropic", "translate", "routes", "services", "serve", "simulator")
    bad = [n for n in imports_of(path) if layer(n) in forbidden]
    assert not bad, f"{path.name} imports {bad}"


@pytest.mark.parametrize("path", modules("translate"), ids=lambda p: p.name)
def test_translate_does_no_io(path: Path) -> None:
    tree = ast.parse(path.read_text())
    imported = {
        a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names
    }
    imported |= {
        n.module.split(".")[0]
        for n in ast.walk(tree)
        if isinstance(n, ast.ImportFrom) and n.module and not n.level
    }
    assert not imported & {"asyncio", "socket", "httptools", "starlette", "uvicorn"}
    io_modules = ("fal.client", "fal.http", "fal.stream", "routes", "services", "serve", "store")
    bad = [
        n
        for n in imports_of(path)
        if n.startswith(tuple(f"fal_openai_proxy.{m}" for m in io_modules))
    ]
    assert not bad, f"{path.name} imports {bad}"


def test_only_the_cli_imports_the_simulator() -> None:
    importers = [
        p.relative_to(PACKAGE).as_posix()
        for p in PACKAGE.rglob("*.py")
        if "simulator" not in p.relative_to(PACKAGE).parts
        and any(n.startswith("fal_openai_proxy.simulator") for n in imports_of(p))
    ]
    assert importers in ([], ["serve/cli.py"])
