"""The layout ARCHITECTURE.md draws: rooms in layers, no room importing one above it, no import circle.

Read from the source (no imports run). Imports under ``if TYPE_CHECKING:`` are for annotations only and
are left out; imports inside functions count: a lazy import hides a dependency, it does not remove it.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "voxvault"

# Lower number = lower layer. A room may import its own modules and rooms of a lower layer.
LAYERS: dict[str, int] = {
    "errors": 0,
    "config": 1,
    "optional": 1,
    "text": 2,
    "audio": 2,
    "store": 2,
    "engines": 3,
    "governance": 3,
    "transcripts": 4,
    "synthesis": 4,
    "cloning": 4,
    "voices": 5,
    "jobs": 6,  # batch and adaptation jobs: take a VoxVault, never import it (Ray actors get its class)
    "service": 7,  # VoxVault: the composition root of the domain rooms
    "web": 8,
    "api": 9,
    "cli_common": 10,
    "cli_batch": 11,
    "cli_eval": 11,
    "cli_governance": 11,
    "cli_transcribe": 11,
    "cli_voices": 11,
    "cli": 12,
    "__main__": 13,
    "__init__": 13,
}


def _module(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _room(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path: Path) -> Iterator[tuple[str, int]]:
    """(imported voxvault module, line), TYPE_CHECKING blocks skipped; ``from voxvault import audio``
    counts as importing ``voxvault.audio``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    skipped: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skipped |= {id(n) for n in ast.walk(node)}
    for node in ast.walk(tree):
        if id(node) in skipped:
            continue
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "voxvault":
            if node.module == "voxvault":
                for alias in node.names:
                    yield f"voxvault.{alias.name}", node.lineno
            else:
                yield node.module, node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "voxvault":
                    yield alias.name, node.lineno


def _graph() -> dict[str, set[str]]:
    files = {_module(p): p for p in PACKAGE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in files.items():
        deps: set[str] = set()
        for target, _ in _imports(path):
            # a name imported from a package may be a module of it: count the module itself
            while target not in files and "." in target:
                target = target.rsplit(".", 1)[0]
            if target in files and target != name:
                deps.add(target)
        graph[name] = deps
    return graph


def test_every_room_has_a_layer() -> None:
    rooms = {_room(_module(p)) for p in PACKAGE.rglob("*.py")}
    assert rooms <= set(LAYERS), (
        f"rooms without a layer in this test and ARCHITECTURE.md: {rooms - set(LAYERS)}"
    )


def test_no_room_imports_a_room_above_it() -> None:
    upward = []
    for path in sorted(PACKAGE.rglob("*.py")):
        room = _room(_module(path))
        for target, line in _imports(path):
            other = _room(target)
            if other != room and LAYERS.get(other, -1) >= LAYERS[room]:
                upward.append(f"{path.relative_to(PACKAGE)}:{line} {room} -> {other}")
    assert not upward, "imports that run up the layers:\n" + "\n".join(upward)


def test_no_import_circle() -> None:
    graph = _graph()
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    circles: list[list[str]] = []

    def visit(v: str) -> None:  # Tarjan's strongly connected components
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    assert not circles, f"import circles: {circles}"


def test_the_checks_see_a_circle_and_an_upward_import(tmp_path: Path) -> None:
    """The scan is not blind: a lazy import hidden in a function is still an import."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    from voxvault.api import deps\n"
        "def later():\n    from voxvault.service import VoxVault\n",
        encoding="utf-8",
    )
    assert [name for name, _ in _imports(sample)] == ["voxvault.service"]
