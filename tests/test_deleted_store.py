"""A deleted execution's ``value_store=`` folder is never forgotten: deleting it frees the files only it
pointed to at once, and its folder stays on the list ``zart gc`` visits (not as its ``value_stores`` row,
which goes with it, so its id can be reused with another store or none) until gc finds nothing
unreferenced left there. Real worker processes write the files, a real DuckDB file journals them, and
``zart gc`` runs in a subprocess."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import processes
import pytest
from values_lib import array_then_fail, expected

import zart_nb as zart
from zart_nb._journal import stores as sql
from zart_nb._runtime import runtime

THRESHOLD = 4096
ORPHAN = "ab" * 16 + ".zv"  # a value file a process killed before journaling it left behind


@pytest.fixture(autouse=True)
def small_threshold(monkeypatch):
    monkeypatch.setenv("ZART_VALUE_THRESHOLD", str(THRESHOLD))
    monkeypatch.delenv("ZART_VALUE_STORE", raising=False)


def _params(tmp_path: Path, n: int = 50_000) -> dict:
    return {"n": n, "dtype": "float64", "counter_dir": str(tmp_path), "flag": str(tmp_path / "fail")}


def _files(store: Path) -> list[str]:
    """The value files of a store (not its marker or list)."""
    found = []
    for directory, _, names in os.walk(store):
        found += [os.path.relpath(os.path.join(directory, n), store) for n in names if not n.startswith(".")]
    return sorted(found)


def _orphan(store: Path, age: float = 0.0) -> Path:
    path = store / ORPHAN
    path.write_bytes(b"ZARTVAL1" + b"\0" * 100)
    os.chmod(path, 0o600)
    if age:
        os.utime(path, (path.stat().st_atime - age, path.stat().st_mtime - age))
    return path


def _listed(journal: Path) -> list[str]:
    """The value_store= folders the journal's reader lists (what zart stats counts and gc visits)."""
    return zart.journal(journal).value_stores()


def _gc_cli(journal: Path, *args: str) -> subprocess.CompletedProcess[str]:
    runtime.journal(journal).close()  # the file is free: zart gc runs on it, not through a monitor
    return subprocess.run([sys.executable, "-m", "zart_nb", "--journal", str(journal), "gc", *args],
                          capture_output=True, text=True, timeout=120,
                          env=processes.env(ZART_VALUE_THRESHOLD=str(THRESHOLD)))


def test_a_delete_frees_its_files_and_gc_visits_the_folder_until_nothing_of_it_is_left(journal, tmp_path):
    store = tmp_path / "store"
    zart.run(array_then_fail, _params(tmp_path), execution_id="e", journal=journal, display=False,
             value_store=store)
    written = _files(store)
    assert len(written) == 2  # the array and the workflow's output (it holds the array)
    orphan = _orphan(store)  # young: a gc keeps it (it may be being written)
    zart.delete("e", journal=journal)
    assert _files(store) == [ORPHAN]  # what only e pointed to is freed at once
    assert _listed(journal) == [str(store)]  # the row went with e, the folder is still visited
    kept = zart.gc(journal)
    assert kept.kept_young == (ORPHAN,) and orphan.exists()
    assert _listed(journal) == [str(store)]  # something unreferenced is left there: still visited
    dry = _gc_cli(journal, "--dry-run", "--min-age", "0")
    assert dry.returncode == 0, dry.stderr
    assert f"would remove {ORPHAN}" in dry.stdout and "1 value file(s)" in dry.stdout, dry.stdout
    assert orphan.exists() and _listed(journal) == [str(store)]  # a dry run removes and forgets nothing
    done = _gc_cli(journal, "--min-age", "0")
    assert done.returncode == 0, done.stderr
    assert f"removed {ORPHAN}" in done.stdout, done.stdout
    assert _files(store) == [] and _listed(journal) == []  # nothing of it left: no longer visited


def test_reusing_a_deleted_id_without_a_store_keeps_its_old_folder_for_gc(journal, tmp_path):
    store = tmp_path / "store"
    zart.run(array_then_fail, _params(tmp_path), execution_id="e", journal=journal, display=False,
             value_store=store)
    _orphan(store, age=7200)  # left by a crash long ago
    zart.delete("e", journal=journal)
    out = zart.run(array_then_fail, _params(tmp_path, n=60_000), execution_id="e", journal=journal, display=False)
    assert np.array_equal(out["array"][1:], expected(60_000, "float64")[1:])
    own = runtime.journal(journal).path.with_name(journal.name + ".values")
    assert len([n for n in os.listdir(own) if n.endswith(".zv")]) == 2  # the new e's values: its own store
    assert _listed(journal) == [str(store)]  # before, the reuse dropped the row and the folder was forgotten
    report = zart.gc(journal)
    assert ORPHAN in report.removed and _files(store) == []
    assert _listed(journal) == []
    np.testing.assert_array_equal(zart.load("e", "array#0", journal=journal), expected(60_000, "float64"))


def test_reusing_an_id_whose_row_an_older_version_kept_keeps_that_folder_for_gc(journal, tmp_path):
    old = tmp_path / "old-store"
    zart.run(array_then_fail, _params(tmp_path), execution_id="f", journal=journal, display=False,
             value_store=old)
    zart.delete("f", journal=journal)
    zart.gc(journal, min_age=0)
    assert _listed(journal) == []
    # An older zart_nb left the row of a deleted execution "e" in value_stores, and a file in its folder
    old_journal = runtime.journal(journal)
    old_journal.transact(sql.set_store, "e", str(old))
    _orphan(old, age=7200)
    assert _listed(journal) == [str(old)]
    zart.run(array_then_fail, _params(tmp_path), execution_id="e", journal=journal, display=False)  # no store
    assert _listed(journal) == [str(old)]  # the replaced row's folder is still visited ...
    assert ORPHAN in zart.gc(journal).removed  # ... so its file is freed
    assert _files(old) == [] and _listed(journal) == []


def test_retention_frees_a_deleted_executions_files_in_its_store_and_dry_run_reports_them(journal, tmp_path):
    store = tmp_path / "store"
    zart.run(array_then_fail, _params(tmp_path), execution_id="e", journal=journal, display=False,
             value_store=store)
    written = _files(store)
    assert len(written) == 2
    dry = _gc_cli(journal, "--keep", "0", "--dry-run")
    assert dry.returncode == 0, dry.stderr
    assert "would delete execution 'e'" in dry.stdout, dry.stdout
    assert all(f"would remove {name}" in dry.stdout for name in written), dry.stdout
    assert _files(store) == written and _listed(journal) == [str(store)]
    done = _gc_cli(journal, "--keep", "0")
    assert done.returncode == 0, done.stderr
    assert "deleted execution 'e'" in done.stdout and "2 value file(s)" in done.stdout, done.stdout
    assert _files(store) == [] and _listed(journal) == []
    with pytest.raises(zart.ExecutionNotFound):
        zart.load("e", "array#0", journal=journal)
