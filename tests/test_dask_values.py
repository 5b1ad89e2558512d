"""Values above the threshold on Dask's LocalCluster (two worker processes): by default they come back to
the driver; with a shared value store (``value_store=``, ``$ZART_VALUE_STORE``), journaled per execution,
the workers write them there themselves (arrays as value files, tables as Parquet), only references come
back, and a stored array passed to later steps travels to them as its reference."""
from __future__ import annotations

import logging
import os
import stat
from pathlib import Path

import pytest

distributed = pytest.importorskip("distributed")
np = pytest.importorskip("numpy")
pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")

import zart_nb as zart  # noqa: E402
from zart_nb import _stores  # noqa: E402
from zart_nb import _values as values  # noqa: E402
from zart_nb._runtime import runtime  # noqa: E402

N = 400_000  # 3.2 MB of float64: above the default threshold


@pytest.fixture(scope="module")
def client():
    local = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                     silence_logs=logging.ERROR)
    client = distributed.Client(local, set_as_default=False)
    try:
        client.wait_for_workers(2, timeout=60)
        yield client
    finally:
        client.close()
        local.close()


@zart.step("array")
def array(n: int) -> object:
    import numpy

    return numpy.arange(n, dtype="float64")


@zart.step("table")
def table(n: int) -> object:
    import pandas

    return pandas.DataFrame({"k": [i % 3 for i in range(n)], "v": [float(i) for i in range(n)]})


@zart.workflow("dask-values")
def dask_values(n: int) -> list:
    big, frame = zart.wait([zart.schedule(array, n), zart.schedule(table, 100)])
    return [float(big.sum()), float(frame["v"].sum()), type(frame).__name__]


WANT = [float(N * (N - 1) / 2), float(99 * 100 / 2), "DataFrame"]


def _outputs(journal, execution_id: str = "d") -> dict[str, zart.StepRecord]:
    runtime.journal(journal).close()
    reader = zart.journal(journal, live=False)
    try:
        return {s.step_key: s for s in reader.list_steps(execution_id)}
    finally:
        reader.close()


def test_a_large_output_comes_back_to_the_driver_without_a_shared_store(client, journal, monkeypatch):
    monkeypatch.delenv("ZART_VALUE_STORE", raising=False)
    assert zart.run(dask_values, N, execution_id="d", journal=journal, executor=client, display=False) == WANT
    assert zart.stored("d", journal=journal) == []  # journaled in the row, as a pickle
    assert not values.folder_for(journal).exists()


def test_workers_write_large_outputs_and_tables_to_a_shared_store(client, journal, monkeypatch):
    folder = values.folder_for(journal)
    monkeypatch.setenv("ZART_VALUE_STORE", str(folder))
    assert zart.run(dask_values, N, execution_id="d", journal=journal, executor=client, display=False) == WANT
    stored = {s.step_key: s for s in zart.stored("d", journal=journal)}
    assert stored["array#0"].kind == "numpy.ndarray" and stored["array#0"].size > N * 8
    assert stored["table#0"].is_table and stored["table#0"].rows == 100
    assert (folder / stored["array#0"].file).exists()
    # A reference in the step's row: its worker wrote the file (the driver journals a Dask output inline).
    assert all(s.worker.startswith("tcp://") for s in _outputs(journal).values())
    # the re-run reuses both from the store
    assert zart.run(dask_values, N, execution_id="d", journal=journal, executor=client, display=False) == WANT


def test_the_value_store_run_option_names_the_shared_store(client, journal, monkeypatch, tmp_path):
    monkeypatch.setenv("ZART_VALUE_STORE", str(tmp_path / "not-this-one"))  # the run's option comes first
    folder = values.folder_for(journal)
    assert zart.run(dask_values, N, execution_id="d", journal=journal, executor=client, display=False,
                    value_store=folder) == WANT
    stored = {s.step_key: s for s in zart.stored("d", journal=journal)}
    assert stored["array#0"].kind == "numpy.ndarray" and (folder / stored["array#0"].file).exists()
    assert stored["table#0"].is_table
    assert all(s.worker.startswith("tcp://") for s in _outputs(journal).values())  # written by its worker
    assert not (tmp_path / "not-this-one").exists()
    # Without the option (and without the variable), the same client's next run brings outputs back.
    monkeypatch.delenv("ZART_VALUE_STORE")
    assert zart.run(dask_values, N + 1, execution_id="e", journal=journal, executor=client,
                    display=False) == [float((N + 1) * N / 2), *WANT[1:]]
    assert zart.stored("e", journal=journal) == []


@zart.workflow("dask-values-fail")
def dask_values_fail(params: dict) -> list:
    """``dask_values``, failing at its end while ``params["flag"]`` exists."""
    out = dask_values(params["n"])
    if os.path.exists(params["flag"]):
        raise RuntimeError("failing after the stored values")
    return out


def test_an_execution_keeps_its_value_store_for_every_later_run_and_reader(client, journal, monkeypatch, tmp_path):
    shared = tmp_path / "shared"  # another folder than <journal>.values: created owner-only
    monkeypatch.setenv("ZART_VALUE_STORE", str(shared))
    params = {"n": N, "flag": str(tmp_path / "fail")}
    Path(params["flag"]).touch()
    with pytest.raises(zart.TaskError, match="failing after the stored values"):
        zart.run(dask_values_fail, params, execution_id="d", journal=journal, executor=client, display=False)
    assert stat.S_IMODE(shared.stat().st_mode) == 0o700
    files = sorted(p.name for p in shared.iterdir() if p.name != _stores.MARKER)  # not the journal's claim
    assert len(files) == 2 and "tables" in files  # the array's file and the table's folder, written by the workers
    # The variable now names another folder: the journaled store is the execution's, whatever it says.
    later = tmp_path / "later"
    monkeypatch.setenv("ZART_VALUE_STORE", str(later))
    os.unlink(params["flag"])
    assert zart.run(dask_values_fail, params, execution_id="d", journal=journal, executor=client,
                    display=False) == WANT
    reused = _outputs(journal)
    assert {s.step_key: s.run_number for s in reused.values()} == {"array#0": 1, "table#0": 1}  # loaded, not rerun
    assert not later.exists()
    assert os.listdir(values.folder_for(journal)) == [".zart-stores"]  # the list of its stores alone
    stored = {s.step_key: s for s in zart.stored("d", journal=journal)}
    assert {s.store for s in stored.values()} == {str(shared)}
    assert stored["table#0"].rows == 100 and stored["array#0"].kind == "numpy.ndarray"  # peeked in that folder
    assert float(zart.load("d", "array#0", journal=journal).sum()) == WANT[0]
    assert zart.sql('select sum(v) as s from "d/table#0"', journal=journal)["s"].tolist() == [WANT[1]]
    assert zart.scrub(journal).checked == 2
    orphan = shared / ("0" * 32 + values.SUFFIX)
    orphan.write_bytes(b"x")
    report = zart.gc(journal, min_age=0)
    assert report.removed == (orphan.name,) and not orphan.exists() and report.referenced == 2
    # Naming another folder for this execution is refused: its values are not there.
    with pytest.raises(zart.ConfigurationError, match="keeps its stored values in"):
        zart.run(dask_values_fail, params, execution_id="d", journal=journal, executor=client, display=False,
                 value_store=later)
    # The folder gets the store's trust checks: open to others, its files are refused.
    shared.chmod(0o777)
    try:
        with pytest.raises(zart.ValueStoreError, match="writable by others"):
            zart.load("d", "array#0", journal=journal)
    finally:
        shared.chmod(0o700)


@zart.step("big")
def big(n: int) -> object:
    import numpy

    return numpy.arange(n, dtype="float64")


@zart.step("add")
def add(array: object, i: int) -> float:
    return float(array[i:].sum())  # type: ignore[index]


@zart.workflow("dask-by-reference")
def dask_by_reference(n: int) -> list:
    array = zart.wait([zart.schedule(big, n)])[0]
    return zart.wait([zart.schedule(add, array, i) for i in range(3)])


def _args_sizes(journal, execution_id: str) -> dict[str, int]:
    import duckdb

    runtime.journal(journal).close()
    with duckdb.connect(str(journal), read_only=True) as conn:
        rows = conn.execute("SELECT step_key, octet_length(args) FROM steps WHERE execution_id = ? AND current",
                            [execution_id]).fetchall()
    return dict(rows)


def test_a_stored_array_goes_to_later_steps_on_the_cluster_by_reference(client, journal, tmp_path):
    shared = tmp_path / "shared"
    n = 2_500_000  # 20 MB of float64
    want = [float(sum(range(i, n))) for i in range(3)]
    assert zart.run(dask_by_reference, n, execution_id="r", journal=journal, executor=client, display=False,
                    value_store=shared) == want
    assert [p.name for p in shared.iterdir() if p.name.endswith(values.SUFFIX)] and \
        len([p for p in shared.iterdir() if p.name != _stores.MARKER]) == 1  # stored once, by the worker that made it
    sizes = _args_sizes(journal, "r")
    assert all(sizes[f"add#{i}"] < 1000 for i in range(3)), sizes  # a reference each, not 20 MB
    steps = _outputs(journal, "r")
    assert all(steps[f"add#{i}"].worker.startswith("tcp://") for i in range(3))


def test_a_relative_shared_store_is_refused(client, journal, monkeypatch):
    monkeypatch.setenv("ZART_VALUE_STORE", "relative/store")
    with pytest.raises(zart.ConfigurationError, match="ZART_VALUE_STORE must be an absolute path"):
        zart.run(dask_values, N, execution_id="d", journal=journal, executor=client, display=False)
