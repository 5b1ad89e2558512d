"""The value store: large outputs as files beside the journal (real worker processes, a real DuckDB file)."""
from __future__ import annotations

import logging
import os
import signal
import stat
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from conftest import wait_until
from steps_lib import calls
from values_lib import array_then_fail, expected

import zart_nb as zart
from zart_nb import _values as values
from zart_nb._runtime import runtime

THRESHOLD = 4096  # bytes: these tests' arrays are above it, their small values below
NOBODY = 65534
HERE = Path(__file__).parent


@pytest.fixture(autouse=True)
def small_threshold(monkeypatch):
    monkeypatch.setenv("ZART_VALUE_THRESHOLD", str(THRESHOLD))


def _params(tmp_path: Path, n: int = 50_000, dtype: str = "float64") -> dict:
    return {"n": n, "dtype": dtype, "counter_dir": str(tmp_path), "flag": str(tmp_path / "fail")}


def _store(journal: Path) -> Path:
    return journal.with_name(journal.name + ".values")


def _fail_then_resume(journal: Path, params: dict) -> dict:
    Path(params["flag"]).touch()
    with pytest.raises(zart.TaskError, match="failing after the array step"):
        zart.run(array_then_fail, params, execution_id="e", journal=journal, display=False)
    os.unlink(params["flag"])
    return zart.run(array_then_fail, params, execution_id="e", journal=journal, display=False)


@pytest.mark.parametrize("dtype", ["float64", "int32", "complex64", ">u2"])
def test_an_array_above_the_threshold_round_trips_from_a_worker_on_replay_and_through_load(journal, tmp_path,
                                                                                             dtype):
    params = _params(tmp_path, dtype=dtype)
    out = _fail_then_resume(journal, params)
    assert calls(tmp_path) == ["array", "small"]  # the re-run reused both steps: nothing ran again
    want = expected(params["n"], dtype)
    got = out["array"]
    assert got.dtype == want.dtype and got.shape == want.shape
    assert got[0] == 99 and np.array_equal(got[1:], want[1:])
    assert out["writable"] is True and out["one"] == 2
    loaded = zart.load("e", "array#0", journal=journal)  # the body's write never reached the file
    assert loaded.dtype == want.dtype and np.array_equal(loaded, want)
    loaded[0] = 7  # writable, copy-on-write
    assert zart.load("e", "array#0", journal=journal)[0] == want[0]
    steps = {step.step_key: step for step in zart.journal(journal, live=False).list_steps("e")}
    assert f"dtype={want.dtype}" in steps["array#0"].output_preview
    assert f"shape=({params['n']},)" in steps["array#0"].output_preview
    assert steps["small#0"].output_preview == "2"


def test_a_large_output_never_enters_duckdb_and_a_small_one_stays_inline(journal, tmp_path):
    params = _params(tmp_path)
    zart.run(array_then_fail, params, execution_id="e", journal=journal, display=False)
    stored = runtime.journal(journal).pickled_steps("e")
    assert values.is_ref(stored["array#0"].output) and len(stored["array#0"].output) < 200
    assert not values.is_ref(stored["small#0"].output)
    execution = runtime.journal(journal).pickled_execution("e")
    assert values.is_ref(execution.output)  # the workflow's output holds the array: the driver stored it
    assert not values.is_ref(execution.input)
    runtime.journal(journal).close()
    names = sorted(os.listdir(_store(journal)))
    assert len(names) == 2 and all(name.endswith(".zv") for name in names)
    step_file = _store(journal) / values.decode_ref(stored["array#0"].output).name
    header = step_file.read_bytes()[:20]
    assert header[:8] == b"ZARTVAL1"
    buffers, pickle_size = struct.unpack_from("<IQ", header, 8)
    assert buffers == 1 and pickle_size < 1000  # the array's bytes travel raw, out of the pickle


def test_by_default_an_output_above_256_kib_is_stored_and_one_below_stays_in_the_row(journal, monkeypatch):
    from values_lib import two_sizes

    monkeypatch.delenv("ZART_VALUE_THRESHOLD")
    assert values.threshold() == 256 * 1024
    assert zart.run(two_sizes, [200_000, 300_000], execution_id="d", journal=journal, display=False) == 500_000
    stored = runtime.journal(journal).pickled_steps("d")
    assert values.is_ref(stored["bytes-300000"].output)
    assert not values.is_ref(stored["bytes-200000"].output) and len(stored["bytes-200000"].output) > 200_000


def test_store_files_are_owner_only(journal, tmp_path):
    zart.run(array_then_fail, _params(tmp_path), execution_id="e", journal=journal, display=False)
    store = _store(journal)
    assert stat.S_IMODE(os.stat(store).st_mode) == 0o700
    modes = {stat.S_IMODE(os.stat(store / name).st_mode) for name in os.listdir(store)}
    assert modes == {0o600}


def test_the_inline_executor_stores_a_large_output_too(journal, tmp_path, inline):
    params = _params(tmp_path, dtype="int64")
    out = _fail_then_resume(journal, params)
    assert calls(tmp_path) == ["array", "small"]
    assert np.array_equal(out["array"][1:], expected(params["n"], "int64")[1:])
    assert values.is_ref(runtime.journal(journal).pickled_steps("e")["array#0"].output)


def test_a_large_workflow_input_goes_to_the_store(journal):
    data = np.linspace(0, 1, 10_000)
    assert zart.run(lambda a: float(a.sum()), data, execution_id="in", journal=journal) == pytest.approx(data.sum())
    assert values.is_ref(runtime.journal(journal).pickled_execution("in").input)
    record = zart.journal(journal, live=False).execution_record("in")
    assert "shape=(10000,)" in record.input_preview


def _array_file(journal: Path) -> Path:
    ref = values.decode_ref(runtime.journal(journal).pickled_steps("e")["array#0"].output)
    return _store(journal) / ref.name


def _truncate(path: Path) -> None:
    os.truncate(path, os.path.getsize(path) - 8)


def _damage_header(path: Path) -> None:
    with open(path, "r+b") as handle:
        handle.seek(12)
        byte = handle.read(1)
        handle.seek(12)
        handle.write(bytes([byte[0] ^ 0xFF]))


@pytest.mark.parametrize("damage", [_truncate, _damage_header, os.unlink], ids=["truncated", "header", "missing"])
def test_a_damaged_value_file_makes_the_step_run_again_with_a_warning(journal, tmp_path, caplog, damage):
    params = _params(tmp_path)
    Path(params["flag"]).touch()
    with pytest.raises(zart.TaskError):
        zart.run(array_then_fail, params, execution_id="e", journal=journal, display=False)
    os.unlink(params["flag"])
    path = _array_file(journal)
    damage(path)
    with caplog.at_level(logging.WARNING, logger="zart_nb"):
        out = zart.run(array_then_fail, params, execution_id="e", journal=journal, display=False)
    assert calls(tmp_path) == ["array", "small", "array"]  # the array step ran again, the small one did not
    assert np.array_equal(out["array"][1:], expected(params["n"], "float64")[1:])
    warned = [record.getMessage() for record in caplog.records if "runs again" in record.getMessage()]
    assert len(warned) == 1 and str(path) in warned[0] and "array#0" in warned[0], warned
    steps = {step.step_key: step for step in zart.journal(journal, live=False).list_steps("e")}
    assert steps["array#0"].reason == zart.RunReason.VALUE_LOST


def test_zart_load_refuses_a_damaged_value(journal, tmp_path):
    zart.run(array_then_fail, _params(tmp_path), execution_id="e", journal=journal, display=False)
    path = _array_file(journal)
    _truncate(path)
    with pytest.raises(zart.ValueLost, match="truncated or changed") as info:
        zart.load("e", "array#0", journal=journal)
    assert str(path) in str(info.value)
    with pytest.raises(LookupError, match="no step 'nope'"):
        zart.load("e", "nope", journal=journal)
    with pytest.raises(zart.ExecutionNotFound):
        zart.load("other", "array#0", journal=journal)


def test_zart_load_gives_an_executions_own_input_and_output(journal, tmp_path):
    params = _params(tmp_path)
    Path(params["flag"]).touch()
    with pytest.raises(zart.TaskError):
        zart.run(array_then_fail, params, execution_id="e", journal=journal, display=False)
    assert zart.load("e", "workflow:input", journal=journal) == params  # a small input: its pickle
    with pytest.raises(LookupError, match="execution 'e' is failed: it has no output to load"):
        zart.load("e", "workflow:output", journal=journal)
    os.unlink(params["flag"])
    out = zart.run(array_then_fail, params, execution_id="e", journal=journal, display=False)
    got = zart.load("e", "workflow:output", journal=journal)  # a dict holding a large array: stored raw
    assert set(got) == set(out) and got["one"] == 2 and np.array_equal(got["array"], out["array"])
    with pytest.raises(zart.ExecutionNotFound):
        zart.load("other", "workflow:input", journal=journal)


def _trust_cases():
    cases = [
        ("folder writable by others", lambda store, file: os.chmod(store, 0o777), "writable by others"),
        ("file writable by others", lambda store, file: os.chmod(file, 0o666), "writable by others"),
    ]
    if os.getuid() == 0:
        cases += [
            ("folder of another user", lambda store, file: os.chown(store, NOBODY, NOBODY), "belongs to"),
            ("file of another user", lambda store, file: os.chown(file, NOBODY, NOBODY), "belongs to"),
        ]
    return cases


@pytest.mark.parametrize(("what", "plant", "message"), _trust_cases(), ids=[case[0] for case in _trust_cases()])
def test_a_store_folder_or_file_others_could_change_is_refused(journal, tmp_path, what, plant, message):
    params = _params(tmp_path)
    Path(params["flag"]).touch()
    with pytest.raises(zart.TaskError):
        zart.run(array_then_fail, params, execution_id="e", journal=journal, display=False)
    os.unlink(params["flag"])
    path = _array_file(journal)
    plant(_store(journal), path)
    with pytest.raises(zart.ValueStoreError, match=message) as info:
        zart.run(array_then_fail, params, execution_id="e", journal=journal, display=False)
    assert not isinstance(info.value, zart.ValueLost)  # refused, not silently run again
    assert calls(tmp_path) == ["array", "small"]
    with pytest.raises(zart.ValueStoreError, match=message):
        zart.load("e", "array#0", journal=journal)


def test_a_negative_or_bad_threshold_is_refused(journal, monkeypatch):
    monkeypatch.setenv("ZART_VALUE_THRESHOLD", "1MB")
    with pytest.raises(zart.ConfigurationError, match="ZART_VALUE_THRESHOLD"):
        zart.run(lambda x: x, 1, execution_id="t", journal=journal)


# --- zart gc -----------------------------------------------------------------------------------------

DRIVER = textwrap.dedent("""
    import os, sys, time
    sys.path.insert(0, {tests!r})
    import zart_nb as zart
    from zart_nb import _engine
    from values_lib import array_then_fail

    journal, params = sys.argv[1], {{"n": 50_000, "dtype": "float64", "counter_dir": sys.argv[2],
                                    "flag": os.path.join(sys.argv[2], "fail")}}
    record = _engine.RunState.on_outcomes

    def held(self, outcomes):  # the value is written and fsynced; its record is not journaled yet
        if any(outcome.task.step_key == "array#0" for outcome in outcomes):
            open(os.path.join(sys.argv[2], "written"), "w").close()
            time.sleep(60)
        record(self, outcomes)

    _engine.RunState.on_outcomes = held
    zart.run(array_then_fail, params, execution_id="e", journal=journal, display=False)
""")


def _cli(journal: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "zart_nb", "--journal", str(journal), *args],
                          capture_output=True, text=True, timeout=60)


def test_a_value_killed_before_its_record_is_an_orphan_zart_gc_removes(journal, tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER.format(tests=str(HERE)))
    driver = subprocess.Popen([sys.executable, str(script), str(journal), str(tmp_path)],
                              env={**os.environ, "ZART_VALUE_THRESHOLD": str(THRESHOLD)})
    try:
        wait_until(lambda: (tmp_path / "written").exists() or driver.poll() is not None, timeout=60,
                   what="the array's value written")
        assert driver.poll() is None
    finally:
        driver.send_signal(signal.SIGKILL)
        driver.wait()
    orphans = os.listdir(_store(journal))
    assert len(orphans) == 1
    assert "array" not in {step.step_key for step in zart.journal(journal, live=False).list_steps("e")}
    kept = _cli(journal, "gc")  # too young: it could be a value being written
    assert kept.returncode == 0 and "1 unreferenced file(s) younger" in kept.stdout, kept.stderr
    dry = _cli(journal, "gc", "--dry-run", "--min-age", "0")
    assert dry.returncode == 0 and f"would remove {orphans[0]}" in dry.stdout, dry.stderr
    assert os.listdir(_store(journal)) == orphans
    done = _cli(journal, "gc", "--min-age", "0")
    assert done.returncode == 0 and f"removed {orphans[0]}" in done.stdout, done.stderr
    assert os.listdir(_store(journal)) == []
    out = zart.run(array_then_fail, _params(tmp_path), execution_id="e", journal=journal, display=False)
    assert np.array_equal(out["array"][1:], expected(50_000, "float64")[1:])


def test_gc_keeps_referenced_values_and_a_delete_frees_the_deleted_executions(journal, tmp_path):
    zart.run(array_then_fail, _params(tmp_path), execution_id="e", journal=journal, display=False)
    zart.run(array_then_fail, _params(tmp_path, n=60_000), execution_id="f", journal=journal, display=False)
    assert len(os.listdir(_store(journal))) == 4
    report = zart.gc(journal, min_age=0)
    assert report.removed == () and report.referenced == 4
    zart.delete("f", journal=journal)  # frees the files only it pointed to, at once
    assert len(os.listdir(_store(journal))) == 2
    assert zart.gc(journal, min_age=0).removed == ()
    assert np.array_equal(zart.load("e", "array#0", journal=journal), expected(50_000, "float64"))
    with pytest.raises(zart.ConfigurationError):
        zart.gc(journal, min_age=-1)


def test_gc_is_refused_while_another_process_holds_the_journal(journal, tmp_path):
    zart.run(array_then_fail, _params(tmp_path), execution_id="e", journal=journal, display=False)
    runtime.journal(journal).close()
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from zart_nb._runtime import runtime
        with runtime.journal({str(journal)!r}).hold():
            print("held", flush=True)
            time.sleep(60)
    """)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        proc = subprocess.run([sys.executable, "-m", "zart_nb", "--journal", str(journal), "gc", "--min-age", "0"],
                              capture_output=True, text=True, timeout=60,
                              env={**os.environ, "ZART_LOCK_TIMEOUT": "0.5"})
    finally:
        holder.kill()
        holder.wait()
        holder.stdout.close()
    assert proc.returncode == 1 and "zart gc runs when no other process holds the journal" in proc.stderr, proc.stderr
    assert len(os.listdir(_store(journal))) == 2


def test_a_completed_executions_lost_output_runs_its_body_again_with_its_steps_reused(journal, tmp_path, caplog):
    params = _params(tmp_path)
    zart.run(array_then_fail, params, execution_id="e", journal=journal, display=False)
    ref = values.decode_ref(runtime.journal(journal).pickled_execution("e").output)
    os.unlink(_store(journal) / ref.name)
    with caplog.at_level(logging.WARNING, logger="zart_nb"):
        out = zart.run(array_then_fail, params, execution_id="e", journal=journal, display=False)
    assert calls(tmp_path) == ["array", "small"]  # the body ran again; its steps were reused
    assert out["one"] == 2 and np.array_equal(out["array"][1:], expected(params["n"], "float64")[1:])
    warned = [record.getMessage() for record in caplog.records if "runs again" in record.getMessage()]
    assert len(warned) == 1 and ref.name in warned[0] and "execution 'e'" in warned[0], warned
    assert zart.journal(journal, live=False).execution_record("e").run_number == 2


# --- by reference -------------------------------------------------------------------------------------


def _args_sizes(journal: Path, execution_id: str) -> dict[str, int]:
    import duckdb

    runtime.journal(journal).close()
    with duckdb.connect(str(journal), read_only=True) as conn:
        rows = conn.execute("SELECT step_key, octet_length(args) FROM steps WHERE execution_id = ? AND current",
                            [execution_id]).fetchall()
    return dict(rows)


def test_a_stored_array_passed_to_later_steps_travels_by_reference(journal, tmp_path):
    from values_lib import array_by_reference

    params = _params(tmp_path, n=100_000)
    Path(params["flag"]).touch()
    with pytest.raises(zart.TaskError, match="failing after the totals"):
        zart.run(array_by_reference, params, execution_id="r", journal=journal, display=False)
    want = expected(params["n"], "float64")
    sizes = _args_sizes(journal, "r")
    assert all(sizes[f"total#{i}"] < 1000 for i in range(3)), sizes  # a reference, not 800 kB of array
    os.unlink(params["flag"])
    out = zart.run(array_by_reference, params, execution_id="r", journal=journal, display=False)
    assert out == [float(want[2:].sum())] * 3 + [float(want[1])]  # the workers' writes stayed theirs
    assert calls(tmp_path) == ["array", "total", "total", "total"]  # the replay's hashes matched: reused
    assert len(os.listdir(_store(journal))) == 1  # stored once, by the step that made it


def test_an_array_written_to_after_loading_travels_by_value(journal, tmp_path):
    from values_lib import array_by_reference

    params = {**_params(tmp_path, n=100_000), "write": True}
    out = zart.run(array_by_reference, params, execution_id="w", journal=journal, display=False)
    want = expected(params["n"], "float64")
    want[2] = 1000
    assert out[:3] == [float(want[2:].sum())] * 3  # the steps saw the body's write, not the stored file
    sizes = _args_sizes(journal, "w")
    assert all(sizes[f"total#{i}"] > 100_000 * 8 for i in range(3)), sizes


def test_among_many_stored_arrays_only_the_one_written_to_travels_by_value(journal):
    """Each argument's check reads its own mapping's pages: with 40 arrays mapped in the driver, the one
    written to (in its last page) goes by value with the write, the 39 others by reference."""
    from values_lib import pieces_by_reference

    n, count, written = 20_000, 40, 17
    out = zart.run(pieces_by_reference, {"n": n, "count": count, "written": written}, execution_id="m",
                   journal=journal, display=False)
    base = float(np.arange(n, dtype=np.float64).sum())
    assert out == [base + i * n - (n + i if i == written else 0) for i in range(count)]  # -1 in place of n-1+i
    sizes = _args_sizes(journal, "m")
    by_value = sorted(key for key, size in sizes.items() if key.startswith("piece-total") and size > n * 8)
    assert by_value == [f"piece-total#{written}"], sizes
    assert sum(key.startswith("piece-total") for key in sizes) == count


def test_by_reference_on_the_inline_executor(journal, tmp_path, inline):
    from values_lib import array_by_reference

    params = _params(tmp_path, n=100_000)
    out = zart.run(array_by_reference, params, execution_id="i", journal=journal, display=False)
    want = expected(params["n"], "float64")
    assert out == [float(want[2:].sum())] * 3 + [float(want[1])]
    assert all(size < 1000 for key, size in _args_sizes(journal, "i").items() if key.startswith("total")), \
        _args_sizes(journal, "i")
