"""An execution's ``value_store=`` is journaled (schema 11): every later run (a resume in Python, ``zart
resume`` in another process, a fork) and every reader (``zart.load``, ``zart show``, ``zart.stored``,
retention and ``zart gc``) uses that folder, whatever ``$ZART_VALUE_STORE`` says then (real worker
processes, a real DuckDB file, the CLI in subprocesses)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from steps_lib import calls
from values_lib import array_then_fail, expected

import zart_nb as zart
from zart_nb import _values as values
from zart_nb._runtime import runtime

THRESHOLD = 4096
TESTS = str(Path(__file__).parent)


def _values_in(store) -> list[str]:
    """The stored values' files of a store (not its marker, ``_stores.MARKER``)."""
    return sorted(name for name in os.listdir(store) if not name.startswith("."))


@pytest.fixture(autouse=True)
def small_threshold(monkeypatch):
    monkeypatch.setenv("ZART_VALUE_THRESHOLD", str(THRESHOLD))
    monkeypatch.delenv("ZART_VALUE_STORE", raising=False)


def _params(tmp_path: Path) -> dict:
    return {"n": 50_000, "dtype": "float64", "counter_dir": str(tmp_path), "flag": str(tmp_path / "fail")}


def _cli(journal: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "zart_nb", "--journal", str(journal), *args], capture_output=True,
                          text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": TESTS, "ZART_VALUE_THRESHOLD": str(THRESHOLD), **env})


def _failed_run(journal: Path, tmp_path: Path, store: Path) -> dict:
    params = _params(tmp_path)
    Path(params["flag"]).touch()
    with pytest.raises(zart.TaskError, match="failing after the array step"):
        zart.run(array_then_fail, params, execution_id="e", journal=journal, display=False, value_store=store)
    os.unlink(params["flag"])
    runtime.journal(journal).close()
    return params


def test_zart_resume_in_another_process_uses_the_journaled_store_not_the_variable(journal, tmp_path):
    store, elsewhere = tmp_path / "store", tmp_path / "elsewhere"
    _failed_run(journal, tmp_path, store)
    assert len(_values_in(store)) == 1  # the array, written by its worker there
    resumed = _cli(journal, "resume", "e", env={"ZART_VALUE_STORE": str(elsewhere)})
    assert resumed.returncode == 0, resumed.stderr
    assert calls(tmp_path) == ["array", "small"]  # both reused: the array was loaded from the journaled store
    assert not elsewhere.exists()
    assert os.listdir(values.folder_for(journal)) == [".zart-stores"]  # the list of its stores alone
    assert len(_values_in(store)) == 2  # and the workflow's output (it holds the array) went there too
    shown = _cli(journal, "show", "e", "--json", env={"ZART_VALUE_STORE": str(elsewhere)})
    assert shown.returncode == 0, shown.stderr
    listed = json.loads(shown.stdout)["stored"]
    assert [(s["step_key"], s["store"]) for s in listed] == [("array#0", str(store))]
    text = _cli(journal, "show", "e", env={})
    assert f"Stored values (1, in {store})" in text.stdout, text.stdout
    got = zart.load("e", "array#0", journal=journal)
    assert np.array_equal(got, expected(50_000, "float64"))
    out = zart.run(array_then_fail, _params(tmp_path), execution_id="e", journal=journal, display=False)
    assert out["one"] == 2 and np.array_equal(out["array"][1:], got[1:])  # the completed output, from the store


def test_a_fork_keeps_its_sources_store_and_retention_frees_it_there(journal, tmp_path):
    store = tmp_path / "store"
    params = _failed_run(journal, tmp_path, store)
    zart.fork("e", "small#0", new_id="f", journal=journal).result(60)
    assert calls(tmp_path) == ["array", "small", "small"]  # the fork reused the array from the source's store
    assert [s.store for s in zart.stored("f", journal=journal)] == [str(store)]
    with pytest.raises(zart.ConfigurationError, match="keeps its stored values in"):
        zart.run(array_then_fail, params, execution_id="e", journal=journal, display=False,
                 value_store=tmp_path / "other")
    zart.run(array_then_fail, params, execution_id="e", journal=journal, display=False)
    before = set(_values_in(store))
    assert len(before) == 3  # the array (shared by both), and each execution's output
    report = zart.garbage_collect(keep=0, journal=journal, min_age=0)
    assert set(report.executions) == {"e", "f"} and report.files == 3
    assert _values_in(store) == []  # each file found in the execution's own store
    assert zart.gc(journal, min_age=0).removed == ()
