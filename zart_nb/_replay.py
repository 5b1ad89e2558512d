"""Replay: the key each durable call gets, and whether its journaled record is reused. Pure code.

Keys are assigned when a call is made or scheduled, in the workflow thread's call order, never when
it finishes (parallel results arrive in any order). A key is the call's name plus its occurrence
among calls of that name (``check-service#0``, ``#1``), or an explicit key (a name template or
``.named(...)``). One run never uses a key twice.

Each kind of durable call has a sequence of its own (Temporal's ``_next_seq("timer")``): steps, the
on_failure handler, captured values, sleeps, awaited events and published values (their rules are
``_kinds``' and ``_messages``'; how a step's attempt is settled, ``_settle``'s). A new kind never shifts
the keys of another, and its keys live in a namespace of their own (``sleep:nap#0``), so a step named
like a sleep cannot collide with it. Those namespaces (and ``workflow:``, an execution's own values: its
table input ``workflow:input`` and output ``workflow:output``) are :data:`RESERVED_PREFIXES`: a step key
given by the user (a step's name, a name template's key, ``.named(...)``) may not start with one
(:func:`check_step_key`). Every journaled call also takes its place in the run's call order
(``Keys.next_seq()``, the rows' ``seq``).

The reuse decision (:func:`decide`) compares a journaled record with the call being made: the record
is reused only when it completed with the same argument and code hashes; otherwise the call runs, and
the reason says why (new, code changed, arguments changed, failed before, cancelled before).
"""
from __future__ import annotations

import enum
from typing import TYPE_CHECKING, Literal

from ._errors import DefinitionError, NonDeterminism
from ._status import RunReason, StepStatus

if TYPE_CHECKING:
    from ._journal import StoredStep


class Kind(enum.StrEnum):
    """A kind of durable call; each has its own sequence and key namespace."""

    STEP = "step"
    ON_FAILURE = "on_failure"  # the workflow's on_failure handler, run once when the execution fails
    WAIT = "wait"  # which handle finished first (zart.wait_first, zart.as_completed): the body's choice
    CHILD = "child"  # an execution the body starts without an id: its id is its parent's plus its position
    CAPTURE = "capture"  # zart.capture / zart.now: a value made once, returned from the journal on replay
    SLEEP = "sleep"  # zart.sleep / zart.sleep_until: its wake time, journaled at the first call
    EVENT = "event"  # zart.wait_for_event: its deadline, journaled at the first call (what it consumed: events)
    PUBLISH = "publish"  # zart.publish: a JSON value others read (zart.published, zart.stream)


# The key namespaces zart_nb keeps for its own records, one list that the code forming those keys uses too:
# a durable call of another kind than a step is keyed ``<kind>:<name>#<n>`` (``sleep:nap#0``,
# ``capture:now#0``), and an execution's own values ``workflow:<what>`` (its table input and output).
PREFIXES: dict[Kind, str] = {kind: f"{kind.value}:" for kind in Kind if kind is not Kind.STEP}
WORKFLOW_PREFIX = "workflow:"
OUTPUT_KEY = WORKFLOW_PREFIX + "output"  # a workflow's table output (``tables/<id>/workflow:output.parquet``)
INPUT_KEY = WORKFLOW_PREFIX + "input"  # a workflow's table input (``tables/<id>/workflow:input.parquet``)
RESERVED_PREFIXES: tuple[str, ...] = (*PREFIXES.values(), WORKFLOW_PREFIX)


def check_step_key(key: object, what: str = "step key") -> str:
    """``key`` if a user may give it to a step (a non-empty string outside :data:`RESERVED_PREFIXES`),
    else a :class:`DefinitionError` naming it and the reserved prefixes. A key in a reserved namespace
    would share its record with the engine's own (its check failing, the call running again each time)."""
    if not isinstance(key, str) or not key:
        raise DefinitionError(f"a {what} must be a non-empty string, got {key!r}")
    if key.startswith(RESERVED_PREFIXES):
        prefix = next(p for p in RESERVED_PREFIXES if key.startswith(p))
        raise DefinitionError(f"{what} {key[:200]!r} starts with {prefix!r}, which zart_nb reserves for its own "
                              f"records (reserved prefixes: {', '.join(RESERVED_PREFIXES)}); choose another")
    return key


_STEP = Kind.STEP
_COMPLETED = StepStatus.COMPLETED
_FAILED = StepStatus.FAILED
_CANCELLED = StepStatus.CANCELLED
_INTERRUPTED = StepStatus.INTERRUPTED
# A completed record a control action asked to run again (restart, rerun, fork): set by the engine on its
# copy of the stored records, never journaled.
REDO: Literal["redo"] = "redo"
# A failed record that a retry of another step does not run again: reached, it fails again as journaled
# (set by the engine on its copy of the stored records, never journaled).
FAIL_AGAIN: Literal["fail again"] = "fail again"
_CHANGES = (RunReason.CODE_CHANGED, RunReason.ARGS_CHANGED)


class Keys:
    """Assigns keys in call order for one run of one execution (the workflow thread only)."""

    __slots__ = ("execution_id", "_step_counts", "_counts", "_seqs", "_step_seq", "_used")

    def __init__(self, execution_id: str) -> None:
        self.execution_id = execution_id
        self._step_counts: dict[str, int] = {}
        self._counts: dict[Kind, dict[str, int]] = {Kind.STEP: self._step_counts}
        self._seqs: dict[Kind, int] = {}
        self._step_seq = 0  # the steps' sequence, a plain counter: the replay hot path takes one per step
        self._used: set[str] = set()

    def next_seq(self, kind: Kind = Kind.STEP) -> int:
        """The position of the next call of ``kind`` among calls of that kind (0, 1, ...)."""
        if kind is _STEP:  # a counter, not the dict's get and set: ~400 instructions less per step
            seq = self._step_seq
            self._step_seq = seq + 1
            return seq
        seq = self._seqs.get(kind, 0)
        self._seqs[kind] = seq + 1
        return seq

    def step_key(self, name: str, explicit: str | None = None) -> str:
        """The key of the next call of step ``name`` (``explicit`` when given). The replay hot path."""
        if explicit is None:
            counts = self._step_counts
            occurrence = counts.get(name, 0)
            counts[name] = occurrence + 1
            key = f"{name}#{occurrence}"
        else:
            key = explicit
        used = self._used
        if key in used:
            raise DefinitionError(f"step key {key!r} is used twice in execution {self.execution_id!r}; "
                                  "give each call a distinct key (a name template or .named(...))")
        used.add(key)
        return key

    def key(self, kind: Kind, name: str, explicit: str | None = None) -> str:
        """The key of the next call of ``kind`` named ``name``; other kinds than steps are prefixed
        with their kind (``sleep:nap#0``)."""
        if kind is Kind.STEP:
            return self.step_key(name, explicit)
        counts = self._counts.setdefault(kind, {})
        if explicit is None:
            occurrence = counts.get(name, 0)
            counts[name] = occurrence + 1
            explicit = f"{name}#{occurrence}"
        key = PREFIXES[kind] + explicit
        if key in self._used:
            raise DefinitionError(f"{kind.value} key {key!r} is used twice in execution "
                                  f"{self.execution_id!r}")
        self._used.add(key)
        return key


def decide(stored: StoredStep | None, args_hash: str, code_hash: str) -> RunReason | None:
    """``None`` when the journaled record ``stored`` is reused; otherwise why the call runs again."""
    if stored is None:
        return RunReason.NEW
    status = stored.status
    if status is _COMPLETED:
        if stored.args_hash == args_hash and stored.def_id == code_hash:
            return None
        return RunReason.CODE_CHANGED if stored.def_id != code_hash else RunReason.ARGS_CHANGED
    if status is _FAILED:
        return RunReason.FAILED_BEFORE
    if status is _CANCELLED:
        return RunReason.CANCELLED_BEFORE
    if status is _INTERRUPTED:
        return RunReason.INTERRUPTED_BEFORE
    if status == REDO:
        return RunReason.REQUESTED
    return RunReason.CODE_CHANGED if stored.def_id != code_hash else RunReason.ARGS_CHANGED


def check_change(reason: RunReason, on_change: str, execution_id: str, key: str) -> None:
    """With ``on_change="error"``, a journaled call whose code or arguments changed is refused."""
    if on_change == "error" and reason in _CHANGES:
        raise NonDeterminism(f"step {key!r} of execution {execution_id!r}: {reason.value} since it was "
                             "journaled, and on_change='error'")
