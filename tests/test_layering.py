"""The import layering of qopt, read from the source (nothing is imported).

Three rules, each its own test:

- the core (``qopt/``) never imports ``qopt.integrations``, at module level or inside a
  function: the arrow runs integrations -> core only;
- the import graph of ``qopt.*`` modules has no cycle; imports inside functions count (a lazy
  import that dodges a cycle is still one), ``if TYPE_CHECKING:`` imports do not;
- no private name (a leading underscore, not a dunder) is imported from outside the module or
  package that owns it: ``from qopt.constraints import _helper`` in another module is refused,
  ``from qopt.nas._spec import Spec`` inside ``qopt.nas`` is not.

Each failure lists the offending edges as ``importer -> imported (file:line)``.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

#: Where each top-level package's sources live (``integrations/`` installs as qopt.integrations).
ROOTS = {"qopt": REPO / "qopt", "qopt.integrations": REPO / "integrations"}

INTEGRATIONS = "qopt.integrations"


@dataclass(frozen=True)
class Edge:
    """One import statement's arrow from a qopt module to a qopt module (or name in it)."""

    importer: str
    imported: str  # the module the statement loads
    name: str | None  # the name taken from it (``from imported import name``), if any
    file: str  # relative to the folder holding qopt/ and integrations/
    line: int
    in_function: bool

    def __str__(self) -> str:
        what = self.imported if self.name is None else f"{self.imported}.{self.name}"
        return f"{self.importer} -> {what} ({self.where})"

    @property
    def where(self) -> str:
        return ("inside a function, " if self.in_function else "") + f"{self.file}:{self.line}"


def module_files(roots: dict[str, Path]) -> dict[str, tuple[Path, str]]:
    """Every module under the roots by dotted name (a package by its ``__init__.py``), with
    its path and its path as printed (relative to its root's parent folder)."""
    modules = {}
    for package, folder in roots.items():
        for path in sorted(folder.rglob("*.py")):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            modules[".".join([package, *parts])] = (path, str(path.relative_to(folder.parent)))
    return modules


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.AST) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
    """Every import statement with whether it sits inside a function; ``if TYPE_CHECKING:``
    blocks are skipped (their ``else:`` branch is not)."""

    def walk(
        node: ast.AST, in_function: bool
    ) -> Iterator[tuple[ast.Import | ast.ImportFrom, bool]]:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                yield child, in_function
            elif isinstance(child, ast.If) and _is_type_checking(child.test):
                for other in child.orelse:
                    yield from walk(ast.Module(body=[other], type_ignores=[]), in_function)
            else:
                nested = in_function or isinstance(
                    child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda
                )
                yield from walk(child, nested)

    yield from walk(tree, False)


def _known(name: str, modules: dict[str, tuple[Path, str]]) -> str | None:
    """The longest prefix of ``name`` that is a known module (``None`` outside qopt)."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def import_edges(roots: dict[str, Path] = ROOTS) -> list[Edge]:
    """Every import arrow between qopt modules under ``roots``."""
    modules = module_files(roots)
    edges = []
    for importer, (path, file) in modules.items():
        is_package = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node, in_function in _imports(tree):
            found: list[tuple[str | None, str | None]] = []
            if isinstance(node, ast.Import):
                found = [(_known(alias.name, modules), None) for alias in node.names]
            else:
                base = node.module or ""
                if node.level:
                    anchor = importer.split(".")
                    anchor = anchor if is_package else anchor[:-1]
                    anchor = anchor[: len(anchor) - (node.level - 1)]
                    base = ".".join(filter(None, [*anchor, base]))
                for alias in node.names:
                    submodule = f"{base}.{alias.name}"
                    if submodule in modules:  # ``from package import module``
                        found.append((submodule, None))
                    else:
                        found.append((_known(base, modules), alias.name))
            for imported, name in found:
                if imported is not None and imported != importer:
                    edges.append(Edge(importer, imported, name, file, node.lineno, in_function))
    return edges


def core_to_integrations(edges: list[Edge]) -> list[Edge]:
    """Arrows from the core (``qopt`` outside ``qopt.integrations``) into the integrations."""

    def inside(module: str) -> bool:
        return module == INTEGRATIONS or module.startswith(INTEGRATIONS + ".")

    return [e for e in edges if not inside(e.importer) and inside(e.imported)]


def _shortest_cycle(graph: dict[str, set[str]], group: set[str]) -> str:
    """``a -> b -> ... -> a``: a shortest cycle through the group's first module (BFS)."""
    start = min(group)
    parents: dict[str, str] = {}
    frontier = [start]
    while frontier:
        following = []
        for node in frontier:
            for successor in sorted(graph[node] & group):
                if successor == start:
                    path = [node]
                    while path[-1] != start:
                        path.append(parents[path[-1]])
                    return " -> ".join([*reversed(path), start])
                if successor not in parents:
                    parents[successor] = node
                    following.append(successor)
        frontier = following
    raise AssertionError(f"no cycle through {start}")  # a strongly connected group has one


def cycles(edges: list[Edge]) -> list[list[str]]:
    """Each strongly connected group of modules (Tarjan's algorithm): a shortest cycle in it,
    then every import statement inside it as ``importer -> imported (file:line)``. A group of
    two or more modules each reachable from the others holds one cycle or several."""
    graph: dict[str, set[str]] = {}
    for edge in edges:
        graph.setdefault(edge.importer, set()).add(edge.imported)
        graph.setdefault(edge.imported, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[set[str]] = []

    def connect(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                connect(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            group = set()
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.add(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(group)

    for node in sorted(graph):
        if node not in index:
            connect(node)
    return [
        [
            f"cycle: {_shortest_cycle(graph, group)}",
            *sorted(
                {
                    f"{e.importer} -> {e.imported} ({e.where})"
                    for e in edges
                    if e.importer in group and e.imported in group
                }
            ),
        ]
        for group in groups
    ]


def _is_private(name: str) -> bool:
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def private_imports(edges: list[Edge]) -> list[Edge]:
    """Arrows that take a private name from outside the module or package that owns it.

    In ``a.b._c.d`` the private ``_c`` belongs to ``a.b``: only modules inside ``a.b`` may
    import it. ``from a.b import _x`` takes ``_x`` from ``a.b``: only ``a.b`` itself (or, for a
    package, its modules) may.
    """
    offending = []
    for edge in edges:
        parts = edge.imported.split(".") + ([edge.name] if edge.name else [])
        for position, part in enumerate(parts):
            if not _is_private(part):
                continue
            owner = ".".join(parts[:position])
            if not (edge.importer == owner or edge.importer.startswith(owner + ".")):
                offending.append(edge)
                break
    return offending


def _report(title: str, lines: list[Edge] | list[str]) -> str:
    return f"{title} ({len(lines)}):\n" + "\n".join(f"  {line}" for line in lines)


# --- the checker itself, on a small tree built for it ---------------------------------------


def _tree(tmp_path: Path, files: dict[str, str]) -> dict[str, Path]:
    for name, text in files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return {"qopt": tmp_path / "qopt", "qopt.integrations": tmp_path / "integrations"}


def test_checker_finds_each_kind_of_offence(tmp_path: Path) -> None:
    roots = _tree(
        tmp_path,
        {
            "qopt/__init__.py": "",
            "qopt/core.py": (
                "from typing import TYPE_CHECKING\n"
                "from qopt.helpers import _private, public\n"
                "if TYPE_CHECKING:\n"
                "    from qopt.integrations.tool import Thing\n"
                "def lazy():\n"
                "    from qopt.integrations import tool\n"
            ),
            "qopt/helpers.py": "def public(): ...\ndef _private(): ...\n",
            "qopt/sub/__init__.py": "from ._impl import Impl\n",
            "qopt/sub/_impl.py": "from . import _other\nclass Impl: ...\n",
            "qopt/sub/_other.py": "def later():\n    from qopt.sub import Impl\n",
            "integrations/__init__.py": "",
            "integrations/tool.py": "from qopt.sub._impl import Impl\nfrom qopt.core import lazy\n",
        },
    )
    edges = import_edges(roots)
    assert [str(e) for e in core_to_integrations(edges)] == [
        "qopt.core -> qopt.integrations.tool (inside a function, qopt/core.py:6)"
    ]
    assert [str(e) for e in private_imports(edges)] == [
        "qopt.core -> qopt.helpers._private (qopt/core.py:2)",
        "qopt.integrations.tool -> qopt.sub._impl.Impl (integrations/tool.py:1)",
    ]
    # core -> integrations.tool -> core, and the lazy sub -> _impl -> _other -> sub.
    assert sorted(cycles(edges)) == [
        [
            "cycle: qopt.core -> qopt.integrations.tool -> qopt.core",
            "qopt.core -> qopt.integrations.tool (inside a function, qopt/core.py:6)",
            "qopt.integrations.tool -> qopt.core (integrations/tool.py:2)",
        ],
        [
            "cycle: qopt.sub -> qopt.sub._impl -> qopt.sub._other -> qopt.sub",
            "qopt.sub -> qopt.sub._impl (qopt/sub/__init__.py:1)",
            "qopt.sub._impl -> qopt.sub._other (qopt/sub/_impl.py:1)",
            "qopt.sub._other -> qopt.sub (inside a function, qopt/sub/_other.py:2)",
        ],
    ]


# --- the rules, on qopt itself ---------------------------------------------------------------

EDGES = import_edges()


def test_the_checker_sees_qopt() -> None:
    importers = {e.importer for e in EDGES}
    assert {"qopt.solvers", "qopt.pipeline", "qopt.cli", "qopt.integrations.optuna"} <= importers
    assert any(e.importer == "qopt.pipeline" and e.imported == "qopt.solvers" for e in EDGES)


def test_core_never_imports_the_integrations() -> None:
    offending = core_to_integrations(EDGES)
    assert not offending, _report("qopt/ imports qopt.integrations", offending)


def test_no_import_cycles() -> None:
    groups = cycles(EDGES)
    assert not groups, "\n".join(_report("import cycle", group) for group in groups)


def test_no_private_names_across_modules() -> None:
    offending = private_imports(EDGES)
    assert not offending, _report("private names imported from outside their owner", offending)
