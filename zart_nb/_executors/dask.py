"""Steps on a Dask cluster: :class:`DaskExecutor` runs attempts through a ``distributed.Client``.

The only module of zart_nb that imports ``distributed``; nothing imports it unless an execution asks
for a Dask executor. The journal stays with the driver: a cluster worker runs the same
:class:`~zart_nb._executors.worker.Runner` as a local worker process (so a step behaves the same
in both) and hands back the same :class:`WireReply`, which the driver journals.

One thread of the executor (``zart-dask``) does everything that talks to the cluster: it submits
queued attempts with one ``client.map`` per batch, gathers the results of finished futures with one
``client.gather`` per batch, enforces timeouts and hands outcomes to the sink in batches. Dask's own
event loop only ever puts a note into a queue (a done callback, a "started" event), so it is never
blocked by the engine or the journal.

Where Dask and the local pool differ, and what this module does about it:

- A worker killed mid-step: Dask runs the task again on another worker (the attempt is rescheduled,
  not failed) until ``distributed.scheduler.allowed-failures`` workers died running it; then the
  attempt fails as ``CRASHED`` (``WorkerCrashed``) and the step's own retries apply.
- What a step prints travels as Dask events tagged with the run of the task that printed it (a worker
  and a token): a task Dask runs again keeps its key, so without the tag the earlier run's lines would
  read as the later run's. The first line of a later run is preceded by one ``[zart: ...]`` note on
  stderr saying the attempt runs again from its start (after the earlier run's unfinished lines are
  ended), and lines of the earlier run that arrive after it are dropped. What is journaled of a step
  that completes is its last run's output, as the runner captured it.
- Timeouts: Dask cannot stop a running Python function. A timed-out attempt fails at once and its
  future is cancelled, so its result is discarded; the function itself runs on in its worker thread
  until it returns (occupying that thread). Its clock starts when a worker starts it (workers report
  the start of timed attempts as a Dask event), not when it is queued.
- Cancelling an execution cancels its futures: queued ones never start, running ones run on to their
  end in the cluster and their results are dropped.
- Large values: a cluster's worker need not see the journal's value store, so by default a step's
  output comes back to the driver whatever its size (and is journaled as a pickle). An execution run
  with ``value_store=`` (or ``$ZART_VALUE_STORE`` at its first run; journaled, ``_stores``) keeps its
  values in that folder, which the driver and the workers reach at the same path (a shared
  filesystem): each attempt carries it, the worker writes a large output (and every table, as Parquet)
  there itself and only its reference comes back, and a stored array or table passed to another step
  travels as its reference, loaded (mapped) by the worker from there (``_byref``).
"""
from __future__ import annotations

import collections
import logging
import queue
import threading
import time
import traceback
import uuid
from dataclasses import dataclass
from typing import Any

import distributed
from distributed.comm.addressing import get_address_host

from .._errors import ConfigurationError, ExecutorClosed
from .base import (
    FUNCTION_MISSING,
    Executor,
    Outcome,
    OutcomeConsumer,
    OutcomeKind,
    OutcomeSink,
    Task,
    WireReply,
    WireTask,
    deliver_output,
    outcome_of,
)
from .taskqueue import TaskQueue, cancelled

logger = logging.getLogger("zart_nb")
WORKERS_REFRESH = 5.0  # seconds between fetches of the cluster's worker list

_TOPIC = "zart-"  # + the executor's id: the events its attempts send back (starts, printed lines)
_RUNNERS = 16  # drivers whose runners (function caches) a cluster worker keeps
_runners: collections.OrderedDict[str, Any] = collections.OrderedDict()
_runners_lock = threading.Lock()
# (topic, task id) -> "<worker address> <token>" of the run of that task this worker process runs now:
# the tag of its printed lines (Dask runs a task again under the same key when its worker was lost)
_runs: dict[tuple[str, int], str] = {}


# --- what runs on a cluster worker --------------------------------------------------------------


def run_on_worker(wire: WireTask, topic: str, timed: bool) -> tuple[WireReply, str]:
    """Run one attempt in a Dask worker; returns the runner's reply and the worker's address.

    Lines the step prints travel to the driver as Dask events on ``topic`` while it runs, and so
    does the start of an attempt with a timeout (``timed``): the driver's clock starts then, not
    while the task waits in the scheduler's queue."""
    worker = distributed.get_worker()
    runner = _runner_for(topic, worker)
    run = (topic, wire.task_id)
    _runs[run] = f"{worker.address} {uuid.uuid4().hex[:8]}"
    try:
        if timed:
            worker.log_event(topic, ["started", wire.task_id, worker.address, time.time()])
        return runner.run(wire), worker.address
    finally:
        _runs.pop(run, None)


def _runner_for(topic: str, worker: Any) -> Any:
    """This worker process's runner for one driver's executor (its live output goes to ``topic``)."""
    with _runners_lock:
        runner = _runners.get(topic)
        if runner is None:
            from .worker import Runner

            def live(task_id: int, stream: str, text: str) -> None:
                worker.log_event(topic, ["output", task_id, stream, text, _runs.get((topic, task_id), "")])

            runner = _runners[topic] = Runner(live=live)
            while len(_runners) > _RUNNERS:
                _runners.popitem(last=False)
        else:
            _runners.move_to_end(topic)
        return runner


# --- the driver's side --------------------------------------------------------------------------


@dataclass(slots=True, eq=False)
class _Flight:
    """An attempt handed to Dask."""

    task: Task
    future: Any
    misses: int = 0  # finished, yet its result could not be fetched (lost meanwhile)
    run: str = ""  # the tag of the run whose lines are shown ("<worker address> <token>"; "": none yet)
    earlier: set[str] | None = None  # tags of the runs before it (their late lines are dropped)
    unfinished: set[str] | None = None  # streams whose last line shown is not finished


class DaskExecutor(Executor):
    """Runs attempts on the cluster behind ``client``; outcomes go to ``sink`` from one thread.

    ``owns_client``: close the client on ``shutdown`` (it was made from an address string)."""

    def __init__(self, client: distributed.Client, sink: OutcomeSink, *, owns_client: bool = False) -> None:
        self.client = client
        self._tasks = TaskQueue(wake=self._poke)
        self._sink = self._tasks.delivering(sink)  # gives back queue slots, then hands outcomes on
        self._owns_client = owns_client
        self._uid = uuid.uuid4().hex[:12]
        self._topic = _TOPIC + self._uid
        self._lock = threading.Lock()
        self._flights: dict[int, _Flight] = {}  # by task id
        self._deadlines: dict[int, float] = {}  # monotonic, of timed attempts a worker has started
        # What Dask's threads tell this executor's thread: putting never blocks them.
        self._inbox: queue.SimpleQueue[tuple[str, Any]] = queue.SimpleQueue()
        self._closed = False
        nthreads = client.nthreads()
        self.size = max(1, sum(nthreads.values()))
        # A step's function travels with its attempts only until every worker has confirmed it holds
        # it (its runner caches functions by id): then attempts go without it. A worker that lacks it
        # after all (new, restarted, or its cache evicted it) answers FUNCTION_MISSING and the
        # attempt is sent again, with the function.
        self._workers: set[str] = set(nthreads)
        self._workers_at = time.monotonic()
        self._holders: dict[str, set[str]] = {}  # function id -> workers known to hold it
        self.functions_sent = 0  # attempts that carried their function (for tests and benchmarks)
        self._direct = _gather_directly(client, list(nthreads))
        client.subscribe_topic(self._topic, self._on_event)
        self._thread = threading.Thread(target=self._loop, name="zart-dask", daemon=True)
        self._thread.start()

    @classmethod
    def connect(cls, address: str, sink: OutcomeSink) -> DaskExecutor:
        """An executor on a new client of the scheduler at ``address`` (closed on ``shutdown``).

        It is not made the default client of the process: the user's own Dask code is unaffected."""
        try:
            client = distributed.Client(address, set_as_default=False)
        except (OSError, TimeoutError) as exc:
            raise ConfigurationError(f"executor={address!r}: cannot connect to a Dask scheduler there: "
                                     f"{exc}") from exc
        try:
            return cls(client, sink, owns_client=True)
        except BaseException:
            client.close()
            raise

    @property
    def address(self) -> str:
        scheduler = self.client.scheduler
        assert scheduler is not None  # a synchronous Client connects in its constructor
        return str(scheduler.address)

    # --- called from engine threads --------------------------------------------------------------

    def submit(self, tasks: list[Task]) -> None:
        now = time.time()
        with self._lock:  # the same lock as shutdown's: what is queued here, the thread still ends
            if self._closed:
                raise ExecutorClosed("the Dask executor was shut down; submit to a new one")
            self._tasks.put(tasks, now)
        self._poke()

    def _poke(self) -> None:
        self._inbox.put(("wake", None))

    def cancel(self, consumer: OutcomeConsumer) -> None:
        self._inbox.put(("cancel", consumer))

    def shutdown(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._inbox.put(("stop", None))
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=10)

    @property
    def closed(self) -> bool:
        return self._closed

    @property
    def idle(self) -> bool:
        with self._lock:
            return self._tasks.empty and not self._flights

    @property
    def has_queued(self) -> bool:
        return bool(self._tasks.ready)

    def held(self) -> list[Task]:
        with self._lock:
            return self._tasks.held()

    # --- called on Dask's threads: only ever a note in the inbox -----------------------------------

    def _on_done(self, future: Any) -> None:
        self._inbox.put(("done", future))

    def _on_event(self, event: tuple[float, Any]) -> None:
        self._inbox.put(("event", event[1]))

    # --- the executor's thread -------------------------------------------------------------------

    def _loop(self) -> None:
        running = True
        while running:
            try:
                running = self._iterate()
            except Exception as exc:  # keep serving: a dead thread would hang every execution
                logger.exception("zart: internal error in the Dask executor's thread: %r", exc)
                time.sleep(0.1)
        try:
            self.client.unsubscribe_topic(self._topic)
        except Exception:
            pass
        if self._owns_client:
            try:
                self.client.close()
            except Exception:
                logger.debug("zart: closing the Dask client failed", exc_info=True)

    def _iterate(self) -> bool:
        try:
            notes = [self._inbox.get(timeout=self._next_wait())]
        except queue.Empty:  # a deadline: a delayed attempt is due, or a timed one ran out
            notes = []
        while True:  # everything that arrived meanwhile: one batch
            try:
                notes.append(self._inbox.get_nowait())
            except queue.Empty:
                break
        outcomes: list[Outcome] = []
        done: list[Any] = []
        printed: list[tuple[Task, str, str]] = []
        stop = False
        for kind, payload in notes:
            if kind == "done":
                done.append(payload)
            elif kind == "event":
                self._event(payload, printed)
            elif kind == "cancel":
                outcomes.extend(self._cancel_consumer(payload))
            elif kind == "stop":
                stop = True
        if stop:
            outcomes.extend(self._drop_everything())
        else:
            self._dispatch(outcomes)
        if done:
            outcomes.extend(self._collect(done))
        outcomes.extend(self._check_timeouts())
        if printed:  # before the outcomes: a step's last lines come before its result
            deliver_output(printed)
        if outcomes:
            self._sink(outcomes)
        return not stop

    def _next_wait(self) -> float | None:
        deadlines = []
        with self._lock:
            now = time.time()
            due = self._tasks.next_deadline(now)
            if due is not None:
                deadlines.append(due - now)
            if self._deadlines:
                deadlines.append(min(self._deadlines.values()) - time.monotonic())
        if not deadlines:
            return None
        return max(0.0, min(deadlines))

    def _dispatch(self, outcomes: list[Outcome]) -> None:
        with self._lock:
            self._tasks.release_due(time.time())
            if not self._tasks.ready:
                return
            batch = self._tasks.take_ready()
        keys = [f"zart-{task.step_key}-{self._uid}-{task.task_id}" for task in batch]
        wires = self._wires(batch)
        timed = [task.timeout is not None for task in batch]
        try:
            futures = self.client.map(run_on_worker, wires, [self._topic] * len(batch), timed, key=keys,
                                      pure=False)
        except Exception as exc:
            logger.warning("zart: cannot submit steps to the Dask scheduler at %s: %r", self.address, exc)
            now = time.time()
            outcomes.extend(Outcome(task, OutcomeKind.CRASHED, error_type="DaskSubmitError",
                                    error=f"cannot submit to the Dask scheduler at {self.address}: {exc!r}",
                                    finished_at=now) for task in batch)
            return
        with self._lock:
            for task, future in zip(batch, futures, strict=True):
                self._flights[task.task_id] = _Flight(task, future)
        for future in futures:
            future.add_done_callback(self._on_done)

    def _wires(self, batch: list[Task]) -> list[WireTask]:
        if time.monotonic() - self._workers_at > WORKERS_REFRESH:
            try:
                self._workers = set(self.client.nthreads())
            except Exception:  # noqa: BLE001 - the old list only makes functions travel more often
                pass
            self._workers_at = time.monotonic()
        wires = []
        with self._lock:
            for task in batch:
                holders = self._holders.get(task.fn_id)
                send = holders is None or not self._workers <= holders
                self.functions_sent += send
                wires.append(self._wire(task, send))
        return wires

    @staticmethod
    def _wire(task: Task, send: bool) -> WireTask:
        """The attempt as sent: with its execution's store when that is a shared one (``value_store=``:
        the worker stores a large output there), else without (it comes back to the driver)."""
        return task.wire(send, local=task.shared_store is not None)

    def _event(self, message: Any, printed: list[tuple[Task, str, str]]) -> None:
        with self._lock:
            flight = self._flights.get(message[1])
            if flight is None:
                return  # finished (or cancelled) before the event arrived; the journal has its output
            if message[0] == "output":
                self._output(flight, message, printed)
                return
            _, task_id, address, started = message
            if flight.task.timeout is None:
                return
            flight.task.started_at = started
            flight.task.worker = address
            # The driver's clock, not the worker's: the cluster's clocks may differ from ours. A
            # task that Dask reschedules (its worker died) starts again, and so does its clock.
            self._deadlines[task_id] = time.monotonic() + flight.task.timeout

    @staticmethod
    def _output(flight: _Flight, message: Any, printed: list[tuple[Task, str, str]]) -> None:
        """A line the task printed, unless an earlier run of it printed it (Dask ran it again meanwhile);
        the first line of a later run comes after a note saying the attempt runs again."""
        stream, text = message[2], message[3]
        run = message[4] if len(message) > 4 else ""  # "": untagged (a line after its run returned)
        task = flight.task
        if run and run != flight.run:
            if flight.earlier is not None and run in flight.earlier:
                return  # the earlier run's, arrived after the later run's first line
            if flight.run:  # a later run: what came before is the earlier run's
                flight.earlier = (flight.earlier or set()) | {flight.run}
                printed.extend((task, ended, "\n") for ended in sorted(flight.unfinished or ()))
                flight.unfinished = None
                printed.append((task, "stderr", rerun_note(flight.run, run)))
            flight.run = run
        if text.endswith("\n"):
            if flight.unfinished:
                flight.unfinished.discard(stream)
        elif text:
            flight.unfinished = (flight.unfinished or set()) | {stream}
        printed.append((task, stream, text))

    def _pop_locked(self, task_id: int) -> _Flight:
        self._deadlines.pop(task_id, None)
        return self._flights.pop(task_id)

    def _collect(self, futures: list[Any]) -> list[Outcome]:
        """Outcomes of the finished futures that are still ours (not timed out or cancelled)."""
        with self._lock:
            mine = []
            for future in futures:
                flight = self._flights.get(_task_id(future.key))
                if flight is not None and flight.future is future:
                    mine.append(flight)
        finished = [flight for flight in mine if flight.future.status == "finished"]
        results: dict[Any, Any] = {}
        gather_error: Exception | None = None
        if finished:
            try:
                results = self.client.gather({flight.future.key: flight.future for flight in finished},
                                             errors="skip", direct=self._direct)
            except Exception as exc:
                gather_error = exc
                logger.warning("zart: gathering step results from the Dask cluster failed: %r", exc)
        outcomes: list[Outcome] = []
        with self._lock:
            for flight in mine:
                if self._flights.get(flight.task.task_id) is not flight:
                    continue  # timed out or cancelled meanwhile: that outcome was delivered
                future = flight.future
                result = results.get(future.key)
                if (result is None and gather_error is None and future.status not in ("error", "cancelled")
                        and flight.misses < _MAX_MISSES):
                    # lost, or being computed again (its worker died): Dask calls back when it is done
                    flight.misses += 1
                    future.add_done_callback(self._on_done)
                    continue
                self._pop_locked(flight.task.task_id)
                if result is not None:
                    reply, address = result
                    holders = self._holders.setdefault(flight.task.fn_id, set())
                    if reply.error_type == FUNCTION_MISSING:  # sent without it to a worker that lacks it
                        holders.discard(address)
                        self._workers.add(address)
                        self._tasks.ready.append(flight.task)  # dispatched again by this thread, with it
                        self._poke()
                        continue
                    holders.add(address)
                outcomes.append(_outcome_of(flight, result, gather_error))
        return outcomes

    def _check_timeouts(self) -> list[Outcome]:
        now = time.monotonic()
        expired: list[_Flight] = []
        with self._lock:
            for task_id, deadline in list(self._deadlines.items()):
                if now >= deadline:
                    expired.append(self._pop_locked(task_id))
        if not expired:
            return []
        self._release([flight.future for flight in expired])
        finished = time.time()
        return [Outcome(flight.task, OutcomeKind.TIMEOUT, error_type=OutcomeKind.TIMEOUT,
                        error=f"attempt ran past its timeout of {flight.task.timeout:g}s on Dask worker "
                              f"{flight.task.worker}; its result will be discarded (the function runs "
                              "on in that worker until it returns)",
                        finished_at=finished) for flight in expired]

    def _cancel_consumer(self, consumer: OutcomeConsumer) -> list[Outcome]:
        with self._lock:
            tasks = self._tasks.drop(consumer)
            flights = [self._pop_locked(task_id) for task_id, flight in list(self._flights.items())
                       if flight.task.consumer is consumer]
        self._release([flight.future for flight in flights])
        return cancelled(tasks + [flight.task for flight in flights])

    def _drop_everything(self) -> list[Outcome]:
        with self._lock:
            tasks = self._tasks.drain()
            flights = list(self._flights.values())
            self._flights.clear()
            self._deadlines.clear()
        self._release([flight.future for flight in flights])
        return cancelled(tasks + [flight.task for flight in flights], "the Dask executor was shut down")

    def _release(self, futures: list[Any]) -> None:
        if futures:
            try:
                self.client.cancel(futures, reason="zart", msg="cancelled by zart_nb")
            except Exception:
                logger.debug("zart: cancelling Dask futures failed", exc_info=True)


def _gather_directly(client: distributed.Client, workers: list[str]) -> bool | None:
    """Fetch results from the workers themselves rather than through the scheduler (one hop, and no
    load on the scheduler) when the client says so, or when every worker is on this machine. A
    remote cluster's workers may be unreachable from here (only its scheduler is): Dask's default."""
    if client.direct_to_workers is not None:
        return bool(client.direct_to_workers)
    try:
        hosts = {get_address_host(address) for address in workers}
    except ValueError:
        return None
    return True if hosts and hosts <= {"127.0.0.1", "localhost", "::1"} else None


def rerun_note(earlier: str, later: str) -> str:
    """The line between what an earlier run of an attempt printed and what its later run prints (``earlier``,
    ``later``: the runs' tags, "<worker address> <token>")."""
    return (f"[zart: Dask runs this attempt again from its start on {later.rsplit(' ', 1)[0]} (the worker that "
            f"ran it, {earlier.rsplit(' ', 1)[0]}, was lost): the lines above are the earlier run's]\n")


_MAX_MISSES = 5  # then the attempt fails as crashed rather than spin on a result that never comes


def _task_id(key: Any) -> int:
    return int(str(key).rsplit("-", 1)[1])


def _outcome_of(flight: _Flight, result: tuple[WireReply, str] | None,
                gather_error: Exception | None = None) -> Outcome:
    """The one place where how Dask ended a task becomes an :class:`OutcomeKind`."""
    task = flight.task
    future = flight.future
    now = time.time()
    if result is not None:  # the runner's reply, as from a local worker process
        reply, task.worker = result
        return outcome_of(task, reply)
    if gather_error is not None:
        return Outcome(task, OutcomeKind.CRASHED, error_type=type(gather_error).__qualname__, finished_at=now,
                       error=f"the step's result could not be fetched from the Dask cluster: {gather_error!r}")
    if future.status == "finished":
        return Outcome(task, OutcomeKind.CRASHED, error_type="LostResult", finished_at=now,
                       error="the Dask cluster finished the step but its result could not be fetched")
    if future.status == "cancelled":  # not by us: we forget a future before cancelling it
        return Outcome(task, OutcomeKind.CRASHED, error_type="CancelledError", finished_at=now,
                       error="the Dask scheduler cancelled the task (was the cluster restarted, or the "
                             "connection to its scheduler lost?)")
    try:
        exc = future.exception(timeout=5)
        tb = future.traceback(timeout=5)
    except Exception as error:  # the future is in no state to say
        exc, tb = error, None
    if isinstance(exc, distributed.KilledWorker):
        last = getattr(exc.last_worker, "address", exc.last_worker)
        return Outcome(task, OutcomeKind.CRASHED, error_type="KilledWorker", finished_at=now,
                       error=f"the Dask workers running the step died ({exc.allowed_failures + 1} times; "
                             f"the last was {last})")
    text = "".join(traceback.format_exception(type(exc), exc, tb)) if exc is not None else None
    return Outcome(task, OutcomeKind.ERROR, error_type=type(exc).__qualname__, finished_at=now,
                   error=f"the Dask cluster could not run the step: {type(exc).__name__}: {exc}",
                   traceback=text)
