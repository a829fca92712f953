"""The codebase's shape, read statically from its source: no import cycles in `codecgan/`, `callbacks/` and
`bench/`; fault injection outside the product's root; the benchmarks run as modules of the `bench` package.

An import is any `import` or `from ... import` statement, at module level or inside a function (a deferred
import that closes a cycle is still a cycle a reader must untangle). `from package import name` depends on the
submodule `package.name` when there is one, else on the package. Importing `a.b.c` also runs `a/__init__.py`
and `a/b/__init__.py`, so it depends on those packages too, except on the importer's own packages: Python has
begun them before the importer runs, and a package's `__init__` importing its own submodules is the ordinary
way to name a package's parts, not a cycle. Two levels are checked:

- modules: no module depends on itself through others;
- packages: inside every package, its direct parts (subpackages and modules) depend on one another without a
  cycle, so that `codecgan.data` may not depend on `codecgan.inference` while `codecgan.inference` depends on
  `codecgan.data` even where no single module closes the loop.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

PACKAGES = ("codecgan", "callbacks", "bench")


@functools.cache
def module_files() -> dict[str, Path]:
    """Dotted module name -> source file, for every module of PACKAGES (a package is named by its __init__)."""
    files = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return files


def is_package(module: str) -> bool:
    return module_files()[module].name == "__init__.py"


def ancestors(module: str) -> list[str]:
    """`a.b.c` -> [`a`, `a.b`]."""
    parts = module.split(".")
    return [".".join(parts[:end]) for end in range(1, len(parts))]


def known(name: str) -> str | None:
    """The innermost module of PACKAGES that `name` names or lies in (`a.b.Class` -> `a.b`); None outside."""
    while name and name not in module_files():
        name = name.rpartition(".")[0]
    return name or None


@functools.cache
def syntax_tree(module: str) -> ast.Module:
    path = module_files()[module]
    return ast.parse(path.read_text(), str(path))


def statements(body: list[ast.stmt]) -> Iterator[ast.stmt]:
    """Every statement of `body` and of the blocks inside it (functions, classes, if/try/with/for/match); imports
    are statements, so this finds them all without visiting every expression."""
    for node in body:
        yield node
        for block in ("body", "orelse", "finalbody", "handlers", "cases"):
            yield from statements(getattr(node, block, []))


def imported_names(module: str, tree: ast.Module) -> list[str]:
    """The dotted names each import statement of `module` refers to, relative imports resolved."""
    names = []
    for node in statements(tree.body):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if is_package(module) else module.split(".")[:-1]
                package = package[: len(package) - (node.level - 1)]
                base = ".".join([*package, base] if base else package)
            names += [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in module_files() else base for alias in node.names
            ]
    return names


@functools.cache
def import_graph() -> dict[str, frozenset[str]]:
    """Module -> the modules of PACKAGES it depends on (see the module docstring)."""
    graph = {}
    for module in module_files():
        depends = set()
        for name in imported_names(module, syntax_tree(module)):
            target = known(name)
            if target is None:
                continue
            depends |= ({target} - {module}) | (set(ancestors(target)) - set(ancestors(module)))
        graph[module] = frozenset(depends)
    return graph


def cycles(graph: dict[str, frozenset[str]]) -> list[list[str]]:
    """The strongly connected components of more than one node (Tarjan's algorithm), each sorted."""
    index: dict[str, int] = {}
    lowlink: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found = []

    def visit(node: str) -> None:
        index[node] = lowlink[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph.get(node, ())):
            if successor not in index:
                visit(successor)
                lowlink[node] = min(lowlink[node], lowlink[successor])
            elif successor in on_stack:
                lowlink[node] = min(lowlink[node], index[successor])
        if lowlink[node] == index[node]:
            component = []
            while not component or component[-1] != node:
                component.append(stack.pop())
                on_stack.discard(component[-1])
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def parts_graph(package: str) -> dict[str, frozenset[str]]:
    """The dependencies between the direct parts of `package` (`codecgan.data`, `codecgan.cli`, ... for
    `codecgan`): part A depends on part B when a module in A depends on a module in B."""
    depth = package.count(".") + 2

    def part(module: str) -> str | None:
        inside = module.startswith(package + ".")
        return ".".join(module.split(".")[:depth]) if inside else None

    graph: dict[str, set[str]] = {}
    for module, depends in import_graph().items():
        if part(module) is None:
            continue
        targets = {part(target) for target in depends} - {None, part(module)}
        graph.setdefault(part(module), set()).update(targets)
    return {name: frozenset(targets) for name, targets in graph.items()}


def test_no_module_depends_on_itself() -> None:
    assert cycles(import_graph()) == []


@pytest.mark.parametrize("package", sorted(module for module in module_files() if is_package(module)))
def test_the_parts_of_each_package_depend_on_one_another_without_a_cycle(package: str) -> None:
    assert cycles(parts_graph(package)) == []


def test_the_checker_finds_a_cycle_and_resolves_relative_and_submodule_imports() -> None:
    assert cycles({"a": frozenset({"b"}), "b": frozenset({"c"}), "c": frozenset({"a"}), "d": frozenset({"a"})}) == [
        ["a", "b", "c"]
    ]
    # `from codecgan.models import dac_codec` names the submodule; `from . import x` resolves from the package.
    tree = ast.parse("from codecgan.models import dac_codec, CodecGenerator\nfrom . import conv_blocks\n")
    assert imported_names("codecgan.models.residual_vq", tree) == [
        "codecgan.models.dac_codec",
        "codecgan.models",
        "codecgan.models.conv_blocks",
    ]
    graph = import_graph()
    assert "codecgan.models.dac_codec" in graph["codecgan.models"]  # a package's __init__ imports its parts,
    assert "codecgan.models" not in graph["codecgan.models.dac_codec"]  # which do not depend on it in return;
    assert "codecgan.data" in graph["codecgan.inference.codec_command"]  # importing codecgan.data.x runs data/__init__


def test_fault_injection_lives_in_the_testing_package_not_at_the_products_root() -> None:
    assert not (ROOT / "codecgan" / "faults.py").exists()
    assert "codecgan.testing.faults" in module_files()


def test_no_benchmark_reaches_into_sys_path_or_sys_modules() -> None:
    """The benchmarks run as `python -m bench.<name>` from the repository root, which puts the root on the path:
    none needs to edit the import path or register a module under a second name."""
    edits = []
    for module in module_files():
        if module.split(".")[0] != "bench":
            continue
        for node in ast.walk(syntax_tree(module)):
            if isinstance(node, ast.Attribute) and node.attr in ("path", "modules"):
                if isinstance(node.value, ast.Name) and node.value.id == "sys":
                    edits.append(f"{module}:{node.lineno} sys.{node.attr}")
    assert edits == []
