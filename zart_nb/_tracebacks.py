"""Tracebacks as text, for the journal and the terminal: where a step's function sent by value really
came from, and the short form that shows the user's frames only.

A step's function is sent to its worker by value; cloudpickle names the file of its code
``<dynamic-code>`` (line numbers are kept), so a worker's traceback has neither the file nor the source
line. :func:`locate_dynamic` (run in the driver, which has the function, its file and the notebook's
cells in ``linecache``) puts them back before the traceback is journaled. :func:`short_lines` is what
``zart show --traceback`` prints: zart_nb's own frames left out, with a note of how many, and each
frame's source line (from the traceback, else from the file). The notebook's ``_notebook/tracebacks``
does the same for IPython, with the kernel's cell names.
"""
from __future__ import annotations

import ast
import functools
import linecache
import os
import re
import sys
from collections.abc import Iterable

DYNAMIC = "<dynamic-code>"
_FRAME = re.compile(r'^  File "(?P<file>.+)", line (?P<line>\d+)(?:, in (?P<name>.+))?$')
_PACKAGE = os.path.dirname(os.path.abspath(__file__)) + os.sep
# zart_nb's modules all begin with "_" (``__init__``, ``_engine``, ``_executors/worker``): a frame of a
# zart_nb installed elsewhere (the journal was written by another environment) is still ours.
_OURS = re.compile(r"[/\\]zart_nb[/\\]_[^/\\]*")


def is_ours(filename: str) -> bool:
    """A frame of zart_nb's own code (this installation's or another's)."""
    return os.path.abspath(filename).startswith(_PACKAGE) or _OURS.search(filename) is not None


def _frames(text: str) -> Iterable[tuple[str, re.Match[str] | None, list[str]]]:
    """``(line, frame match or None, the frame's indented body lines)`` for each line of ``text``."""
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        match = _FRAME.match(line)
        body: list[str] = []
        if match is not None:
            while index < len(lines) and lines[index].startswith("    "):
                body.append(lines[index])
                index += 1
        yield line, match, body


@functools.lru_cache(maxsize=256)
def _defines(filename: str, source: str, name: str, lineno: int) -> bool:
    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError):
        return False
    return any(isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name
               and node.lineno <= lineno <= (node.end_lineno or node.lineno) for node in ast.walk(tree))


def _origin(name: str, lineno: int, hints: Iterable[str]) -> str | None:
    """The file among ``hints``, ``__main__``'s and the notebook cells in ``linecache`` (newest first)
    that defines a function ``name`` spanning ``lineno``."""
    candidates = list(hints)
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if main_file:
        candidates.append(main_file)
    candidates += [f for f in reversed(list(linecache.cache)) if "ipykernel" in f or f.startswith("<ipython-input")]
    for filename in dict.fromkeys(candidates):
        source = "".join(linecache.getlines(filename))
        if source and _defines(filename, source, name, lineno):
            return filename
    return None


def locate_dynamic(text: str | None, fn: object = None) -> str | None:
    """``text`` with each ``<dynamic-code>`` frame given the file that defines its function and its
    source line, when one is found (the file of ``fn``, the step's function, is tried first)."""
    if not text or DYNAMIC not in text:
        return text
    code = getattr(getattr(fn, "__wrapped__", fn), "__code__", None)
    hints = [code.co_filename] if code is not None else []
    out: list[str] = []
    for line, match, body in _frames(text):
        if match is not None and match["file"] == DYNAMIC and match["name"]:
            lineno = int(match["line"])
            found = _origin(match["name"], lineno, hints)
            if found is not None:
                out.append(f'  File "{found}", line {lineno}, in {match["name"]}')
                source = linecache.getline(found, lineno).strip()
                out.extend([f"    {source}"] if source and not body else body)
                continue
        out.append(line)
        out.extend(body)
    return "\n".join(out) + ("\n" if text.endswith("\n") else "")


def short_lines(text: str) -> list[str]:
    """A traceback's text without zart_nb's frames (its header says how many were left out), each
    remaining frame with its source line (read from its file when the traceback lacks it)."""
    out: list[str] = []
    header: int | None = None  # where the current block's "Traceback (...):" line is in ``out``
    hidden = 0

    def close_block() -> None:
        nonlocal hidden
        if header is not None and hidden:
            plural = "s" if hidden > 1 else ""
            out[header] = f"Traceback (most recent call last; {hidden} frame{plural} of zart_nb's own hidden):"
        hidden = 0

    for line, match, body in _frames(text):
        if match is None:
            close_block()
            header = len(out) if line.strip() == "Traceback (most recent call last):" else None
            out.append(line)
            continue
        if is_ours(match["file"]):
            hidden += 1
            continue
        out.append(line)
        if not body:
            source = linecache.getline(match["file"], int(match["line"])).strip()
            body = [f"    {source}"] if source else []
        out.extend(body)
    close_block()
    return out


def short(text: str) -> str:
    """:func:`short_lines` as one text."""
    return "\n".join(short_lines(text))
