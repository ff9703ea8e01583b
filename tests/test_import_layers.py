"""Imports point one way: between the three layers, and inside ``rpc/`` from the shells down.

Every module of ``codec/``, ``transport/`` and ``rpc/`` is parsed (never imported), and every
``import`` statement in it counts: at module level, under ``if TYPE_CHECKING:``, and inside
functions, since an import hidden in a function or behind a type checker is still a dependency.

* No import cycles among the modules (each strongly connected group is reported with one cycle
  through it).
* ``codec`` imports nothing from ``transport`` or ``rpc``; ``transport`` nothing from ``rpc``.
* In ``rpc/``, the shared decisions (``rpc/_core/`` and the top-level private modules
  ``rpc/_*.py``) import nothing from the shells that wait (``rpc._aio``, ``rpc.sync``).
"""

from __future__ import annotations

import ast
import contextlib
import os
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import pytest

ROOT = Path(__file__).resolve().parent.parent
#: The layers, top first: each may import only the ones after it.
LAYERS = ("rpc", "transport", "codec")
#: The shells inside ``rpc/`` (packages or modules; either may not exist yet).
SHELLS = ("rpc._aio", "rpc.sync")


@dataclass(frozen=True)
class Module:
    name: str
    path: Path
    is_package: bool


@dataclass(frozen=True)
class Import:
    """One imported name: ``target`` as written (made absolute), ``module`` the project module
    it loads (None when it is outside the project)."""

    importer: Module
    target: str
    module: Optional[str]
    line: int

    def __str__(self) -> str:
        path = self.importer.path
        with contextlib.suppress(ValueError):
            path = path.relative_to(ROOT)
        return f"{path}:{self.line}: {self.importer.name} imports {self.target}"


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def find_modules(root: Path, packages: tuple[str, ...]) -> dict[str, Module]:
    """Every ``.py`` module of ``packages`` (directories under ``root``), by dotted name."""
    modules: dict[str, Module] = {}
    for top in packages:
        for directory, subdirs, files in os.walk(root / top):
            subdirs[:] = sorted(d for d in subdirs if d != "__pycache__")
            package = Path(directory).relative_to(root).parts
            for file in sorted(files):
                if not file.endswith(".py"):
                    continue
                path = Path(directory, file)
                if file == "__init__.py":
                    modules[".".join(package)] = Module(".".join(package), path, True)
                else:
                    name = ".".join((*package, file[:-3]))
                    modules[name] = Module(name, path, False)
    return modules


def _project_module(modules: dict[str, Module], name: str) -> Optional[str]:
    """The deepest project module that importing ``name`` loads (itself, or its package)."""
    while name:
        if name in modules:
            return name
        name = name.rpartition(".")[0]
    return None


def _absolute_base(module: Module, node: ast.ImportFrom) -> str:
    """The absolute name of ``<base>`` in ``from <base> import ...``, relative levels applied."""
    if not node.level:
        return node.module or ""
    parts = module.name.split(".")
    package = parts if module.is_package else parts[:-1]
    if node.level - 1 >= len(package):
        raise AssertionError(f"{module.path}:{node.lineno}: relative import beyond the top level")
    package = package[: len(package) - (node.level - 1)]
    return ".".join(package + ([node.module] if node.module else []))


def find_imports(modules: dict[str, Module]) -> list[Import]:
    """Every import statement of every module, wherever it stands (functions, ``if`` blocks)."""
    imports: list[Import] = []

    def add(module: Module, target: str, line: int) -> None:
        imports.append(Import(module, target, _project_module(modules, target), line))

    for module in modules.values():
        tree = ast.parse(module.path.read_bytes(), filename=str(module.path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    add(module, alias.name, node.lineno)
            elif isinstance(node, ast.ImportFrom):
                base = _absolute_base(module, node)
                for alias in node.names:
                    # ``from pkg import name``: the module ``pkg.name`` if there is one (also for
                    # ``from . import sibling`` inside ``pkg``), else ``pkg`` itself.
                    submodule = f"{base}.{alias.name}"
                    add(module, submodule if submodule in modules else base, node.lineno)
    return imports


def import_graph(imports: list[Import]) -> dict[str, set[str]]:
    """Importer -> the project modules it imports (itself left out)."""
    graph: dict[str, set[str]] = {}
    for imp in imports:
        edges = graph.setdefault(imp.importer.name, set())
        if imp.module is not None and imp.module != imp.importer.name:
            edges.add(imp.module)
            graph.setdefault(imp.module, set())
    return graph


_IMPORTS: list[Import] = []


def _imports() -> list[Import]:
    """The imports of this project's layers (parsed once per test session)."""
    if not _IMPORTS:
        _IMPORTS.extend(find_imports(find_modules(ROOT, LAYERS)))
    return _IMPORTS


def _strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (no recursion limit); groups of more than one module."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
            if low[node] == index[node]:
                group = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    group.append(member)
                    if member == node:
                        break
                if len(group) > 1:
                    groups.append(sorted(group))
    return sorted(groups)


def _a_cycle(graph: dict[str, set[str]], group: list[str]) -> list[str]:
    """A shortest cycle through the group's first module, staying inside the group."""
    start, members = group[0], set(group)
    came_from: dict[str, str] = {}
    queue = deque([start])
    while queue:
        node = queue.popleft()
        for child in sorted(graph[node] & members):
            if child == start:
                path = [node]
                while path[-1] != start:
                    path.append(came_from[path[-1]])
                return [*reversed(path), start]
            if child not in came_from:
                came_from[child] = node
                queue.append(child)
    raise AssertionError(f"no cycle in strongly connected group {group}")


@pytest.mark.parametrize("package", LAYERS)
def test_no_import_cycles(package: str) -> None:
    graph = import_graph(_imports())
    cycles = [
        group
        for group in _strongly_connected(graph)
        if any(_within(name, package) for name in group)
    ]
    report = "\n".join(
        f"  {group}\n    e.g. {' -> '.join(_a_cycle(graph, group))}" for group in cycles
    )
    assert not cycles, f"import cycles involving {package}:\n{report}"


@pytest.mark.parametrize("layer", LAYERS[1:])
def test_lower_layers_import_nothing_from_upper_ones(layer: str) -> None:
    above = LAYERS[: LAYERS.index(layer)]
    wrong = [
        str(imp)
        for imp in _imports()
        if _within(imp.importer.name, layer) and any(_within(imp.target, up) for up in above)
    ]
    assert not wrong, f"{layer} imports from {', '.join(above)}:\n" + "\n".join(wrong)


def _shared_rpc_module(module: Module) -> bool:
    """``rpc/_core/...``, or a top-level private module ``rpc/_*.py`` (not a shell itself)."""
    if any(_within(module.name, shell) for shell in SHELLS):
        return False
    if _within(module.name, "rpc._core"):
        return True
    parts = module.name.split(".")
    return len(parts) == 2 and parts[0] == "rpc" and parts[1][0] == "_" and not module.is_package


def test_shared_rpc_modules_import_nothing_from_the_shells() -> None:
    wrong = [
        str(imp)
        for imp in _imports()
        if _shared_rpc_module(imp.importer) and any(_within(imp.target, shell) for shell in SHELLS)
    ]
    assert not wrong, "shared rpc modules import from the shells:\n" + "\n".join(wrong)


# The checker itself, on made-up module sets.


def test_relative_imports_resolve_from_the_package_of_the_importer() -> None:
    # ``from . import x`` means the package itself in its ``__init__``, the parent next to it.
    as_package = Module("rpc.sync", ROOT / "rpc/sync/__init__.py", is_package=True)
    as_module = Module("rpc.sync", ROOT / "rpc/sync.py", is_package=False)
    tree = ast.parse("from . import x\nfrom .. import y\nfrom .a import b\nfrom codec import c")
    nodes = [node for node in tree.body if isinstance(node, ast.ImportFrom)]
    assert [_absolute_base(as_package, node) for node in nodes] == [
        "rpc.sync",
        "rpc",
        "rpc.sync.a",
        "codec",
    ]
    with pytest.raises(AssertionError, match="beyond the top level"):
        _absolute_base(as_module, nodes[1])
    assert [_absolute_base(as_module, node) for node in (nodes[0], nodes[2], nodes[3])] == [
        "rpc",
        "rpc.a",
        "codec",
    ]


def test_every_import_counts_and_from_package_import_counts_to_the_submodule(
    tmp_path: Path,
) -> None:
    files = {
        "pkg/__init__.py": "from . import a\nfrom .b import thing\n",
        "pkg/a.py": (
            "from typing import TYPE_CHECKING\n"
            "from . import b, helper\n"
            "if TYPE_CHECKING:\n"
            "    from pkg.sub import c\n"
            "def f():\n"
            "    import pkg.sub.d\n"
            "    import os.path\n"
        ),
        "pkg/b.py": "",
        "pkg/sub/__init__.py": "from .. import a\nfrom ..b import *\n",
        "pkg/sub/d.py": "from ...pkg import nothing\n",
    }
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    modules = find_modules(tmp_path, ("pkg",))
    assert sorted(modules) == ["pkg", "pkg.a", "pkg.b", "pkg.sub", "pkg.sub.d"]
    assert modules["pkg.sub"].is_package and not modules["pkg.sub.d"].is_package
    with pytest.raises(AssertionError, match="beyond the top level"):
        find_imports(modules)
    (tmp_path / "pkg/sub/d.py").write_text("from .. import b\n")
    imports = find_imports(modules)
    edges = {(imp.importer.name, imp.target, imp.module) for imp in imports}
    assert edges == {
        ("pkg", "pkg.a", "pkg.a"),  # a module of the package: an edge to it, not to ``pkg``
        ("pkg", "pkg.b", "pkg.b"),  # ``from .b import thing``: thing is no module
        ("pkg.a", "typing", None),
        ("pkg.a", "pkg.b", "pkg.b"),
        ("pkg.a", "pkg", "pkg"),  # ``helper`` is no module: it comes from ``pkg/__init__``
        ("pkg.a", "pkg.sub", "pkg.sub"),  # under TYPE_CHECKING
        ("pkg.a", "pkg.sub.d", "pkg.sub.d"),  # inside a function
        ("pkg.a", "os.path", None),
        ("pkg.sub", "pkg.a", "pkg.a"),
        ("pkg.sub", "pkg.b", "pkg.b"),  # ``import *``
        ("pkg.sub.d", "pkg.b", "pkg.b"),
    }
    graph = import_graph(imports)
    assert _strongly_connected(graph) == [["pkg", "pkg.a", "pkg.sub"]]


def test_cycles_are_found_and_reported_with_a_path() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": set(), "e": {"d"}}
    groups = _strongly_connected(graph)
    assert groups == [["a", "b", "c"]]
    assert _a_cycle(graph, groups[0]) == ["a", "b", "c", "a"]
    assert _strongly_connected({"a": {"b"}, "b": set()}) == []


def test_shared_rpc_modules_are_core_and_private_top_level_modules() -> None:
    def shared(name: str, is_package: bool = False) -> bool:
        return _shared_rpc_module(Module(name, ROOT, is_package))

    assert shared("rpc._errors") and shared("rpc._core", True) and shared("rpc._core.channel")
    assert not shared("rpc") and not shared("rpc.interop._cases") and not shared("rpc._trace", True)
    assert not shared("rpc._aio", True) and not shared("rpc._aio.call") and not shared("rpc.sync")
