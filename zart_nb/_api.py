"""The public API: steps, workflows, the registry and scheduler, and schedule/wait/run/start."""
from __future__ import annotations

import contextvars
import os
import threading
from collections.abc import Iterable
from typing import Any, ParamSpec, TypeVar

from . import _context, _engine
from . import _serialization as ser
from . import _values as values
from ._definitions import Deadline, NamedCall, Step, WorkflowDef, as_workflow, with_deadline
from ._errors import ConfigurationError, DefinitionError, ExecutionNotFound
from ._executors import choice
from ._executors.choice import ExecutorSpec
from ._handles import Execution, StepHandle
from ._journal import Journal
from ._runtime import default_worker_count, runtime
from ._status import ExecutionStatus

P = ParamSpec("P")
R = TypeVar("R")

ON_CHANGE = ("rerun", "error")


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

    def get(self, name: str) -> WorkflowDef:
        try:
            return self._tasks[name]
        except KeyError:
            known = ", ".join(sorted(self._tasks)) or "none"
            raise DefinitionError(f"no task registered as {name!r} (registered: {known})") from None

    def __contains__(self, name: object) -> bool:
        return name in self._tasks

    @property
    def names(self) -> list[str]:
        return sorted(self._tasks)


def _label(workflow: WorkflowDef) -> str:
    definition = workflow.definition
    return getattr(definition, "__qualname__", None) or f"a {type(definition).__name__}"


def check_options(on_change: str, workers: int | None, executor: ExecutorSpec = None) -> None:
    choice.target(executor)
    if on_change not in ON_CHANGE:
        raise ConfigurationError(f"on_change must be one of {ON_CHANGE}, got {on_change!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ConfigurationError(f"workers must be a positive integer, got {workers!r}")
    if workers is None:
        default_worker_count()  # a bad $ZART_WORKERS is refused before anything is journaled


def _follow(execution: Execution, workflow: WorkflowDef, display: bool | None, background: bool) -> Any:
    """The live progress of ``execution`` (a widget in a kernel, a line on a terminal) and, in a
    kernel, the steps' printed lines in the calling cell; or None."""
    from ._notebook import follow

    return follow(execution, workflow.name, display, background)


def _explain_interrupt(exc: KeyboardInterrupt, execution: Execution) -> None:
    """One clear line in a notebook instead of a long traceback (how far it got, how to resume)."""
    from ._notebook.tracebacks import explain_interrupt

    explain_interrupt(exc, execution)


def _start_thread(execution: Execution, workflow: WorkflowDef, data: Any, on_change: str,
                  workers: int | None, executor: ExecutorSpec = None) -> None:
    def target() -> None:
        try:
            _engine.execute(execution, workflow, data, on_change=on_change, workers=workers,
                            executor=executor)
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
        check_options(on_change, workers, executor)
        self.registry = registry
        self.display = display
        self.journal = runtime.journal(journal)
        self.workers = workers
        self.executor = executor
        self.on_change = on_change
        self._executions: dict[str, Execution] = {}

    def start(self, execution_id: str, task_name: str, data: Any = None, *,
              deadline: Deadline | None = None) -> Execution:
        """Start (or resume) an execution in the background and return its handle at once.

        If that execution is already running here, its handle is returned (nothing starts twice).
        ``deadline`` as for :func:`run`."""
        __tracebackhide__ = True  # IPython leaves zart_nb's frames out of tracebacks
        workflow = with_deadline(self.registry.get(task_name), deadline)
        execution, is_new = _engine.claim(self.journal, execution_id, workflow, data, self.on_change)
        if is_new:
            self._executions[execution_id] = execution
            _start_thread(execution, workflow, data, self.on_change, self.workers, self.executor)
        _follow(execution, workflow, self.display, background=True)
        return execution

    def run(self, execution_id: str, task_name: str, data: Any = None, *,
            deadline: Deadline | None = None) -> Any:
        """Run (or resume) an execution in the calling thread and return its output.

        If that execution is already running here (started with ``start``), waits for it instead.
        ``deadline`` as for :func:`run`."""
        __tracebackhide__ = True  # IPython leaves zart_nb's frames out of tracebacks
        workflow = with_deadline(self.registry.get(task_name), deadline)
        execution, is_new = _engine.claim(self.journal, execution_id, workflow, data, self.on_change)
        live = _follow(execution, workflow, self.display, background=False)
        try:
            if not is_new:
                return execution.result()
            self._executions[execution_id] = execution
            _engine.execute(execution, workflow, data, on_change=self.on_change, workers=self.workers,
                            executor=self.executor)
            return execution.result()
        except KeyboardInterrupt as exc:
            _explain_interrupt(exc, execution)
            raise
        finally:
            if live is not None:
                live.close()

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
            _explain_interrupt(exc, execution)
            raise

    def wait(self, execution_id: str, timeout: float | None = None) -> Any:
        """The output of an execution started here (or journaled as completed)."""
        __tracebackhide__ = True  # IPython leaves zart_nb's frames out of tracebacks
        execution = self._executions.get(execution_id)
        if execution is not None:
            return execution.result(timeout)
        stored = self.journal.pickled_execution(execution_id)
        if stored is None:
            raise ExecutionNotFound(execution_id, self.journal.path)
        if stored.status != ExecutionStatus.COMPLETED.value:
            raise DefinitionError(f"execution {execution_id!r} is {stored.status} and not running here; "
                                  "resume it with start()")
        return values.load(stored.output, self.journal.path) if stored.output is not None else None

    def status(self, execution_id: str) -> ExecutionStatus:
        execution = self._executions.get(execution_id)
        if execution is not None and execution.status != ExecutionStatus.PENDING:
            return execution.status
        status = self.journal.execution_status(execution_id)
        if status is None:
            raise ExecutionNotFound(execution_id, self.journal.path)
        return status

    def cancel(self, execution_id: str) -> None:
        """Cancel a running execution (its steps are killed) or mark a journaled unfinished one cancelled."""
        execution = self._executions.get(execution_id) or runtime.live_execution(self.journal, execution_id)
        if execution is not None and not execution.done:
            execution.cancel()
            return
        with self.journal.hold():
            status = self.journal.execution_status(execution_id)
            if status is None:
                raise ExecutionNotFound(execution_id, self.journal.path)
            if not status.finished:
                self.journal.set_status(execution_id, ExecutionStatus.CANCELLED)


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
        deadline: Deadline | None = None) -> Any:
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
    """
    __tracebackhide__ = True  # IPython leaves zart_nb's frames out of tracebacks
    check_options(on_change, workers, executor)
    definition = with_deadline(as_workflow(workflow), deadline)
    journal_ = _journal_for(journal)
    execution, is_new = _engine.claim(journal_, _execution_id(execution_id, definition, data),
                                      definition, data, on_change)
    live = _follow(execution, definition, display, background=False)
    try:
        if not is_new:
            return execution.result()
        _engine.execute(execution, definition, data, on_change=on_change, workers=workers, executor=executor)
        return execution.result()
    except KeyboardInterrupt as exc:
        _explain_interrupt(exc, execution)
        raise
    finally:
        if live is not None:
            live.close()


def start(workflow: Any, data: Any = None, *, execution_id: str | None = None,
          journal: str | os.PathLike[str] | None = None, workers: int | None = None,
          on_change: str = "rerun", display: bool | None = None, executor: ExecutorSpec = None,
          deadline: Deadline | None = None) -> Execution:
    """Start (or resume) a workflow in a background thread; returns an :class:`Execution` at once.

    If that execution is already running in this process, its handle is returned. In a notebook
    the progress widget keeps moving under this cell after it returns (``display=False`` to hide).
    ``executor`` and ``deadline`` as for :func:`run`."""
    __tracebackhide__ = True  # IPython leaves zart_nb's frames out of tracebacks
    check_options(on_change, workers, executor)
    definition = with_deadline(as_workflow(workflow), deadline)
    journal_ = _journal_for(journal)
    execution, is_new = _engine.claim(journal_, _execution_id(execution_id, definition, data),
                                      definition, data, on_change)
    if is_new:
        _start_thread(execution, definition, data, on_change, workers, executor)
    _follow(execution, definition, display, background=True)
    return execution


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
