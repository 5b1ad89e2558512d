"""The executor interface the engine dispatches steps through, and the records that cross it.

The engine only ever calls what :class:`Executor` declares, so another implementation (the in-thread
executor of the tests, a Dask ``distributed.Client``) needs no engine change. Steps are cloudpickled,
so any process that can unpickle them can run them, while the journal stays with the driver.
"""
from __future__ import annotations

import enum
import itertools
import logging
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Protocol

# Attempt ids, unique in the process. One executor serves every execution (every run) of a process and
# keys the attempts it holds by id: the local pool matches replies and revoke answers to them, Dask its
# flights. Each run once numbered its own attempts from 1, so two executions running at once sent a
# worker two attempts "1": a revoke of one took back both (one still running, so it ran twice), or the
# pool failed the worker as crashed (a CI run), or a reply was taken for the other's. ``next`` of a C
# iterator is atomic under the GIL: no lock. Taken with ``next(TASK_IDS)`` (~24 ns; calling the
# bound ``__next__`` costs ~7 ns more, measured): no more than a run's own counter cost.
TASK_IDS: Iterator[int] = itertools.count(1)


class OutcomeKind(enum.StrEnum):
    """How an attempt ended, as the engine decides retries on it."""

    OK = "ok"
    ERROR = "error"  # the step raised
    UNPICKLABLE = "unpicklable"  # its result (or error) cannot be pickled: retrying would not help
    CRASHED = "crashed"  # the process running it died
    TIMEOUT = "timeout"  # it ran past its timeout; its process was killed
    CANCELLED = "cancelled"  # its execution was cancelled, or the executor shut down


class OutcomeConsumer(Protocol):
    """Who receives a task's outcome: the engine's run of the execution the task belongs to."""

    def on_outcomes(self, outcomes: list[Outcome]) -> None: ...

    def fail_outcomes(self, outcomes: list[Outcome], exc: BaseException) -> None: ...


@dataclass(slots=True, eq=False)
class Task:
    """One attempt of one step, ready to run anywhere."""

    task_id: int  # unique in the process (``next(TASK_IDS)``): executors key what they hold by it
    fn_id: str
    fn_blob: bytes
    args_blob: bytes
    execution_id: str
    step_key: str
    attempt: int
    timeout: float | None = None
    not_before: float = 0.0
    started_at: float = 0.0
    worker: str = ""
    sent_bytes: int = 0
    store: tuple[str, int] | None = None  # (value store folder, threshold): where a large output goes
    shared_store: str | None = None  # its execution's value_store= (``store``'s folder, shared with a cluster)
    consumer: OutcomeConsumer | None = field(default=None, repr=False)  # also what cancel() matches
    owner: Any = field(default=None, repr=False)  # the consumer's bookkeeping for this step
    limit: Any = field(default=None, repr=False)  # the taskqueue.Limit of its zart.Queue, if any
    admitted: bool = False  # it holds a slot of ``limit`` (see taskqueue)

    def wire(self, send_fn: bool, local: bool = True) -> WireTask:
        """``local``: the process running it can reach the value store (not so a cluster's worker)."""
        return WireTask(self.task_id, self.fn_id, self.fn_blob if send_fn else None, self.args_blob,
                        self.execution_id, self.step_key, self.attempt, self.store if local else None)


class WireTask(NamedTuple):
    """A task as sent to a worker process (``fn_blob`` is None when the worker has the function)."""

    task_id: int
    fn_id: str
    fn_blob: bytes | None
    args_blob: bytes
    execution_id: str
    step_key: str
    attempt: int
    store: tuple[str, int] | None = None  # its output goes to this value store when above the threshold


class WireReply(NamedTuple):
    """A worker's answer to one task."""

    task_id: int
    ok: bool
    blob: bytes | None
    preview: str | None
    error_type: str | None
    error: str | None
    traceback: str | None
    started: float
    finished: float
    output: str | None = None  # what the step printed (its first 16 KiB and last 64 KiB), for the journal


class WireOutput(NamedTuple):
    """Complete lines a running step printed, sent before its reply (shown live in the notebook)."""

    task_id: int
    stream: str  # "stdout" or "stderr"
    text: str


class WireImport(NamedTuple):
    """The module a step's output needs, sent as the step returns, before its output is pickled and
    written (for a large value, the longest part): the driver imports it meanwhile instead of after."""

    module: str


class WireRevoked(NamedTuple):
    """A worker's answer to a revoke: the attempts it took off its queue, never to run them (those it
    had started by then are answered as usual)."""

    task_ids: list[int]
    halted: int | None = None  # a cancel named the attempt it was running: it starts nothing more


@dataclass(slots=True)
class Outcome:
    """How an attempt ended."""

    task: Task
    kind: OutcomeKind
    blob: bytes | None = None
    preview: str | None = None
    error_type: str | None = None
    error: str | None = None
    traceback: str | None = None
    finished_at: float = 0.0
    output: str | None = None


OutcomeSink = Callable[[list[Outcome]], None]


PATH_VARIABLE = "ZART_WORKER_SYS_PATH"  # the driver's sys.path, for a worker process to import steps
FUNCTION_MISSING = "zart:function-missing"  # a worker's answer to a task whose function it lacks
UNPICKLABLE_RESULT = "zart:unpicklable-result"  # a worker's answer when a result cannot be pickled


def outcome_of(task: Task, reply: WireReply) -> Outcome:
    """The outcome a worker's reply gives ``task`` (not for ``FUNCTION_MISSING``: resend the function)."""
    task.started_at = reply.started
    kind = OutcomeKind.OK if reply.ok else OutcomeKind.ERROR
    error_type = reply.error_type
    if error_type == UNPICKLABLE_RESULT:
        kind, error_type = OutcomeKind.UNPICKLABLE, "SerializationError"
    return Outcome(task, kind, reply.blob, reply.preview, error_type, reply.error, reply.traceback,
                   reply.finished, reply.output)


def deliver_output(printed: list[tuple[Task, str, str]]) -> None:
    """Hand lines steps printed to their consumers (those that take them: ``on_output``)."""
    for task, stream, text in printed:
        on_output = getattr(task.consumer, "on_output", None)
        if on_output is not None:
            try:
                on_output(task, stream, text)
            except Exception:  # a consumer's display problem must not stop the executor
                logging.getLogger("zart_nb").debug("zart: step output lost", exc_info=True)


class Executor(ABC):
    """Runs attempts somewhere and delivers their outcomes, in batches, to the sink it was built with."""

    size: int  # how many attempts may run at once

    @abstractmethod
    def submit(self, tasks: list[Task]) -> None:
        """Queue attempts (a task with ``not_before`` in the future waits until then)."""

    @abstractmethod
    def cancel(self, consumer: OutcomeConsumer) -> None:
        """Drop queued attempts of ``consumer`` and stop those running.

        Every dropped or stopped attempt is delivered as a ``CANCELLED`` outcome."""

    @abstractmethod
    def shutdown(self) -> None:
        """Stop; attempts still queued or running end as ``CANCELLED``."""

    @property
    @abstractmethod
    def closed(self) -> bool:
        """``shutdown`` was called: submit to a new executor."""

    @property
    @abstractmethod
    def idle(self) -> bool:
        """No attempt is queued, delayed or running."""

    @property
    def has_queued(self) -> bool:
        """Attempts wait to be sent (the delivering thread should only hand outcomes over)."""
        return False

    def running(self) -> list[tuple[Task, float]]:
        """The attempts running now, each with when it started (``time.time()``); a best-effort
        snapshot for progress views, taken without stopping anything."""
        return []

    def held(self) -> list[Task]:
        """The attempts waiting for a slot of their queue's limit (``zart.Queue``): a snapshot for
        progress views."""
        return []
