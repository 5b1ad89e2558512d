"""The readers of "what is referenced" fetch the value store references alone (a range on ``REF_MAGIC``
in SQL, ``_journal/stores.span``), never the short pickles beside them: a deletion (``outputs_of``),
retention (``zart.garbage_collect``'s ``Journal.retire``), gc and ``zart gc --verify``
(``reference_blobs``), and the read API's listing of stored values (``tables.stored_values``). Each must
still find every reference (a step's output, an execution's input and output) and take no short pickle
for one, whatever its bytes. Real worker processes, a real DuckDB file."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import zart_nb as zart
from zart_nb import _values as values
from zart_nb._journal import stores as sql
from zart_nb._journal import tables
from zart_nb._runtime import runtime

THRESHOLD = 4096
FAKE = values.REF_MAGIC + b"fake.zv\t1\tbytes"  # a reference's bytes inside a short value: not one
HIGH = values.REF_MAGIC[:-1] + bytes([values.REF_MAGIC[-1] + 1])  # the range's end (excluded)


@pytest.fixture(autouse=True)
def small_threshold(monkeypatch):
    monkeypatch.setenv("ZART_VALUE_THRESHOLD", str(THRESHOLD))
    monkeypatch.delenv("ZART_VALUE_STORE", raising=False)


@zart.step("ref_big")
def big(tag: str) -> bytes:
    return tag.encode() * 10_000  # above THRESHOLD: a file of the value store


@zart.step("ref_small")
def small(tag: str) -> bytes:
    return FAKE + tag.encode()  # a short pickle holding a reference's bytes


@zart.workflow("ref_flow")
def flow(data: bytes) -> bytes:
    zart.wait([zart.schedule(big, data[:1].decode()), zart.schedule(small, "s")])
    return data * 2  # above THRESHOLD: the execution's output is a file too


def _run(journal: Path, execution_id: str, tag: bytes) -> None:
    zart.run(flow, tag * 5_000, execution_id=execution_id, journal=journal, display=False, workers=1)


def _every_blob(conn, execution_id: str | None = None) -> list[bytes]:
    """Every output and input blob journaled (of one execution), fetched whole: what is tested in Python."""
    where = "" if execution_id is None else "WHERE execution_id = $1"
    rows = conn.execute(f"""SELECT output FROM steps {where} UNION ALL SELECT output FROM executions {where}
                            UNION ALL SELECT input FROM executions {where}""",
                        [] if execution_id is None else [execution_id]).fetchall()
    return [row[0] for row in rows if row[0] is not None]


def _store(journal: Path) -> set[str]:
    return set(os.listdir(values.folder_for(journal)))


def test_every_reader_finds_every_reference_and_takes_no_short_pickle_for_one(journal):
    _run(journal, "a", b"a")
    _run(journal, "b", b"b")
    j = runtime.journal(journal)
    with j.hold():
        # short blobs at the range's edges (never pickles: a pickle begins with \x80)
        def edges(conn):
            conn.execute("""INSERT INTO steps (execution_id, step_key, name, status, output, current)
                            VALUES ('a', 'edge:1', 'ref_small', 'completed', ?, true),
                                   ('a', 'edge:2', 'ref_small', 'completed', ?, true),
                                   ('a', 'edge:3', 'ref_small', 'completed', ?, true)""",
                         [values.REF_MAGIC[:-1], HIGH, HIGH + b"x"])
        j.transact(edges)
        every = j.query(_every_blob)
        own = j.query(_every_blob, "a")
        store, found = j.query(sql.outputs_of, "a")
        everywhere = j.query(sql.reference_blobs)
        listed = j.query(tables.stored_values)
        removed = j.retire(["a"], dry_run=True)

    assert any(FAKE in blob and not values.is_ref(blob) for blob in every)  # the short pickles are there
    truth_a = sorted(blob for blob in own if values.is_ref(blob))
    assert len(truth_a) == 3  # a's step output, its input and its output
    kinds = {values.decode_ref(blob).kind for blob in truth_a}
    assert kinds == {"bytes"}
    assert store is None and sorted(found) == truth_a
    assert sorted(blob for _, blob in everywhere) == sorted(blob for blob in every if values.is_ref(blob))
    assert len(everywhere) == 6 and {s for s, _ in everywhere} == {None}
    assert sorted(blob for _, blob in removed.blobs) == truth_a  # retention: what goes, what stays
    assert sorted(blob for _, blob in removed.remaining) == sorted(set(b for _, b in everywhere) - set(truth_a))
    # the read API lists the steps' stored outputs (an execution's output only when it is a table)
    assert [(v.execution_id, v.step_key) for v in listed] == [("a", "ref_big#0"), ("b", "ref_big#0")]


def test_retention_and_a_deletion_free_exactly_the_files_only_their_execution_pointed_to(journal):
    _run(journal, "a", b"a")
    _run(journal, "b", b"b")
    _run(journal, "c", b"c")
    j = runtime.journal(journal)
    with j.hold():
        refs = {eid: {values.decode_ref(blob).name for blob in j.query(sql.outputs_of, eid)[1]}
                for eid in ("a", "b", "c")}
    j.close()
    assert all(len(names) == 3 for names in refs.values()) and _store(journal) == set().union(*refs.values())

    report = zart.garbage_collect(journal, keep=2, workflow="ref_flow", min_age=0)
    assert report.executions == ("a",) and report.files == 3 and report.orphans == 0
    assert _store(journal) == refs["b"] | refs["c"]

    zart.delete("b", journal=journal)
    assert _store(journal) == refs["c"]
    assert zart.run(flow, b"c" * 5_000, execution_id="c", journal=journal, display=False) == b"c" * 10_000
    assert zart.load("c", "ref_small#0", journal=journal) == FAKE + b"s"  # a short pickle, loaded as one
