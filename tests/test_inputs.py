"""Odd inputs get a clear ZartError naming the thing, before anything is journaled."""
import subprocess
import sys

import pytest
import steps_lib
from steps_lib import square

import zart_nb as zart


@zart.workflow("plain")
def plain(x):
    return square(x)


pytestmark = pytest.mark.usefixtures("inline")


def test_a_bad_zart_workers_is_refused_before_the_execution_starts(journal, monkeypatch):
    monkeypatch.setenv("ZART_WORKERS", "abc")
    with pytest.raises(zart.ConfigurationError, match="ZART_WORKERS"):
        zart.run(plain, 2, execution_id="w-1", journal=journal)
    with pytest.raises(zart.ConfigurationError, match="ZART_WORKERS"):
        zart.start(plain, 2, execution_id="w-1", journal=journal)
    monkeypatch.delenv("ZART_WORKERS")
    assert zart.journal(journal).list_executions() == []  # nothing was journaled


@pytest.mark.parametrize("bad", ["", 123, b"bytes", "\ud800"])
def test_bad_execution_ids_are_refused(journal, bad):
    with pytest.raises(zart.ConfigurationError, match="execution_id"):
        zart.run(plain, 2, execution_id=bad, journal=journal)
    with pytest.raises(zart.ConfigurationError, match="execution_id"):
        zart.start(plain, 2, execution_id=bad, journal=journal)
    registry = zart.TaskRegistry()
    registry.register("plain", plain)
    with pytest.raises(zart.ConfigurationError, match="execution_id"):
        zart.DurableScheduler(registry, journal=journal).start(bad, "plain", 2)


def test_wait_takes_step_handles_only(journal):
    @zart.workflow("waits-on-ints")
    def flow(_):
        return zart.wait([1, 2])

    with pytest.raises(zart.DefinitionError, match="step handles"):
        zart.run(flow, None, journal=journal)
    with pytest.raises(zart.DefinitionError, match="step handles"):
        zart.wait([1, 2])


def test_waiting_on_another_executions_handle_is_refused(journal):
    steps_lib.SHARED.clear()  # a module: the workflows below refer to it, they do not pickle it

    @zart.workflow("keeps-a-handle")
    def first(_):
        handle = zart.schedule(square, 3)
        steps_lib.SHARED.append(handle)
        return zart.wait([handle])

    @zart.workflow("borrows-a-handle")
    def second(_):
        return zart.wait(steps_lib.SHARED)

    assert zart.run(first, None, execution_id="h-1", journal=journal) == [9]
    with pytest.raises(zart.DefinitionError, match="belongs to execution 'h-1'"):
        zart.run(second, None, execution_id="h-2", journal=journal)


def test_the_demo_with_zero_workers_prints_one_line(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "zart_nb._cli", "demo", "--workers", "0",
                           "--journal", str(tmp_path / "d.duckdb")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    assert [line for line in proc.stderr.splitlines() if line.strip()] == [
        "zart: workers must be a positive integer, got 0"]


def test_resume_with_zero_workers_is_refused_like_run(tmp_path):
    """``zart resume --workers 0`` once fell back to the default worker count without a word."""
    proc = subprocess.run([sys.executable, "-m", "zart_nb._cli", "resume", "nope", "--workers", "0",
                           "--journal", str(tmp_path / "d.duckdb")], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 1
    assert [line for line in proc.stderr.splitlines() if line.strip()] == [
        "zart: workers must be a positive integer, got 0"]


@zart.step("times-two")
def times_two(x):
    return x * 2


@zart.workflow("huge")
def huge(x):
    return times_two(x)


def test_an_int_too_long_for_repr_is_an_argument_and_a_result_like_any_other(journal):
    # repr() refuses ints of 4,300 digits or more (ValueError): previews must not.
    big = 10**5000
    assert zart.run(huge, big, execution_id="huge-1", journal=journal) == big * 2
    assert zart.run(huge, big, execution_id="huge-1", journal=journal) == big * 2  # from the journal
    reader = zart.journal(journal)
    try:
        (step,) = reader.list_steps("huge-1")
        record = reader.execution_record("huge-1")
    finally:
        reader.close()
    assert step.status == zart.StepStatus.COMPLETED
    assert "int" in step.args_preview and "int" in step.output_preview
    assert len(step.args_preview) <= 200 and "int" in record.input_preview


@zart.step("length")
def length(items):
    return len(items)


@zart.workflow("lengths")
def lengths(items):
    return length(items)


def test_a_list_that_holds_itself_is_an_argument_like_any_other(journal):
    looped = [1, 2]
    looped.append(looped)
    assert zart.run(lengths, looped, execution_id="loop-1", journal=journal) == 3
    assert zart.run(lengths, looped, execution_id="loop-1", journal=journal) == 3  # same hashes: reused


def test_an_argument_too_deep_to_pickle_is_a_clear_error(journal):
    deep = []
    inner = deep
    for _ in range(100_000):
        inner.append([])
        inner = inner[0]
    with pytest.raises(zart.SerializationError, match="too deep|recursion"):
        zart.run(lengths, deep, execution_id="deep-1", journal=journal)


@pytest.mark.parametrize("value_store, error", [
    ("relative/store", "value_store must be an absolute path"),
    ("", "value_store must be a path"),
    (42, "value_store must be a path"),
])
def test_a_bad_value_store_is_refused_before_anything_is_journaled(journal, value_store, error):
    with pytest.raises(zart.ConfigurationError, match=error):
        zart.run(huge, 1, execution_id="vs-1", journal=journal, value_store=value_store)
    with pytest.raises(zart.ConfigurationError, match=error):
        zart.start(huge, 1, execution_id="vs-1", journal=journal, value_store=value_store)
    assert not journal.exists()


def test_the_local_pool_runs_with_a_value_store_named(journal, tmp_path):
    """``value_store=`` names the folder the execution keeps its stored values in (the local pool's too),
    journaled and claimed for this journal at once (its marker alone here: no value went there), and another
    folder is refused later."""
    assert zart.run(huge, 4, execution_id="vs-2", journal=journal, value_store=tmp_path / "shared") == 8
    assert [p.name for p in (tmp_path / "shared").iterdir()] == [".zart-journal"]
    with pytest.raises(zart.ConfigurationError, match="keeps its stored values in"):
        zart.run(huge, 4, execution_id="vs-2", journal=journal, value_store=tmp_path / "other")
