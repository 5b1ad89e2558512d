"""The error tree: every public error survives pickling with its context, and what users meet is a ZartError."""
import inspect
import pickle

import cloudpickle
import pytest
from steps_lib import fail_if

import zart_nb as zart

# Constructor arguments for each public error; a new error without an entry here fails the test below.
SAMPLES = {
    zart.ZartError: ("plain message",),
    zart.StateConflict: ("execution 'x' is running; cancel it first",),
    zart.JournalError: ("/tmp/j.duckdb", "cannot be used"),
    zart.JournalLocked: ("/tmp/j.duckdb", "process 42", 1.5),
    zart.JournalCorrupt: ("/tmp/j.duckdb", "not a DuckDB file"),
    zart.JournalSchemaTooNew: ("/tmp/j.duckdb", "schema 9"),
    zart.DefinitionError: ("bad step",),
    zart.ConfigurationError: ("ZART_WORKERS must be a positive integer",),
    zart.QueryError: ("Catalog Error: Table with name x does not exist!",),
    zart.ExecutionNotFound: ("exec-1", "/tmp/j.duckdb"),
    zart.ScheduleNotFound: ("nightly", "/tmp/j.duckdb"),
    zart.DefinitionNotFound: ("no definition abc",),
    zart.ExecutorClosed: ("pool shut down",),
    zart.NotInWorkflow: ("outside",),
    zart.NonDeterminism: ("changed",),
    zart.SerializationError: ("cannot pickle",),
    zart.StepError: ("exec-1", "step#0", "went wrong", 2),
    zart.StepFailed: ("exec-1", "step#0", "ValueError: x", 3, "ValueError", "Traceback ..."),
    zart.StepTimeout: ("exec-1", "step#0", "ran past 1s", 1),
    zart.WorkerCrashed: ("exec-1", "step#0", "killed by signal 9", 2),
    zart.StepCancelled: ("exec-1", "step#0", "cancelled", 1),
    zart.TaskError: ("exec-1", "ValueError: boom"),
    zart.DeadlineExceeded: ("exec-1", 1_800_000_000.5),
    zart.RecoveriesExhausted: ("exec-1", 3),
    zart.WaitTimeout: ("steps still running",),
    zart.ExecutionTimeout: ("still running",),
    zart.MonitorError: ("the engine went away",),
    zart.ValueStoreError: ("the value store /tmp/j.duckdb.values is writable by others",),
    zart.ValueLost: ("the stored value /tmp/j.duckdb.values/x.zv is missing",),
    zart.Cancelled: ("cancelled",),
    zart.StateConflict: ("exec-1", "completed", "it cannot receive events"),
    zart.EventTimeout: ("exec-1", "approval", 30.0),
}


def public_errors():
    return [getattr(zart, name) for name in zart.__all__
            if inspect.isclass(getattr(zart, name)) and issubclass(getattr(zart, name), BaseException)]


def test_every_public_error_has_a_sample():
    assert set(public_errors()) == set(SAMPLES)


@pytest.mark.parametrize("dumps,loads", [(pickle.dumps, pickle.loads), (cloudpickle.dumps, pickle.loads)],
                         ids=["pickle", "cloudpickle"])
@pytest.mark.parametrize("cls", list(SAMPLES), ids=lambda cls: cls.__name__)
def test_error_round_trips_with_its_context(cls, dumps, loads):
    error = cls(*SAMPLES[cls])
    error.extra_note = "kept"
    copy = loads(dumps(error))
    assert type(copy) is cls
    assert str(copy) == str(error)
    assert copy.args == error.args
    assert copy.__dict__ == error.__dict__


def test_journal_locked_names_its_holders_pid_and_pickles_with_it():
    named = zart.JournalLocked("/tmp/j.duckdb", "the kernel (pid 4242) of notebook a.ipynb", 10.0)
    assert named.pid == 4242  # read from the words when not given
    given = zart.JournalLocked("/tmp/j.duckdb", "another process", 1.0, 77)
    assert given.pid == 77 and pickle.loads(pickle.dumps(given)).pid == 77
    assert zart.JournalLocked("/tmp/j.duckdb", "another process", 1.0).pid is None


def test_public_names_read_as_public_in_tracebacks():
    assert zart.StepFailed.__module__ == "zart_nb"
    assert repr(zart.StepFailed).startswith("<class 'zart_nb.StepFailed'")


def test_workflow_returning_step_errors_resumes_from_the_journal(journal):
    """The regression: a completed execution whose output holds a StepFailed re-ran into a TypeError."""

    @zart.workflow("keeps-errors")
    def flow(xs):
        return zart.wait([zart.schedule(fail_if, x, 2) for x in xs], return_exceptions=True)

    first = zart.run(flow, [1, 2], execution_id="ke-1", journal=journal)
    again = zart.run(flow, [1, 2], execution_id="ke-1", journal=journal)
    for out in (first, again):
        assert out[0] == 1
        assert isinstance(out[1], zart.StepFailed)
        assert out[1].step_key == "fail-if#1" and out[1].execution_id == "ke-1"
        assert "bad value 2" in str(out[1])
    assert [r.run_number for r in zart.journal(journal).list_runs("ke-1")] == [1]


def test_wait_timeout_is_a_zart_error_and_a_timeout_error(journal, tmp_path):
    from steps_lib import wait_for_file

    barrier = tmp_path / "go"

    @zart.workflow("slow-wait")
    def flow(_):
        handle = zart.schedule(wait_for_file, str(barrier))
        try:
            zart.wait([handle], timeout=0.2)
        except zart.WaitTimeout as exc:
            caught = (isinstance(exc, TimeoutError), str(exc))
        barrier.touch()
        zart.wait([handle])
        return caught

    is_timeout, message = zart.run(flow, None, execution_id="sw-1", journal=journal)
    assert is_timeout and "still running" in message


def test_missing_execution_and_bad_options_are_zart_errors(journal):
    registry = zart.TaskRegistry()
    registry.register("noop", lambda x: x)
    scheduler = zart.DurableScheduler(registry, journal)
    with pytest.raises(zart.ExecutionNotFound, match="no execution 'nope'"):
        scheduler.status("nope")
    with pytest.raises(zart.ExecutionNotFound):
        scheduler.wait("nope")
    with pytest.raises(zart.ConfigurationError, match="on_change"):
        zart.run(lambda x: x, 1, on_change="ignore", journal=journal)
    with pytest.raises(zart.ConfigurationError, match="workers"):
        zart.run(lambda x: x, 1, workers=0, journal=journal)
