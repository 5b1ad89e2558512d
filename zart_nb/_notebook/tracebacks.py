"""Readable failures in a notebook: what IPython shows for a failed step, a failed workflow body and
an interrupted run (through ``_render_traceback_``).

A failed step shows its own traceback from the worker, as ``concurrent.futures`` shows a remote
one, with the source lines filled in from this kernel (cells are known here, not in the worker),
then where the workflow was when it learned of the failure. zart_nb's own frames are left out.
"""
from __future__ import annotations

import ast
import functools
import linecache
import os
import re
import sys
import traceback
from types import TracebackType
from typing import TYPE_CHECKING

from .._errors import Cancelled, StepError, TaskError
from .._handles import run_of
from .kernel import kernel_shell

if TYPE_CHECKING:
    from .._handles import Execution

_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep
_FRAME = re.compile(r'^  File "(?P<file>.+)", line (?P<line>\d+)(?:, in (?P<name>.+))?$')


def _hidden(filename: str) -> bool:
    """zart_nb's own frames, and IPython's (the kernel running the cell)."""
    path = os.path.abspath(filename)
    return path.startswith(_PACKAGE) or path.startswith(_ipython_dir())


@functools.cache
def _ipython_dir() -> str:
    module = sys.modules.get("IPython")
    path = getattr(module, "__file__", None)
    return os.path.dirname(os.path.abspath(path)) + os.sep if path else "\0"


def _defines(filename: str, name: str, lineno: int) -> bool:
    """Does ``filename`` (a cell or a script, known to linecache) define ``name`` around ``lineno``?"""
    source = "".join(linecache.getlines(filename))
    if not source:
        return False
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return False
    for node in ast.walk(tree):
        if (isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name == name
                and node.lineno <= lineno <= (node.end_lineno or node.lineno)):
            return True
    return False


def _dynamic_origin(name: str | None, lineno: int) -> str | None:
    """Where a function sent by value (cloudpickle names its file ``<dynamic-code>``) came from:
    the newest notebook cell, or the script, that defines ``name`` around ``lineno``."""
    if not name:
        return None
    candidates: list[str] = []
    shell = kernel_shell()
    if shell is not None:
        cells = getattr(shell.compile, "_filename_map", {})
        candidates.extend(sorted(cells, key=lambda f: cells[f], reverse=True))
    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if main_file:
        candidates.append(main_file)
    for filename in candidates:
        if _defines(filename, name, lineno):
            return filename
    return None


def _where(filename: str, lineno: int, name: str | None) -> str:
    """``Cell In[3], line 5, in fn`` for a notebook cell (as IPython names it), else the file."""
    place = f'File "{filename}", line {lineno}'
    shell = kernel_shell()
    if shell is not None:
        try:
            mapped = shell.compile.format_code_name(filename)
        except Exception:
            mapped = None
        if mapped:
            place = f"{mapped[0]} {mapped[1]}, line {lineno}"
    return f"  {place}" + (f", in {name}" if name and name != "<module>" else "")


def remote_lines(text: str) -> list[str]:
    """A worker's formatted traceback without zart_nb's frames, with missing source lines filled
    in from this process (the cells of the notebook)."""
    out: list[str] = []
    lines = text.splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        match = _FRAME.match(line)
        if match is None:
            if line.strip() != "Traceback (most recent call last):":
                out.append(line)
            index += 1
            continue
        body = []
        index += 1
        while index < len(lines) and lines[index].startswith("    "):
            body.append(lines[index])
            index += 1
        filename, lineno = match["file"], int(match["line"])
        if filename == "<dynamic-code>":
            filename = _dynamic_origin(match["name"], lineno) or filename
            body = [] if filename != "<dynamic-code>" else body
        if _hidden(filename):
            continue
        out.append(_where(filename, lineno, match["name"]))
        if body:
            out.extend(body)
        else:
            source = linecache.getline(filename, lineno).strip()
            if source:
                out.append(f"    {source}")
    return out


def local_lines(tb: TracebackType | None) -> list[str]:
    """The frames of ``tb`` that are the user's (cells, modules), not zart_nb's."""
    out: list[str] = []
    for frame in traceback.extract_tb(tb):
        if _hidden(frame.filename):
            continue
        out.append(_where(frame.filename, frame.lineno or 0, frame.name))
        source = frame.line or linecache.getline(frame.filename, frame.lineno or 0).strip()
        if source:
            out.append(f"    {source}")
    return out


def _headline(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def render_step_error(exc: StepError) -> list[str]:
    remote = getattr(exc, "remote_traceback", "") or ""
    lines: list[str] = []
    if remote:
        lines.append(f"Traceback of step {exc.step_key!r} in its worker (attempt {exc.attempts}):")
        lines.extend(remote_lines(remote))
        lines.append("")
        lines.append(f"The failure of step {exc.step_key!r} reached the workflow here:")
    where = local_lines(exc.__traceback__)
    if where:
        if not remote:
            lines.append("Traceback (zart_nb's own frames hidden):")
        lines.extend(where)
    lines.append(_headline(exc))
    return lines


def render_task_error(exc: TaskError) -> list[str]:
    cause = exc.__cause__
    lines: list[str] = []
    if cause is not None:
        lines.append("Traceback of the workflow body (zart_nb's own frames hidden):")
        lines.extend(local_lines(cause.__traceback__))
        lines.append(_headline(cause))
        lines.append("")
        lines.append("The workflow's failure reached this cell here:")
    lines.extend(local_lines(exc.__traceback__))
    lines.append(_headline(exc))
    return lines


def _stopped(execution: Execution, how: str, again: str = "run the cell again") -> str:
    """``execution 'x' <how> after 7 of 31 steps (run 1); run the cell again to resume``."""
    run = run_of(execution)
    if run is not None:
        progress = run.progress()
        done = max(0, progress.finished - progress.cancelled)
        return (f"execution {execution.execution_id!r} {how} after {done} of {progress.total} steps "
                f"(run {progress.run_number}); {again} to resume")
    return f"execution {execution.execution_id!r} {how}; {again} to resume"


def _ipython_renders() -> bool:
    """Whether an IPython shell (a kernel, a terminal) shows this process's uncaught exceptions, and so
    honours ``_render_traceback_``."""
    ipython = sys.modules.get("IPython")
    try:
        return ipython is not None and ipython.get_ipython() is not None
    except Exception:  # noqa: BLE001 - a broken IPython shows nothing of ours either
        return False


def _one_line(exc: BaseException, kind: str, message: str) -> None:
    exc.zart_message = message  # type: ignore[attr-defined]
    exc._render_traceback_ = lambda: [f"{kind}: {message}"]  # type: ignore[attr-defined]


def explain_interrupt(exc: BaseException, execution: Execution) -> BaseException:
    """The interrupt to raise ``from None`` for an interrupted run: ``exc``, which IPython shows as one
    line instead of a long traceback; outside IPython (a script) a ``KeyboardInterrupt`` saying the same,
    so Python's traceback ends at the caller's ``zart.run`` line instead of zart_nb's internals.
    (A suspended execution was not interrupted: it stays sleeping or waiting, and this process continues
    it when due.)"""
    held = execution.suspension
    ipython = _ipython_renders()
    if held is not None:
        from .._suspend import describe

        message = (f"stopped waiting for execution {execution.execution_id!r}: it is still "
                   f"{execution.status.value} ({describe(execution.status, *held)}) and continues when due; "
                   "execution.result() or zart.run again waits for its output")
    else:
        message = _stopped(execution, "interrupted", "run the cell again" if ipython else
                           "run it again with the same execution id")
    _one_line(exc, "KeyboardInterrupt", message)
    if ipython:
        return exc
    plain = KeyboardInterrupt(message)
    plain.zart_message = message  # type: ignore[attr-defined]
    return plain


def explain_end(execution: Execution) -> None:
    """As an execution followed in this kernel ends: a cancel (from this kernel, ``zart cancel``, the
    TUI or ``zart.cancel`` in another process) shows as one line saying who cancelled it, as the stop
    button's interrupt does, instead of a traceback of zart_nb's internals."""
    error = execution.error
    if isinstance(error, Cancelled) and not hasattr(error, "zart_message"):
        origin = execution.cancelled_by
        _one_line(error, "Cancelled", _stopped(execution, f"cancelled from {origin}" if origin else "cancelled"))


def render_cancelled(exc: Cancelled) -> list[str]:
    """Any other ``Cancelled`` that reaches a cell: its one line."""
    return [f"Cancelled: {getattr(exc, 'zart_message', exc)}"]


def install() -> None:
    """Teach IPython (``_render_traceback_``) to show zart_nb's errors as above; called once a
    workflow runs in a kernel, so the error classes themselves know nothing of notebooks."""
    StepError._render_traceback_ = render_step_error  # type: ignore[attr-defined]
    TaskError._render_traceback_ = render_task_error  # type: ignore[attr-defined]
    Cancelled._render_traceback_ = render_cancelled  # type: ignore[attr-defined]
    shell = kernel_shell()
    if shell is not None:  # an Execution as the cell's value shows as zart.show shows it
        from .._handles import Execution
        from .show import execution_html

        shell.display_formatter.formatters["text/html"].for_type(Execution, execution_html)
