"""The side log: plain values only (a crafted log never runs code), torn and zero-filled tails, damage."""
import enum
import logging
import os
import pickle
import struct
import subprocess
import sys
import textwrap
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


def test_damage_in_the_middle_keeps_what_precedes_and_follows(tmp_path, caplog):
    log = SideLog(tmp_path / "x.log")
    for seq in (1, 2, 3):
        log.append([(seq, "s", (f"row{seq}",))], header=(0, "h", ("jid",)))
    log.close()
    data = bytearray((tmp_path / "x.log").read_bytes())
    second = len(_frame([(0, "h", ("jid",)), (1, "s", ("row1",))]))
    data[second + 12] ^= 0xFF  # bit rot inside the second frame's body
    (tmp_path / "x.log").write_bytes(bytes(data))
    contents = SideLog(tmp_path / "x.log").read((0, "h", ("jid",)))
    assert [r[0] for r in contents.records] == [1, 3]  # the damaged frame's record alone is lost
    assert contents.damage and "checksum" in contents.damage


def _log_of(tmp_path, frames):
    """A side log with ``frames`` appends of records numbered from 1, and each frame's offset."""
    log = SideLog(tmp_path / "x.log")
    offsets, seq = [], 0
    for size in frames:
        offsets.append((tmp_path / "x.log").stat().st_size if (tmp_path / "x.log").exists() else 0)
        records = []
        for _ in range(size):
            seq += 1
            records.append((seq, "s", (f"row{seq}", b"\x80\x05" * 3)))
        log.append(records, header=(0, "h", ("jid",)))
    log.close()
    return offsets, seq


@pytest.mark.parametrize("frame", [1, 4, 9])
@pytest.mark.parametrize("byte", [0, 1, 2, 3])
def test_a_flipped_byte_in_a_length_field_loses_no_record(tmp_path, frame, byte):
    offsets, total = _log_of(tmp_path, [3, 1, 5, 2, 4, 1, 3, 2, 6, 2])
    data = bytearray((tmp_path / "x.log").read_bytes())
    data[offsets[frame] + byte] ^= 0x5A
    (tmp_path / "x.log").write_bytes(bytes(data))
    contents = SideLog(tmp_path / "x.log").read((0, "h", ("jid",)))
    assert [r[0] for r in contents.records] == list(range(1, total + 1))
    assert contents.damage and f"at byte {offsets[frame]} of {len(data)}" in contents.damage


def test_a_flipped_byte_in_the_last_frames_length_field_loses_no_record(tmp_path):
    offsets, total = _log_of(tmp_path, [2, 3, 4])
    for flip in (0x01, 0x80):  # the length grows past the end, or shrinks inside the frame
        data = bytearray((tmp_path / "x.log").read_bytes())
        data[offsets[-1] + (0 if flip == 0x01 else 1)] ^= flip
        (tmp_path / "y.log").write_bytes(bytes(data))
        contents = SideLog(tmp_path / "y.log").read((0, "h", ("jid",)))
        assert [r[0] for r in contents.records] == list(range(1, total + 1)), flip
        assert contents.damage and "length field" in contents.damage


def test_a_damaged_body_loses_only_its_own_frame(tmp_path):
    offsets, total = _log_of(tmp_path, [2, 3, 4, 2])
    data = bytearray((tmp_path / "x.log").read_bytes())
    data[offsets[1] + 20] ^= 0xFF
    (tmp_path / "x.log").write_bytes(bytes(data))
    contents = SideLog(tmp_path / "x.log").read((0, "h", ("jid",)))
    assert [r[0] for r in contents.records] == [1, 2, *range(6, total + 1)]
    assert f"at byte {offsets[1]}" in contents.damage and f"resynchronised at byte {offsets[2]}" in contents.damage


def test_a_torn_tail_after_resynchronising_stays_silent_and_a_torn_tail_alone_is_no_damage(tmp_path):
    offsets, total = _log_of(tmp_path, [2, 3, 4])
    data = (tmp_path / "x.log").read_bytes()
    (tmp_path / "x.log").write_bytes(data[:-5])  # died mid-write of the last frame
    contents = SideLog(tmp_path / "x.log").read((0, "h", ("jid",)))
    assert [r[0] for r in contents.records] == [1, 2, 3, 4, 5]
    assert contents.damage is None


def test_a_journal_whose_side_log_has_a_flipped_length_byte_keeps_every_step(tmp_path, caplog):
    journal = tmp_path / "j.duckdb"
    counter = tmp_path / "calls"
    script = textwrap.dedent(f"""
        import os
        import zart_nb._journal.journal as jm
        jm.FOLD_INTERVAL = 3600; jm.FOLD_BATCH = 10**9  # never fold: the rows live only in the side log
        import zart_nb as zart

        @zart.step("tick")
        def tick(i):
            with open({str(counter)!r}, "a") as handle:
                handle.write(f"{{i}}\\n")
            return i

        @zart.workflow("ticks")
        def ticks(n):
            return sum(tick(i) for i in range(n))

        zart.run(ticks, 300, execution_id="t", journal={str(journal)!r}, workers=1)
        os._exit(0)  # no close, no fold: as if killed
    """)
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    assert len(counter.read_text().split()) == 300
    log = tmp_path / "j.duckdb.steps.log"
    data = bytearray(log.read_bytes())
    offsets, offset = [], 0
    while offset < len(data):
        offsets.append(offset)
        offset += 8 + struct.unpack_from("<I", data, offset)[0]
    assert len(offsets) > 50
    damaged = offsets[len(offsets) // 4]
    data[damaged + 2] ^= 0x01  # the length now reaches past the end of the file: read as a torn tail before
    log.write_bytes(bytes(data))
    with caplog.at_level(logging.WARNING, logger="zart_nb"):
        steps = zart.journal(journal).list_steps("t", limit=1000)
    assert len([s for s in steps if s.status.value == "completed"]) == 300
    assert any(str(log) in r.getMessage() and f"at byte {damaged}" in r.getMessage() for r in caplog.records)
    assert (tmp_path / "j.duckdb.steps.log.corrupt").read_bytes() == bytes(data)  # the evidence, as it was
    assert zart.run(lambda x: x, 7, execution_id="other", journal=journal) == 7  # the journal writes on
