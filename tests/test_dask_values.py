"""Values above the threshold on Dask's LocalCluster (two worker processes): by default they come back to
the driver; with ``$ZART_VALUE_STORE`` naming where the workers reach the journal's value store, the
workers write them there themselves (arrays as value files, tables as Parquet) and only references
come back."""
from __future__ import annotations

import logging

import pytest

distributed = pytest.importorskip("distributed")
np = pytest.importorskip("numpy")
pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")

import zart_nb as zart  # noqa: E402
from zart_nb import _values as values  # noqa: E402
from zart_nb._runtime import runtime  # noqa: E402

N = 400_000  # 3.2 MB of float64: above the 1 MiB threshold


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


def _outputs(journal) -> dict[str, zart.StepRecord]:
    runtime.journal(journal).close()
    reader = zart.journal(journal, live=False)
    try:
        return {s.step_key: s for s in reader.list_steps("d")}
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


def test_a_shared_store_that_is_another_folder_is_not_used(client, journal, monkeypatch, tmp_path, caplog):
    other = tmp_path / "elsewhere"
    other.mkdir()
    values.folder_for(journal).parent.mkdir(parents=True, exist_ok=True)
    values.folder_for(journal).mkdir(mode=0o700)
    monkeypatch.setenv("ZART_VALUE_STORE", str(other))
    with caplog.at_level(logging.WARNING, logger="zart_nb"):
        assert zart.run(dask_values, N, execution_id="d", journal=journal, executor=client, display=False) == WANT
    assert any("ZART_VALUE_STORE" in r.getMessage() and "come back" in r.getMessage() for r in caplog.records)
    assert list(other.iterdir()) == [] and zart.stored("d", journal=journal) == []


def test_a_relative_shared_store_is_refused(client, journal, monkeypatch):
    monkeypatch.setenv("ZART_VALUE_STORE", "relative/store")
    with pytest.raises(zart.ConfigurationError, match="ZART_VALUE_STORE must be an absolute path"):
        zart.run(dask_values, N, execution_id="d", journal=journal, executor=client, display=False)
