"""The trainer stack's import graph: metrics/ and inherit/ never import train/ (the trainer is given objectives),
and there is no cycle among the modules of train/, inherit/, metrics/ and recycle/ (static, from the modules' import
statements)."""

import ast
from pathlib import Path

import kinherit

ROOT = Path(kinherit.__file__).parent
SCOPE = ("kinherit.train", "kinherit.inherit", "kinherit.metrics", "kinherit.recycle")


def _imports() -> dict[str, set[str]]:
    """module → the kinherit modules it imports (anywhere in the file, lazy imports included)."""
    modules = {
        ".".join(("kinherit", *p.relative_to(ROOT).with_suffix("").parts)).removesuffix(".__init__"): p
        for p in ROOT.rglob("*.py")
    }
    graph = {}
    for name, path in modules.items():
        found = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("kinherit"):
                found |= {
                    f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                    for a in node.names
                }
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("kinherit")}
        graph[name] = {m for m in found if m in modules and m != name}
    return graph


def test_lower_layers_do_not_import_the_trainer():
    graph = _imports()
    for name, deps in graph.items():
        if name.startswith(("kinherit.inherit", "kinherit.metrics")):
            assert not {d for d in deps if d.startswith(("kinherit.train", "kinherit.recycle"))}, name


def test_no_import_cycle_in_the_training_stack():
    graph = _imports()
    state: dict[str, int] = {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        for dep in (d for d in graph[node] if d.startswith(SCOPE)):
            assert state.get(dep) != 1, " → ".join(path[path.index(dep) :] + [dep]) if dep in path else dep
            if dep not in state:
                visit(dep, [*path, dep])
        state[node] = 2

    for name in sorted(graph):
        if name.startswith(SCOPE) and name not in state:
            visit(name, [name])
