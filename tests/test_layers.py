"""The layers point one way: the import graph of the library and the services has no cycles and
no import from a lower layer into a higher one.

steps (pure math) ← models ← pipeline (registry, plug-ins, runner, the image use case) ← jobs ←
services ← the command line. Run ``python tests/test_layers.py`` to print the figures and every
offending import.
"""

from __future__ import annotations

import ast
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Top-level package → its folder.
PACKAGES = {
    "overnight": REPO / "shared/overnight",
    "overnight_ingest": REPO / "services/ingest/overnight_ingest",
    "overnight_qc": REPO / "services/qc-web/overnight_qc",
    "overnight_dispatch": REPO / "services/dispatcher/overnight_dispatch",
    "overnight_segmentation": REPO / "services/segmentation/overnight_segmentation",
    "overnight_pnp": REPO / "services/pnp-counter/overnight_pnp",
}
#: Layers, lowest first: each unit (a module or package prefix) may import its own layer and
#: the ones below it, never one above.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "foundation",
        ("overnight", "overnight.errors", "overnight.config", "overnight.logs", "overnight.entry"),
    ),
    (
        "data",
        (
            "overnight.imaging",
            "overnight.metadata",
            "overnight.storage",
            "overnight.results",
            "overnight.synth",
            "overnight.evaluation",
        ),
    ),
    (
        "steps",
        ("overnight.steps", "overnight.analysis", "overnight.skin.series", "overnight.skin.plots"),
    ),
    ("models", ("overnight.models", "overnight.skin.training")),
    ("pipeline", ("overnight.pipeline", "overnight.skin", "overnight.skin.pipeline")),
    ("jobs", ("overnight.jobs", "overnight.dispatch", "overnight.review")),
    (
        "services",
        (
            "overnight_ingest",
            "overnight_qc",
            "overnight_dispatch",
            "overnight_segmentation",
            "overnight_pnp",
        ),
    ),
    ("cli", ("overnight.cli",)),
)
#: Cycles between units that are known and being removed, with the reason. Empty: none (the
#: models.skin <-> skin.training cycle went with 2875d8b, skin training on the shared loop).
ALLOWED_CYCLES: tuple[frozenset[str], ...] = ()

LAYER_OF = {unit: index for index, (_, units) in enumerate(LAYERS) for unit in units}


def modules() -> dict[str, Path]:
    """Every module of the packages, by dotted name."""
    found = {}
    for package, root in PACKAGES.items():
        for path in root.rglob("*.py"):
            parts = [package, *path.relative_to(root).with_suffix("").parts]
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join(parts)] = path
    return found


def unit_of(module: str) -> str:
    """The layer unit of ``module``: the longest prefix named in :data:`LAYERS`."""
    parts = module.split(".")
    for end in range(len(parts), 0, -1):
        prefix = ".".join(parts[:end])
        if prefix in LAYER_OF:
            return prefix
    raise AssertionError(f"{module} belongs to no layer: add it to LAYERS in {__file__}")


def imports(module: str, path: Path) -> Iterator[str]:
    """The project modules ``module`` imports (anywhere in it, function bodies included)."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                names = [".".join([*base, *([node.module] if node.module else [])])]
            elif node.module:
                names = [node.module]
        for name in names:
            if name.split(".")[0] in PACKAGES:
                yield name


def unit_graph() -> dict[tuple[str, str], set[str]]:
    """(importing unit, imported unit) → the importing modules."""
    edges: dict[tuple[str, str], set[str]] = defaultdict(set)
    for module, path in modules().items():
        for name in imports(module, path):
            source, target = unit_of(module), unit_of(name)
            if source != target:
                edges[(source, target)].add(module)
    return edges


def upward(edges: dict[tuple[str, str], set[str]]) -> list[str]:
    """Imports from a lower layer into a higher one."""
    return [
        f"{a} ({LAYERS[LAYER_OF[a]][0]}) imports {b} ({LAYERS[LAYER_OF[b]][0]}): {sorted(ms)}"
        for (a, b), ms in sorted(edges.items())
        if LAYER_OF[a] < LAYER_OF[b]
    ]


def cycles(edges: dict[tuple[str, str], set[str]]) -> list[frozenset[str]]:
    """Strongly connected groups of more than one unit (Tarjan)."""
    graph: dict[str, set[str]] = defaultdict(set)
    for a, b in edges:
        graph[a].add(b)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[frozenset[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                found.append(frozenset(group))

    for node in sorted(set(graph)):
        if node not in index:
            visit(node)
    return found


def test_every_module_belongs_to_a_layer() -> None:
    for module in modules():
        unit_of(module)


def test_no_import_points_up() -> None:
    assert upward(unit_graph()) == []


def test_no_import_cycles() -> None:
    assert [c for c in cycles(unit_graph()) if c not in ALLOWED_CYCLES] == []


def test_the_library_does_not_import_the_services() -> None:
    services = {u for u in LAYERS[LAYER_OF["overnight_ingest"]][1]}
    offending = {
        (a, b): ms
        for (a, b), ms in unit_graph().items()
        if a.startswith("overnight.") and b in services
    }
    assert offending == {}


if __name__ == "__main__":
    graph = unit_graph()
    up, loops = upward(graph), cycles(graph)
    print(f"{len(loops)} cycles, {len(up)} upward imports")
    for loop in loops:
        print("cycle:", " <-> ".join(sorted(loop)))
    for line in up:
        print("up:", line)
    sys.exit(1 if up or loops else 0)
