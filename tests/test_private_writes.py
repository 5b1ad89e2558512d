"""No module writes another module's private attributes: an owner changes its objects through methods.

An attribute ``_name`` belongs to the file that defines it (``self._name = ...``, a ``__slots__``
entry or a class-level annotation). Writing ``obj._name`` from any other file is refused here; so
is writing it through ``setattr``. Names no file of ours defines (``_render_traceback_``, an
IPython protocol) are someone else's hooks and are left alone."""
import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = ("zart_nb", "tui")
MUTATORS = frozenset({"append", "extend", "insert", "remove", "pop", "clear", "add", "discard", "update",
                      "set", "setdefault"})


def _files() -> list[Path]:
    return sorted(p for folder in FOLDERS for p in (ROOT / folder).rglob("*.py"))


def _defined(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store) \
                and isinstance(node.value, ast.Name) and node.value.id in ("self", "cls") \
                and node.attr.startswith("_"):
            names.add(node.attr)
        elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__slots__"
                                                   for t in node.targets):
            names |= {c.value for c in ast.walk(node.value) if isinstance(c, ast.Constant)
                      and isinstance(c.value, str) and c.value.startswith("_")}
        elif isinstance(node, ast.ClassDef):
            for item in node.body:
                if isinstance(item, ast.AnnAssign) and isinstance(item.target, ast.Name) \
                        and item.target.id.startswith("_"):
                    names.add(item.target.id)
    return names


def _writes(tree: ast.AST) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, (ast.Store, ast.Del)) \
                and node.attr.startswith("_") and not node.attr.startswith("__") \
                and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")):
            found.append((node.lineno, node.attr))
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in MUTATORS \
                and isinstance(node.func.value, ast.Attribute) and node.func.value.attr.startswith("_") \
                and not node.func.value.attr.startswith("__") and not (isinstance(node.func.value.value, ast.Name)
                                                                      and node.func.value.value.id in ("self", "cls")):
            found.append((node.lineno, node.func.value.attr))  # obj._items.append(...) changes obj too
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "setattr" \
                and len(node.args) >= 2 and isinstance(node.args[1], ast.Constant) \
                and str(node.args[1].value).startswith("_") and not str(node.args[1].value).startswith("__"):
            found.append((node.lineno, str(node.args[1].value)))
    return found


def cross_module_private_writes() -> list[str]:
    trees = {path: ast.parse(path.read_text(), str(path)) for path in _files()}
    defined = {path: _defined(tree) for path, tree in trees.items()}
    everywhere = set().union(*defined.values())
    problems = []
    for path, tree in trees.items():
        for line, name in _writes(tree):
            if name in everywhere and name not in defined[path]:
                problems.append(f"{path.relative_to(ROOT)}:{line} writes {name}")
    return problems


def test_no_module_writes_another_modules_private_attributes():
    assert cross_module_private_writes() == []


def test_the_scan_sees_a_cross_module_write(tmp_path):
    owner = ast.parse("class A:\n    def __init__(self):\n        self._x = 1\n")
    other = ast.parse("def f(a):\n    a._x = 2\n")
    assert "_x" in _defined(owner)
    assert _writes(other) == [(2, "_x")]
    assert _writes(ast.parse("def g(a):\n    a._x.append(1)\n")) == [(2, "_x")]
