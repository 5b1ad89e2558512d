"""The documentation site (docs/): it builds with warnings as errors and nitpicky references, its Python
reference covers every public name, every public member has a docstring, and every ```python block of
every page runs.

The convention for examples (the guides' authors were given it): the ```python blocks of one page run in
order, in one namespace, in one process, in a fresh temporary folder; ```console and ```text blocks are
never run (nor are data formats such as ```json); ```py, ```bash or a bare fence is refused, so an example
cannot silently skip its test.

    pip install '.[test,docs]'
    python -m pytest tests/test_docs.py
"""
from __future__ import annotations

import importlib.util
import inspect
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
PAGES = sorted(p for p in DOCS.rglob("*.md") if "_build" not in p.parts)

FENCE = re.compile(r"^(?P<indent>[ \t]*)(?P<fence>`{3,}|~{3,})(?P<info>.*)$")


@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the opening fence
    language: str
    source: str


def blocks(page: Path) -> list[Block]:
    """The fenced blocks of a MyST page (fences may be indented in list items), in order."""
    found: list[Block] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if opening is None or (opening["fence"][0] == "`" and "`" in opening["info"]):  # inline code, not a fence
            i += 1
            continue
        indent, fence = opening["indent"], opening["fence"]
        language = opening["info"].strip().split(" ")[0]
        body: list[str] = []
        j = i + 1
        while j < len(lines):
            closing = FENCE.match(lines[j])
            if closing is not None and closing["fence"][0] == fence[0] and len(closing["fence"]) >= len(fence) \
                    and not closing["info"].strip():
                break
            body.append(lines[j])
            j += 1
        else:
            raise AssertionError(f"{page.relative_to(ROOT)}:{i + 1}: a fence that is never closed")
        text = "\n".join(line[len(indent):] if line.startswith(indent) else line.lstrip() for line in body)
        found.append(Block(page, i + 1, language, textwrap.dedent(text) + "\n"))
        i = j + 1
    return found


def test_blocks_reads_fences_as_myst_does(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# T\n\n- a list item:\n\n  ```python\n  x = 1\n  ```\n\n"
                    "```` ```python ```` is inline code, not a fence\n\n"
                    "~~~console\n$ zart ls\n~~~\n\n````text\n```python\nnot run\n```\n````\n", encoding="utf-8")
    found = [(b.language, b.source) for b in blocks(page)]
    assert found == [("python", "x = 1\n"), ("console", "$ zart ls\n"), ("text", "```python\nnot run\n```\n")]


def _name(page: Path) -> str:
    return str(page.relative_to(DOCS if DOCS in page.parents else ROOT))


EXAMPLE_PAGES = [p for p in [README, *PAGES] if any(b.language == "python" for b in blocks(p))]


def test_the_site_has_its_pages_and_examples():
    names = {_name(p) for p in PAGES}
    assert {"index.md", "tutorial.md", "howto.md", "concepts.md", "reference.md", "troubleshooting.md",
            "changelog.md", "api-promise.md", "reference/api.md", "reference/cli.md"} <= names
    assert len(EXAMPLE_PAGES) >= 5, [_name(p) for p in EXAMPLE_PAGES]
    assert README in EXAMPLE_PAGES


def test_the_readme_runs_the_tests_as_ci_does():
    """The README's test command is .ci/run's, word for word (install, then the test run)."""
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    command = [line for line in ci if "python -m pytest" in line and not line.lstrip().startswith("#")]
    assert len(command) == 1 and command[0].startswith("pip install"), command
    shown = [b.source for b in blocks(README) if b.language == "console"]
    assert f"$ {command[0]}\n" in shown, (command, shown)


# Fences that would silently escape the examples' test: Python under another name, a shell command that is
# not marked as one, a block with no language. Other languages (json, toml, sql, ...) are shown only.
NOT_RUN_BUT_PYTHON = {"py", "py3", "python3", "ipython", "ipython3", "pycon", "pytb"}
SHELLS = {"bash", "sh", "shell", "zsh", "shell-session", "bash-session"}


@pytest.mark.parametrize("page", [README, *PAGES], ids=_name)
def test_every_fence_is_run_or_marked_as_shown_only(page):
    """A fence is ```python (run), ```console (shell commands) or ```text (never run), a MyST directive, or
    a data format shown as it is; ```py, ```bash or a bare ``` would be neither run nor clearly shown-only."""
    wrong = []
    for b in blocks(page):
        if b.language in NOT_RUN_BUT_PYTHON:
            wrong.append(f"{_name(page)}:{b.line}: ```{b.language} (```python is run; ```text if it must not be)")
        elif b.language in SHELLS:
            wrong.append(f"{_name(page)}:{b.line}: ```{b.language} (shell commands go in ```console)")
        elif not b.language:
            wrong.append(f"{_name(page)}:{b.line}: a fence without a language (```text, ```console or ```python)")
    assert not wrong, "\n".join(wrong)


RUNNER = """
import sys, __main__
for path in sys.argv[1:]:
    with open(path, encoding="utf-8") as file:
        code = compile(file.read(), path, "exec")
    exec(code, __main__.__dict__)
"""


@pytest.mark.parametrize("page", EXAMPLE_PAGES, ids=_name)
def test_the_python_blocks_of_a_page_run(page, tmp_path):
    """The page's ```python blocks, in order, in one namespace (a script's __main__), in one fresh process
    whose working folder is a new empty folder (so ./.zart/ is the page's own journal)."""
    sources = tmp_path / "blocks"
    sources.mkdir()
    paths = []
    for number, block in enumerate(b for b in blocks(page) if b.language == "python"):
        stem = re.sub(r"[^A-Za-z0-9]+", "_", _name(page).removesuffix(".md"))
        path = sources / f"{stem}_line{block.line}_{number}.py"  # named in a traceback: page and line
        path.write_text(block.source, encoding="utf-8")
        paths.append(str(path))
    folder = tmp_path / "run"
    folder.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZART_")}
    env.update(ZART_WORKERS="2", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-c", RUNNER, *paths], cwd=folder, env=env, capture_output=True,
                          text=True, timeout=100, stdin=subprocess.DEVNULL)
    assert done.returncode == 0, f"{_name(page)}'s examples failed:\n{done.stdout}\n{done.stderr}"


def test_the_tutorial_runs_as_a_notebook_in_a_real_kernel(tmp_path):
    """The tutorial's cells, one per ```python block, in a real kernel (nbclient): the run is interrupted,
    the re-run completes reusing what was journaled, and the widget the tutorial shows is there."""
    from nbhelpers import execute, progress_bars

    cells = [b.source for b in blocks(DOCS / "tutorial.md") if b.language == "python"]
    nb = execute(cells, tmp_path, env={"ZART_WORKERS": "2"})
    printed = ["".join(o.get("text", "") for o in cell.outputs if o.get("output_type") == "stream")
               for cell in nb.cells]
    assert printed[1].strip().endswith("interrupted"), printed[1]
    runs = printed[2].splitlines()
    assert runs[0].startswith("1 interrupted") and runs[1].startswith("2 completed"), runs
    assert any(bar.get("value") == bar.get("max") == 20 for bar in progress_bars(nb)), progress_bars(nb)


def test_the_python_reference_lists_every_public_name():
    import zart_nb

    page = (DOCS / "reference" / "api.md").read_text(encoding="utf-8")
    documented = set(re.findall(r"^\.\. (?:auto\w+|py:data):: zart_nb\.(\w+)", page, re.MULTILINE))
    assert documented == set(zart_nb.__all__), (f"add to docs/reference/api.md: {set(zart_nb.__all__) - documented}; "
                                                 f"remove: {documented - set(zart_nb.__all__)}")


def _public_members():
    import zart_nb

    for name in zart_nb.__all__:
        if name.startswith("__"):
            continue
        obj = getattr(zart_nb, name)
        yield name, obj
        if inspect.isclass(obj):
            for member, value in vars(obj).items():
                if member.startswith("_") or not (inspect.isfunction(value) or
                                                  isinstance(value, (property, staticmethod, classmethod))):
                    continue
                yield f"{name}.{member}", getattr(obj, member) if not isinstance(value, property) else value


def test_every_public_name_and_member_has_a_docstring():
    missing = [name for name, obj in _public_members() if not inspect.getdoc(obj)]
    assert not missing, f"public names without a docstring (the reference shows nothing for them): {missing}"


def _annotation_namespace() -> dict[str, object]:
    """Every class zart_nb defines, by name, to resolve annotations its modules import only for type checking."""
    import pkgutil

    import zart_nb

    namespace: dict[str, object] = {}
    for module in ("typing", "collections.abc", "datetime", "os", "pathlib", "enum"):
        namespace.update({k: v for k, v in vars(importlib.import_module(module)).items() if not k.startswith("_")})
    for info in pkgutil.walk_packages(zart_nb.__path__, "zart_nb."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        namespace.update({k: v for k, v in vars(module).items() if isinstance(v, type) and v.__module__ == info.name})
    return namespace


def _private_types(hint: object, public: set[str]) -> set[str]:
    import typing

    found = set()
    if isinstance(hint, type) and hint.__module__.startswith("zart_nb") and hint.__name__ not in public:
        found.add(f"{hint.__module__}.{hint.__qualname__}")
    for arg in typing.get_args(hint):
        for item in arg if isinstance(arg, (list, tuple)) else [arg]:
            found |= _private_types(item, public)
    return found


# The engine's side of the handles (their owner builds and drives them; see LAYOUT's owner doors) and the
# monitor client's wire-level calls: public members whose parameters are private types, known and kept.
PRIVATE_IN_SIGNATURES = {
    "Execution.__init__: journal", "Execution.attach: run", "StepHandle.__init__: run",
    "MonitorClient.__init__: endpoint", "MonitorClient.request: kind", "MonitorClient.act: kind",
}


def test_no_public_name_hands_out_a_private_type():
    """What a public function, method or property returns or takes is a public type (or the standard
    library's): ``Execution.run``, ``DurableScheduler.journal``, ``TaskRegistry.get`` and
    ``JournalReader.pending_events`` once handed out the engine's own objects."""
    import typing

    import zart_nb

    public = set(zart_nb.__all__)
    namespace = _annotation_namespace()
    found = set()
    for name in zart_nb.__all__:
        obj = getattr(zart_nb, name)
        members = [(name, obj)] if callable(obj) and not inspect.isclass(obj) else []
        if inspect.isclass(obj):
            for member, value in vars(obj).items():
                if member.startswith("_") and member != "__init__":
                    continue
                value = value.fget if isinstance(value, property) else getattr(value, "__func__", value)
                if inspect.isfunction(value):
                    members.append((f"{name}.{member}", value))
        for label, function in members:
            try:
                hints = typing.get_type_hints(function, localns=namespace)
            except (NameError, AttributeError, TypeError):  # an alias of a union (Deadline): no class in it
                continue
            found |= {f"{label}: {arg}" for arg, hint in hints.items() if _private_types(hint, public)}
    assert found <= PRIVATE_IN_SIGNATURES, f"public names that hand out private types: {found - PRIVATE_IN_SIGNATURES}"


def test_execution_exposes_no_private_class():
    """``Execution.journal`` is the journal's path (as ``zart.journal()`` takes it), not the engine's object."""
    import zart_nb as zart

    hints = inspect.get_annotations(zart.Execution.journal.fget, eval_str=True)
    assert hints["return"] is str


def error_tree() -> str:
    """The public errors as a tree, each with the first sentence of its docstring (reference/errors.md)."""
    import zart_nb as zart

    errors = [c for c in (getattr(zart, n) for n in zart.__all__)
              if inspect.isclass(c) and issubclass(c, BaseException)]
    lines: list[str] = []

    def walk(cls: type, prefix: str, last: bool, depth: int) -> None:
        doc = re.split(r"(?<=[.;:])\s", " ".join((inspect.getdoc(cls) or "").split()))[0].rstrip(".;:")
        extra = [b.__name__ for b in cls.__bases__ if not issubclass(b, zart.ZartError) and b is not Exception]
        label = cls.__name__ + (f" ({', '.join(extra)})" if extra else "")
        lead = "" if depth == 0 else prefix + ("└── " if last else "├── ")
        lines.append(f"{lead}{label:{40 - len(lead)}} {doc}".rstrip())
        kids = [c for c in errors if cls in c.__bases__]
        for i, kid in enumerate(kids):
            walk(kid, prefix + ("" if depth == 0 else ("    " if last else "│   ")), i == len(kids) - 1, depth + 1)

    walk(zart.ZartError, "", True, 0)
    for other in (c for c in errors if not issubclass(c, zart.ZartError)):
        lines.append("")
        walk(other, "", True, 0)
    return "\n".join(lines) + "\n"


def test_the_errors_module_draws_the_classes_aligned():
    """_errors.py's docstring tree (the one a reader of the code sees): every public error once, under its
    own base, and every description in one column."""
    import zart_nb as zart
    from zart_nb import _errors

    drawn = _errors.__doc__.split("::\n\n", 1)[1].split("\n\n", 1)[0].splitlines()
    assert drawn[0].strip() == "ZartError"
    parents, seen, columns = ["ZartError"], [], set()
    for line in drawn[1:]:
        entry = re.match(r"^( {4}(?:[│ ] {3})*)[├└]── (\w+)( +)\S", line)
        if entry is None:  # a description's second line
            assert re.match(r"^ {4}[│ ]( {3}[│ ])* +\S", line), line
            columns.add(len(line) - len(line.lstrip(" │")))
            continue
        depth = (len(entry[1]) - 4) // 4 + 1
        name = entry[2]
        del parents[depth:]
        base = next(b for b in getattr(zart, name).__bases__ if issubclass(b, zart.ZartError))
        assert base.__name__ == parents[-1], f"{name} is drawn under {parents[-1]}, its base is {base.__name__}"
        parents.append(name)
        seen.append(name)
        columns.add(len(entry[1]) + 4 + len(name) + len(entry[3]))
    errors = {n for n in zart.__all__
              if inspect.isclass(getattr(zart, n)) and issubclass(getattr(zart, n), zart.ZartError)}
    assert sorted(seen) == sorted(errors - {"ZartError"})
    assert len(columns) == 1, f"descriptions start in columns {sorted(columns)}"


def test_the_error_tree_page_draws_the_classes():
    """reference/errors.md's tree is the classes' own: a new error or a moved one fails until it is redrawn."""
    page = DOCS / "reference" / "errors.md"
    drawn = [b.source for b in blocks(page) if b.language == "text"]
    assert drawn and drawn[0] == error_tree(), f"redraw the tree of {page.relative_to(ROOT)} as:\n{error_tree()}"


KEY_NAMES = {"question_mark": "?", "slash": "/", "left_square_bracket": "[", "right_square_bracket": "]"}


def test_the_key_map_lists_every_key_of_zart_tui():
    """guide/monitoring.md's key table is the one key map: every key bound on a zart-tui screen is in it,
    with its action's words (retry, restart, rerun, send an event, fork, schedules)."""
    pytest.importorskip("textual")
    import importlib

    page = (DOCS / "guide" / "monitoring.md").read_text(encoding="utf-8")
    table = page[page.index("### Keys"):]
    documented: dict[str, str] = {}
    for row in re.findall(r"^\| (.+?) \| (.+?) \| (.+?) \|$", table, re.MULTILINE):
        for key in re.findall(r"`([^`]+)`|(ctrl\+\w|escape|enter)", row[0]):
            documented[key[0] or key[1]] = documented.get(key[0] or key[1], "") + " " + row[2]
    bound = set()
    for module in ("app", "screens.executions", "screens.execution", "screens.step", "screens.schedules"):
        for value in vars(importlib.import_module(f"zart_tui.{module}")).values():
            own = isinstance(value, type) and value.__module__ == f"zart_tui.{module}"
            for binding in vars(value).get("BINDINGS", []) if own else []:
                bound |= {KEY_NAMES.get(k.strip(), k.strip()) for k in binding.key.split(",")}
    bound -= {str(i) for i in range(10)}  # the filters by number: one row, `0`-`6`
    missing = sorted(k for k in bound if k not in documented and f"`{k}`" not in table)
    assert not missing, f"keys of zart-tui missing from guide/monitoring.md's key map: {missing}"
    for key, words in {"r": "retry", "R": "restart", "e": "rerun", "E": "send", "F": "fork", "T": "schedules"}.items():
        assert words in documented[key], (key, documented[key])


def test_the_picture_script_draws_zart_tui(tmp_path):
    """docs/pictures.py still works (its pictures are not compared: times and pids differ every run)."""
    pytest.importorskip("textual")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZART_")}
    done = subprocess.run([sys.executable, str(DOCS / "pictures.py"), "--out", str(tmp_path)], cwd=tmp_path,
                          env=dict(env, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=100)
    assert done.returncode == 0, done.stderr
    listing, execution = (tmp_path / "tui-list.svg").read_text(), (tmp_path / "tui-execution.svg").read_text()
    assert listing.startswith("<svg") and "health-1" in listing and "health-2" in listing
    assert "check-legacy" in execution  # the failed execution, opened


def _openapi_extension():
    sys.path.insert(0, str(DOCS / "_ext"))
    try:
        import zart_openapi
    finally:
        sys.path.remove(str(DOCS / "_ext"))
    return zart_openapi


def test_the_http_reference_checks_the_document_against_the_served_routes():
    """docs/_ext/zart_openapi.py: the app's routes and the OpenAPI document agree today, and a route renamed
    on either side is reported (the build turns the report into a failing warning)."""
    pytest.importorskip("starlette")
    import copy

    from zart_nb._serve.http import OPENAPI

    ext = _openapi_extension()
    routes = ext.app_routes()
    assert ("POST", "/executions/{execution_id}/events/{name}") in routes
    assert ext.mismatches(OPENAPI, routes) == []
    renamed = copy.deepcopy(OPENAPI)
    renamed["paths"]["/runs"] = renamed["paths"].pop("/executions")
    assert ext.mismatches(renamed, routes) == [
        "GET /executions is served but not in the OpenAPI document",
        "POST /executions is served but not in the OpenAPI document",
        "GET /runs is in the OpenAPI document but not served",
        "POST /runs is in the OpenAPI document but not served"]


def test_the_http_guide_names_every_route():
    """guide/http.md's table has a row per operation of the OpenAPI document, each an {http} link to the
    reference (the build fails on a link to a route the document lost)."""
    from zart_nb._serve.http import OPENAPI

    guide = (DOCS / "guide" / "http.md").read_text(encoding="utf-8")
    linked = set(re.findall(r"\{http\}`(\w+ \S+)`", guide))
    assert linked == {f"{method} {path}" for method, path, _ in _openapi_extension().operations(OPENAPI)}


SPHINX = [m for m in ("sphinx", "myst_parser", "furo", "sphinxarg") if importlib.util.find_spec(m) is None]


@pytest.mark.skipif(bool(SPHINX), reason=f"{', '.join(SPHINX)} not installed (pip install '.[docs]')")
def test_the_site_builds_with_warnings_as_errors(tmp_path):
    """What CI builds: every warning fails (a broken internal link, a name the reference cannot resolve,
    a page in no toctree), all reported at once (--keep-going)."""
    out = tmp_path / "html"
    done = subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-b", "html",
                           "-d", str(tmp_path / "doctrees"), str(DOCS), str(out)],
                          cwd=ROOT, capture_output=True, text=True, timeout=110)
    assert done.returncode == 0, f"sphinx-build failed:\n{done.stdout}\n{done.stderr}"
    api = (out / "reference" / "api.html").read_text(encoding="utf-8")
    for name in ("run", "step", "StepHandle.value", "Execution.status", "TaskRegistry.get", "JournalLocked"):
        assert f'id="zart_nb.{name}"' in api, name
    cli = (out / "reference" / "cli.html").read_text(encoding="utf-8")
    assert "--follow" in cli and "gc" in cli  # generated from the parser, not written by hand
    assert "Live terminal monitor of zart_nb journals" in cli  # zart-tui's options, from tui/cli.py's parser
    from zart_nb._serve.http import OPENAPI

    http = (out / "reference" / "http.html").read_text(encoding="utf-8")
    for method, path, operation in _openapi_extension().operations(OPENAPI):
        anchor = "http-api-" + f"{method} {path}".replace(" ", "-").replace("/", "-").replace("{", "").replace(
            "}", "").replace("--", "-")
        assert f'id="{anchor}"' in http, (method, path)
        for parameter in operation["parameters"]:
            assert f'<span class="pre">{parameter["name"]}</span>' in http, (method, path, parameter["name"])
    guide = (out / "guide" / "http.html").read_text(encoding="utf-8")
    assert 'href="../reference/http.html#http-api-POST-executions"' in guide  # the guide's routes link there
    assert (out / "tutorial.html").exists()
    # A docutils message inside generated text (a "*" in a parser's help) is drawn into the page, not warned
    leaked = [str(p.relative_to(out)) for p in out.rglob("*.html")
              if re.search(r"\((?:WARNING|ERROR|SEVERE)/\d\)", p.read_text(encoding="utf-8"))]
    assert not leaked, f"docutils messages drawn into pages: {leaked}"
