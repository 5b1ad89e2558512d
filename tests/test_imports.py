"""Import hygiene: no cycle among zart_nb's modules (type-only and lazy imports included), and each
third-party library is imported only by the module whose job it is (harlequin's test_import_hygiene)."""
from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import zart_nb

PACKAGE = Path(zart_nb.__file__).parent
ROOT = PACKAGE.parent


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules() -> dict[str, Path]:
    return {_module_name(path): path for path in sorted(PACKAGE.rglob("*.py"))}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every zart_nb module ``name`` imports, wherever the import statement is."""
    is_package = path.name == "__init__.py"
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = name.split(".")
                base = base[: len(base) - node.level + (1 if is_package else 0)]
                parent = ".".join(base + ([node.module] if node.module else []))
            else:
                parent = node.module or ""
            # `from . import _context` imports the submodule; `from ._x import name`, the module _x
            targets = [f"{parent}.{alias.name}" if f"{parent}.{alias.name}" in known else parent
                       for alias in node.names]
        else:
            continue
        found.update(t for t in targets if t in known and t != name)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return stack[stack.index(target):] + [target]
            if target not in state and (found := visit(target)):
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (found := visit(node)):
            return found
    return None


def test_the_import_graph_is_read():
    graph = _graph()
    assert "zart_nb._engine" in graph["zart_nb._api"]
    assert "zart_nb._context" in graph["zart_nb._executors.worker"]  # `from .. import _context`
    assert "zart_nb._journal" in graph["zart_nb._engine"]


def test_no_import_cycle_among_modules():
    # The package's __init__ counts as a module: only what it never reaches (the demo, a client of
    # the public API) may import `zart_nb` itself.
    assert _cycle(_graph()) is None


def test_the_cycle_check_finds_a_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b"}, "b": set()}) is None


# (library, the only modules allowed to import it). A rule whose owner does not exist yet still
# holds for every other module.
RULES = [
    ("duckdb", ("zart_nb._journal",)),
    ("ipywidgets", ("zart_nb._notebook",)),
    ("IPython", ("zart_nb._notebook",)),
    ("textual", ("zart_tui",)),
    ("distributed", ("zart_nb._executors.dask",)),
    ("croniter", ("zart_nb._serve",)),
    ("starlette", ("zart_nb._serve",)),
    ("uvicorn", ("zart_nb._serve",)),
]


def _owned_by(module: str, owners: tuple[str, ...]) -> bool:
    return any(module == owner or module.startswith(owner + ".") for owner in owners)


@pytest.mark.parametrize(("library", "owners"), RULES, ids=[rule[0] for rule in RULES])
def test_only_its_owner_imports_a_library_in_the_source(library, owners):
    offenders = []
    for name, path in _modules().items():
        if _owned_by(name, owners):
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                roots = [alias.name.split(".")[0] for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                roots = [node.module.split(".")[0]]
            else:
                continue
            if library in roots:
                offenders.append(name)
    assert offenders == []


def test_importing_modules_loads_no_library_of_another():
    """Each module imported alone in a fresh process loads no library owned by another module."""
    modules = [name for name in _modules() if not name.endswith("__main__")]
    code = f"""
import importlib, importlib.util, sys
rules = {RULES!r}
bad = []
for name in {modules!r}:
    if any(importlib.util.find_spec(library) is None for library, owners in rules
           if any(name == o or name.startswith(o + ".") for o in owners)):
        continue  # the owner of an optional library that is not installed here
    before = set(sys.modules)
    importlib.import_module(name)
    for library, owners in rules:
        owned = any(name == o or name.startswith(o + ".") for o in owners)
        if not owned and library in sys.modules and library not in before:
            bad.append((name, library))
print(bad)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.strip() == "[]"


# --- zart_tui (folder tui/) -------------------------------------------------------------------------

TUI = ROOT / "tui"


def _tui_modules() -> dict[str, Path]:
    """zart_tui's modules by import name (its folder is ``tui/``, installed as ``zart_tui``)."""
    found = {}
    for path in sorted(TUI.rglob("*.py")):
        parts = ["zart_tui", *path.relative_to(TUI).with_suffix("").parts]
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _tui_graph() -> dict[str, set[str]]:
    modules = _tui_modules()
    known = set(modules)
    return {name: _imports(name, path, known) for name, path in modules.items()}


def test_the_tui_import_graph_is_read():
    graph = _tui_graph()
    assert "zart_tui.screens.executions" in graph["zart_tui.app"]
    assert "zart_tui.fmt" in graph["zart_tui.screens.execution"]  # `from .. import fmt`


def test_no_import_cycle_in_the_tui():
    """Type-only and function-local imports count: a cycle among them is a cycle all the same."""
    assert _cycle(_tui_graph()) is None


def _zart_nb_names(path: Path) -> list[str]:
    """What ``path`` takes from zart_nb: module paths it imports, and attributes of the ``zart_nb`` module
    (``zart.X``) it reads."""
    tree = ast.parse(path.read_text(), str(path))
    aliases = set()
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "zart_nb":
                    found.append(alias.name)
                    if alias.name == "zart_nb":
                        aliases.add(alias.asname or alias.name)
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module \
                and node.module.split(".")[0] == "zart_nb":
            found.append(node.module)
            found += [f"{node.module}.{alias.name}" for alias in node.names]
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases:
            found.append(f"zart_nb.{node.attr}")
    return found


def test_the_tui_uses_only_zart_nb_public_names():
    """zart_tui reads zart_nb as any user would: ``import zart_nb as zart`` and names in its ``__all__``."""
    public = set(zart_nb.__all__)
    offenders = []
    for name, path in _tui_modules().items():
        for used in _zart_nb_names(path):
            parts = used.split(".")
            if any(part.startswith("_") for part in parts[1:]) or (len(parts) > 1 and parts[1] not in public):
                offenders.append((name, used))
    assert offenders == []


def test_the_tui_rule_finds_a_private_name(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import zart_nb as zart\nfrom zart_nb._journal import Journal\nzart._runtime\nzart.run\n")
    assert _zart_nb_names(bad) == ["zart_nb", "zart_nb._journal", "zart_nb._journal.Journal",
                                   "zart_nb._runtime", "zart_nb.run"]
