"""Handles users hold: a step's pending result and a started execution."""
from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from . import _serialization as ser
from ._context import Run
from ._errors import ExecutionTimeout, SerializationError
from ._status import ExecutionStatus

if TYPE_CHECKING:
    from ._journal import Journal


class StepHandle:
    """The promise of one step's result. ``zart.wait`` turns handles into results."""

    __slots__ = ("key", "name", "done", "_blob", "_value", "_has_value", "_error", "_run", "reused")

    def __init__(self, run: Run, key: str, name: str) -> None:
        self.key = key
        self.name = name
        self.done = False
        self.reused = False
        self._blob: bytes | None = None
        self._value: Any = None
        self._has_value = False
        self._error: BaseException | None = None
        self._run = run

    def __repr__(self) -> str:
        state = "reused" if self.reused else ("done" if self.done else "pending")
        return f"<StepHandle {self.key} {state}>"

    def wait_done(self, timeout: float | None = None) -> None:
        self._run.wait_for([self], timeout)

    def result(self, timeout: float | None = None) -> Any:
        """Block until the step has a journaled result and return it (or raise its ``StepError``)."""
        if not self.done or self._run.cancelled:
            self.wait_done(timeout)
        if self._error is not None:
            raise self._error
        return self.value()

    def exception(self) -> BaseException | None:
        if not self.done:
            self.wait_done()
        return self._error

    def value(self) -> Any:
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
        self.journal = journal
        self._done = threading.Event()
        self._status = ExecutionStatus.PENDING
        self._output: Any = None
        self._error: BaseException | None = None
        self._run: Run | None = None
        self._cancel_requested = False
        self._interrupt_requested = False
        self._on_result: list[Callable[[], None]] = []  # progress views: final render in the caller's cell
        self._output_sinks: list[Callable[[str, int, str, str], None]] = []  # lines its steps print
        self.fingerprint: tuple[str, str] | None = None  # (workflow code hash, input hash)
        self.cancelled_by: str | None = None  # who cancelled it from elsewhere ("zart cancel (pid 123)")

    def __repr__(self) -> str:
        return f"<Execution {self.execution_id!r} {self.status.value}>"

    @property
    def status(self) -> ExecutionStatus:
        return self._status

    @property
    def done(self) -> bool:
        return self._done.is_set()

    @property
    def run_number(self) -> int | None:
        return self._run.run_number if self._run else None

    def result(self, timeout: float | None = None) -> Any:
        """The workflow's output; raises its error. ``ExecutionTimeout`` if not done in time.

        Ctrl-C (a KeyboardInterrupt) while waiting interrupts the execution: its running steps are
        stopped and it is recorded as ``interrupted``, ready to resume."""
        try:
            finished = self._done.wait(timeout)
        except KeyboardInterrupt:
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

    def cancel(self, origin: str | None = None) -> None:
        """Stop the execution: running steps are killed, the body gets ``Cancelled``. ``origin`` names
        who asked when it is not this process's own code (``"zart cancel (pid 123)"``): kept as
        ``cancelled_by``, shown where the execution runs."""
        if origin is not None and self.cancelled_by is None:
            self.cancelled_by = origin
        self._cancel_requested = True
        if self._run is not None:
            self._run.cancel()

    def interrupt(self) -> None:
        """Like ``cancel``, but the execution is recorded as ``interrupted`` (as by Ctrl-C): a re-run
        resumes it."""
        self._cancel_requested = self._interrupt_requested = True
        if self._run is not None:
            self._run.cancel(interrupted=True)


