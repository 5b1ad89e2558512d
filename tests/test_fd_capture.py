"""What steps write to file descriptors 1 and 2 (C code, os.write, child processes) in the pool's
workers: captured per attempt like print, shown live with the step key, journaled."""
import json
import os
import subprocess
import sys
import time

from output_helpers import parts

import zart_nb as zart

PROGRAM = r"""
import os, subprocess, sys, time
import zart_nb as zart

@zart.step("raw")
def raw(i):
    os.write(1, f"fd1 {i}\n".encode())
    os.write(2, f"fd2 {i}\n".encode())
    subprocess.run([sys.executable, "-c", f"print('child {i}')"], check=True)
    os.system(f"echo shell {i} >&2")
    return i

@zart.step("flood")
def flood():
    chunk = ("y" * 99 + "\n").encode()
    for _ in range(30000):  # 3 MB straight to the descriptor: never blocks, keeps its two ends
        os.write(1, chunk)
    os.write(1, b"the end\n")
    return "flooded"

@zart.step("waits")
def waits(go):
    os.write(1, b"before the wait\n")
    deadline = time.monotonic() + 60
    while not os.path.exists(go):
        if time.monotonic() > deadline:
            raise TimeoutError("the line was not seen live")
        time.sleep(0.02)
    return "went"

@zart.workflow("fds")
def fds(go):
    handles = [zart.schedule(raw, i) for i in range(3)]
    return zart.wait(handles) + [flood(), waits(go)]

print("result", zart.run(fds, sys.argv[1], execution_id="fds-1", journal="j.duckdb", workers=2), flush=True)
"""


def test_descriptor_output_is_streamed_live_and_journaled_per_step(tmp_path):
    go = tmp_path / "go"
    proc = subprocess.Popen([sys.executable, "-c", PROGRAM, str(go)], cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        lines = []
        deadline = time.monotonic() + 120
        for line in proc.stdout:  # the step waits for `go` until its line has reached us
            lines.append(line.rstrip("\n"))
            if line == "[waits#0] before the wait\n":
                go.touch()
                break
            assert time.monotonic() < deadline, "no live line from the waiting step"
        rest, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    out = lines + rest.splitlines()
    errs = err.splitlines()
    for i in range(3):
        assert f"[raw#{i}] fd1 {i}" in out and f"[raw#{i}] child {i}" in out
        assert f"[raw#{i}] fd2 {i}" in errs and f"[raw#{i}] shell {i}" in errs
    assert "[flood#0] the end" in out
    # every line of the 3 MB reached us: the file is emptied between steps only (emptied while the
    # step wrote, the lines appended after the last read were lost)
    assert out.count("[flood#0] " + "y" * 99) == 30000
    assert out[-1] == "result [0, 1, 2, 'flooded', 'went']"
    reader = zart.journal(tmp_path / "j.duckdb")
    try:
        steps = {s.step_key: s for s in reader.list_steps("fds-1")}
    finally:
        reader.close()
    assert sorted(steps["raw#1"].log.splitlines()) == ["child 1", "fd1 1", "fd2 1", "shell 1"]
    flood = steps["flood#0"].log
    head, skipped, tail = parts(flood)  # its first 16 KiB and last 64 KiB, whole lines, and the count between
    assert head == ("y" * 99 + "\n") * 163 and tail.endswith(("y" * 99 + "\n") * 655 + "the end\n")
    assert len(head) + skipped + len(tail) == 3_000_008 and len(tail) <= 64 * 1024
    assert steps["waits#0"].log == "before the wait\n"


def test_descriptors_are_private_files_no_other_user_can_read(tmp_path):
    # The worker's descriptors 1 and 2 point at unlinked files it created 0600 (output can hold secrets).
    program = r"""
import json, os, stat, zart_nb as zart

@zart.step("where")
def where():
    return [(os.readlink(f"/proc/self/fd/{fd}"), stat.S_IMODE(os.fstat(fd).st_mode)) for fd in (1, 2)]

@zart.workflow("ask")
def ask(_):
    return where()

print(json.dumps(zart.run(ask, journal="j.duckdb", display=False)))
"""
    proc = subprocess.run([sys.executable, "-c", program], cwd=tmp_path, capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    targets = json.loads(proc.stdout.strip().splitlines()[-1])
    assert len(targets) == 2
    for target, mode in targets:
        assert target.endswith("(deleted)")  # nameless (O_TMPFILE) or unlinked at once
        assert mode == 0o600
    assert os.path.exists(tmp_path / "j.duckdb")
