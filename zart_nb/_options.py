"""How a run is started: the checked :class:`RunOptions` every entry point passes down one path
(``zart.run/start``, ``DurableScheduler.run/start``, ``zart resume``, the control actions), and the
:class:`RunPlan` a control action adds (why the run starts, which journaled steps run again).

A new run option is a field here, checked in :meth:`RunOptions.make`: nothing else repeats it."""
from __future__ import annotations

import dataclasses
import datetime
import enum
import os
from dataclasses import dataclass
from typing import Any

from ._definitions import Deadline, check_deadline
from ._errors import ConfigurationError
from ._executors import choice
from ._executors.choice import ExecutorSpec
from ._runtime import default_worker_count
from ._status import RunTrigger


class OnChange(enum.StrEnum):
    """What a run does with a journaled step whose code or arguments changed since it was journaled."""

    RERUN = "rerun"  # run it again
    ERROR = "error"  # refuse: ``NonDeterminism``


@dataclass(frozen=True, slots=True)
class RunOptions:
    """The options of a run, checked once (:meth:`make`), frozen, and passed down as one value.

    ``on_change``: :class:`OnChange`; ``workers``: the local pool's size (None: ``$ZART_WORKERS`` or
    the CPU count); ``executor``: None, ``"local"``, a Dask scheduler address or a
    ``distributed.Client``; ``display``: the live progress (None: ``$ZART_DISPLAY``, else on);
    ``deadline``: seconds after the first start or an aware datetime (None: the workflow's own);
    ``value_store``: the absolute path of the folder the execution keeps its stored values in, reached
    at that path by this process and a Dask cluster's workers alike (None: ``$ZART_VALUE_STORE`` at its
    first run, else ``<journal>.values``, and a cluster's large outputs come back to the driver); journaled
    at the first run and kept by every later one (``_stores``)."""

    on_change: OnChange = OnChange.RERUN
    workers: int | None = None
    executor: ExecutorSpec = None
    display: bool | None = None
    deadline: float | datetime.datetime | None = None
    value_store: str | None = None

    @classmethod
    def make(cls, on_change: str | OnChange = OnChange.RERUN, workers: int | None = None,
             executor: ExecutorSpec = None, display: bool | None = None,
             deadline: Deadline | None = None, value_store: str | os.PathLike[str] | None = None) -> RunOptions:
        """Checked options: a bad value is a ``ConfigurationError`` naming it, before anything is journaled."""
        choice.target(executor)
        try:
            change = OnChange(on_change)
        except ValueError:
            raise ConfigurationError(f"on_change must be one of {tuple(m.value for m in OnChange)}, got "
                                     f"{on_change!r}") from None
        if workers is not None and (isinstance(workers, bool) or not isinstance(workers, int) or workers < 1):
            raise ConfigurationError(f"workers must be a positive integer, got {workers!r}")
        if workers is None:
            default_worker_count()  # a bad $ZART_WORKERS is refused before anything is journaled
        if display is not None and not isinstance(display, bool):
            raise ConfigurationError(f"display must be True, False or None, got {display!r}")
        return cls(change, workers, executor, display, check_deadline(deadline), _value_store(value_store))

    def replace(self, **changes: Any) -> RunOptions:
        """These options with ``changes``, checked again."""
        fields = {field.name: getattr(self, field.name) for field in dataclasses.fields(self)}
        fields.update(changes)
        return RunOptions.make(**fields)


def _value_store(value_store: str | os.PathLike[str] | None) -> str | None:
    if value_store is None:
        return None
    try:
        path = os.fspath(value_store)
    except TypeError:
        path = None
    if not isinstance(path, str) or not path.strip():
        raise ConfigurationError(f"value_store must be a path (a str or os.PathLike), got {value_store!r}")
    if not os.path.isabs(path):
        raise ConfigurationError(f"value_store must be an absolute path (a folder this process and a cluster's "
                                 f"workers reach alike), got {path!r}")
    return path


DEFAULT_OPTIONS = RunOptions()


@dataclass(frozen=True, slots=True)
class RunPlan:
    """Why a run starts and what it runs again, as a control action asks (None: a run started by
    ``zart.run``/``start``, whose trigger is ``initial`` or ``resume`` as the journal says).

    ``redo``: keys of journaled completed steps that run again (``redo_all``: every one);
    ``fork_from``: ``(execution id, step keys)`` copied from another execution before the first run;
    ``new_deadline``: the workflow's deadline counts from now (a restart), not the journaled one;
    ``extend``: seconds the journaled deadline moves later (from now when it has passed or is unset);
    ``retry``: the failed step a retry runs again; another journaled failed step the run reaches fails again
    with its journaled error (``zart.resume`` runs every failed step again)."""

    trigger: RunTrigger
    detail: str | None = None
    redo: frozenset[str] = frozenset()
    redo_all: bool = False
    fork_from: tuple[str, tuple[str, ...]] | None = None
    new_deadline: bool = False
    extend: float | None = None
    retry: str | None = None  # a retry's step: the only failed one it runs again (others fail again as journaled)
    lease: bool = False  # it continues a suspended execution: only if its lease lets this process (``_suspend``)
