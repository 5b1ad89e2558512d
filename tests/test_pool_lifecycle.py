"""The pool's start-up and shutdown: what a pool leaves behind once it is shut down and dropped."""
import gc
import os

from race_steps import Outcomes


def _identity(fd: int) -> tuple[int, int] | None:
    """What descriptor ``fd`` is open on (device, inode), None when it is closed."""
    try:
        stat = os.fstat(fd)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def test_a_pool_shut_down_and_dropped_closes_its_wake_up_pipe():
    """Each pool has a pipe its I/O thread is woken through. Once the pool is shut down and dropped
    (a kernel that changes its worker count, a pool that gave up), both ends are closed: before, every
    pool left them open, and a long-lived process ran out of descriptors."""
    from zart_nb._executors.local import LocalPool

    pool = LocalPool(1, Outcomes())
    pipe = [pool._wake_r, pool._wake_w]
    opened = [_identity(fd) for fd in pipe]
    assert None not in opened
    thread = pool._thread
    pool.shutdown()
    thread.join(30)
    assert not thread.is_alive()
    del pool
    gc.collect()
    # closed (or reused by something else since: then open on another file)
    assert [_identity(fd) == before for fd, before in zip(pipe, opened, strict=True)] == [False, False]


def test_a_pool_that_cannot_start_all_its_workers_leaves_none_running(monkeypatch):
    """The second worker process cannot be started (out of processes or descriptors, made to happen
    here): the pool's creation fails with that error, and the first worker, started already, is
    killed and reaped rather than left waiting forever for a driver that dropped it."""
    import subprocess

    import pytest

    from zart_nb._executors import handle
    from zart_nb._executors.local import LocalPool

    started: list = []
    real = subprocess.Popen

    def popen(*args, **kwargs):
        if started:
            raise OSError(11, "Resource temporarily unavailable")
        started.append(real(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(handle.subprocess, "Popen", popen)
    with pytest.raises(OSError, match="Resource temporarily unavailable"):
        LocalPool(2, Outcomes())
    [first] = started
    assert first.returncode is not None  # killed and reaped
