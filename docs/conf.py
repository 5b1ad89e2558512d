"""Sphinx configuration of the zart_nb documentation site.

Built by ``tests/test_docs.py`` (so by ``.ci/run``) with warnings as errors and nitpicky references:
``python -m sphinx -W --keep-going -n -b html docs docs/_build/html``. Served locally with
``python -m http.server -d docs/_build/html 8000`` after that build.
"""
from __future__ import annotations

import sys
from pathlib import Path

import zart_nb

sys.path.insert(0, str(Path(__file__).parent / "_ext"))  # zart_openapi: the HTTP API from its OpenAPI document

project = "zart_nb"
author = "the zart_nb authors"
copyright = "2026, the zart_nb authors"
release = version = zart_nb.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinxarg.ext",
    "zart_openapi",
]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "Thumbs.db", ".DS_Store"]

# MyST: headings get anchors (links like page.md#a-heading are checked), ``{py:func}`` roles work, and
# ```python fences stay plain code (tests/test_docs.py runs them; a ```text fence is never run).
myst_enable_extensions = ["colon_fence", "deflist"]
myst_heading_anchors = 3

html_theme = "furo"
html_title = f"zart_nb {release}"
html_static_path = ["_static"]

# The reference documents the package as users import it: ``zart_nb.run``, not ``zart_nb._api.run``
# (the package publishes its names lazily; autodoc's getattr resolves them).
autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_typehints_format = "short"
autodoc_inherit_docstrings = True
autodoc_default_options = {"members": True, "undoc-members": False, "show-inheritance": True}
add_module_names = False

# Nitpicky: every reference to a zart_nb name must resolve (a renamed API fails the build). There is no
# network in CI, so no intersphinx: names of the standard library and of other packages are not documented
# here and are not checked. The private types still named by public signatures are listed one by one (the
# engine's side of the handles: Journal, Run; MonitorClient's Endpoint; the ExecutorSpec alias): another
# private type in a public signature fails the build, as tests/test_docs.py's signature check does.
nitpicky = True
# A builtin in a type hint (``bytes``) is looked up among documented attributes too, and two reports have a
# ``bytes`` field: Sphinx then warns "more than one target" (category ref.python) for a name that is the builtin.
suppress_warnings = ["ref.python"]
nitpick_ignore_regex = [
    (r"py:.*", r"(datetime|os|pathlib|collections|collections\.abc|typing|enum|threading|types|"
               r"concurrent|asyncio|multiprocessing|logging|io|duckdb|pandas|pyarrow|polars|numpy|"
               r"distributed|ipywidgets|IPython|textual)(\..*)?"),
    (r"py:.*", r"zart_nb\._.*"),
    (r"py:.*", r"(Path|PathLike|Callable|Iterable|Iterator|Sequence|Mapping|Any|Awaitable|Coroutine|"
               r"datetime|timedelta|timezone|Enum|StrEnum|IntEnum|TypeVar|ParamSpec|P|R|T|"
               r"Journal|Run|Endpoint|ExecutorSpec|"
               r"DataFrame|Client|Connection|Future|BaseException|Exception|NoneType|ellipsis|~?P|P\.args|P\.kwargs|.*\.P|.*\.R|.*\.T|"
               r"Limit|Deadline|abc\.ABC)"),
]
