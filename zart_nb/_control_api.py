"""The public control actions: ``zart.resume``, ``recover``, ``restart``, ``rerun_steps``, ``retry_step`` and
``fork``. Each starts a run and returns its handle at once: an :class:`Execution` when this process runs
it, a :class:`RemoteExecution` that follows it when another process's engine holds the journal (the
request goes through that engine's monitor endpoint, and it runs there)."""
from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from ._actions import (
    SAME,
    Prepared,
    RemoteExecution,
    prepare_fork,
    prepare_rerun,
    prepare_restart,
    prepare_resume,
    prepare_retry,
    recoverable,
    remote,
)
from ._api import launch
from ._handles import Execution
from ._journal import Journal
from ._monitor.protocol import MessageType
from ._options import RunOptions
from ._runtime import default_journal_path, runtime
from ._status import RunTrigger

logger = logging.getLogger("zart_nb")

Handle = Execution | RemoteExecution
JournalPath = str | os.PathLike[str] | None


def _act(journal: JournalPath, prepare: Callable[[Journal], Prepared], kind: MessageType,
         options: RunOptions | None = None, **args: Any) -> Handle:
    from ._monitor.client import MonitorClient

    path = journal or default_journal_path()
    client = MonitorClient.connect(path)
    if client is not None:  # another process's engine holds the journal: it runs the action
        with client:
            return remote(client, client.act(kind, **args))
    here = runtime.journal(path)
    with here.hold():
        prepared = prepare(here)
    if prepared.stale:
        logger.warning("zart: %s reuses steps after the ones it runs again, which may be stale (their "
                       "arguments did not change): %s", prepared.execution_id, ", ".join(prepared.stale))
    return launch(here, prepared.execution_id, prepared.workflow, prepared.data,
                  options or RunOptions.make(display=False), prepared.plan)


def resume(execution_id: str, journal: JournalPath = None, *, extend: float | None = None,
           workers: int | None = None) -> Handle:
    """Start the next run of an unfinished (failed, cancelled, interrupted) execution from its journaled
    definition and input, reusing its completed steps; returns its handle at once (``.result(timeout)``
    waits for the output). ``extend``: seconds its deadline moves later (from now when it has passed
    or none was set). What ``zart resume ID [--extend SECONDS]`` does. One suspended in this process
    (sleeping, waiting) is continued now by this process: its handle is returned."""
    if extend is None:
        from ._suspend import continuer

        held = runtime.journal(journal or default_journal_path())
        live = runtime.live_execution(held, execution_id)
        if live is not None and live.suspension is not None:
            continuer.poke(held, execution_id)
            return live
    return _act(journal, lambda held: prepare_resume(held, execution_id, extend=extend), MessageType.RESUME,
                RunOptions.make(workers=workers, display=False), execution_id=execution_id, extend=extend)


def recover(journal: JournalPath = None) -> list[Handle]:
    """Resume every execution whose last run ended because its process died (killed, a kernel death),
    not those interrupted or cancelled on purpose; returns their handles (oldest first). A notebook's
    first cell can call it."""
    from ._monitor.client import MonitorClient

    path = journal or default_journal_path()
    client = MonitorClient.connect(path)
    if client is not None:
        with client:
            reply = client.act(MessageType.RECOVER)
            started = reply.get("started")
            return [remote(client, one) for one in started] if isinstance(started, list) else []
    here = runtime.journal(path)
    with here.hold():
        ids = recoverable(here)
    return [_recover_one(path, one) for one in ids]


def _recover_one(path: str | os.PathLike[str], execution_id: str) -> Handle:
    return _act(path, lambda held: prepare_resume(held, execution_id, trigger=RunTrigger.RECOVER),
                MessageType.RESUME, execution_id=execution_id, trigger=RunTrigger.RECOVER.value)


def restart(execution_id: str, journal: JournalPath = None) -> Handle:
    """A new run of the same id and input from scratch: every step runs again (earlier runs and their
    records are kept); its deadline counts from now. A running execution is refused (``StateConflict``)."""
    return _act(journal, lambda held: prepare_restart(held, execution_id), MessageType.RESTART,
                execution_id=execution_id)


def rerun_steps(execution_id: str, steps: Sequence[str], after: bool = False,
                journal: JournalPath = None) -> Handle:
    """A new run that runs the journaled steps ``steps`` (keys, e.g. ``["fetch#0"]``) again, with
    ``after`` every step from the first of them on in call order, and reuses the rest. A reused step
    after them whose arguments did not change may be stale (it may depend on them otherwise): they are
    logged, journaled with the run (``zart runs``) and on a remote handle's ``stale``."""
    keys = [steps] if isinstance(steps, str) else list(steps)
    return _act(journal, lambda held: prepare_rerun(held, execution_id, keys, after), MessageType.RERUN,
                execution_id=execution_id, steps=keys, after=after)


def retry_step(execution_id: str, step_key: str, journal: JournalPath = None) -> Handle:
    """Run the failed (or cancelled, interrupted) step ``step_key`` again in a new run and continue the
    execution; completed steps are reused, and another failed step the run reaches fails again with its
    journaled error, not run (``zart.resume`` re-runs every failed step)."""
    return _act(journal, lambda held: prepare_retry(held, execution_id, step_key), MessageType.RETRY,
                execution_id=execution_id, step_key=step_key)


def fork(execution_id: str, from_step: str, new_id: str | None = None, data: Any = SAME,
         journal: JournalPath = None) -> Handle:
    """A new execution (``new_id``, default ``<id>-fork-N``) of the same workflow that reuses the
    original's completed steps before ``from_step`` in call order and runs ``from_step`` and what
    follows. ``data``: a new input (default the original's; through another process's engine it must be
    JSON). Its deadline counts from its own start. Code changed since runs as changed code does."""
    args: dict[str, Any] = {"execution_id": execution_id, "from_step": from_step, "new_id": new_id}
    if data is not SAME:
        args["data"] = data
    return _act(journal, lambda held: prepare_fork(held, execution_id, from_step, new_id, data), MessageType.FORK,
                **args)
