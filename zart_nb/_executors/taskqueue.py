"""The attempts an executor holds before it starts them, and the limits of ``zart.Queue``.

Each executor (the local pool, the inline executor, Dask) keeps its waiting attempts in one
:class:`TaskQueue`: ``ready`` (to send now, in order), the ``(not_before, seq, task)`` heap of attempts
due later (retry delays) and the attempts held back by a queue's limit. The executor takes from the
left of ``ready`` and may put attempts back there (a worker died before starting them); everything
else goes through the methods here, under the executor's own lock. ``drop`` (a cancel) and
``drain`` (a shutdown) hand back every attempt they remove, and :func:`cancelled` is the one place
those become ``CANCELLED`` outcomes: every dropped attempt is delivered, none is lost.

Limits: a :class:`Limit` (what a ``zart.Queue`` names) counts the attempts of its queue across every
executor of the process. An attempt takes a slot when it is admitted to ``ready`` (handed to the
executor to send) and gives it back when its outcome is delivered, whatever the outcome (the sink
an executor is built with is wrapped by :meth:`TaskQueue.delivering`); an attempt put back on
``ready`` keeps its slot. So at most ``concurrency`` attempts of a queue are sent or running at once,
and at most ``calls`` are admitted in any ``per`` seconds (the rate counts admissions: an attempt
starts on its worker a moment later). Attempts without a limit never touch a lock here.

Where an executor cannot stop a function (an attempt past its timeout, or cancelled, on Dask or on a
thread of the inline executor), its outcome is delivered at once and its slot given back while the
function may still run on to its end; the local pool kills the worker, so there the count is exact.
"""
from __future__ import annotations

import collections
import heapq
import itertools
import math
import threading
import time
from collections.abc import Callable, Iterable

from .._errors import DefinitionError
from .base import Outcome, OutcomeConsumer, OutcomeKind, OutcomeSink, Task

_lock = threading.Lock()  # every Limit's counters and waiters (a limit may serve several executors)
_limits: dict[str, Limit] = {}  # by queue name: one limit per name in the process


class Limit:
    """How many attempts of one queue may be sent or running at once, and how many may start in a
    window of time: counted for the whole process (shared by every executor)."""

    __slots__ = ("name", "concurrency", "rate", "active", "_starts", "_waiters")

    def __init__(self, name: str, concurrency: int | None, rate: tuple[int, float] | None) -> None:
        self.name = name
        self.concurrency = concurrency
        self.rate = rate
        self.active = 0  # attempts holding a slot (admitted, not delivered yet)
        self._starts: collections.deque[float] = collections.deque()  # admissions (monotonic) in the window
        self._waiters: set[TaskQueue] = set()  # task queues holding attempts back for this limit

    @classmethod
    def named(cls, name: str, concurrency: int | None, rate: tuple[int, float] | None) -> Limit:
        """The process's limit of this name, made on first use. The same name with other limits is
        a :class:`DefinitionError` (a queue is identified by its name)."""
        with _lock:
            limit = _limits.get(name)
            if limit is None:
                limit = _limits[name] = cls(name, concurrency, rate)
            elif (limit.concurrency, limit.rate) != (concurrency, rate):
                raise DefinitionError(
                    f"queue {name!r} already exists in this process with {limit.describe()}, not "
                    f"{_describe(concurrency, rate)}: a queue is identified by its name (use another name, "
                    "or restart the process to change its limits)")
            return limit

    def describe(self) -> str:
        return _describe(self.concurrency, self.rate)

    def __repr__(self) -> str:
        return f"<Limit {self.name!r}: {self.describe()}, {self.active} active>"

    # --- under _lock ---------------------------------------------------------------------------

    def _opens_at(self, now: float) -> float | None:
        """``now`` if an attempt may be admitted now, a later (monotonic) time if the rate holds it
        back until then, ``None`` if every slot is taken (a delivered outcome frees one)."""
        if self.concurrency is not None and self.active >= self.concurrency:
            return None
        if self.rate is not None:
            calls, per = self.rate
            starts = self._starts
            while starts and starts[0] <= now - per:
                starts.popleft()
            if len(starts) >= calls:
                return starts[-calls] + per
        return now

    def _admit(self, now: float) -> None:
        self.active += 1
        if self.rate is not None:
            self._starts.append(now)


def _describe(concurrency: int | None, rate: tuple[int, float] | None) -> str:
    parts = []
    if concurrency is not None:
        parts.append(f"concurrency={concurrency}")
    if rate is not None:
        parts.append(f"rate={rate!r}")
    return ", ".join(parts) or "no limit"


def forget_limits() -> None:
    """Forget every limit's name (tests: the next ``zart.Queue`` of a name sets its limits anew)."""
    with _lock:
        _limits.clear()


def cancelled(tasks: Iterable[Task], error: str | None = None) -> list[Outcome]:
    """The ``CANCELLED`` outcomes of attempts an executor dropped (cancelled, or shut down)."""
    now = time.time()
    return [Outcome(task, OutcomeKind.CANCELLED, error=error, finished_at=now) for task in tasks]


class TaskQueue:
    """The attempts one executor holds before it starts them (see the module's docstring).

    Methods are called under the executor's lock, except appends to ``ready`` (atomic) and the sink
    from :meth:`delivering`."""

    __slots__ = ("ready", "_delayed", "_held", "_seq", "_wake", "_holding")

    def __init__(self, wake: Callable[[], None] | None = None) -> None:
        """``wake``: makes the executor's thread take a turn (admit and send what a freed slot lets
        through); called without any lock held."""
        self.ready: collections.deque[Task] = collections.deque()  # to send now, in order
        self._delayed: list[tuple[float, int, Task]] = []  # (not_before, seq, task): due later
        self._held: dict[Limit, collections.deque[Task]] = {}  # waiting for a slot of their queue
        self._seq = itertools.count()
        self._wake = wake
        self._holding = 0  # slots the attempts of this queue hold (under _lock)

    # --- putting attempts in -----------------------------------------------------------------------

    def put(self, tasks: Iterable[Task], now: float) -> None:
        """Queue attempts: on ``ready``, or due later (``not_before``), or held for their queue's limit."""
        held = False
        for task in tasks:
            if task.not_before > now:
                heapq.heappush(self._delayed, (task.not_before, next(self._seq), task))
            elif task.limit is None:
                self.ready.append(task)
            else:
                self._hold(task)
                held = True
        if held:
            self._admit()

    def _hold(self, task: Task) -> None:
        assert task.limit is not None
        waiting = self._held.get(task.limit)
        if waiting is None:
            waiting = self._held[task.limit] = collections.deque()
            with _lock:
                task.limit._waiters.add(self)
        waiting.append(task)

    def release_due(self, now: float) -> None:
        """Move attempts whose ``not_before`` has come, and those their limit now admits, to ``ready``."""
        delayed = self._delayed
        held = False
        while delayed and delayed[0][0] <= now:
            task = heapq.heappop(delayed)[2]
            if task.limit is None:
                self.ready.append(task)
            else:
                self._hold(task)
                held = True
        if held or self._held:
            self._admit()

    def _admit(self) -> None:
        with _lock:
            now = time.monotonic()
            for limit, waiting in list(self._held.items()):
                while waiting and limit._opens_at(now) == now:
                    task = waiting.popleft()
                    limit._admit(now)
                    task.admitted = True
                    self._holding += 1
                    self.ready.append(task)
                if not waiting:
                    del self._held[limit]
                    limit._waiters.discard(self)

    # --- taking attempts out -----------------------------------------------------------------------

    def drop(self, consumer: OutcomeConsumer) -> list[Task]:
        """Remove every attempt of ``consumer`` (pass them to :func:`cancelled`)."""
        dropped = []
        ready = self.ready
        for _ in range(len(ready)):  # in place: other threads may append meanwhile
            task = ready.popleft()
            if task.consumer is consumer:
                dropped.append(task)
            else:
                ready.append(task)
        if any(entry[2].consumer is consumer for entry in self._delayed):
            dropped.extend(entry[2] for entry in self._delayed if entry[2].consumer is consumer)
            self._delayed = [entry for entry in self._delayed if entry[2].consumer is not consumer]
            heapq.heapify(self._delayed)
        for limit, waiting in list(self._held.items()):
            if any(task.consumer is consumer for task in waiting):
                dropped.extend(task for task in waiting if task.consumer is consumer)
                kept = collections.deque(task for task in waiting if task.consumer is not consumer)
                self._forget_or_keep(limit, kept)
        return dropped

    def take(self, tasks: Iterable[Task]) -> list[Task]:
        """Remove these attempts where they still wait (those already taken are left out)."""
        wanted = {id(task): task for task in tasks}
        if not wanted:
            return []
        taken = []
        ready = self.ready
        for _ in range(len(ready)):
            task = ready.popleft()
            if id(task) in wanted:
                taken.append(task)
            else:
                ready.append(task)
        if any(id(entry[2]) in wanted for entry in self._delayed):
            taken.extend(entry[2] for entry in self._delayed if id(entry[2]) in wanted)
            self._delayed = [entry for entry in self._delayed if id(entry[2]) not in wanted]
            heapq.heapify(self._delayed)
        for limit, waiting in list(self._held.items()):
            taken.extend(task for task in waiting if id(task) in wanted)
            self._forget_or_keep(limit, collections.deque(task for task in waiting if id(task) not in wanted))
        return taken

    def drain(self) -> list[Task]:
        """Remove every attempt (a shutdown: pass them to :func:`cancelled`)."""
        tasks = []
        ready = self.ready
        while ready:  # popleft until empty: an append racing this is not lost
            tasks.append(ready.popleft())
        tasks.extend(entry[2] for entry in self._delayed)
        self._delayed.clear()
        for limit in list(self._held):
            tasks.extend(self._held[limit])
            self._forget_or_keep(limit, collections.deque())
        return tasks

    def take_ready(self) -> list[Task]:
        """Everything on ``ready``, in order, removed from it."""
        ready = self.ready
        return [ready.popleft() for _ in range(len(ready))]

    def _forget_or_keep(self, limit: Limit, kept: collections.deque[Task]) -> None:
        if kept:
            self._held[limit] = kept
            return
        self._held.pop(limit, None)
        with _lock:
            limit._waiters.discard(self)

    # --- outcomes ----------------------------------------------------------------------------------

    def delivering(self, sink: OutcomeSink) -> OutcomeSink:
        """``sink`` behind a step that gives back the slots of the attempts it is handed."""
        def deliver(outcomes: list[Outcome]) -> None:
            if self._holding:
                self._give_back(outcomes)
            sink(outcomes)
        return deliver

    def _give_back(self, outcomes: list[Outcome]) -> None:
        wake: set[TaskQueue] = set()
        with _lock:
            for outcome in outcomes:
                task = outcome.task
                if task.admitted:
                    task.admitted = False
                    self._holding -= 1
                    limit = task.limit
                    assert limit is not None
                    limit.active -= 1
                    wake.update(limit._waiters)
        for queue in wake:  # without the lock: a wake may take the executor's lock
            if queue._wake is not None:
                queue._wake()

    # --- what waits --------------------------------------------------------------------------------

    @property
    def empty(self) -> bool:
        """Nothing ready, delayed or held."""
        return not self.ready and not self._delayed and not self._held

    def next_deadline(self, now: float) -> float | None:
        """When (``time.time()``) the executor must look again: the first ``not_before``, or when a
        rate lets a held attempt through (a freed slot wakes it instead)."""
        deadline = self._delayed[0][0] if self._delayed else None
        if self._held:
            with _lock:
                clock = time.monotonic()
                for limit in self._held:
                    opens = limit._opens_at(clock)
                    if opens is not None:
                        at = now + max(0.0, opens - clock)
                        deadline = at if deadline is None else min(deadline, at)
        return deadline

    def held(self) -> list[Task]:
        """The attempts waiting for a slot of their queue's limit (a snapshot, for progress views)."""
        return [task for waiting in list(self._held.values()) for task in list(waiting)]


def check_limits(name: object, concurrency: object, rate: object) -> tuple[str, int | None, tuple[int, float] | None]:
    """``zart.Queue``'s arguments, checked: a :class:`DefinitionError` names what is wrong."""
    if not isinstance(name, str) or not name:
        raise DefinitionError(f"a queue name must be a non-empty string, got {name!r}")
    if concurrency is not None and (isinstance(concurrency, bool) or not isinstance(concurrency, int)
                                    or concurrency < 1):
        raise DefinitionError(f"queue {name!r}: concurrency must be an integer >= 1, got {concurrency!r}")
    checked_rate: tuple[int, float] | None = None
    if rate is not None:
        if not isinstance(rate, tuple) or len(rate) != 2:
            raise DefinitionError(f"queue {name!r}: rate must be a pair (calls, seconds), got {rate!r}")
        calls, per = rate
        if isinstance(calls, bool) or not isinstance(calls, int) or calls < 1:
            raise DefinitionError(f"queue {name!r}: rate's calls must be an integer >= 1, got {calls!r}")
        if isinstance(per, bool) or not isinstance(per, (int, float)) or not math.isfinite(per) or per <= 0:
            raise DefinitionError(f"queue {name!r}: rate's seconds must be a finite number > 0, got {per!r}")
        checked_rate = (calls, float(per))
    if concurrency is None and checked_rate is None:
        raise DefinitionError(f"queue {name!r} limits nothing: give concurrency=N, rate=(calls, seconds), or both")
    return name, concurrency, checked_rate
