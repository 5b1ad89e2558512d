"""What a step's child process writes after the step ended never becomes another step's output: it goes
to the worker's own descriptors, labelled with the step that started it, and the step's files are
closed once no process writes to them any more (real workers, real children)."""
import fcntl
import os
import subprocess
import sys
import threading

import pytest
from conftest import wait_until

import zart_nb as zart

LATE = r"""
import os, subprocess, sys, time
import zart_nb as zart

def wait_for(path):
    deadline = time.monotonic() + 60
    while not os.path.exists(path):
        if time.monotonic() > deadline:
            raise TimeoutError(path)
        time.sleep(0.01)

@zart.step("starter")
def starter(go):
    # a child that writes once the step has returned (and the next one runs)
    subprocess.Popen(["sh", "-c", f'while [ ! -e "{go}" ]; do sleep 0.01; done; echo late-err >&2; echo late'])
    print("starter printed")
    return "started"

@zart.step("after")
def after(go, seen):
    os.write(1, b"mine\n")
    open(go, "w").close()  # the child writes now, while this step runs on the same worker
    wait_for(seen)  # the test saw the child's lines in the worker's log
    return "done"

@zart.workflow("late")
def late(folder):
    return [starter(folder + "/go"), after(folder + "/go", folder + "/seen")]

print("result", zart.run(late, sys.argv[1], execution_id="late-1", journal="j.duckdb", workers=1), flush=True)
"""


def test_a_childs_output_after_its_step_ended_is_labelled_and_not_the_next_steps(tmp_path):
    lines: dict[str, list[str]] = {"out": [], "err": []}

    def read(name, pipe):
        for line in pipe:
            lines[name].append(line.rstrip("\n"))

    with subprocess.Popen([sys.executable, "-c", LATE, str(tmp_path)], cwd=tmp_path, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as proc:
        readers = [threading.Thread(target=read, args=(name, pipe), daemon=True)
                   for name, pipe in (("out", proc.stdout), ("err", proc.stderr))]
        try:
            for reader in readers:
                reader.start()
            wait_until(lambda: "[starter#0 of late-1, after it ended] late" in lines["out"]
                       and "[starter#0 of late-1, after it ended] late-err" in lines["err"], timeout=120,
                       what=f"the child's late lines, labelled ({lines})")
            (tmp_path / "seen").touch()
            assert proc.wait(timeout=120) == 0, lines["err"]
            for reader in readers:
                reader.join(30)
        finally:
            proc.kill()
    assert lines["out"][-1] == "result ['started', 'done']"
    assert "[after#0] mine" in lines["out"] and "[starter#0] starter printed" in lines["out"]
    assert not [line for line in lines["out"] + lines["err"] if line.startswith("[after#0] late")]
    reader = zart.journal(tmp_path / "j.duckdb")
    try:
        steps = {s.step_key: s for s in reader.list_steps("late-1")}
    finally:
        reader.close()
    assert steps["after#0"].log == "mine\n"
    assert steps["starter#0"].log == "starter printed\n"


MANY = r"""
import os, subprocess, sys, time
import zart_nb as zart

def open_files():
    return len(os.listdir("/proc/self/fd"))

@zart.step("spawns")
def spawns(i):
    subprocess.run(["sh", "-c", f"echo child {i}"], check=True)
    return open_files()

@zart.step("settled")
def settled(limit):
    deadline = time.monotonic() + 60
    while open_files() > limit:  # each step's two files are closed once its child has exited
        if time.monotonic() > deadline:
            raise TimeoutError(f"{open_files()} files open, not {limit}")
        time.sleep(0.02)
    return open_files()

@zart.workflow("many")
def many(n):
    counts = [spawns(i) for i in range(n)]
    return counts[0], settled(counts[0])

print("result", *zart.run(many, 40, execution_id="many-1", journal="j.duckdb", workers=1), flush=True)
"""


def _leases_granted(folder) -> bool:
    fd = os.open(folder / "probe", os.O_RDONLY | os.O_CREAT, 0o600)
    try:
        fcntl.fcntl(fd, getattr(fcntl, "F_SETLEASE", 1024), getattr(fcntl, "F_RDLCK", 0))
        fcntl.fcntl(fd, getattr(fcntl, "F_SETLEASE", 1024), getattr(fcntl, "F_UNLCK", 2))
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def test_a_steps_retired_files_are_closed_once_its_children_exited(tmp_path):
    if not _leases_granted(tmp_path):
        pytest.skip("this file system grants no leases: retired files are kept up to RETIRED_FILES")
    proc = subprocess.run([sys.executable, "-c", MANY], cwd=tmp_path, capture_output=True, text=True,
                          timeout=180)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout.splitlines()
    for i in range(40):  # each child's line is its own step's
        assert f"[spawns#{i}] child {i}" in out
    first, last = map(int, out[-1].split()[1:])
    assert last <= first
