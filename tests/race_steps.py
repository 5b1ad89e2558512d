"""Steps for tests/test_pool_revoke_race.py, importable by worker processes: each announces that it
started (its worker's pid in ``<tag>.started``), counts its run in ``calls.log`` (read by
``steps_lib.calls``) and waits for the test to create ``<tag>.go``."""
from __future__ import annotations

import os
import time

import zart_nb as zart


def _gate(tag: str, workdir: str) -> str:
    fd = os.open(os.path.join(workdir, "calls.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.write(fd, f"{tag}\n".encode())
    os.close(fd)
    started = os.path.join(workdir, f"{tag}.started")
    with open(started + ".tmp", "w") as handle:
        handle.write(str(os.getpid()))
    os.replace(started + ".tmp", started)  # the test never reads a half-written pid
    deadline = time.monotonic() + 60
    while not os.path.exists(os.path.join(workdir, f"{tag}.go")):
        if time.monotonic() > deadline:
            raise TimeoutError(f"{tag}.go")
        time.sleep(0.01)
    return tag


@zart.step("gated-{tag}")
def gated(tag: str, workdir: str) -> str:
    return _gate(tag, workdir)


@zart.step("gated-timed-{tag}", timeout=120)
def gated_timed(tag: str, workdir: str) -> str:
    """The same with a timeout: its submit wakes the pool's I/O thread, which sends it at once even
    though every worker is busy (to the worker listed first, when all hold as many)."""
    return _gate(tag, workdir)


@zart.step("gated-short-{tag}", timeout=8)
def gated_short(tag: str, workdir: str) -> str:
    """The same, timed out after 8 s."""
    return _gate(tag, workdir)


def stopped(pid: int) -> bool:
    """Every thread of process ``pid`` is stopped (SIGSTOP). ``kill`` returns before that: the kernel
    wakes one thread to start the group stop, and the others run on until it has (a worker's revoke
    thread could still answer a revoke sent after the kill)."""
    threads = os.listdir(f"/proc/{pid}/task")
    for tid in threads:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as handle:
                state = handle.read().rsplit(")", 1)[1].split()[0]
        except FileNotFoundError:
            continue  # the thread ended
        if state not in ("T", "t"):
            return False
    return bool(threads)
