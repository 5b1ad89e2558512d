"""Running notebooks in a real kernel (nbclient) and reading what they saved."""
from __future__ import annotations

import asyncio
import os
import threading
from pathlib import Path
from typing import Any

import nbformat
from nbclient import NotebookClient


def execute(cells: list[str], path: Path, *, env: dict[str, str] | None = None, allow_errors: bool = False,
            timeout: int = 120) -> Any:
    """Execute ``cells`` in a fresh python3 kernel whose cwd is ``path``; returns the notebook."""
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(code) for code in cells]
    run_notebook(nb, path, env=env, allow_errors=allow_errors, timeout=timeout)
    return nb


def run_notebook(nb: Any, path: Path, *, env: dict[str, str] | None = None, allow_errors: bool = False,
                 timeout: int = 120) -> Any:
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", allow_errors=allow_errors,
                            resources={"metadata": {"path": str(path)}})
    saved = dict(os.environ)
    os.environ.update(env or {})
    try:
        client.execute()
    finally:
        os.environ.clear()
        os.environ.update(saved)
        if threading.current_thread() is not threading.main_thread():
            _close_thread_loop()
    return nb


def _close_thread_loop() -> None:
    """nbclient (jupyter_core's ``run_sync``) leaves an event loop on the calling thread; on a thread
    of a test that ends, nothing closes it, and its ResourceWarning, raised whenever the garbage
    collector gets to it, fails whichever later test runs then."""
    try:
        loop = asyncio.get_event_loop_policy().get_event_loop()
    except RuntimeError:  # none set on this thread
        return
    if not loop.is_running():
        loop.close()
    asyncio.set_event_loop(None)


def widget_states(nb: Any) -> dict[str, dict[str, Any]]:
    """model id -> state, as nbclient stored them in the notebook's metadata."""
    stored = nb.metadata.get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    return {model_id: entry["state"] for model_id, entry in stored.get("state", {}).items()}


def progress_bars(nb: Any) -> list[dict[str, Any]]:
    return [state for state in widget_states(nb).values() if state.get("_model_name") == "IntProgressModel"]


def displayed_models(cell: Any) -> list[str]:
    return [out["data"]["application/vnd.jupyter.widget-view+json"]["model_id"] for out in cell.outputs
            if out.get("output_type") == "display_data"
            and "application/vnd.jupyter.widget-view+json" in out.get("data", {})]


def bar_of(nb: Any, cell: Any) -> dict[str, Any]:
    """The progress bar of the (first) zart widget displayed in ``cell``."""
    states = widget_states(nb)
    for model_id in displayed_models(cell):
        stack = [model_id]
        while stack:
            state = states[stack.pop()]
            if state.get("_model_name") == "IntProgressModel":
                return state
            stack.extend(child.removeprefix("IPY_MODEL_") for child in state.get("children", []))
    raise AssertionError(f"no progress bar displayed in cell {cell.source!r}")


def text(cell: Any, name: str | None = None) -> str:
    return "".join(out.get("text", "") for out in cell.outputs
                   if out.get("output_type") == "stream" and (name is None or out.get("name") == name))


def plain(cell: Any) -> list[str]:
    return [out["data"]["text/plain"] for out in cell.outputs
            if out.get("output_type") in ("display_data", "execute_result") and "text/plain" in out.get("data", {})]
