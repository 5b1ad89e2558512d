"""The public API: steps, workflows, the registry and scheduler, and schedule/wait/run/start."""
from __future__ import annotations

import functools
import inspect
import os
import string
import threading
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Generic, ParamSpec, TypeVar, overload

from . import _context, _engine, _runtime
from . import _serialization as ser
from ._engine import WorkflowDef
from ._errors import DefinitionError
from ._handles import Execution, StepHandle
from ._records import ExecutionStatus

P = ParamSpec("P")
R = TypeVar("R")

ON_CHANGE = ("rerun", "error")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often a failed step is tried again, and how long to wait in between.

    ``retries`` is the number of attempts *after* the first. The delay before retry ``n`` (1-based) is
    ``backoff * multiplier ** (n - 1)``, capped at ``max_backoff`` seconds.
    """

    retries: int = 0
    backoff: float = 0.5
    multiplier: float = 2.0
    max_backoff: float = 30.0

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ValueError(f"retries must be >= 0, got {self.retries}")
        if self.backoff < 0 or self.multiplier < 1 or self.max_backoff < 0:
            raise ValueError("backoff and max_backoff must be >= 0 and multiplier >= 1")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        return min(self.max_backoff, self.backoff * self.multiplier ** (attempt - 1))


class Step(Generic[P, R]):
    """A function whose calls inside a workflow are journaled and run in worker processes.

    Called outside a workflow it is the plain function. Inside one, a call runs it durably and returns
    its result; ``zart.schedule(step, ...)`` runs it in parallel and returns a handle.
    """

    def __init__(self, fn: Callable[P, R], name: str, retry: RetryPolicy, timeout: float | None) -> None:
        if not callable(fn):
            raise DefinitionError(f"@zart.step needs a function, got {fn!r}")
        self.fn = fn
        self.__wrapped_fn__ = fn
        self.name = name
        self.retry = retry
        self.timeout = timeout
        self._template_fields = [f for _, f, _, _ in string.Formatter().parse(name) if f]
        self._signature = inspect.signature(fn) if self._template_fields else None
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"<zart step {self.name!r}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        run = _context.current_run()
        if run is None:
            _warn_if_detached(self)
            return self.fn(*args, **kwargs)
        return run.schedule(self, args, kwargs).result()

    def key_for(self, args: tuple, kwargs: dict) -> str | None:
        """The step key a name template gives these arguments (``None`` without a template)."""
        if not self._template_fields:
            return None
        assert self._signature is not None
        try:
            bound = self._signature.bind(*args, **kwargs)
        except TypeError as exc:
            raise DefinitionError(f"step {self.name!r}: {exc}") from None
        bound.apply_defaults()
        try:
            return self.name.format(**bound.arguments)
        except (KeyError, IndexError, AttributeError) as exc:
            raise DefinitionError(f"step name template {self.name!r} refers to {exc}, which is not an "
                                  f"argument of {self.fn.__name__}") from None

    def named(self, key: str) -> NamedCall[P, R]:
        """This step under an explicit key, for one call: ``step.named("fetch-eu")(region)``."""
        return NamedCall(self, key)


def _warn_if_detached(step: Step) -> None:
    """A step called on a thread the workflow started runs unjournaled: say so."""
    if _engine.has_active_executions():
        warnings.warn(f"step {step.name!r} was called outside its workflow's context (on another "
                      "thread?), so it ran in this process and was not journaled. Use "
                      "zart.schedule(...) for parallel steps, or contextvars.copy_context().run(...) "
                      "to carry the workflow into a thread.", RuntimeWarning, stacklevel=3)


class NamedCall(Generic[P, R]):
    """A step bound to an explicit step key (from ``Step.named``)."""

    __slots__ = ("step", "key")

    def __init__(self, step: Step[P, R], key: str) -> None:
        self.step = step
        self.key = key

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        run = _context.current_run()
        if run is None:
            return self.step.fn(*args, **kwargs)
        return run.schedule(self.step, args, kwargs, key=self.key).result()


def _retry_policy(retries: int | RetryPolicy) -> RetryPolicy:
    if isinstance(retries, RetryPolicy):
        return retries
    if isinstance(retries, bool) or not isinstance(retries, int):
        raise DefinitionError(f"retries must be an int or a RetryPolicy, got {retries!r}")
    return RetryPolicy(retries=retries)


@overload
def step(name: Callable[P, R]) -> Step[P, R]: ...
@overload
def step(name: str | None = None, *, retries: int | RetryPolicy = 0,
         timeout: float | None = None) -> Callable[[Callable[P, R]], Step[P, R]]: ...


def step(name: Any = None, *, retries: int | RetryPolicy = 0, timeout: float | None = None) -> Any:
    """Declare a durable step: ``@zart.step("check-service", retries=3, timeout=30)``.

    ``name`` defaults to the function's name and may be a template of the arguments
    (``"check-{service}"``) to give each call a stable key. ``retries`` is a count or a
    :class:`RetryPolicy`; ``timeout`` (seconds) kills an attempt's worker when exceeded.
    """
    if callable(name):
        return Step(name, name.__name__, RetryPolicy(), None)
    if timeout is not None and timeout <= 0:
        raise DefinitionError(f"timeout must be positive seconds, got {timeout!r}")
    policy = _retry_policy(retries)

    def decorate(fn: Callable[P, R]) -> Step[P, R]:
        return Step(fn, name or fn.__name__, policy, timeout)

    return decorate


class Workflow(Generic[R]):
    """A workflow function (``@zart.workflow("name")``): ``zart.run(wf, data)`` runs it durably."""

    def __init__(self, fn: Callable[[Any], R], name: str) -> None:
        self.fn = fn
        self.name = name
        self.__wrapped_fn__ = fn
        functools.update_wrapper(self, fn)  # type: ignore[arg-type]

    def __repr__(self) -> str:
        return f"<zart workflow {self.name!r}>"

    def __call__(self, data: Any) -> R:
        return self.fn(data)


def workflow(name: Any = None) -> Any:
    """Declare a workflow function: ``@zart.workflow("health-check") def health(data): ...``."""
    if callable(name):
        return Workflow(name, name.__name__)

    def decorate(fn: Callable[[Any], R]) -> Workflow[R]:
        return Workflow(fn, name or fn.__name__)

    return decorate


class DurableExecution:
    """Base class of class-style workflows: override ``run(self, data)``.

    ``name`` (a class attribute) defaults to the class name when the task is not registered by name.
    """

    name: str | None = None

    def run(self, data: Any) -> Any:
        raise NotImplementedError(f"{type(self).__name__} must implement run(self, data)")


def _as_workflow(target: Any, name: str | None = None) -> WorkflowDef:
    if isinstance(target, WorkflowDef):
        return target
    if isinstance(target, Workflow):
        return WorkflowDef(name or target.name, target.fn, target.fn)
    if isinstance(target, DurableExecution):
        return WorkflowDef(str(name or target.name or type(target).__name__), target.run, target)
    if isinstance(target, type) and issubclass(target, DurableExecution):
        raise DefinitionError(f"pass an instance of {target.__name__} (e.g. {target.__name__}()), "
                              "not the class")
    if isinstance(target, Step):
        raise DefinitionError(f"{target!r} is a step; run it from a workflow, or wrap it in one")
    if callable(target):
        return WorkflowDef(str(name or getattr(target, "__name__", "workflow")), target, target)
    raise DefinitionError(f"not a workflow: {target!r} (use @zart.workflow, a DurableExecution "
                          "subclass instance or a function)")


class TaskRegistry:
    """Workflows by task name, for a :class:`DurableScheduler`."""

    def __init__(self) -> None:
        self._tasks: dict[str, WorkflowDef] = {}

    def register(self, name: str, task: Any) -> None:
        """Register a ``DurableExecution`` instance, a ``@zart.workflow`` or a function under ``name``."""
        if not isinstance(name, str) or not name:
            raise DefinitionError(f"task name must be a non-empty string, got {name!r}")
        self._tasks[name] = _as_workflow(task, name)

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


def _check_options(on_change: str, workers: int | None) -> None:
    if on_change not in ON_CHANGE:
        raise ValueError(f"on_change must be one of {ON_CHANGE}, got {on_change!r}")
    if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
        raise ValueError(f"workers must be a positive integer, got {workers!r}")


def _start_thread(execution: Execution, workflow: WorkflowDef, data: Any, on_change: str,
                  workers: int | None) -> None:
    def target() -> None:
        try:
            _engine.execute(execution, workflow, data, on_change=on_change, workers=workers)
        except BaseException:
            pass  # the outcome is on the Execution; result() raises it

    thread = threading.Thread(target=target, name=f"zart-{execution.execution_id}", daemon=True)
    try:
        thread.start()
    except BaseException:
        _engine.release(execution)  # claimed but never started: nobody may wait for it
        raise


class DurableScheduler:
    """Starts, resumes and watches executions of registered tasks on one journal.

    ``journal`` defaults to ``$ZART_JOURNAL`` or ``./.zart/journal.duckdb``; ``workers`` to
    ``$ZART_WORKERS`` or the CPU count.
    """

    def __init__(self, registry: TaskRegistry, journal: str | os.PathLike[str] | None = None, *,
                 workers: int | None = None, on_change: str = "rerun") -> None:
        _check_options(on_change, workers)
        self.registry = registry
        self.journal = _runtime.get_journal(journal)
        self.workers = workers
        self.on_change = on_change
        self._executions: dict[str, Execution] = {}

    def start(self, execution_id: str, task_name: str, data: Any = None) -> Execution:
        """Start (or resume) an execution in the background and return its handle at once.

        If that execution is already running here, its handle is returned (nothing starts twice)."""
        workflow = self.registry.get(task_name)
        execution, is_new = _engine.claim(self.journal, execution_id, workflow, data, self.on_change)
        if is_new:
            self._executions[execution_id] = execution
            _start_thread(execution, workflow, data, self.on_change, self.workers)
        return execution

    def run(self, execution_id: str, task_name: str, data: Any = None) -> Any:
        """Run (or resume) an execution in the calling thread and return its output.

        If that execution is already running here (started with ``start``), waits for it instead."""
        workflow = self.registry.get(task_name)
        execution, is_new = _engine.claim(self.journal, execution_id, workflow, data, self.on_change)
        if not is_new:
            return execution.wait_interruptibly()
        self._executions[execution_id] = execution
        _engine.execute(execution, workflow, data, on_change=self.on_change, workers=self.workers)
        return execution.result()

    def start_and_wait_for(self, execution_id: str, task_name: str, data: Any = None,
                           timeout: float | None = None) -> Any:
        """Start (or resume) and block until the output is ready.

        After ``timeout`` seconds, ``ExecutionTimeout`` is raised and the execution keeps running in
        the background. Ctrl-C (a kernel interrupt) while waiting interrupts the execution: its
        running steps are stopped and it is recorded as ``interrupted``, ready to resume."""
        if timeout is None:
            return self.run(execution_id, task_name, data)
        return self.start(execution_id, task_name, data).wait_interruptibly(timeout)

    def wait(self, execution_id: str, timeout: float | None = None) -> Any:
        """The output of an execution started here (or journaled as completed)."""
        execution = self._executions.get(execution_id)
        if execution is not None:
            return execution.result(timeout)
        stored = self.journal.get_execution(execution_id)
        if stored is None:
            raise DefinitionError(f"no execution {execution_id!r} in {self.journal.path}")
        if stored.status != ExecutionStatus.COMPLETED.value:
            raise DefinitionError(f"execution {execution_id!r} is {stored.status} and not running here; "
                                  "resume it with start()")
        return ser.loads(stored.output) if stored.output is not None else None

    def status(self, execution_id: str) -> ExecutionStatus:
        execution = self._executions.get(execution_id)
        if execution is not None and execution.status != ExecutionStatus.PENDING:
            return execution.status
        stored = self.journal.get_execution(execution_id)
        if stored is None:
            raise DefinitionError(f"no execution {execution_id!r} in {self.journal.path}")
        return ExecutionStatus(stored.status)

    def cancel(self, execution_id: str) -> None:
        """Cancel a running execution (its steps are killed) or mark a journaled unfinished one cancelled."""
        execution = self._executions.get(execution_id) or _engine.active_execution(self.journal,
                                                                                     execution_id)
        if execution is not None and not execution.done:
            execution.cancel()
            return
        with self.journal.hold():
            stored = self.journal.get_execution(execution_id)
            if stored is None:
                raise DefinitionError(f"no execution {execution_id!r} in {self.journal.path}")
            if not ExecutionStatus(stored.status).finished:
                self.journal.set_status(execution_id, ExecutionStatus.CANCELLED)


def default_execution_id(workflow: WorkflowDef, data: Any) -> str:
    """``<workflow>-<hash of the input>``: re-running the same cell resumes the same execution."""
    return f"{workflow.name}-{ser.args_hash((data,), {})[:12]}"


def run(workflow: Any, data: Any = None, *, execution_id: str | None = None,
        journal: str | os.PathLike[str] | None = None, workers: int | None = None,
        on_change: str = "rerun") -> Any:
    """Run (or resume) a workflow in the calling thread and return its output.

    The execution id defaults to the workflow name plus a hash of ``data``, so re-running the same
    cell resumes: journaled steps return their stored results and only missing ones run. If that
    execution is already running in this process (``zart.start``), this waits for it instead.
    """
    _check_options(on_change, workers)
    definition = _as_workflow(workflow)
    journal_ = _runtime.get_journal(journal)
    execution, is_new = _engine.claim(journal_, execution_id or default_execution_id(definition, data),
                                      definition, data, on_change)
    if not is_new:
        return execution.wait_interruptibly()
    _engine.execute(execution, definition, data, on_change=on_change, workers=workers)
    return execution.result()


def start(workflow: Any, data: Any = None, *, execution_id: str | None = None,
          journal: str | os.PathLike[str] | None = None, workers: int | None = None,
          on_change: str = "rerun") -> Execution:
    """Start (or resume) a workflow in a background thread; returns an :class:`Execution` at once.

    If that execution is already running in this process, its handle is returned."""
    _check_options(on_change, workers)
    definition = _as_workflow(workflow)
    journal_ = _runtime.get_journal(journal)
    execution, is_new = _engine.claim(journal_, execution_id or default_execution_id(definition, data),
                                      definition, data, on_change)
    if is_new:
        _start_thread(execution, definition, data, on_change, workers)
    return execution


def schedule(target: Step[P, R] | NamedCall[P, R], *args: P.args, **kwargs: P.kwargs) -> StepHandle:
    """Register a step to run in parallel, without waiting; returns its handle.

    The step's key is assigned now, in call order, so replays line up however results arrive.
    """
    run_state = _context.require_run("schedule")
    if isinstance(target, NamedCall):
        return run_state.schedule(target.step, args, kwargs, key=target.key)
    if not isinstance(target, Step):
        raise DefinitionError(f"zart.schedule() needs a @zart.step function, got {target!r}")
    return run_state.schedule(target, args, kwargs)


def wait(handles: Iterable[StepHandle], return_exceptions: bool = False,
         timeout: float | None = None) -> list[Any]:
    """Block until every handle has a journaled result; results come in the handles' order.

    Raises the first failure in handle order (a :class:`StepError`) once all are done, unless
    ``return_exceptions=True``, which puts each failure in its place in the list instead.
    """
    handles = list(handles)
    if not handles:
        return []
    run_state = handles[0]._run
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



