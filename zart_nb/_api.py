"""The public API: steps, workflows, the registry and scheduler, and schedule/wait/run/start."""
from __future__ import annotations

import contextvars
import os
import threading
from collections.abc import Iterable
from typing import Any, ParamSpec, TypeVar

from . import _context, _engine
from . import _serialization as ser
from . import _stores as stores
from ._definitions import Deadline, NamedCall, Step, WorkflowDef, as_workflow, with_deadline
from ._errors import DefinitionError, ExecutionNotFound
from ._executors.choice import ExecutorSpec
from ._handles import Execution, StepHandle
from ._journal import Journal
from ._options import RunOptions, RunPlan
from ._runtime import runtime
from ._status import ExecutionStatus

P = ParamSpec("P")
R = TypeVar("R")

class TaskRegistry:
    """Workflows by task name, for a :class:`DurableScheduler`."""

    def __init__(self) -> None:
        self._tasks: dict[str, WorkflowDef] = {}

    def register(self, name: str, task: Any, *, replace: bool = False) -> None:
        """Register a ``DurableExecution`` instance, a ``@zart.workflow`` or a function under ``name``.

        Registering the same workflow again (same code hash: a notebook cell run twice) is fine; a
        different one under a registered name is refused with a ``DefinitionError`` unless
        ``replace=True``."""
        if not isinstance(name, str) or not name:
            raise DefinitionError(f"task name must be a non-empty string, got {name!r}")
        workflow = as_workflow(task, name)
        registered = self._tasks.get(name)
        if registered is not None and not replace and registered.definition is not workflow.definition:
            if ser.code_hash(registered.definition) != ser.code_hash(workflow.definition):
                raise DefinitionError(
                    f"task {name!r} is already registered with another workflow: {_label(workflow)} "
                    f"has a different code hash from the registered {_label(registered)}; pass "
                    "replace=True to replace it")
        self._tasks[name] = workflow

    def get(self, name: str) -> Any:
        """What was registered as ``name`` (the ``DurableExecution`` instance, the ``@zart.workflow`` or the
        function); a ``DefinitionError`` naming the registered ones if none is."""
        return self._workflow(name).journaled

    def _workflow(self, name: str) -> WorkflowDef:
        try:
            return self._tasks[name]
        except KeyError:
            known = ", ".join(sorted(self._tasks)) or "none"
            raise DefinitionError(f"no task registered as {name!r} (registered: {known})") from None

    def __contains__(self, name: object) -> bool:
        return name in self._tasks

    @property
    def names(self) -> list[str]:
        """The registered names, sorted."""
        return sorted(self._tasks)


def _label(workflow: WorkflowDef) -> str:
    definition = workflow.definition
    return getattr(definition, "__qualname__", None) or f"a {type(definition).__name__}"


def _follow(execution: Execution, workflow: WorkflowDef, display: bool | None, background: bool) -> Any:
    """The live progress of ``execution`` (a widget in a kernel, a line on a terminal) and, in a
    kernel, the steps' printed lines in the calling cell; or None."""
    from ._notebook import follow

    return follow(execution, workflow.name, display, background)


def _explain_interrupt(exc: KeyboardInterrupt, execution: Execution) -> BaseException:
    """The interrupt to raise ``from None``: one clear line (how far it got, how to resume) in IPython
    instead of a long traceback; in a script a ``KeyboardInterrupt`` saying so."""
    from ._notebook.tracebacks import explain_interrupt

    return explain_interrupt(exc, execution)


# --- the one entry path: zart.run/start, DurableScheduler.run/start and the control actions ----------


def launch(journal: Journal, execution_id: str, workflow: WorkflowDef, data: Any, options: RunOptions,
           plan: RunPlan | None = None) -> Execution:
    """Start (or resume) an execution in a background thread and return its handle at once; the
    handle of the one already running here when there is one (nothing starts twice)."""
    definition = with_deadline(workflow, options.deadline)
    execution, is_new = _engine.claim(journal, execution_id, definition, data, options.on_change)
    if is_new:
        _start_thread(execution, definition, data, options, plan)
    _follow(execution, definition, options.display, background=True)
    return execution


def run_here(journal: Journal, execution_id: str, workflow: WorkflowDef, data: Any, options: RunOptions,
             plan: RunPlan | None = None) -> Any:
    """Run (or resume) an execution in the calling thread and return its output; wait for the one
    already running here when there is one."""
    __tracebackhide__ = True  # IPython leaves zart_nb's frames out of tracebacks
    definition = with_deadline(workflow, options.deadline)
    execution, is_new = _engine.claim(journal, execution_id, definition, data, options.on_change)
    live = _follow(execution, definition, options.display, background=False)
    try:
        if is_new:
            _engine.execute(execution, definition, data, options, plan)
        return execution.result()
    except KeyboardInterrupt as exc:
        raise _explain_interrupt(exc, execution) from None
    finally:
        if live is not None:
            live.close()


def _start_thread(execution: Execution, workflow: WorkflowDef, data: Any, options: RunOptions,
                  plan: RunPlan | None) -> None:
    def target() -> None:
        try:
            _engine.execute(execution, workflow, data, options, plan)
        except BaseException:
            pass  # the outcome is on the Execution; result() raises it

    # In a copy of the caller's context: an execution started from a workflow body knows its parent run.
    thread = threading.Thread(target=contextvars.copy_context().run, args=(target,),
                              name=f"zart-{execution.execution_id}", daemon=True)
    execution.starting()  # from the caller's point of view it runs now
    try:
        thread.start()
    except BaseException:
        _engine.release(execution)  # claimed but never started: nobody may wait for it
        raise


class DurableScheduler:
    """Starts, resumes and watches executions of registered tasks on one journal.

    ``journal`` defaults to ``$ZART_JOURNAL`` or ``./.zart/journal.duckdb``; ``workers`` to
    ``$ZART_WORKERS`` or the CPU count. ``display=False`` (or ``$ZART_DISPLAY=0``) turns the live
    progress (a widget in a notebook, a line on a terminal's stderr) off. ``executor`` runs the steps
    on a Dask cluster: a ``distributed.Client`` or a scheduler address (default ``$ZART_EXECUTOR``,
    else the local pool).
    """

    def __init__(self, registry: TaskRegistry, journal: str | os.PathLike[str] | None = None, *,
                 workers: int | None = None, on_change: str = "rerun", display: bool | None = None,
                 executor: ExecutorSpec = None) -> None:
        self.options = RunOptions.make(on_change, workers, executor, display)
        self.registry = registry
        self._journal = runtime.journal(journal)
        self._executions: dict[str, Execution] = {}

    @property
    def journal(self) -> str:
        """The path of its journal file (``zart.journal(scheduler.journal)`` reads it)."""
        return str(self._journal.path)

    @property
    def workers(self) -> int | None:
        """Worker processes of the local pool (None: one per core)."""
        return self.options.workers

    @property
    def executor(self) -> ExecutorSpec:
        """Where steps run: None (the local pool), "inline", or a Dask client or address."""
        return self.options.executor

    @property
    def on_change(self) -> str:
        """What a journaled step whose code or arguments changed does: "rerun" or "error"."""
        return self.options.on_change.value

    @property
    def display(self) -> bool | None:
        """Whether runs show the progress widget in a notebook (None: when one is there)."""
        return self.options.display

    def start(self, execution_id: str, task_name: str, data: Any = None, *,
              deadline: Deadline | None = None) -> Execution:
        """Start (or resume) an execution in the background and return its handle at once.

        If that execution is already running here, its handle is returned (nothing starts twice).
        ``deadline`` as for :func:`run`."""
        __tracebackhide__ = True  # IPython leaves zart_nb's frames out of tracebacks
        options = self.options if deadline is None else self.options.replace(deadline=deadline)
        execution = launch(self._journal, execution_id, self.registry._workflow(task_name), data, options)
        self._executions[execution_id] = execution
        return execution

    def run(self, execution_id: str, task_name: str, data: Any = None, *,
            deadline: Deadline | None = None) -> Any:
        """Run (or resume) an execution in the calling thread and return its output.

        If that execution is already running here (started with ``start``), waits for it instead.
        ``deadline`` as for :func:`run`."""
        __tracebackhide__ = True  # IPython leaves zart_nb's frames out of tracebacks
        options = self.options if deadline is None else self.options.replace(deadline=deadline)
        return run_here(self._journal, execution_id, self.registry._workflow(task_name), data, options)

    def start_and_wait_for(self, execution_id: str, task_name: str, data: Any = None,
                           timeout: float | None = None) -> Any:
        """Start (or resume) and block until the output is ready.

        After ``timeout`` seconds, ``ExecutionTimeout`` is raised and the execution keeps running in
        the background. Ctrl-C (a kernel interrupt) while waiting interrupts the execution: its
        running steps are stopped and it is recorded as ``interrupted``, ready to resume."""
        __tracebackhide__ = True  # IPython leaves zart_nb's frames out of tracebacks
        if timeout is None:
            return self.run(execution_id, task_name, data)
        execution = self.start(execution_id, task_name, data)
        try:
            return execution.result(timeout)
        except KeyboardInterrupt as exc:
            raise _explain_interrupt(exc, execution) from None

    def wait(self, execution_id: str, timeout: float | None = None) -> Any:
        """The output of an execution started here (or journaled as completed)."""
        __tracebackhide__ = True  # IPython leaves zart_nb's frames out of tracebacks
        execution = self._executions.get(execution_id)
        if execution is not None:
            return execution.result(timeout)
        stored = self._journal.pickled_execution(execution_id)
        if stored is None:
            raise ExecutionNotFound(execution_id, self._journal.path)
        if stored.status != ExecutionStatus.COMPLETED.value:
            raise DefinitionError(f"execution {execution_id!r} is {stored.status} and not running here; "
                                  "resume it with start()")
        return stores.load(self._journal, execution_id, stored.output) if stored.output is not None else None

    def status(self, execution_id: str) -> ExecutionStatus:
        """Its status: as this process sees it while it runs here, else as journaled (``ExecutionNotFound``
        if the journal has no such execution)."""
        execution = self._executions.get(execution_id)
        if execution is not None and execution.status != ExecutionStatus.PENDING:
            return execution.status
        status = self._journal.execution_status(execution_id)
        if status is None:
            raise ExecutionNotFound(execution_id, self._journal.path)
        return status

    def cancel(self, execution_id: str) -> None:
        """Cancel a running execution (its steps are killed) or mark a journaled unfinished one cancelled."""
        execution = self._executions.get(execution_id) or runtime.live_execution(self._journal, execution_id)
        if execution is not None and not execution.done:
            execution.cancel()
            return
        with self._journal.hold():
            status = self._journal.execution_status(execution_id)
            if status is None:
                raise ExecutionNotFound(execution_id, self._journal.path)
            if not status.finished:
                self._journal.set_status(execution_id, ExecutionStatus.CANCELLED)


def _execution_id(execution_id: str | None, workflow: WorkflowDef, data: Any) -> str:
    if execution_id is None:
        parent = _context.current_run()  # started from a workflow body: a child, named by its position
        if parent is not None and not _context.in_step():
            return parent.child_id(workflow.name)
        return default_execution_id(workflow, data)
    _engine.check_execution_id(execution_id)
    return execution_id


def _journal_for(journal: str | os.PathLike[str] | None) -> Journal:
    """``journal``; by default, in a workflow body, its execution's (a child lives beside its parent)."""
    if journal is None:
        parent = _context.current_run()
        if parent is not None and not _context.in_step():
            return parent.journal
    return runtime.journal(journal)


def default_execution_id(workflow: WorkflowDef, data: Any) -> str:
    """``<workflow>-<hash of the input>``: re-running the same cell resumes the same execution."""
    return f"{workflow.name}-{ser.args_hash((data,), {})[:12]}"


def run(workflow: Any, data: Any = None, *, execution_id: str | None = None,
        journal: str | os.PathLike[str] | None = None, workers: int | None = None,
        on_change: str = "rerun", display: bool | None = None, executor: ExecutorSpec = None,
        deadline: Deadline | None = None, value_store: str | os.PathLike[str] | None = None) -> Any:
    """Run (or resume) a workflow in the calling thread and return its output.

    The execution id defaults to the workflow name plus a hash of ``data``, so re-running the same
    cell resumes: journaled steps return their stored results and only missing ones run. If that
    execution is already running in this process (``zart.start``), this waits for it instead.
    In a notebook a live progress widget shows under the cell (``display=False`` or
    ``$ZART_DISPLAY=0`` turns it off); on a terminal, a progress line on stderr.
    ``executor`` runs the steps on a Dask cluster: a ``distributed.Client`` or a scheduler address
    like ``"tcp://host:8786"`` (default ``$ZART_EXECUTOR``; ``"local"`` or unset: the local pool).
    ``deadline``: seconds (or a ``timedelta``) after the execution's first start, or an aware
    ``datetime`` (default: the workflow's own); journaled at the first run and kept on resume. When
    it passes, running steps are stopped, scheduled ones never start, and the execution is failed
    with :class:`DeadlineExceeded`.
    ``value_store``: an absolute path where the execution keeps its stored values instead of
    ``<journal>.values`` (default ``$ZART_VALUE_STORE``), a folder that this process and a Dask
    ``executor``'s workers reach at that same path (a shared filesystem): the workers write large
    outputs there and load stored arguments from there themselves. Journaled at the first run: every
    later run and reader of the execution uses that folder (naming another one is refused).
    """
    __tracebackhide__ = True  # IPython leaves zart_nb's frames out of tracebacks
    options = RunOptions.make(on_change, workers, executor, display, deadline, value_store)
    definition = as_workflow(workflow)
    return run_here(_journal_for(journal), _execution_id(execution_id, definition, data), definition, data,
                    options)


def start(workflow: Any, data: Any = None, *, execution_id: str | None = None,
          journal: str | os.PathLike[str] | None = None, workers: int | None = None,
          on_change: str = "rerun", display: bool | None = None, executor: ExecutorSpec = None,
          deadline: Deadline | None = None, value_store: str | os.PathLike[str] | None = None) -> Execution:
    """Start (or resume) a workflow in a background thread; returns an :class:`Execution` at once.

    If that execution is already running in this process, its handle is returned. In a notebook
    the progress widget keeps moving under this cell after it returns (``display=False`` to hide).
    ``executor``, ``deadline`` and ``value_store`` as for :func:`run`."""
    __tracebackhide__ = True  # IPython leaves zart_nb's frames out of tracebacks
    options = RunOptions.make(on_change, workers, executor, display, deadline, value_store)
    definition = as_workflow(workflow)
    return launch(_journal_for(journal), _execution_id(execution_id, definition, data), definition, data,
                  options)


def schedule(target: Step[P, R] | NamedCall[P, R], *args: P.args, **kwargs: P.kwargs) -> StepHandle:
    """Register a step to run in parallel, without waiting; returns its handle.

    The step's key is assigned now, in call order, so replays line up however results arrive.
    """
    run_state = _context.require_run("schedule")
    if isinstance(target, NamedCall):
        handle: StepHandle = run_state.schedule(target.step, args, kwargs, key=target.key)
        return handle
    if not isinstance(target, Step):
        raise DefinitionError(f"zart.schedule() needs a @zart.step function, got {target!r}")
    handle = run_state.schedule(target, args, kwargs)
    return handle


def _handles_run(handles: list[StepHandle]) -> _context.Run:
    """The one run all ``handles`` belong to, which must be the caller's when it is in a workflow."""
    first = handles[0]
    if not isinstance(first, StepHandle):
        raise DefinitionError(f"zart.wait() takes step handles (from zart.schedule), got {first!r}")
    run_state = first._run
    for handle in handles:
        if not isinstance(handle, StepHandle):
            raise DefinitionError(f"zart.wait() takes step handles (from zart.schedule), got {handle!r}")
        if handle._run is not run_state:
            raise DefinitionError(f"zart.wait() got handles of two executions ({run_state.execution_id!r} "
                                  f"and {handle._run.execution_id!r}); wait for each in its own workflow")
    current = _context.current_run()
    if current is not None and current is not run_state:
        raise DefinitionError(f"step {first.key!r} belongs to execution {run_state.execution_id!r}, not to "
                              f"{current.execution_id!r} that waits for it; wait for it in its own workflow")
    return run_state


def wait(handles: Iterable[StepHandle], return_exceptions: bool = False,
         timeout: float | None = None) -> list[Any]:
    """Block until every handle has a journaled result; results come in the handles' order.

    Raises the first failure in handle order (a :class:`StepError`) once all are done, unless
    ``return_exceptions=True``, which puts each failure in its place in the list instead.
    """
    __tracebackhide__ = True  # IPython leaves zart_nb's frames out of tracebacks
    handles = list(handles)
    if not handles:
        return []
    run_state = _handles_run(handles)
    run_state.wait_for(handles, timeout)
    results: list[Any] = []
    for handle in handles:
        error = handle._error
        if error is not None:
            if not return_exceptions:
                raise error
            results.append(error)
        else:
            results.append(handle.value())
    return results


def context() -> _context.Context:
    """The current execution id, step key and attempt number (see :class:`Context`)."""
    return _context.context()
