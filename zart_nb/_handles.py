"""Handles users hold: a step's pending result and a started execution."""
from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from typing import TYPE_CHECKING, Any

from . import _serialization as ser
from ._context import Run
from ._errors import ExecutionTimeout, SerializationError
from ._status import ExecutionStatus

if TYPE_CHECKING:
    from ._journal import Journal
    from ._progress import RunProgress


_PENDING = object()  # StepHandle(journaled=...) not given: the step has no outcome yet


class StepHandle:
    """The promise of one step's result. ``zart.wait`` turns handles into results."""

    __slots__ = ("key", "name", "done", "_blob", "_value", "_has_value", "_error", "_run", "reused")

    def __init__(self, run: Run, key: str, name: str, journaled: bytes | None | object = _PENDING) -> None:
        """``journaled``: the pickled output of the journaled record it is reused from (done at once)."""
        self.key = key
        self.name = name
        if journaled is _PENDING:
            self.done = self.reused = False
            self._blob: bytes | None = None
        else:
            self.done = self.reused = True
            self._blob = journaled  # type: ignore[assignment]
        self._value: Any = None
        self._has_value = False
        self._error: BaseException | None = None
        self._run = run

    def __repr__(self) -> str:
        state = "reused" if self.reused else ("done" if self.done else "pending")
        return f"<StepHandle {self.key} {state}>"

    def wait_done(self, timeout: float | None = None) -> None:
        """Block until the step is done (without raising its error); ``WaitTimeout`` after ``timeout`` s."""
        self._run.wait_for([self], timeout)

    def result(self, timeout: float | None = None) -> Any:
        """Block until the step has a journaled result and return it (or raise its ``StepError``)."""
        if not self.done or self._run.cancelled:
            self.wait_done(timeout)
        if self._error is not None:
            raise self._error
        return self.value()

    def exception(self) -> BaseException | None:
        """Block until the step is done; its error (a ``StepError``), or ``None`` when it succeeded."""
        if not self.done:
            self.wait_done()
        return self._error

    def __await__(self) -> Generator[Any, None, Any]:
        """``await handle`` in an ``async def`` workflow body: its result, without blocking the loop."""
        from ._aio import result_of

        return result_of(self).__await__()

    # --- the engine's side: how a handle gets its outcome --------------------------------------------

    def reuse_value(self, value: Any) -> None:
        """Done with a journaled output already loaded (from the value store). Called by the engine only."""
        self._value = value
        self._has_value = True
        self.done = self.reused = True

    def resolve(self, value: Any, error: BaseException | None = None) -> None:
        """Done with ``value`` (or failed with ``error``). Called by the engine only."""
        self._value = value
        self._has_value = True
        self._error = error
        self.done = True

    def fail(self, error: BaseException) -> None:
        """Done with ``error`` unless already done. Called by the engine only."""
        if not self.done:
            self._error = error
            self.done = True

    @property
    def error(self) -> BaseException | None:
        """The step's error once done (``None`` while pending or when it succeeded)."""
        return self._error

    def value(self) -> Any:
        """The step's output once done, without waiting or raising its error (``None`` when it failed).
        A reused step's journaled output is unpickled on the first call (``SerializationError`` if it cannot
        be here)."""
        if not self._has_value:
            try:
                self._value = ser.loads(self._blob) if self._blob is not None else None
            except Exception as exc:
                raise SerializationError(f"the journaled output of step {self.key!r} cannot be unpickled "
                                         f"here: {type(exc).__name__}: {exc}") from exc
            self._has_value = True
            self._blob = None
        return self._value



class Execution:
    """A handle on a started execution: ``status``, ``result(timeout)``, ``cancel()``."""

    def __init__(self, execution_id: str, journal: Journal) -> None:
        self.execution_id = execution_id
        self._journal = journal
        self._done = threading.Event()
        self._status = ExecutionStatus.PENDING
        self._output: Any = None
        self._error: BaseException | None = None
        self._run: Run | None = None
        self._cancel_requested = False
        self._interrupt_requested = False
        self._on_result: list[Callable[[], None]] = []  # progress views: final render in the caller's cell
        self._output_sinks: list[Callable[[str, int, str, str, str | None], None]] = []  # lines its steps print
        self.fingerprint: tuple[str, str] | None = None  # (workflow code hash, input hash)
        self.cancelled_by: str | None = None  # who cancelled it from elsewhere ("zart cancel (pid 123)")
        self._suspension: tuple[str, float | None] | None = None  # (what it waits for, until when) while suspended
        self._on_suspended_cancel: Callable[[str | None], None] | None = None

    def __repr__(self) -> str:
        return f"<Execution {self.execution_id!r} {self.status.value}>"

    @property
    def journal(self) -> str:
        """The path of the journal file it is recorded in (``zart.journal(execution.journal)`` reads it)."""
        return str(self._journal.path)

    @property
    def status(self) -> ExecutionStatus:
        """Where it stands in this process: pending, running, then how it ended."""
        return self._status

    @property
    def done(self) -> bool:
        """Whether it has ended here (completed, failed, cancelled or interrupted)."""
        return self._done.is_set()

    @property
    def run_number(self) -> int | None:
        """The number of its run in this process (1 for the first, then one more per resume); ``None``
        before the run starts or when the answer came from the journal."""
        return self._run.run_number if self._run else None

    def result(self, timeout: float | None = None) -> Any:
        """The workflow's output; raises its error. ``ExecutionTimeout`` if not done in time.

        Ctrl-C (a KeyboardInterrupt) while waiting interrupts the execution: its running steps are
        stopped and it is recorded as ``interrupted``, ready to resume."""
        try:
            finished = self._done.wait(timeout)
        except KeyboardInterrupt:
            if self._suspension is not None:  # left sleeping/waiting: continued when due, not interrupted
                raise
            self.interrupt()
            self._done.wait(30)
            raise
        if not finished:
            raise ExecutionTimeout(f"execution {self.execution_id!r} still {self._status.value} after "
                                   f"{timeout}s (it keeps running; call result() again)")
        for callback in self._on_result:
            callback()
        if self._error is not None:
            raise self._error
        return self._output

    def progress(self) -> RunProgress | None:
        """Its live progress in this process (steps done, running with attempt and worker, queued);
        ``None`` before its run starts here or when it was answered from the journal."""
        return None if self._run is None else self._run.progress()

    @property
    def error(self) -> BaseException | None:
        """The error it ended with (``None`` while it runs or when it completed)."""
        return self._error

    @property
    def cancel_requested(self) -> bool:
        """Whether ``cancel()`` or ``interrupt()`` was called (it may still be stopping)."""
        return self._cancel_requested

    @property
    def interrupt_requested(self) -> bool:
        """Whether ``interrupt()`` was called (Ctrl-C, the notebook's stop button)."""
        return self._interrupt_requested

    def cancel(self, origin: str | None = None) -> None:
        """Stop the execution: running steps are killed, the body gets ``Cancelled``. ``origin`` names
        who asked when it is not this process's own code (``"zart cancel (pid 123)"``): kept as
        ``cancelled_by``, shown where the execution runs and journaled with the run's end."""
        if origin is not None and self.cancelled_by is None:
            self.cancelled_by = origin
        self._cancel_requested = True
        if self._suspension is not None and self._on_suspended_cancel is not None:
            self._on_suspended_cancel(origin)
        elif self._run is not None:
            self._run.cancel(origin=origin)

    def interrupt(self) -> None:
        """Like ``cancel``, but the execution is recorded as ``interrupted`` (as by Ctrl-C): a re-run
        resumes it. A suspended one stays sleeping or waiting (nothing runs to interrupt)."""
        if self._suspension is not None:
            return
        self._cancel_requested = self._interrupt_requested = True
        if self._run is not None:
            self._run.cancel(interrupted=True)

    # --- for views: callbacks -------------------------------------------------------------------------

    def on_result(self, callback: Callable[[], None]) -> None:
        """Call ``callback`` in the thread that takes the result (a view's final render in its cell)."""
        self._on_result.append(callback)

    def add_output_sink(self, sink: Callable[..., None]) -> None:
        """Send the lines its steps print to ``sink(step_key, attempt, stream, text, named)`` (``named``:
        the execution's id once another execution ran beside it in this process, else None). A sink of
        four parameters (as this method took before ``named`` was added) is called without it."""
        if _takes_four(sink):
            four = sink

            def sink(step_key: str, attempt: int, stream: str, text: str, named: str | None) -> None:
                four(step_key, attempt, stream, text)

        self._output_sinks.append(sink)

    @property
    def output_sinks(self) -> list[Callable[[str, int, str, str, str | None], None]]:
        """The callbacks given to ``add_output_sink``, in order."""
        return self._output_sinks

    def wait_done(self, timeout: float | None = None) -> bool:
        """Block until it is done (without raising its error); ``False`` if ``timeout`` passed first."""
        return self._done.wait(timeout)

    def __await__(self) -> Generator[Any, None, Any]:
        """``await execution`` (from ``zart.start``) in async code: its output, without blocking the loop."""
        from ._aio import output_of

        return output_of(self).__await__()

    # --- the engine's side: how an execution moves through its life ---------------------------------

    def starting(self) -> None:
        """It is about to run (from the caller's point of view it runs now)."""
        self._status = ExecutionStatus.RUNNING

    def attach(self, run: Run) -> None:
        """Its run started in this process."""
        self._run = run
        self._status = ExecutionStatus.RUNNING
        self._suspension = None

    @property
    def suspension(self) -> tuple[str, float | None] | None:
        """``(what it waits for, until when)`` while it is suspended here (``sleeping``/``waiting``: no
        thread runs it; it continues when due), else ``None``."""
        return self._suspension

    def suspend(self, status: ExecutionStatus, waits_for: str, wake_at: float | None) -> None:
        """Its body suspended (a long sleep or event wait): not done, it continues when due."""
        self._status = status
        self._suspension = (waits_for, wake_at)

    def on_suspended_cancel(self, callback: Callable[[str | None], None]) -> None:
        """``callback(origin)`` cancels it while it is suspended (its continuer's)."""
        self._on_suspended_cancel = callback

    def finish(self, status: ExecutionStatus, output: Any = None, error: BaseException | None = None) -> None:
        """It ended with ``status`` (its output, or its error)."""
        self._status = status
        self._output = output
        self._error = error

    def fail(self, error: BaseException) -> None:
        """An error outside of its body ended it (unless it already ended)."""
        if self._error is None and not self.done:
            self._error = error
            if self._status in (ExecutionStatus.PENDING, ExecutionStatus.RUNNING):
                self._status = ExecutionStatus.FAILED

    def set_done(self) -> None:
        """Nothing more will happen to it here: wake whoever waits."""
        self._done.set()


# --- the engine's side, kept off the public class: these hand out private types ---------------------


def _takes_four(sink: Callable[..., None]) -> bool:
    """Whether ``sink`` takes exactly four positional arguments (no ``*args``)."""
    import inspect

    try:
        parameters = inspect.signature(sink).parameters.values()
    except (TypeError, ValueError):  # (a builtin without a signature: given all five)
        return False
    if any(p.kind is p.VAR_POSITIONAL for p in parameters):
        return False
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) == 4


def run_of(execution: Execution) -> Run | None:
    """The live run of ``execution`` in this process (``None`` before it starts or when it was answered
    from the journal)."""
    return execution._run


def journal_of(execution: Execution) -> Journal:
    """The engine's open journal ``execution`` is recorded in (users read it with ``zart.journal()``)."""
    return execution._journal
