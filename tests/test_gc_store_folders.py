"""``zart gc`` and retention match referenced files folder by folder: a journaled reference keeps the file
of its name in the value store of its own execution only. A file of another folder with that name (a copy,
or what a killed process left in a deleted execution's old store when its id is reused with another store)
is an orphan of that folder. Real worker processes write the values into two ``value_store=`` folders of
one real DuckDB journal; ``zart gc`` runs in a subprocess too."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import processes
import pytest
from values_lib import array_then_fail, expected

import zart_nb as zart
from zart_nb._runtime import runtime

THRESHOLD = 4096
HOUR = 3600.0


@pytest.fixture(autouse=True)
def small_threshold(monkeypatch):
    monkeypatch.setenv("ZART_VALUE_THRESHOLD", str(THRESHOLD))
    monkeypatch.delenv("ZART_VALUE_STORE", raising=False)


def _files(store: Path) -> set[str]:
    """The value files of a store (not its marker or list)."""
    return {name for name in os.listdir(store) if not name.startswith(".")}


def _run(journal: Path, tmp_path: Path, execution_id: str, store: Path) -> set[str]:
    """Run ``execution_id`` with ``value_store=store``: the files it wrote there."""
    before = _files(store) if store.exists() else set()
    params = {"n": 50_000, "dtype": "float64", "counter_dir": str(tmp_path), "flag": str(tmp_path / "fail")}
    zart.run(array_then_fail, params, execution_id=execution_id, journal=journal, display=False, value_store=store)
    written = _files(store) - before
    assert len(written) == 2  # the array and the workflow's output (it holds the array)
    return written


def _copy_into(names: set[str], source: Path, target: Path, age: float) -> set[str]:
    """Copies of ``source``'s files ``names`` in ``target``, under the same names, ``age`` seconds old."""
    for name in names:
        copy = target / name
        shutil.copyfile(source / name, copy)
        os.chmod(copy, 0o600)
        stat = copy.stat()
        os.utime(copy, (stat.st_atime - age, stat.st_mtime - age))
    return set(names)


def _loads(journal: Path, execution_id: str) -> None:
    got = zart.load(execution_id, "array#0", journal=journal)
    np.testing.assert_array_equal(got, expected(50_000, "float64"))


def test_gc_removes_a_file_named_as_one_referenced_only_in_another_folder(journal, tmp_path):
    """Executions ``a`` and ``b`` keep their values in folders A and B; each folder also holds old copies
    of the other's files, under the same names, which no reference of its own points to. gc removes the
    copies, both folders' referenced files stay, and both executions' values still load. (Before, a
    name referenced anywhere kept a file of that name in every folder: the copies were never freed.)"""
    folder_a, folder_b = tmp_path / "store-a", tmp_path / "store-b"
    in_a, in_b = _run(journal, tmp_path, "a", folder_a), _run(journal, tmp_path, "b", folder_b)
    copies = _copy_into(in_b, folder_b, folder_a, HOUR) | _copy_into(in_a, folder_a, folder_b, HOUR)
    runtime.journal(journal).close()  # the file is free: zart gc runs on it
    dry = subprocess.run([sys.executable, "-m", "zart_nb", "--journal", str(journal), "gc", "--dry-run"],
                         capture_output=True, text=True, timeout=120,
                         env=processes.env(ZART_VALUE_THRESHOLD=str(THRESHOLD)))
    assert dry.returncode == 0, dry.stderr
    assert "4 value file(s)" in dry.stdout and "(4 of them orphans)" in dry.stdout, dry.stdout
    assert all(f"would remove {name}" in dry.stdout for name in copies), dry.stdout
    report = zart.gc(journal)
    assert sorted(report.removed) == sorted(copies) and report.referenced == 4 and report.kept_young == ()
    assert _files(folder_a) == in_a and _files(folder_b) == in_b
    _loads(journal, "a")
    _loads(journal, "b")


def test_retention_frees_a_deleted_executions_files_in_its_own_folder_only(journal, tmp_path):
    """Retention deletes ``a`` (kept: the newest, ``b``): its files go from folder A. Folder B holds young
    copies under ``a``'s file names, which no reference points to: orphans of B, too young to remove (they
    may be being written), so they stay. (Before, each of ``a``'s names was removed from every folder,
    whatever its age.) A later gc with no minimum age removes them."""
    folder_a, folder_b = tmp_path / "store-a", tmp_path / "store-b"
    in_a = _run(journal, tmp_path, "a", folder_a)
    in_b = _run(journal, tmp_path, "b", folder_b)
    young = _copy_into(in_a, folder_a, folder_b, 0.0)
    report = zart.garbage_collect(journal, keep=1)
    assert report.executions == ("a",) and report.files == 2 and sorted(report.removed_files) == sorted(in_a)
    assert report.orphans == 0 and report.kept_young == 2
    assert _files(folder_a) == set() and _files(folder_b) == in_b | young
    _loads(journal, "b")
    later = zart.gc(journal, min_age=0)
    assert sorted(later.removed) == sorted(young) and _files(folder_b) == in_b
    _loads(journal, "b")
