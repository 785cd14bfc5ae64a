"""The shape of the code: no import cycle among the project's modules (imports inside functions
included), only cluster/ imports Ray, components that do not reach up into the runner, and
source files of a readable size."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from helpers import REPO

PACKAGES = ("rl", "supervised", "cluster")
MAX_LINES = 400


def modules() -> dict[str, Path]:
    """Module name -> file, for every source file of the three packages."""
    out = {}
    for package in PACKAGES:
        for path in sorted((REPO / package).rglob("*.py")):
            parts = path.relative_to(REPO).with_suffix("").parts
            out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def imports_of(path: Path, name: str, known: set[str]) -> set[str]:
    """The project modules that ``path`` imports anywhere in it (functions included)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:   # relative: from the module's package, up level - 1
                base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1]
                                + ([base] if base else []))
            # `from a import b` imports a, and a.b when b is a module
            targets = [base] + [f"{base}.{alias.name}" for alias in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:   # a name inside a module: that module
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    mods = modules()
    return {name: imports_of(path, name, set(mods)) for name, path in mods.items()}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as [a, b, ..., a], or None (depth-first search)."""
    state: dict[str, int] = {}        # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_the_cycle_finder_finds_a_cycle_through_a_function_level_import(tmp_path):
    (tmp_path / "a.py").write_text("import b\n")
    (tmp_path / "b.py").write_text("def f():\n    from a import x\n")
    graph = {name: imports_of(tmp_path / f"{name}.py", name, {"a", "b"}) for name in ("a", "b")}
    assert graph == {"a": {"b"}, "b": {"a"}}
    assert find_cycle(graph) == ["a", "b", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle_among_the_projects_modules():
    graph = import_graph()
    assert "cluster.labs" in graph and graph["cluster.cli"]   # the graph is really read
    cycle = find_cycle(graph)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_components_do_not_import_the_runner_or_ray():
    """rl/ and supervised/ do not know they are distributed; supervised/ does not need rl/."""
    for name, path in modules().items():
        if name.startswith("cluster"):
            continue
        tree = ast.parse(path.read_text())
        roots = {alias.name.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.Import)
                 for alias in node.names}
        roots |= {node.module.split(".")[0] for node in ast.walk(tree)
                  if isinstance(node, ast.ImportFrom) and node.module and not node.level}
        assert not roots & {"ray", "cluster"}, f"{name} imports {roots & {'ray', 'cluster'}}"
        if name.startswith("supervised"):
            assert "rl" not in roots, f"{name} imports rl"


@pytest.mark.parametrize("name", sorted(modules()))
def test_source_files_stay_readable(name):
    lines = len(modules()[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name}: {lines} lines (split it by concern, or say why not)"


def test_every_package_the_code_imports_is_declared_in_pyproject():
    """Each third-party module imported by rl/, supervised/ or cluster/ comes from a
    distribution pyproject.toml names (a dependency or an optional extra): none works only
    because another package happened to pull it in."""
    import re
    import sys
    import tomllib
    from importlib import metadata

    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    declared = {re.split(r"[\[=<>~! ;]", spec, maxsplit=1)[0].lower().replace("_", "-")
                for spec in [*project["dependencies"],
                             *(s for extra in project["optional-dependencies"].values() for s in extra)]}
    modules = set()
    for package in ("rl", "supervised", "cluster"):
        for path in (REPO / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Import):
                    modules |= {alias.name.split(".")[0] for alias in node.names}
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    modules.add(node.module.split(".")[0])
    modules -= set(sys.stdlib_module_names) | {"rl", "supervised", "cluster", "__future__"}
    providers = metadata.packages_distributions()
    undeclared = {m: providers.get(m) for m in modules
                  if not {d.lower().replace("_", "-") for d in providers.get(m, [m])} & declared}
    assert not undeclared, f"imported but not declared in pyproject.toml: {undeclared}"
