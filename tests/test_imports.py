"""The package's static import graph has no cycle.

Every import counts, at module level or inside a function (a lazy import only hides a cycle until
the function runs); registries that discover their members (``DISCOVERS_SUBMODULES``) import them by
name, which is no edge. The params loader imports nothing from the project.
"""

from __future__ import annotations

from pathlib import Path

from deepfake_audio.codedeps import ROOT, imported_modules, module_path

PACKAGE = ROOT / "deepfake_audio"


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Project module -> the project modules its import statements run."""
    graph = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        name = _module_name(path)
        scan = imported_modules(path, name)
        graph[name] = {
            m for m in scan.imports if m != name and m.startswith("deepfake_audio") and module_path(m) is not None
        }
    return graph


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected component of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
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
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_find_cycles_finds_one() -> None:
    assert find_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert find_cycles({"a": {"b"}, "b": set()}) == []


def test_the_package_has_no_import_cycle() -> None:
    graph = import_graph()
    assert "deepfake_audio.models.neural" in graph and graph["deepfake_audio.params"] == set()
    assert find_cycles(graph) == []
