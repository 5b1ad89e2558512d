"""Steps for the pool's race tests (test_pool_revoke_race, test_pool_cancel, test_pool_timeout),
importable by worker processes: each counts its run in ``calls.log`` (read by ``steps_lib.calls``);
the gated ones also announce that they started (their worker's pid in ``<tag>.started``) and wait
for the test to create ``<tag>.go``."""
from __future__ import annotations

import os
import pickle
import threading
import time

import zart_nb as zart


def _count(tag: str, workdir: str) -> None:
    fd = os.open(os.path.join(workdir, "calls.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    os.write(fd, f"{tag}\n".encode())
    os.close(fd)


def _gate(tag: str, workdir: str) -> str:
    _count(tag, workdir)
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


@zart.step("lagging-{tag}")
def lagging(tag: str, workdir: str) -> str:
    """A gated step that, once let go, holds its worker's main thread right after handing its reply
    over (``<tag>.replied`` says so) until the test creates ``<tag>.resume``: the driver sees the step
    end while the worker has not started the attempt behind it yet (the lag a descheduled worker
    gives, made to last). Its worker's revoke thread answers meanwhile. It wraps the worker's reply
    queue (found by its type) for one reply, its own."""
    import gc

    replies = next(o for o in gc.get_objects() if type(o).__name__ == "_Replies")
    add = replies.add

    def add_then_hold(reply, more_to_run):
        del replies.add  # once: the class's own method again
        add(reply, more_to_run)
        with open(os.path.join(workdir, f"{tag}.replied"), "w"):
            pass
        deadline = time.monotonic() + 60
        while not os.path.exists(os.path.join(workdir, f"{tag}.resume")) and time.monotonic() < deadline:
            time.sleep(0.01)

    replies.add = add_then_hold
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


@zart.step("hog-{tag}", timeout=0.5)
def gil_hog(tag: str, workdir: str) -> int:
    """Counts its run, then runs past its timeout in one C call that never lets the GIL go (the worker's
    revoke thread cannot answer meanwhile)."""
    _count(tag, workdir)
    return sum(range(10**13))


@zart.step("counted-{tag}", timeout=120)
def counted(tag: str, workdir: str) -> str:
    """Counts its run. Its timeout makes its submit wake the pool's I/O thread, which sends it at once,
    to a busy worker if every worker is busy."""
    _count(tag, workdir)
    return tag


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


class Outcomes:
    """A pool's sink that keeps what it is given (the pool delivers from its I/O thread)."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.outcomes: list = []

    def __call__(self, batch: list) -> None:
        with self.lock:
            self.outcomes.extend(batch)


def wire(task_id: int, fn, *args) -> tuple:
    """A ``WireTask`` (as the pool sends it: a plain tuple) of step ``fn`` on ``args``, with its function."""
    from zart_nb import _serialization as ser
    from zart_nb._executors.base import WireTask

    return tuple(WireTask(task_id, fn.name, ser.dumps_by_value(fn.fn), ser.dumps((args, {})), "e-1",
                          f"k#{task_id}", 1))


class WorkerLine:
    """One worker process driven by hand: what it answered (``answered``: task id -> result) and each
    revoke answer it gave (``revoked``, as ``keep(WireRevoked)`` makes it)."""

    def __init__(self, keep) -> None:
        from zart_nb._executors.local import _Worker

        self.worker = _Worker(0, None)
        self.keep = keep
        self.answered: dict = {}
        self.revoked: list = []

    def run(self, tasks: list) -> None:
        """Send ``tasks`` (``wire``'s) in one message, as the pool does."""
        self.worker.conn.send_bytes(pickle.dumps(("run", tasks), 5))

    def send(self, kind: str, task_ids: list) -> None:
        """A ``("revoke" | "cancel" | "halt", [task id, ...])`` on the worker's revoke pipe."""
        self.worker.control.send_bytes(pickle.dumps((kind, task_ids), 5))

    def read_until(self, done) -> None:
        from zart_nb import _serialization as ser
        from zart_nb._executors.base import WireOutput, WireReply, WireRevoked

        end = time.monotonic() + 30
        while not done():
            assert time.monotonic() < end, f"answered {sorted(self.answered)}, revoked {self.revoked}"
            if self.worker.conn.poll(0.1):
                for item in pickle.loads(self.worker.conn.recv_bytes()) or []:
                    if type(item) is WireRevoked:
                        self.revoked.append(self.keep(item))
                    elif type(item) is not WireOutput:
                        reply = WireReply(*item)
                        assert reply.task_id not in self.answered
                        self.answered[reply.task_id] = ser.loads(reply.blob)
