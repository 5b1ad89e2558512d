"""The side log: plain values only (a crafted log never runs code), torn and zero-filled tails, damage."""
import enum
import logging
import os
import pickle
import struct
import subprocess
import sys
import zlib

import pytest

import zart_nb as zart
from zart_nb._journal.sidelog import SideLog, decode, encode
from zart_nb._runtime import runtime


class _Touch:
    """Unpickling this runs ``open(marker, "w")``: what an attacker's frame would do."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def _frame(records) -> bytes:
    body = pickle.dumps(records, 5)
    return struct.pack("<II", len(body), zlib.crc32(body)) + body


def _zart_ls(journal):
    return subprocess.run([sys.executable, "-m", "zart_nb._cli", "ls", "--journal", str(journal)],
                          capture_output=True, text=True, timeout=60)


def test_a_crafted_side_log_beside_no_journal_runs_no_code(tmp_path):
    marker = tmp_path / "owned"
    journal = tmp_path / "j.duckdb"
    (tmp_path / "j.duckdb.steps.log").write_bytes(_frame([(1, "s", (_Touch(marker),))]))
    os.chmod(tmp_path / "j.duckdb.steps.log", 0o600)
    proc = _zart_ls(journal)
    assert not marker.exists(), "reading the side log ran code"
    assert proc.returncode == 0, proc.stderr
    assert "damaged" in proc.stderr and str(tmp_path / "j.duckdb.steps.log") in proc.stderr
    assert (tmp_path / "j.duckdb.steps.log.corrupt").exists()


def test_a_crafted_frame_after_the_right_header_runs_no_code_and_is_kept_aside(tmp_path, caplog):
    journal = tmp_path / "j.duckdb"
    zart.journal(journal).list_executions()
    runtime.journal(journal).close()
    journal_id = runtime.journal(journal).query(lambda conn: conn.execute(
        "SELECT value FROM zart_meta WHERE key = 'journal_id'").fetchone()[0])
    runtime.journal(journal).close()
    marker = tmp_path / "owned"
    log = tmp_path / "j.duckdb.steps.log"
    good = (1, "x", ("e", "k#0"))
    log.write_bytes(_frame([(0, "h", (journal_id,)), good]) + _frame([(2, "s", (_Touch(marker),))])
                    + _frame([(3, "x", ("e", "k#1"))]))
    with caplog.at_level(logging.WARNING, logger="zart_nb"):
        assert zart.journal(journal).list_executions() == []
    assert not marker.exists(), "reading the side log ran code"
    assert (tmp_path / "j.duckdb.steps.log.corrupt").exists()
    assert any(str(log) in r.getMessage() and "damaged" in r.getMessage() for r in caplog.records)


def test_records_hold_only_plain_values():
    class Color(enum.StrEnum):
        RED = "red"

    records = [(1, "s", ("id", b"\x00blob", 1.5, 3, True, None, Color.RED, bytearray(b"ab")))]
    assert decode(encode(records)) == [(1, "s", ("id", b"\x00blob", 1.5, 3, True, None, "red", b"ab"))]
    assert type(decode(encode(records))[0][2][6]) is str
    with pytest.raises(pickle.PicklingError):
        encode([(1, "s", (object(),))])
    with pytest.raises(ValueError):
        decode(pickle.dumps([(1, "s", (zart.ExecutionStatus.FAILED,))]))  # names a class: refused


@pytest.mark.parametrize("tail", [b"\0" * 4096, b"\0" * 8, struct.pack("<II", 0, 0)],
                         ids=["zero-filled-page", "zero-header", "empty-frame"])
def test_a_zero_filled_or_empty_tail_ends_the_log(tmp_path, tail):
    log = SideLog(tmp_path / "x.log")
    log.append([(1, "s", ("a",))], header=(0, "h", ("jid",)))
    log.append([(2, "s", ("b",))])
    log.close()
    with open(tmp_path / "x.log", "ab") as handle:
        handle.write(tail)
    contents = SideLog(tmp_path / "x.log").read((0, "h", ("jid",)))
    assert [r[0] for r in contents.records] == [1, 2]
    assert contents.damage is None and not contents.foreign


def test_a_journal_whose_side_log_ends_in_zeros_opens_and_keeps_its_steps(tmp_path):
    journal = tmp_path / "j.duckdb"
    script = (f"import os, zart_nb._journal.journal as jm; jm.FOLD_INTERVAL = 3600; "
              f"import zart_nb as zart; zart.run(lambda x: x, 1, execution_id='z', journal={str(journal)!r}); "
              "os._exit(0)")
    subprocess.run([sys.executable, "-c", script], check=True, timeout=60)
    log = tmp_path / "j.duckdb.steps.log"
    assert log.stat().st_size > 0
    with open(log, "ab") as handle:
        handle.write(b"\0" * 8192)  # what delayed allocation leaves after a power cut
    proc = _zart_ls(journal)
    assert proc.returncode == 0, proc.stderr
    assert "completed" in proc.stdout and "EOFError" not in proc.stderr


def test_damage_in_the_middle_keeps_what_precedes_and_the_evidence(tmp_path, caplog):
    log = SideLog(tmp_path / "x.log")
    for seq in (1, 2, 3):
        log.append([(seq, "s", (f"row{seq}",))], header=(0, "h", ("jid",)))
    log.close()
    data = bytearray((tmp_path / "x.log").read_bytes())
    second = len(_frame([(0, "h", ("jid",)), (1, "s", ("row1",))]))
    data[second + 12] ^= 0xFF  # bit rot inside the second frame's body
    (tmp_path / "x.log").write_bytes(bytes(data))
    contents = SideLog(tmp_path / "x.log").read((0, "h", ("jid",)))
    assert [r[0] for r in contents.records] == [1]
    assert contents.damage and "checksum" in contents.damage
