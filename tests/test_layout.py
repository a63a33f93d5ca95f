"""The layout shows the architecture: each stage a folder, imports only go down the layers, no
cycles, the torch-free layers stay torch-free, and files and classes stay small (docs/architecture.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "lakhnes"

#: lowest first; a unit may import only units of lower layers (and shared utilities, layer 0)
LAYERS = [
    {"errors", "io", "progress", "batch"},
    {"core"},
    {"formats", "synth"},
    {"data", "models"},
    {"decoding", "evaluation"},
    {"training", "generate", "runtime"},
    {"listen", "studio"},
    {"cli", "__main__", "__init__"},
]
LAYER_OF = {unit: k for k, units in enumerate(LAYERS) for unit in units}
#: imports that go up a layer, each with its reason
UPWARD_OK: dict[tuple[str, str], str] = {}
#: layers that must run without torch (import it lazily inside a function at most)
TORCH_FREE = {"core", "formats", "synth", "data", "errors", "io", "progress", "batch"}
MAX_FILE_LINES, MAX_CLASS_LINES = 400, 150


def unit_of(path: Path) -> str:
    rel = path.relative_to(SRC)
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def modules():
    for path in sorted(SRC.rglob("*.py")):
        yield path, ast.parse(path.read_text(), str(path))


def imports(tree: ast.Module, top_level_only: bool = False):
    nodes = tree.body if top_level_only else ast.walk(tree)
    for node in nodes:
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            if node.module == "lakhnes":
                yield from (f"lakhnes.{a.name}" for a in node.names)
            else:
                yield node.module
        elif isinstance(node, ast.Import):
            yield from (a.name for a in node.names)


def reason_at_top(tree: ast.Module, what: str) -> bool:
    doc = ast.get_docstring(tree) or ""
    return what in doc.lower()


def test_every_unit_has_a_layer():
    units = {unit_of(p) for p, _ in modules()}
    assert units <= set(LAYER_OF), f"place these in LAYERS and docs/architecture.md: {units - set(LAYER_OF)}"


def unit_imports():
    """(file, its unit, the lakhnes unit it imports) for every import of another unit."""
    for path, tree in modules():
        unit = unit_of(path)
        for name in imports(tree):
            parts = name.split(".")
            if parts[0] != "lakhnes" or len(parts) < 2:
                continue
            target = parts[1] if (SRC / parts[1]).is_dir() or (SRC / f"{parts[1]}.py").exists() else "__init__"
            if target != unit:  # (a name from lakhnes/__init__.py counts as an import of the package face)
                yield str(path.relative_to(SRC)), unit, target


def test_imports_only_go_down():
    upward = [f"{rel} imports lakhnes.{target}" for rel, unit, target in unit_imports()
              if LAYER_OF.get(target, 99) > LAYER_OF[unit] and (rel, target) not in UPWARD_OK]
    assert not upward, upward


def test_no_import_cycles_between_units():
    graph: dict[str, set[str]] = {}
    for _, unit, target in unit_imports():
        graph.setdefault(unit, set()).add(target)
    state: dict[str, int] = {}

    def visit(u, path):
        state[u] = 1
        for v in sorted(graph.get(u, ())):
            assert state.get(v) != 1, "import cycle: " + " -> ".join([*path, u, v])
            if v not in state:
                visit(v, [*path, u])
        state[u] = 2

    for u in sorted(graph):
        if u not in state:
            visit(u, [])


def test_torch_free_layers_import_no_torch_at_module_level():
    bad = [str(p.relative_to(SRC)) for p, tree in modules()
           if unit_of(p) in TORCH_FREE and any(n.split(".")[0] == "torch" for n in imports(tree, True))]
    assert not bad, bad


@pytest.mark.parametrize("limit_kind", ["file", "class"])
def test_files_and_classes_are_small(limit_kind):
    big = []
    for path, tree in modules():
        rel = str(path.relative_to(SRC))
        if limit_kind == "file":
            n = len(path.read_text().splitlines())
            if n > MAX_FILE_LINES and not reason_at_top(tree, "why this file is long"):
                big.append(f"{rel}: {n} lines")
        else:
            for node in ast.walk(tree):
                if isinstance(node, ast.ClassDef):
                    n = node.end_lineno - node.lineno + 1
                    if n > MAX_CLASS_LINES and not reason_at_top(tree, f"why {node.name.lower()} is long"):
                        big.append(f"{rel}: class {node.name} {n} lines")
    assert not big, big
