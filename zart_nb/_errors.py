"""Every error zart_nb raises, in one tree::

    ZartError
    ├── JournalError                something is wrong with the journal file (names the file)
    │   ├── JournalLocked           another process owns the file (names its pid)
    │   ├── JournalCorrupt          not a DuckDB file, not a zart journal, or unreadable
    │   └── JournalSchemaTooNew     written by a newer zart_nb
    ├── ValueStoreError             a stored value's file or folder is refused (not this user's, writable
    │                               by others) or unusable (names the file)
    │   └── ValueLost               a stored value's file is missing or damaged (the step runs again)
    ├── DefinitionError             a workflow or step used wrongly (bad name, not registered, ...)
    ├── ConfigurationError          a bad option or environment variable (also a ValueError)
    ├── QueryError                  a zart.sql query DuckDB refused (its message; also a ValueError)
    ├── ExecutionNotFound           no execution of that id in the journal (also a LookupError)
    ├── ScheduleNotFound            no recurring schedule of that workflow in the journal (a LookupError)
    ├── DefinitionNotFound          the journal lacks a workflow or step definition (also a LookupError)
    ├── ExecutorClosed              the executor was shut down while a step was submitted
    ├── NotInWorkflow               schedule()/wait() called outside a running workflow
    ├── NonDeterminism              a journaled step or execution changed while on_change="error"
    ├── SerializationError          an argument, output or definition cannot be pickled (names the step)
    ├── StepError                   base of one step's failure (names the execution and step key)
    │   ├── StepFailed              the step raised; ``__cause__`` is the original exception when it
    │   │                           could be carried back, ``attempts`` how many were made
    │   ├── StepTimeout             one attempt ran past its timeout; its worker was killed
    │   ├── WorkerCrashed           the worker process died during the attempt
    │   └── StepCancelled           the execution was cancelled or interrupted
    ├── TaskError                   the workflow body raised; the execution is failed
    ├── DeadlineExceeded            the execution ran past its deadline; it is failed (names the deadline)
    ├── RecoveriesExhausted         its runs' process died max_recoveries times; it is failed
    ├── WaitTimeout                 zart.wait(timeout=) ran out (the steps keep running; a TimeoutError)
    ├── ExecutionTimeout            waiting for an execution took longer than asked (it keeps running)
    ├── MonitorError                the monitor endpoint of a live engine refused, went away or replied badly
    ├── StateConflict               an action refused because of an execution's state (names it)
    └── EventTimeout                zart.wait_for_event(timeout=) ran out (in the body; a TimeoutError)

Cancellation of a running workflow body is signalled with :class:`Cancelled`, a ``BaseException``, so a
user's ``except Exception:`` cannot swallow it.

Every error survives pickle and cloudpickle with its context (``__reduce__`` gives the constructor's
arguments back): the journal stores them, and other processes carry them.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any


class ZartError(Exception):
    """Base of every error raised by zart_nb."""


class JournalError(ZartError):
    """The journal file cannot be used."""

    def __init__(self, path: str | Path, message: str) -> None:
        self.path = str(path)
        self.message = message
        super().__init__(f"{message} (journal: {self.path})")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.message), self.__dict__)


class JournalLocked(JournalError):
    """Another process owns the journal file and did not release it in time (``pid`` names that process when known)."""

    def __init__(self, path: str | Path, owner: str, waited: float, pid: int | None = None) -> None:
        self.owner = owner
        self.waited = waited
        # the holder's process id (``owner`` names it in words): given, else read from ``owner``
        if pid is None:
            found = re.search(r"(?:process|pid) (\d+)", owner)
            pid = int(found.group(1)) if found else None
        self.pid = pid
        super().__init__(
            path,
            f"journal is in use by {owner}; waited {waited:.1f}s. Stop that process (or let its "
            "executions finish: an idle engine releases the file after a short grace), or use "
            "another journal file",
        )

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.path, self.owner, self.waited, self.pid), self.__dict__)

    @property
    def held_by_serve(self) -> bool:
        """Whether the holder is ``zart serve`` (read from ``/proc`` now, on Linux): it opens its journals
        for a moment at each look for due work, without a monitor, and lets go; a reader can wait for it
        (``zart show`` does, up to ``$ZART_LOCK_TIMEOUT``; ``zart-tui`` keeps showing what it read)."""
        from ._procinfo import is_serve  # (not at import: a worker imports the errors, and never needs it)

        return self.pid is not None and is_serve(self.pid)


class JournalCorrupt(JournalError):
    """The file is not a DuckDB zart journal, or DuckDB cannot read it. The file is left untouched."""


class JournalSchemaTooNew(JournalError):
    """The journal was written by a newer zart_nb whose schema this version does not know."""


class ValueStoreError(ZartError):
    """A file or folder of the value store (``<journal>.values/``) is refused or unusable; names it."""


class ValueLost(ValueStoreError):
    """A stored value's file is missing, truncated or fails its header check; names the file.
    Replay treats its step as not completed and runs it again."""


class DefinitionError(ZartError):
    """A workflow, task or step is defined or used wrongly."""


class ConfigurationError(ZartError, ValueError):
    """An option or environment variable has a value zart_nb cannot use (names it and the value)."""


class QueryError(ZartError, ValueError):
    """A ``zart.sql`` query DuckDB refused: a syntax error, an unknown view or column (its message)."""


class ExecutionNotFound(ZartError, LookupError):
    """No execution of that id is journaled (names the id and the journal)."""

    def __init__(self, execution_id: str, journal: str | Path = "") -> None:
        self.execution_id = execution_id
        self.journal = str(journal)
        where = f" in {self.journal}" if self.journal else ""
        super().__init__(f"no execution {execution_id!r}{where}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.execution_id, self.journal), self.__dict__)


class ScheduleNotFound(ZartError, LookupError):
    """No recurring schedule of that workflow is journaled (names the workflow and the journal)."""

    def __init__(self, workflow: str, journal: str | Path = "") -> None:
        self.workflow = workflow
        self.journal = str(journal)
        where = f" in {self.journal}" if self.journal else ""
        super().__init__(f"no recurring schedule of workflow {workflow!r}{where}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.workflow, self.journal), self.__dict__)


class DefinitionNotFound(ZartError, LookupError):
    """The journal does not hold the workflow or step definition a resume needs."""


class ExecutorClosed(ZartError):
    """The executor (worker pool, cluster client) was shut down; nothing more can be submitted to it."""


class NotInWorkflow(ZartError):
    """``schedule``/``wait``/``context`` were called outside a running workflow."""


class NonDeterminism(ZartError):
    """A journaled step or execution no longer matches its code or arguments and ``on_change="error"``."""


class SerializationError(ZartError):
    """A value that must cross a process boundary or be journaled cannot be pickled."""


class StepError(ZartError):
    """A step did not produce a result."""

    def __init__(self, execution_id: str, step_key: str, message: str, attempts: int = 1) -> None:
        self.execution_id = execution_id
        self.step_key = step_key
        self.attempts = attempts
        self.message = message
        super().__init__(f"step {step_key!r} of execution {execution_id!r}: {message}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.execution_id, self.step_key, self.message, self.attempts), self.__dict__)


class StepFailed(StepError):
    """The step raised (after ``attempts`` attempts); ``__cause__`` holds the last exception if available."""

    def __init__(
        self,
        execution_id: str,
        step_key: str,
        message: str,
        attempts: int = 1,
        error_type: str = "",
        remote_traceback: str = "",
    ) -> None:
        self.error_type = error_type
        self.remote_traceback = remote_traceback
        super().__init__(execution_id, step_key, message, attempts)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.execution_id, self.step_key, self.message, self.attempts,
                             self.error_type, self.remote_traceback), self.__dict__)


class StepTimeout(StepError):
    """An attempt ran past the step's timeout; its worker process was killed and replaced."""


class WorkerCrashed(StepError):
    """The worker process running the attempt died (killed, segfault, out of memory)."""


class StepCancelled(StepError):
    """The step's execution was cancelled or interrupted before the step finished."""


class TaskError(ZartError):
    """The workflow body raised; ``__cause__`` is the exception."""

    def __init__(self, execution_id: str, message: str) -> None:
        self.execution_id = execution_id
        self.message = message
        super().__init__(f"execution {execution_id!r} failed: {message}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.execution_id, self.message), self.__dict__)


class DeadlineExceeded(ZartError):
    """The execution was still running at its deadline (``deadline`` in POSIX seconds): its running steps
    were stopped, its scheduled ones never started, and it is ``failed``."""

    def __init__(self, execution_id: str, deadline: float) -> None:
        self.execution_id = execution_id
        self.deadline = deadline
        from datetime import UTC, datetime  # here: every process imports the errors, few format a deadline

        when = datetime.fromtimestamp(deadline, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")[:-3]
        super().__init__(f"execution {execution_id!r} passed its deadline ({when} UTC); its running steps "
                         "were stopped")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.execution_id, self.deadline), self.__dict__)


class RecoveriesExhausted(ZartError):
    """The execution's runs ended ``recoveries`` times because their process died, its workflow's
    ``max_recoveries``: it is ``failed`` instead of being run again."""

    def __init__(self, execution_id: str, recoveries: int) -> None:
        self.execution_id = execution_id
        self.recoveries = recoveries
        super().__init__(f"execution {execution_id!r} is not run again: its process died in {recoveries} "
                         f"run{'s' if recoveries != 1 else ''}, its workflow's max_recoveries")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.execution_id, self.recoveries), self.__dict__)


class WaitTimeout(ZartError, TimeoutError):
    """``zart.wait(..., timeout=)`` or a handle's ``result(timeout)`` ran out; the steps keep running."""


class ExecutionTimeout(ZartError, TimeoutError):
    """Waiting for an execution's result timed out. The execution itself keeps running."""


class MonitorError(ZartError):
    """The monitor endpoint of a live engine refused the request, went away, or sent something invalid."""


class Cancelled(BaseException):
    """Raised inside a workflow body when its execution is cancelled (a BaseException on purpose)."""


class StateConflict(ZartError):
    """An action refused because of an execution's state (``status``): an event sent to a finished one,
    a change to one that is running ("cancel it first")."""

    def __init__(self, execution_id: str, status: str, message: str) -> None:
        self.execution_id = execution_id
        self.status = status
        self.message = message
        # Without a status (carried by the monitor as text) the message is the whole text
        super().__init__(f"execution {execution_id!r} is {status}: {message}" if status else message)

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.execution_id, self.status, self.message), self.__dict__)


class EventTimeout(ZartError, TimeoutError):
    """``zart.wait_for_event(name, timeout=)`` ran out before an event of that name arrived (raised in
    the workflow body, which may catch it; journaled, so a replay raises it again)."""

    def __init__(self, execution_id: str, name: str, timeout: float | None = None) -> None:
        self.execution_id = execution_id
        self.name = name
        self.timeout = timeout
        after = "" if timeout is None else f" within {timeout:g}s"
        super().__init__(f"execution {execution_id!r} received no event {name!r}{after}")

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.execution_id, self.name, self.timeout), self.__dict__)
