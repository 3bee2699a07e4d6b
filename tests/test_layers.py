"""Imports run one way — recipes → graphs → agents ← knowledge (finetune above agents) — with no circles.

Every import counts, also the lazy ones inside functions and those under TYPE_CHECKING: a reader
who follows an import should never come back to where they started.
"""

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("agents", "knowledge", "graphs", "finetune", "recipes")

#: package → the project packages it may import (itself included).
ALLOWED = {
    "agents": {"agents"},
    "knowledge": {"agents", "knowledge"},
    "graphs": {"agents", "knowledge", "graphs"},
    "finetune": {"agents", "knowledge", "graphs", "finetune"},
    "recipes": {"agents", "knowledge", "graphs", "finetune", "recipes"},
}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> set[str]:
    """Project modules imported anywhere in `path` (absolute imports; `from a import b` may name a module)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.split(".")[0] in PACKAGES}


def project_graph() -> dict[str, set[str]]:
    files = {module_name(p): p for pkg in PACKAGES for p in (REPO / pkg).rglob("*.py")}
    return {name: {m for m in imports_of(path) if m in files and m != name} for name, path in files.items()}


def test_no_lower_layer_imports_a_higher_one():
    wrong = sorted(f"{mod} imports {dep}" for mod, deps in project_graph().items() for dep in deps
                   if dep.split(".")[0] not in ALLOWED[mod.split(".")[0]])
    assert wrong == []


def test_no_import_circles():
    graph = project_graph()
    index, low, stack, on_stack, circles = {}, {}, [], set(), []

    def visit(node: str) -> None:  # Tarjan's strongly connected components
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in graph[node]:
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            component = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.add(member)
                if member == node:
                    break
            if len(component) > 1:
                circles.append(sorted(component))

    for node in graph:
        if node not in index:
            visit(node)
    assert circles == []

