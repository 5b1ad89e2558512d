"""A workflow's table input (a pandas DataFrame or a pyarrow Table given to ``zart.run``) is a Parquet file of
the value store, ``tables/<execution id>/workflow:input.parquet``, as its table output is: written once, read
back with its dtypes and index by every run (a resume in another process too, which reuses the steps that
took it), queryable as ``"<execution id>/workflow:input"`` with ``zart.sql`` and with the plain ``duckdb``
package, kept and freed by gc, retention and deletion as the output's file is; a frame Parquet cannot hold
stays a pickle and says why (real worker processes, a real DuckDB file, the CLI in subprocesses)."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pd = pytest.importorskip("pandas")
pa = pytest.importorskip("pyarrow")

from conftest import wait_until  # noqa: E402
from processes import env  # noqa: E402
from table_input_lib import FLAG, frame_in, frame_in_two, frame_in_writes  # noqa: E402
from workflow_values_lib import frame_of  # noqa: E402

import zart_nb as zart  # noqa: E402
from zart_nb import _values as values  # noqa: E402
from zart_nb._monitor import endpoint as endpoint_file  # noqa: E402
from zart_nb._runtime import runtime  # noqa: E402

N = 1000  # 14 kB of Parquet: a table input goes to Parquet whatever its size, as a table output does
INPUT = "tables/t/workflow:input.parquet"


@pytest.fixture(autouse=True)
def threshold(monkeypatch, tmp_path):
    monkeypatch.delenv("ZART_VALUE_THRESHOLD", raising=False)  # the default (256 KiB): N rows are below it
    monkeypatch.delenv("ZART_VALUE_STORE", raising=False)
    monkeypatch.setenv(FLAG, str(tmp_path / "flag"))


def _row(journal, execution_id: str) -> tuple[bytes, str, str]:
    """The journaled ``(input, input_hash, input_preview)`` of an execution (never unpickled)."""
    j = runtime.journal(journal)
    with j.hold():
        row = j.query(lambda conn: conn.execute(
            "SELECT input, input_hash, input_preview FROM executions WHERE execution_id = ?",
            [execution_id]).fetchone())
    j.close()
    return row


def _runs_from(j, execution_id: str) -> list[tuple[int, int]]:
    with j.hold():
        rows = j.query(lambda conn: conn.execute(
            "SELECT executed, reused FROM runs WHERE execution_id = ? ORDER BY run_number",
            [execution_id]).fetchall())
    return [tuple(row) for row in rows]


def _zart(*args: str, cwd=None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "zart_nb", *args], capture_output=True, text=True, timeout=120,
                          env=env(ZART_LOCK_TIMEOUT="5"), cwd=cwd)


def _frame(factor: float = 2.0) -> pd.DataFrame:
    return frame_of(np.linspace(0, 1, N), factor)  # categorical, tz-aware timestamps, nullable ints, an index


def test_a_table_input_is_parquet_read_back_on_every_run_and_a_resume_reuses_its_step(journal, tmp_path):
    frame = _frame()
    (tmp_path / "flag").touch()
    with pytest.raises(zart.TaskError, match="failing after the step"):
        zart.run(frame_in, frame, execution_id="t", journal=journal, display=False)
    blob, input_hash, preview = _row(journal, "t")
    ref = values.decode_ref(blob)
    assert (ref.name, ref.kind) == (INPUT, "pandas.DataFrame")
    path = values.folder_for(journal) / INPUT
    assert path.stat().st_size == ref.size and oct(path.stat().st_mode & 0o777) == "0o600"
    assert preview.startswith(f"<pandas.DataFrame rows={N:,} columns=4> [stored as Parquet: ")
    assert "cat: category" in preview and "Europe/Paris]" in preview and "count: Int64" in preview
    written = (path.stat().st_ino, path.stat().st_mtime_ns)

    # Run again in this process with the same frame: the file is kept (written once), the step reused
    with pytest.raises(zart.TaskError, match="failing after the step"):
        zart.run(frame_in, frame, execution_id="t", journal=journal, display=False)
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == written
    assert _row(journal, "t")[:2] == (blob, input_hash)

    # Resumed by another process, which loads the input from the file: the step that took it is reused
    (tmp_path / "flag").unlink()
    resumed = _zart("resume", "t", "--journal", str(journal))
    assert resumed.returncode == 0, resumed.stderr
    assert _runs_from(runtime.journal(journal), "t") == [(1, 0), (0, 1), (0, 1)]
    runtime.journal(journal).close()
    assert _row(journal, "t")[:2] == (blob, input_hash)  # its journaled hash kept, not the loaded frame's
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == written

    # What the body saw on that resume (its output): the same frame, dtypes and index as the caller's
    out = zart.run(frame_in, frame, execution_id="t", journal=journal, display=False)  # the same input: done
    assert out["kind"] == "pandas.DataFrame" and out["total"] == float(frame["x"].sum())
    pd.testing.assert_frame_equal(out["frame"], frame)
    assert [str(d) for d in out["frame"].dtypes] == [str(d) for d in frame.dtypes]
    assert out["frame"].index.name == "row" and str(out["frame"]["ts"].dtype).endswith(", Europe/Paris]")
    assert _runs_from(runtime.journal(journal), "t") == [(1, 0), (0, 1), (0, 1)]  # no run: it completed
    runtime.journal(journal).close()
    pd.testing.assert_frame_equal(zart.load("t", "workflow:input", journal=journal), frame)  # from its file
    assert zart.load("t", "workflow:output", journal=journal)["total"] == float(frame["x"].sum())


def test_the_body_gets_the_stored_frame_on_the_first_run_too(journal):
    frame = _frame()
    out = zart.run(frame_in, frame, execution_id="t", journal=journal, display=False)
    seen = out["frame"]
    pd.testing.assert_frame_equal(seen, frame)
    assert seen is not frame  # read back from its file, as a resume gets it
    assert (values.folder_for(journal) / INPUT).is_file()


def test_a_written_input_goes_to_the_step_as_written_and_the_file_keeps_the_given_one(journal):
    frame = _frame()
    out = zart.run(frame_in_writes, frame, execution_id="t", journal=journal, display=False)
    assert out["first"] == -1000.0
    assert out["total"] == float(frame["x"].sum() - frame["x"].iloc[0] - 1000.0)  # not the file's frame
    assert frame["x"].iloc[0] == 0.0  # the caller's frame is not the one the body wrote to
    got = zart.sql('select sum(x) as s, min(x) as m from "t/workflow:input"', journal=journal)
    assert got["s"].tolist() == [pytest.approx(float(frame["x"].sum()))] and got["m"].tolist() == [0.0]


def test_a_pyarrow_table_input_round_trips_as_a_pyarrow_table(journal):
    table = pa.table({"x": np.arange(N, dtype=np.float64), "name": [f"n{i % 7}" for i in range(N)]})
    out = zart.run(frame_in, table, execution_id="t", journal=journal, display=False)
    assert out["kind"] == "pyarrow.Table" and out["frame"].equals(table) and out["total"] == float(N * (N - 1) / 2)
    assert values.decode_ref(_row(journal, "t")[0]).kind == "pyarrow.Table"


def test_a_polars_input_round_trips_as_polars_and_a_resume_reuses_its_step(journal, tmp_path):
    pl = pytest.importorskip("polars")
    frame = pl.from_pandas(_frame().reset_index())
    (tmp_path / "flag").touch()
    with pytest.raises(zart.TaskError, match="failing after the step"):
        zart.run(frame_in, frame, execution_id="t", journal=journal, display=False)
    blob, input_hash, preview = _row(journal, "t")
    assert (values.decode_ref(blob).name, values.decode_ref(blob).kind) == (INPUT, "polars.DataFrame")
    assert preview.startswith(f"<polars.DataFrame rows={N:,} columns=5> [stored as Parquet: ")
    (tmp_path / "flag").unlink()
    resumed = _zart("resume", "t", "--journal", str(journal))
    assert resumed.returncode == 0, resumed.stderr
    assert _runs_from(runtime.journal(journal), "t") == [(1, 0), (0, 1)]  # the step that took it reused
    runtime.journal(journal).close()
    assert _row(journal, "t")[:2] == (blob, input_hash)
    out = zart.run(frame_in, frame, execution_id="t", journal=journal, display=False)  # completed: its output
    assert out["kind"] == "polars.DataFrame" and out["frame"].equals(frame)
    assert out["frame"].schema == frame.schema and out["total"] == float(frame["x"].sum())
    loaded = zart.load("t", "workflow:input", journal=journal)
    assert isinstance(loaded, pl.DataFrame) and loaded.equals(frame)


def test_the_input_is_queried_with_zart_sql_and_with_plain_duckdb(journal, tmp_path):
    frames = {"t": _frame(2.0), "u": _frame(3.0)}
    for execution_id, frame in frames.items():
        zart.run(frame_in, frame, execution_id=execution_id, journal=journal, display=False)
    runtime.journal(journal).close()
    got = zart.sql('select cat, count(*) as n, sum("count") as c from "t/workflow:input" group by cat order by cat',
                   journal=journal)
    want = frames["t"].groupby("cat", observed=True).agg(n=("x", "size"), c=("count", "sum")).sort_index()
    assert got["cat"].tolist() == ["a", "b", "c"]
    assert got["n"].tolist() == [want.loc[c, "n"] for c in "abc"]
    assert got["c"].tolist() == [want.loc[c, "c"] for c in "abc"]
    listed = zart.sql("select view, step_key, kind from zart_tables where step_key = 'workflow:input' order by 1",
                      journal=journal)
    assert listed.values.tolist() == [["t/workflow:input", "workflow:input", "pandas.DataFrame"],
                                      ["u/workflow:input", "workflow:input", "pandas.DataFrame"]]
    cli = _zart("sql", 'select max(x) as top from "u/workflow:input"', "--journal", str(journal), "--json")
    assert cli.returncode == 0, cli.stderr
    assert json.loads(cli.stdout)["rows"] == [{"top": 3.0}]

    # The plain duckdb package, zart_nb not imported, from the documented relative layout of the store
    moved = tmp_path / "elsewhere"
    values.folder_for(journal).rename(moved)
    code = ("import sys, duckdb\n"
            "rows = duckdb.sql(\"select filename.split('/')[-2] as id, count(*), max(x) from \"\n"
            "    \"read_parquet('tables/*/workflow:input.parquet', filename=true) group by 1 order by 1\").fetchall()\n"
            "assert 'zart_nb' not in sys.modules\n"
            "print(rows)\n")
    plain = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=moved)
    assert plain.returncode == 0, plain.stderr
    assert plain.stdout.strip() == "[('t', 1000, 2.0), ('u', 1000, 3.0)]"


def test_zart_show_and_the_read_api_show_the_inputs_schema_and_rows(journal):
    zart.run(frame_in, _frame(), execution_id="t", journal=journal, display=False)
    runtime.journal(journal).close()
    shown = _zart("show", "t", "--journal", str(journal))
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout[shown.stdout.index("Stored values (1)"):].splitlines()
    assert text[1].startswith("  workflow:input: pandas.DataFrame, ") and f"{N:,} rows x 5 columns" in text[1]
    assert text[2].startswith("    schema: x: double, cat: dictionary<") and ", tz=Europe/Paris]" in text[2]
    assert text[3].split() == ["x", "cat", "ts", "count", "row"]
    (stored,) = json.loads(_zart("show", "t", "--journal", str(journal), "--json", "--all").stdout)["stored"]
    assert (stored["step_key"], stored["rows"], stored["table"], stored["file"]) == ("workflow:input", N, True, INPUT)
    (found,) = zart.stored("t", journal=journal)
    assert (found.step_key, found.kind, found.rows, found.head[0][1]) == ("workflow:input", "pandas.DataFrame", N, "b")
    assert zart.stored("t", "workflow:input", journal=journal) == [found]
    html = zart.show("t", journal=journal)._repr_html_()
    section = html[html.index("<h4>Stored values</h4>"):]
    assert "<code>workflow:input</code>: pandas.DataFrame" in section and f"{N:,} rows x 5 columns" in section


def test_gc_verify_stats_deletion_and_retention_keep_or_free_the_inputs_file(journal):
    for execution_id in ("t", "u"):
        zart.run(frame_in, _frame(), execution_id=execution_id, journal=journal, display=False)
    runtime.journal(journal).close()
    store = values.folder_for(journal)
    files = {e: store / f"tables/{e}/workflow:input.parquet" for e in ("t", "u")}
    assert zart.gc(journal, min_age=0).removed == () and all(f.is_file() for f in files.values())
    checked = zart.scrub(journal)
    assert checked.ok and checked.checked == 2 and checked.bytes == sum(f.stat().st_size for f in files.values())
    stats = json.loads(_zart("stats", "--journal", str(journal), "--json").stdout)
    assert (stats["store_files"], stats["store_bytes"]) == (2, checked.bytes)

    size = files["u"].stat().st_size
    zart.delete("t", journal=journal)
    assert not files["t"].exists() and files["u"].is_file()
    report = zart.garbage_collect(journal, keep=0, min_age=0)
    assert report.executions == ("u",) and (report.files, report.bytes) == (1, size)
    assert not files["u"].exists()

    # A damaged input file is found by `zart gc --verify`
    zart.run(frame_in, _frame(), execution_id="v", journal=journal, display=False)
    runtime.journal(journal).close()
    damaged = store / "tables/v/workflow:input.parquet"
    data = bytearray(damaged.read_bytes())
    data[100] ^= 0xFF
    damaged.write_bytes(bytes(data))
    verify = _zart("gc", "--verify", "--journal", str(journal))
    assert verify.returncode != 0 and "tables/v/workflow:input.parquet" in verify.stdout + verify.stderr


def test_a_changed_input_is_written_beside_the_journaled_one_so_a_crash_in_between_loses_nothing(journal, tmp_path):
    """A run with another input writes it beside the file the journal points to, never over it: killed
    before the run is journaled, the execution still resumes with its own input; the orphan is gc's."""
    first, second, third = _frame(2.0), _frame(3.0), _frame(4.0)
    (tmp_path / "flag").touch()
    with pytest.raises(zart.TaskError, match="failing after the step"):
        zart.run(frame_in, first, execution_id="t", journal=journal, display=False)
    blob, input_hash, _ = _row(journal, "t")
    store = values.folder_for(journal)
    plain = store / INPUT
    written = (plain.stat().st_ino, plain.stat().st_mtime_ns, plain.read_bytes())

    killed = textwrap.dedent(f"""
        import os, sys
        import zart_nb as zart
        from zart_nb._journal.journal import Journal
        from table_input_lib import frame_in
        from workflow_values_lib import frame_of
        import numpy as np
        def begin_run(*args, **kwargs):  # the new input's file is written; the run is not journaled yet
            os._exit(9)
        Journal.begin_run = begin_run
        zart.run(frame_in, frame_of(np.linspace(0, 1, {N}), 3.0), execution_id="t", journal=sys.argv[1],
                 display=False)
    """)
    proc = subprocess.run([sys.executable, "-c", killed, str(journal)], capture_output=True, text=True,
                          timeout=120, env=env())
    assert proc.returncode == 9, proc.stderr
    beside = sorted(p.name for p in (store / "tables/t").glob("workflow:input.*.parquet"))
    assert len(beside) == 1 and beside[0].startswith("workflow:input.") and len(beside[0].split(".")) == 3
    assert (plain.stat().st_ino, plain.stat().st_mtime_ns, plain.read_bytes()) == written  # not replaced
    assert _row(journal, "t")[:2] == (blob, input_hash)

    # Resumed in another process: it runs with its own input, the step that took it reused
    (tmp_path / "flag").unlink()
    resumed = _zart("resume", "t", "--journal", str(journal))
    assert resumed.returncode == 0, resumed.stderr
    assert _runs_from(runtime.journal(journal), "t") == [(1, 0), (0, 1)]
    runtime.journal(journal).close()
    out = zart.run(frame_in, first, execution_id="t", journal=journal, display=False)  # completed: its output
    assert out["total"] == float(first["x"].sum())
    pd.testing.assert_frame_equal(out["frame"], first)
    assert zart.gc(journal, min_age=0).removed == (f"tables/t/{beside[0]}",)  # the killed run's orphan

    # Run with another input for real: written beside the journaled one, which is then freed
    out = zart.run(frame_in, second, execution_id="t", journal=journal, display=False)
    assert out["total"] == float(second["x"].sum())
    now = values.decode_ref(_row(journal, "t")[0]).name
    assert now.startswith("tables/t/workflow:input.") and now != INPUT and not plain.exists()
    assert [p.name for p in (store / "tables/t").glob("workflow:input*")] == [now.rsplit("/", 1)[1]]
    got = zart.sql('select sum(x) as s from "t/workflow:input"', journal=journal)["s"].tolist()
    assert got == [pytest.approx(float(second["x"].sum()))]
    # and the next one goes back to the plain name, freeing that one
    out = zart.run(frame_in, third, execution_id="t", journal=journal, display=False)
    assert out["total"] == float(third["x"].sum())
    assert values.decode_ref(_row(journal, "t")[0]).name == INPUT
    assert [p.name for p in (store / "tables/t").glob("workflow:input*")] == ["workflow:input.parquet"]


def test_a_frame_parquet_cannot_hold_stays_a_pickle_and_says_why(journal, monkeypatch):
    mixed = pd.DataFrame({"x": np.arange(300, dtype=np.float64), "m": [1, "a", 2.5] * 100})
    out = zart.run(frame_in, mixed, execution_id="small", journal=journal, display=False)
    pd.testing.assert_frame_equal(out["frame"], mixed)
    blob, _, preview = _row(journal, "small")
    assert not values.is_ref(blob)  # small: a pickle in the row
    assert preview.startswith("<pandas.DataFrame rows=300 columns=2> [a pickle, not Parquet: ArrowInvalid")

    monkeypatch.setenv("ZART_VALUE_THRESHOLD", "1000")
    out = zart.run(frame_in, mixed, execution_id="large", journal=journal, display=False)
    pd.testing.assert_frame_equal(out["frame"], mixed)
    blob, _, preview = _row(journal, "large")
    assert values.decode_ref(blob).name.endswith(".zv")  # large: a value file of the store, as a pickle
    assert "[a pickle, not Parquet: ArrowInvalid" in preview and "[stored:" in preview
    runtime.journal(journal).close()
    assert zart.sql("select view from zart_tables", journal=journal).empty
    assert not (values.folder_for(journal) / "tables").exists()


def test_a_fork_keeps_the_input_in_a_file_of_its_own(journal):
    frame = _frame()
    zart.run(frame_in, frame, execution_id="t", journal=journal, display=False)
    out = zart.fork("t", "total#0", new_id="f", journal=journal).result(60)
    pd.testing.assert_frame_equal(out["frame"], frame)
    assert values.decode_ref(_row(journal, "f")[0]).name == "tables/f/workflow:input.parquet"
    assert _row(journal, "f")[1] == _row(journal, "t")[1]  # the same input: the same journaled hash
    zart.delete("t", journal=journal)
    assert not (values.folder_for(journal) / INPUT).exists()
    assert zart.sql('select count(*) as n from "f/workflow:input"', journal=journal)["n"].tolist() == [N]


def test_a_fork_reuses_the_copied_step_that_took_the_input(journal):
    frame = _frame()
    assert zart.run(frame_in_two, frame, execution_id="t", journal=journal, display=False) == frame["x"].sum() / 2
    assert zart.fork("t", "half#0", new_id="f", journal=journal).result(60) == frame["x"].sum() / 2
    assert _runs_from(runtime.journal(journal), "f") == [(1, 1)]  # total#0 reused: its input is the same


def test_no_step_can_take_the_inputs_key():
    from zart_nb._replay import RESERVED_PREFIXES

    assert values.INPUT_KEY == "workflow:input" and values.INPUT_KEY.startswith(RESERVED_PREFIXES)
    with pytest.raises(zart.DefinitionError, match="'workflow:input' starts with 'workflow:'"):
        zart.step(values.INPUT_KEY)(lambda x: x)


def test_a_running_executions_input_is_read_through_its_engines_monitor(tmp_path):
    journal = tmp_path / "j.duckdb"
    driver = subprocess.Popen([sys.executable, str(Path(__file__).parent / "scripts" / "tables_driver.py"),
                               str(journal), str(tmp_path), "input"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, cwd=tmp_path)
    try:
        wait_until(lambda: endpoint_file.read(journal), timeout=60, what="the driver's endpoint")
        views = lambda: zart.sql("select view from zart_tables", journal=journal)["view"].tolist()  # noqa: E731
        wait_until(lambda: views() == ["held/workflow:input"], timeout=60, what="the input, through the monitor")
        got = zart.sql('select cat, sum(x) as total from "held/workflow:input" group by cat order by cat',
                       journal=journal)
        assert got.to_dict("list") == {"cat": ["a", "b"], "total": [6.0, 9.0]}
        (found,) = zart.stored("held", journal=journal)
        assert (found.step_key, found.kind, found.rows, found.head[0]) == ("workflow:input", "pandas.DataFrame", 6,
                                                                           ("a", "0.0"))
        reader = zart.journal(journal, live=False, lock_timeout=0)
        try:  # the engine held the file all along: the list came through its monitor
            with pytest.raises(zart.JournalLocked):
                reader.list_executions()
        finally:
            reader.close()
        assert driver.poll() is None
    finally:
        (tmp_path / "go").touch()
        out, err = driver.communicate(timeout=60)
    assert "DONE completed" in out, err
