"""A step that prints a lot uses bounded disk and memory: its capture file gives back what was read
while the step runs, a backlog is read only at its ends, and what is journaled is the output's first
16 KiB and last 64 KiB with the count of what lies between; lines shown live are bounded too."""
import os
import subprocess
import sys

from output_helpers import parts

import zart_nb as zart
from zart_nb._executors import capture, fdcapture

PROGRAM = r"""
import os, sys, time
import zart_nb as zart

MiB = 1 << 20

def allocated():
    return os.fstat(1).st_blocks * 512

@zart.step("flood")
def flood(chunks):
    os.write(1, b"first line\n")
    chunk = (b"z" * 1023 + b"\n") * 1024  # 1 MiB
    top = 0
    for i in range(chunks):
        os.write(1, chunk)
        top = max(top, allocated())
        if i % 8 == 7:  # the disk space of what was read comes back while the step runs
            deadline = time.monotonic() + 60
            while allocated() > 4 * MiB:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"the capture file still holds {allocated():,} bytes")
                time.sleep(0.01)
    os.write(1, b"the end\n")
    return top

@zart.step("printer")
def printer(n):
    for i in range(n):
        print(f"{i:07d} " + "p" * 91)  # 100 characters a line
    return "printed"

@zart.workflow("loud")
def loud(_):
    return flood(50), printer(200_000)

top, printed = zart.run(loud, None, execution_id="loud-1", journal="j.duckdb", workers=1)
print("result", top, printed, flush=True)
"""


def test_a_step_printing_50_mb_keeps_its_ends_on_bounded_disk(tmp_path):
    proc = subprocess.run([sys.executable, "-c", PROGRAM], cwd=tmp_path, capture_output=True, text=True,
                          timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    out = proc.stdout.splitlines()
    _, top, printed = out[-1].split()
    assert printed == "printed"
    assert int(top) <= 13 << 20  # 50 MiB written, at most 8 MiB + what the last poll left + one chunk on disk
    reader = zart.journal(tmp_path / "j.duckdb")
    try:
        steps = {s.step_key: s for s in reader.list_steps("loud-1")}
    finally:
        reader.close()
    head, skipped, tail = parts(steps["flood#0"].log)  # whole lines: its first 16 KiB, its last 64 KiB
    line = "z" * 1023 + "\n"
    assert head == "first line\n" + line * 15 and tail == line * 63 + "the end\n"
    assert len(head) + skipped + len(tail) == len("first line\n") + 50 * (1 << 20) + len("the end\n")
    head, skipped, tail = parts(steps["printer#0"].log)
    assert head == "".join(f"{i:07d} " + "p" * 91 + "\n" for i in range(163))
    assert tail == "".join(f"{i:07d} " + "p" * 91 + "\n" for i in range(200_000 - 655, 200_000))
    assert len(head) + skipped + len(tail) == 200_000 * 100
    # Live: the first LIVE_BURST characters, then LIVE_RATE a second, the rest counted in a note
    flood_live = [line for line in out if line.startswith("[flood#0] ")]
    printer_live = [line for line in out if line.startswith("[printer#0] ")]
    assert flood_live[:2] == ["[flood#0] first line", "[flood#0] " + "z" * 1023]
    assert 2000 < len(flood_live) < 10_000  # of 51,202 lines (up to 4 MiB, then 128 KiB a second)
    assert 40_000 < len(printer_live) < 120_000  # of 200,000
    assert any("lines not shown live (printed too fast)" in line for line in flood_live + printer_live)


def test_a_backlog_past_its_limit_is_read_at_its_ends_and_its_disk_space_given_back():
    # A real file behind a stream, as in a worker: a writer far ahead of the reader
    stream = fdcapture._Stream("stdout", 1, -1)
    try:
        data = b"".join(b"%09d\n" % i for i in range(2_000_000))  # 20 MB of numbered lines
        view = memoryview(data)
        while view:
            view = view[os.write(stream.write, view):]
        pieces = list(stream.pieces(stream.size()))
        assert pieces[0] == data[:fdcapture.HEAD_BYTES]
        assert pieces[1] == len(data) - fdcapture.HEAD_BYTES - fdcapture.TAIL_BYTES
        assert b"".join(pieces[2:]) == data[-fdcapture.TAIL_BYTES:]
        assert all(len(piece) <= fdcapture.READ_BYTES for piece in pieces[2:])
        assert os.fstat(stream.write).st_blocks * 512 >= 19 << 20
        stream.punch()
        assert os.fstat(stream.write).st_blocks * 512 < 1 << 20  # everything read (or skipped) is freed
        assert os.fstat(stream.write).st_size == len(data)  # the size stays: appends go on at the end
        captured = capture.Capture(None)
        for piece in pieces:
            if isinstance(piece, bytes):
                captured.write("stdout", piece.decode())
            else:
                captured.skipped("stdout", piece)
        head, skipped, tail = parts(captured.close() or "")
        assert head == data[:capture.HEAD // 10 * 10].decode()  # whole lines (of 10 bytes)
        assert tail == data[-(capture.TAIL // 10 * 10):].decode()
        assert len(head) + skipped + len(tail) == len(data)
    finally:
        os.close(stream.write)
        os.close(stream.read)
