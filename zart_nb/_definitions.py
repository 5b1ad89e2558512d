"""What users define: steps, workflows and class-style executions, and the engine's view of a workflow.

Below the engine: nothing here imports it. A step call inside a workflow goes through the run found
in the current context (``_context``), which the engine sets.
"""
from __future__ import annotations

import dataclasses
import datetime
import functools
import inspect
import math
import random
import string
import types
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, TypeVar, overload

from . import _context
from ._errors import ConfigurationError, DefinitionError
from ._replay import check_step_key
from ._serialization import global_names

if TYPE_CHECKING:
    from ._executors.taskqueue import Limit
    from ._handles import StepHandle

P = ParamSpec("P")
R = TypeVar("R")


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often a failed step is tried again, and how long to wait in between.

    ``retries`` is the number of attempts *after* the first. The delay before retry ``n`` (1-based) is
    ``backoff * multiplier ** (n - 1)``, capped at ``max_backoff`` seconds, then spread by ``jitter``
    (a fraction: ``0.2`` waits between 80% and 120% of it).

    Which errors are worth another attempt: ``retry_on`` (exception types) and ``should_retry`` (a
    predicate on the exception) are both checked where the step ran (they are pickled with it), and an
    error that fails either is fatal: no more attempts, and ``StepFailed.__cause__`` is that error.
    A timed-out or crashed attempt is tried again unless ``retry_on_timeout`` / ``retry_on_crash`` is
    ``False``.
    """

    retries: int = 0
    backoff: float = 0.5
    multiplier: float = 2.0
    max_backoff: float = 30.0
    retry_on: tuple[type[BaseException], ...] | None = None
    should_retry: Callable[[BaseException], bool] | None = None
    jitter: float = 0.0
    retry_on_timeout: bool = True
    retry_on_crash: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise DefinitionError(f"retries must be an integer >= 0, got {self.retries!r}")
        _check_number("backoff", self.backoff, minimum=0.0)
        _check_number("multiplier", self.multiplier, minimum=1.0)
        _check_number("max_backoff", self.max_backoff, minimum=0.0)
        if isinstance(self.jitter, bool) or not isinstance(self.jitter, (int, float)) \
                or not 0.0 <= self.jitter <= 1.0:
            raise DefinitionError(f"jitter must be a fraction between 0 and 1, got {self.jitter!r}")
        retry_on = self.retry_on
        if retry_on is not None:
            if isinstance(retry_on, type):
                retry_on = (retry_on,)
            if not isinstance(retry_on, (tuple, list)) or not retry_on or not all(
                    isinstance(kind, type) and issubclass(kind, BaseException) for kind in retry_on):
                raise DefinitionError(f"retry_on must be exception types (a tuple), got {self.retry_on!r}")
            object.__setattr__(self, "retry_on", tuple(retry_on))
        if self.should_retry is not None and not callable(self.should_retry):
            raise DefinitionError(f"should_retry must be a callable taking the exception, got "
                                  f"{self.should_retry!r}")
        for flag in ("retry_on_timeout", "retry_on_crash"):
            if not isinstance(getattr(self, flag), bool):
                raise DefinitionError(f"{flag} must be True or False, got {getattr(self, flag)!r}")

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt number ``attempt`` (1-based)."""
        delay = min(self.max_backoff, self.backoff * self.multiplier ** (attempt - 1))
        if self.jitter:
            delay *= 1.0 + random.uniform(-self.jitter, self.jitter)
        return delay

    @property
    def filters(self) -> bool:
        """Whether some errors are fatal (checked in the worker, so the step travels guarded)."""
        return self.retries > 0 and (self.retry_on is not None or self.should_retry is not None)

    def allows(self, exc: BaseException) -> bool:
        """Whether ``exc`` may be tried again (a predicate that raises makes it fatal)."""
        if self.retry_on is not None and not isinstance(exc, self.retry_on):
            return False
        if self.should_retry is not None:
            try:
                return bool(self.should_retry(exc))
            except Exception as error:  # noqa: BLE001 - reported on the exception, not raised
                exc.add_note(f"zart: not retried: should_retry raised {type(error).__name__}: {error}")
                return False
        return True


class OnFailure:
    """A workflow's ``on_failure(data, failure)`` as run in a worker: the failure's ``__cause__`` (which
    pickling drops) travels beside it and is put back; ``owner`` is the DurableExecution instance of a
    method."""

    __slots__ = ("fn", "owner")

    def __init__(self, fn: Callable[..., Any], owner: Any = None) -> None:
        self.fn = fn
        self.owner = owner

    def __call__(self, data: Any, failure: BaseException, cause: BaseException | None) -> Any:
        if cause is not None:
            failure.__cause__ = cause
        if self.owner is not None:
            return self.fn(self.owner, data, failure)
        return self.fn(data, failure)


def _on_failure_step(fn: Any, owner: Any = None) -> Step[..., Any] | None:
    if fn is None:
        return None
    if not callable(fn):
        raise DefinitionError(f"on_failure must be a function (data, failure) -> output, got {fn!r}")
    return Step(OnFailure(fn, owner), "on_failure", RetryPolicy(), None)


FATAL_MARK = "__zart_fatal__"  # set on an exception the step's retry policy refuses to retry


class Guarded:
    """A step's function with its retry policy, as sent to a worker: an exception the policy refuses
    is marked fatal there (the attribute travels with the pickled exception)."""

    __slots__ = ("fn", "policy")

    def __init__(self, fn: Callable[..., Any], policy: RetryPolicy) -> None:
        self.fn = fn
        self.policy = policy

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            result = self.fn(*args, **kwargs)
        except Exception as exc:
            self._mark(exc)
            raise
        if inspect.isawaitable(result):
            return self._guarded(result)
        return result

    async def _guarded(self, awaitable: Any) -> Any:
        try:
            return await awaitable
        except Exception as exc:
            self._mark(exc)
            raise

    def _mark(self, exc: Exception) -> None:
        if not self.policy.allows(exc):
            try:
                setattr(exc, FATAL_MARK, True)
            except AttributeError:  # an exception type without a __dict__
                pass


def _check_number(what: str, value: Any, *, minimum: float = 0.0, positive: bool = False) -> None:
    """A finite real number of at least ``minimum`` (above 0 when ``positive``), else a DefinitionError."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise DefinitionError(f"{what} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value < minimum or (positive and value <= 0):
        bound = "positive" if positive else f">= {minimum:g}"
        raise DefinitionError(f"{what} must be a finite number {bound}, got {value!r}")


class Step(Generic[P, R]):
    """A function whose calls inside a workflow are journaled and run in worker processes.

    Called outside a workflow it is the plain function. Inside one, a call runs it durably and returns
    its result; ``zart.schedule(step, ...)`` runs it in parallel and returns a handle.
    """

    def __init__(self, fn: Callable[P, R], name: str, retry: RetryPolicy, timeout: float | None,
                 queue: Queue | None = None) -> None:
        if isinstance(fn, Step):
            raise DefinitionError(f"{fn!r} is already a step: decorate the function once (the options "
                                  f"of step {name!r} would be lost)")
        if not callable(fn):
            raise DefinitionError(f"@zart.step needs a function, got {fn!r}")
        if not isinstance(retry, RetryPolicy):
            raise DefinitionError(f"step {name!r}: retries must be an int or a RetryPolicy, got {retry!r}")
        if timeout is not None:
            try:
                _check_number("timeout", timeout, positive=True)
            except DefinitionError as exc:
                raise DefinitionError(f"step {name!r}: {exc}") from None
        if queue is not None and not isinstance(queue, Queue):
            raise DefinitionError(f"step {name!r}: queue must be a zart.Queue, got {queue!r}")
        check_step_key(name, "step name")  # its keys are ``<name>#<n>``: outside zart_nb's own namespaces
        self.fn = fn
        self.queue = queue
        self.__wrapped_fn__ = fn
        self.name = name
        self.retry = retry
        self.timeout = timeout
        self._template_fields = [f for _, f, _, _ in string.Formatter().parse(name) if f]
        self._signature = inspect.signature(fn) if self._template_fields else None
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"<zart step {self.name!r}>"

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        run = _context.current_run()
        if run is None:
            _warn_if_detached(self)
            return self.fn(*args, **kwargs)
        handle = run.schedule(self, args, kwargs)
        is_async = self.__dict__.get("_zart_async")  # an ``async def`` step? decided once per step
        if is_async is None:
            is_async = self.__dict__["_zart_async"] = inspect.iscoroutinefunction(self.fn)
        if is_async:
            from . import _aio  # in an async body, calling a coroutine function gives an awaitable

            if _aio.in_async_body():
                return _aio.result_of(handle)  # type: ignore[return-value]
        result: R = handle.result()
        return result

    def key_for(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
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
            key = self.name.format(**bound.arguments)
        except (KeyError, IndexError, AttributeError) as exc:
            raise DefinitionError(f"step name template {self.name!r} refers to {exc}, which is not an "
                                  f"argument of {self.fn.__name__}") from None
        return check_step_key(key, f"step key (from the template {self.name!r})")

    def named(self, key: str) -> NamedCall[P, R]:
        """This step under an explicit key, for one call: ``step.named("fetch-eu")(region)``.

        A key may not start with a prefix zart_nb reserves for its own records (``capture:``, ``sleep:``,
        ``workflow:``, ...: ``zart_nb._replay.RESERVED_PREFIXES``); such a key is a :class:`DefinitionError`."""
        return NamedCall(self, key)


def _warn_if_detached(step: Step[..., Any]) -> None:
    """A step called on a thread the workflow started runs unjournaled: say so."""
    if _context.in_step():
        return  # a step calling another step's function: plain code, nothing to journal
    from ._runtime import runtime  # (not at import: a worker process imports this module too)

    if runtime.has_live_executions():
        warnings.warn(f"step {step.name!r} was called outside its workflow's context (on another "
                      "thread?), so it ran in this process and was not journaled. Use "
                      "zart.schedule(...) for parallel steps, or contextvars.copy_context().run(...) "
                      "to carry the workflow into a thread.", RuntimeWarning, stacklevel=3)


class NamedCall(Generic[P, R]):
    """A step bound to an explicit step key (from ``Step.named``)."""

    __slots__ = ("step", "key")

    def __init__(self, step: Step[P, R], key: str) -> None:
        self.step = step
        self.key = check_step_key(key)

    def __call__(self, *args: P.args, **kwargs: P.kwargs) -> R:
        run = _context.current_run()
        if run is None:
            return self.step.fn(*args, **kwargs)
        result: R = run.schedule(self.step, args, kwargs, key=self.key).result()
        return result


class Queue:
    """A limit on how many attempts of some steps run at once, and how often they start.

    ``zart.Queue("api", concurrency=2, rate=(10, 1.0))``: at most 2 attempts of the queue's steps
    are sent to workers or running at once, and at most 10 start in any 1 second, whatever the
    executor's size (the local pool, the inline executor or Dask). Steps join it with
    ``@zart.step(queue=q)`` or one call at a time with ``q.schedule(step, ...)``; retries stay in
    it. The limit is kept **per process**: it holds across every execution this process runs (two
    notebooks, or two processes, each have their own). Attempts waiting on it are counted in
    :class:`RunProgress` (``queued``, ``queues``) and shown by ``zart show`` and the widget.

    A queue is identified by its name in the process: ``Queue`` with a name already used gives the
    same limit (a notebook cell run twice), and a :class:`DefinitionError` if the limits differ.
    """

    __slots__ = ("name", "concurrency", "rate", "_limit")

    def __init__(self, name: str, concurrency: int | None = None,
                 rate: tuple[int, float] | None = None) -> None:
        """``concurrency``: attempts at once (an integer >= 1). ``rate``: ``(calls, seconds)``, at
        most ``calls`` attempts start in any ``seconds``. At least one of them is needed."""
        from ._executors.taskqueue import Limit, check_limits  # only a notebook with queues pays for it

        self.name, self.concurrency, self.rate = check_limits(name, concurrency, rate)
        self._limit = Limit.named(self.name, self.concurrency, self.rate)

    def __repr__(self) -> str:
        return f"<zart queue {self.name!r}: {self._limit.describe()}>"

    def __reduce__(self) -> tuple[Any, ...]:  # pickled with a workflow: its limits, not its counters
        return (Queue, (self.name, self.concurrency, self.rate))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Queue) and other._limit is self._limit

    def __hash__(self) -> int:
        return hash(self.name)

    def schedule(self, target: Step[P, R] | NamedCall[P, R], *args: P.args, **kwargs: P.kwargs) -> StepHandle:
        """``zart.schedule(target, ...)`` with this call's attempts in this queue (whatever queue the
        step was declared with); returns the step's handle."""
        run = _context.require_run("schedule")
        if isinstance(target, NamedCall):
            handle: StepHandle = run.schedule(target.step, args, kwargs, key=target.key, queue=self)
            return handle
        if not isinstance(target, Step):
            raise DefinitionError(f"queue {self.name!r}: schedule() needs a @zart.step function, got {target!r}")
        handle = run.schedule(target, args, kwargs, queue=self)
        return handle


def limit_of(queue: Queue) -> Limit:
    """The process's counters of ``queue`` (what executors enforce): kept off the public class."""
    return queue._limit


def _retry_policy(retries: int | RetryPolicy, name: str) -> RetryPolicy:
    if isinstance(retries, RetryPolicy):
        return retries
    if isinstance(retries, bool) or not isinstance(retries, int):
        raise DefinitionError(f"step {name!r}: retries must be an int or a RetryPolicy, got {retries!r}")
    try:
        return RetryPolicy(retries=retries)
    except DefinitionError as exc:
        raise DefinitionError(f"step {name!r}: {exc}") from None


@overload
def step(name: Callable[P, R]) -> Step[P, R]: ...
@overload
def step(name: str | None = None, *, retries: int | RetryPolicy = 0, timeout: float | None = None,
         queue: Queue | None = None) -> Callable[[Callable[P, R]], Step[P, R]]: ...


def step(name: Any = None, *, retries: int | RetryPolicy = 0, timeout: float | None = None,
         queue: Queue | None = None) -> Any:
    """Declare a durable step: ``@zart.step("check-service", retries=3, timeout=30)``.

    ``name`` defaults to the function's name and may be a template of the arguments
    (``"check-{service}"``) to give each call a stable key. ``retries`` is a count or a
    :class:`RetryPolicy`; ``timeout`` (seconds) kills an attempt's worker when exceeded; ``queue``
    (a :class:`Queue`) limits how many of its attempts run at once and how often they start.
    """
    if callable(name):
        return Step(name, name.__name__, RetryPolicy(), None)
    if name is not None and (not isinstance(name, str) or not name):
        raise DefinitionError(f"a step name must be a non-empty string, got {name!r}")

    def decorate(fn: Callable[P, R]) -> Step[P, R]:
        step_name: str = name or str(getattr(fn, "__name__", repr(fn)))
        return Step(fn, step_name, _retry_policy(retries, step_name), timeout, queue)

    return decorate


Deadline = float | datetime.timedelta | datetime.datetime  # seconds after the first start, or a moment


def check_deadline(value: Any) -> float | datetime.datetime | None:
    """A deadline as given (seconds, a ``timedelta`` or an aware ``datetime``), checked: seconds or a
    datetime back; ``None`` stays ``None``. Anything else is a ``ConfigurationError``."""
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        if value.tzinfo is None or value.utcoffset() is None:
            raise ConfigurationError(f"deadline {value!r} has no time zone: give an aware datetime "
                                     "(datetime.now(timezone.utc) + timedelta(minutes=5)) or seconds")
        return value
    if isinstance(value, datetime.timedelta):
        value = value.total_seconds()
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ConfigurationError(f"deadline must be a positive number of seconds after the first start, a "
                                 f"timedelta or an aware datetime, got {value!r}")
    return float(value)


def deadline_at(value: float | datetime.datetime | None, started: float) -> float | None:
    """The POSIX time a checked deadline falls at, for an execution first started at ``started``."""
    if value is None:
        return None
    if isinstance(value, datetime.datetime):
        return value.timestamp()
    return started + value


def _check_recoveries(value: Any) -> int | None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ConfigurationError(f"max_recoveries must be an integer >= 1 (or None), got {value!r}")
    return value


class Workflow(Generic[R]):
    """A workflow function (``@zart.workflow("name")``): ``zart.run(wf, data)`` runs it durably.

    ``deadline``, ``max_recoveries``: see :func:`workflow`."""

    def __init__(self, fn: Callable[[Any], R], name: str, deadline: Any = None,
                 max_recoveries: int | None = None, on_failure: Callable[[Any, BaseException], Any] | None = None
                 ) -> None:
        self.fn = fn
        self.name = name
        if on_failure is not None and not callable(on_failure):
            raise DefinitionError(f"workflow {name!r}: on_failure must be a function (data, failure) -> "
                                  f"output, got {on_failure!r}")
        self.on_failure = on_failure
        self.deadline = check_deadline(deadline)
        self.max_recoveries = _check_recoveries(max_recoveries)
        self.__wrapped_fn__ = fn
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"<zart workflow {self.name!r}>"

    def __call__(self, data: Any) -> R:
        return self.fn(data)


def workflow(name: Any = None, *, deadline: Deadline | None = None, max_recoveries: int | None = None,
             on_failure: Callable[[Any, BaseException], Any] | None = None) -> Any:
    """Declare a workflow function: ``@zart.workflow("health-check") def health(data): ...``.

    ``deadline``: seconds (or a ``timedelta``) after the execution's first start, or an aware
    ``datetime``; when it passes, the execution's running steps are stopped and it is failed with
    :class:`DeadlineExceeded` (``zart.run(..., deadline=)`` overrides it). ``max_recoveries``: after
    that many runs that ended because their process died, the execution is failed
    (:class:`RecoveriesExhausted`) instead of being run again. ``on_failure(data, failure)`` runs once
    (journaled, in a worker) when the execution fails; what it returns becomes the output and the
    execution is ``completed``, recorded as recovered (a handler that raises leaves it failed)."""
    if callable(name):
        return Workflow(name, name.__name__)

    def decorate(fn: Callable[[Any], R]) -> Workflow[R]:
        return Workflow(fn, name or fn.__name__, deadline, max_recoveries, on_failure)

    return decorate


class DurableExecution:
    """Base class of class-style workflows: override ``run(self, data)``.

    ``name`` (a class attribute) defaults to the class name when the task is not registered by name.
    ``deadline`` and ``max_recoveries`` (class or instance attributes) are as for :func:`workflow`; so is
    an ``on_failure(self, data, failure)`` method, when defined.
    """

    name: str | None = None
    deadline: Deadline | None = None
    max_recoveries: int | None = None

    def run(self, data: Any) -> Any:
        """The workflow body: override it. Called with the execution's input; what it returns is the
        execution's output. Steps it calls are journaled as in a ``@zart.workflow`` function."""
        raise NotImplementedError(f"{type(self).__name__} must implement run(self, data)")


def as_workflow(target: Any, name: str | None = None) -> WorkflowDef:
    if isinstance(target, WorkflowDef):
        return target
    if isinstance(target, Workflow):
        return WorkflowDef(name or target.name, target.fn, target.fn, target.deadline, target.max_recoveries,
                           _on_failure_step(target.on_failure), target)
    if isinstance(target, DurableExecution):
        handler = getattr(type(target), "on_failure", None)
        return WorkflowDef(str(name or target.name or type(target).__name__), target.run, target,
                           check_deadline(target.deadline), _check_recoveries(target.max_recoveries),
                           _on_failure_step(handler, target))
    if isinstance(target, type) and issubclass(target, DurableExecution):
        raise DefinitionError(f"pass an instance of {target.__name__} (e.g. {target.__name__}()), "
                              "not the class")
    if isinstance(target, Step):
        raise DefinitionError(f"{target!r} is a step; run it from a workflow, or wrap it in one")
    if callable(target):
        return WorkflowDef(str(name or getattr(target, "__name__", "workflow")), target, target)
    raise DefinitionError(f"not a workflow: {target!r} (use @zart.workflow, a DurableExecution "
                          "subclass instance or a function)")


@dataclass(slots=True)
class WorkflowDef:
    """What the engine needs of a workflow: a name and a callable taking the input."""

    name: str
    body: Callable[[Any], Any]
    definition: Any  # what is pickled into the journal: the function or DurableExecution instance
    deadline: float | datetime.datetime | None = None  # checked (check_deadline)
    max_recoveries: int | None = None
    on_failure: Step[..., Any] | None = None  # the handler, as the step it runs as (held for the run)
    declared: Any = None  # the @zart.workflow it was made from: journaled, so a resume keeps its options

    @property
    def journaled(self) -> Any:
        """What is pickled into the journal and rebuilt by :func:`as_workflow` on resume: a
        ``@zart.workflow`` whole (its ``on_failure``, ``max_recoveries`` and deadline with it), else the
        definition. Its code hash stays the definition's."""
        return self.definition if self.declared is None else self.declared


def with_deadline(workflow: WorkflowDef, deadline: Any) -> WorkflowDef:
    """``workflow`` with this run's deadline (checked), in place of its own; unchanged for ``None``."""
    if deadline is None:
        return workflow
    return dataclasses.replace(workflow, deadline=check_deadline(deadline))


def referenced_steps(definition: Any) -> list[Step[Any, Any]]:
    """The steps a workflow's code refers to by name: in its globals and closure cells, and in those
    of the functions and classes of its own module that it refers to (the helpers its code hash
    covers). A step made at the call site (``zart.step("a")(f)()``) is not found."""
    found: dict[int, Step[Any, Any]] = {}
    seen: dict[int, Any] = {}

    def walk(obj: Any) -> None:
        if id(obj) in seen:
            return
        seen[id(obj)] = obj  # held for the walk, so an id is never reused within it
        if isinstance(obj, Step):
            found.setdefault(id(obj), obj)
            return
        if isinstance(obj, (staticmethod, classmethod, types.MethodType)):
            obj = obj.__func__
        if isinstance(obj, Workflow):
            obj = obj.fn
        if isinstance(obj, functools.partial):
            walk(obj.func)
        elif isinstance(obj, types.FunctionType):
            values = [obj.__globals__[name] for name in sorted(global_names(obj.__code__))
                      if name in obj.__globals__]
            for cell in obj.__closure__ or ():
                try:
                    values.append(cell.cell_contents)
                except ValueError:  # an empty cell
                    continue
            for value in values:
                if isinstance(value, Step) or (isinstance(value, (types.FunctionType, type))
                                               and getattr(value, "__module__", None) == obj.__module__):
                    walk(value)
        elif isinstance(obj, type):
            for member in vars(obj).values():
                if isinstance(member, (Step, types.FunctionType, staticmethod, classmethod)):
                    walk(member)
        elif not isinstance(obj, (types.BuiltinFunctionType, types.ModuleType)):
            walk(type(obj))  # a DurableExecution instance: its class's methods

    walk(definition)
    return list(found.values())
