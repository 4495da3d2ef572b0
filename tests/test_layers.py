"""The package's layers (docs/DESIGN.md §2, "Layers"): its import graph, read with ``ast`` --
module-level and function-level imports, and the modules the kind registry loads by name -- has
no cycle, and every import points down (or within a layer): errors and settings at the bottom,
the engine above them, the driver above the engine, the interfaces on top."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.quick  # pure Python: make test-quick

PACKAGE = Path(__file__).resolve().parent.parent / "parity_jax"

BOTTOM, ENGINE, DRIVER, INTERFACE = range(4)
# Each module's layer, by name ("kinds" covers every module of the kinds package). A new module
# must be placed here: the test says so.
LAYERS = {
    "errors": BOTTOM, "settings": BOTTOM, "config": BOTTOM, "files": BOTTOM,
    "progress": BOTTOM, "_start": BOTTOM, "flops": BOTTOM,
    "models": ENGINE, "tasks": ENGINE, "targets": ENGINE, "trackers": ENGINE, "steps": ENGINE,
    "kernel": ENGINE, "kernel_check": ENGINE, "core": ENGINE, "devices": ENGINE,
    "oracles": ENGINE, "keys": ENGINE, "datasets": ENGINE, "forest": ENGINE, "timing": ENGINE,
    "alternatives": ENGINE, "terms": ENGINE, "race": ENGINE, "multihost": ENGINE,
    "plan": DRIVER, "costs": DRIVER, "runner": DRIVER, "store": DRIVER, "lock": DRIVER,
    "merge": DRIVER, "check": DRIVER, "results": DRIVER, "kinds": DRIVER,
    "stored": DRIVER,
    "reduce": DRIVER, "render": DRIVER, "plots": DRIVER,
    "cli": INTERFACE, "doctor": INTERFACE, "speed": INTERFACE, "bench": INTERFACE,
    "experiment": INTERFACE,
    "__main__": INTERFACE,
}


def _modules() -> dict[str, Path]:
    """Every module of the package by dotted name (a package by its ``__init__``)."""
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _loaded_by_name(tree: ast.AST) -> list[str]:
    """The modules a registry loads by name: string constants naming a package module in a
    dict literal (``kinds._BUILTINS``)."""
    return [n.value for d in ast.walk(tree) if isinstance(d, ast.Dict)
            for n in d.values if isinstance(n, ast.Constant) and isinstance(n.value, str)
            and n.value.startswith("parity_jax.")]


def _edges(name: str, path: Path, modules: dict[str, Path]) -> set[str]:
    """The package modules ``name`` imports (at any depth of its code)."""
    tree = ast.parse(path.read_text())
    out = set()
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                       for a in node.names]
        else:
            continue
        for t in targets:
            while t and t not in modules:  # parity_jax.kinds.parity.kind.KIND -> its module
                t = t.rpartition(".")[0]
            if t and t != name:
                out.add(t)
    if name == "parity_jax.kinds":
        out |= {m for m in _loaded_by_name(tree) if m in modules}
    return out


def _layer(name: str) -> int:
    parts = name.split(".")
    if len(parts) == 1:  # the package's face: re-exports, loaded lazily
        return INTERFACE
    if parts[1] not in LAYERS:
        pytest.fail(f"module {name}: place it in a layer (tests/test_layers.py LAYERS)")
    return LAYERS[parts[1]]


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _edges(name, path, modules) for name, path in modules.items()}


def test_the_import_graph_has_no_cycle():
    _find_cycle(_graph())


def _find_cycle(graph: dict[str, set[str]]) -> None:
    """Fails with the first import cycle of ``graph`` (a depth-first search)."""
    state: dict[str, int] = {}  # 1: on the path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_every_import_points_down_a_layer_or_within_one():
    up = [f"{a} -> {b}" for a, targets in _graph().items() for b in sorted(targets)
          if a != "parity_jax" and _layer(b) > _layer(a)]
    assert up == [], up


def test_the_bottom_imports_nothing_above_it_and_errors_nothing_at_all():
    graph = _graph()
    assert graph["parity_jax.errors"] == set()
    for name, targets in graph.items():
        if len(name.split(".")) > 1 and _layer(name) == BOTTOM:
            assert all(_layer(t) == BOTTOM for t in targets), (name, targets)


def test_the_graph_sees_function_level_imports_and_the_registry(tmp_path):
    graph = _graph()
    assert "parity_jax.kinds.parity.kind" in graph["parity_jax.kinds"]  # loaded by name
    assert "parity_jax.kinds.tabular.kind" in graph["parity_jax.kinds"]
    # a function-level import is an edge like any other: a hidden cycle would show
    module = tmp_path / "m.py"
    module.write_text("import json\n\n\ndef f():\n    from parity_jax.tasks import xy\n"
                      "    from parity_jax import errors as e\n    return xy, e\n")
    assert _edges("parity_jax.m", module, _modules()) == {"parity_jax.tasks.xy",
                                                           "parity_jax.errors"}
    cyclic = {"a": {"b"}, "b": {"a"}}
    with pytest.raises(pytest.fail.Exception, match="import cycle: a -> b -> a"):
        _find_cycle(cyclic)
