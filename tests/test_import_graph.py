"""The package's import graph: no cycles, and no import that runs back up the layers.

Every `import` statement counts, at module level or inside a function (a lazy import that would close
a cycle is still a cycle). Layers, bottom to top; a module may import its own package and lower layers:
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parent.parent / "kinherit"

LAYERS = [
    {"errors", "io", "registry", "version"},
    {"config", "describe", "arch", "hf_folder", "data", "kd"},
    {"metrics", "grow"},
    {"inherit", "plan"},
    {"train"},
    {"recycle"},
    {"demo"},
    {"cli"},
]


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imports(path: Path, name: str) -> set[str]:
    """The kinherit modules `path` imports (relative imports resolved; `from pkg import mod` counted as pkg.mod)."""
    found = set()
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("kinherit")}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(
                    package.split(".")[: len(package.split(".")) - node.level + 1] + ([base] if base else [])
                )
            if base.startswith("kinherit"):
                found.add(base)
                found |= {f"{base}.{a.name}" for a in node.names}
    return found


def _graph() -> dict[str, set[str]]:
    files = {_module_name(p): p for p in PACKAGE.rglob("*.py")}
    return {name: {m for m in _imports(path, name) if m in files and m != name} for name, path in files.items()}


MODULE_LAYERS = {
    # the α-schedule registry is a leaf (pure functions and a Registry) that config validates names against
    "kinherit.kd.schedules": 1,
    "kinherit.kd.losses": 1,  # the KD-loss registry (teacher.loss)
    # the cross-tokenizer method registry (teacher.cross_tokenizer): the methods' pure losses and what they read
    **{
        f"kinherit.inherit.cross_tokenizer{m}": 1
        for m in ("", ".method", ".alm", ".shared_vocab", ".shared_prefix", ".targets")
    },
    "kinherit.kd.alignment": 1,
    # the growth options and the operator registries they validate names against (no torch at import), which
    # growth stages of a training config embed
    "kinherit.grow.options": 1,
    "kinherit.grow.width": 1,
    "kinherit.grow.depth": 1,
    "kinherit.grow.maps": 1,
}


def _top(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _layer(module: str) -> int:
    if module in MODULE_LAYERS:
        return MODULE_LAYERS[module]
    top = _top(module)
    for index, layer in enumerate(LAYERS):
        if top in layer:
            return index
    raise AssertionError(f"{module}: its package {top!r} has no layer in tests/test_import_graph.py")


def test_every_package_has_a_layer():
    for module in _graph():
        if module != "kinherit":
            _layer(module)


def test_no_import_runs_up_the_layers():
    upward = sorted(
        f"{a} -> {b}"
        for a, deps in _graph().items()
        if a != "kinherit"
        for b in deps
        if _top(a) != _top(b) and _layer(b) > _layer(a)
    )
    assert not upward, upward


def test_no_cycles():
    graph = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                pytest.fail("import cycle: " + " -> ".join(stack[stack.index(dep) :] + [dep]))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)


def test_no_two_way_package_pairs():
    """Packages import each other one way only (type-only imports count): arch types a `model:` section by the
    `spec.ModelSizes` protocol, not by `config.ModelConfig`, and config validates registry names against `kd`,
    which sits below it, never against `inherit`, which imports config."""
    edges = {(_top(a), _top(b)) for a, deps in _graph().items() for b in deps if _top(a) != _top(b)}
    pairs = sorted({tuple(sorted(e)) for e in edges if e[::-1] in edges})
    assert not pairs, pairs
