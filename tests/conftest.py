import os
import time
from pathlib import Path

import pytest

os.environ.setdefault("ZART_WORKERS", "2")


@pytest.fixture
def journal(tmp_path: Path) -> Path:
    return tmp_path / ".zart" / "journal.duckdb"


def wait_until(condition, timeout: float = 30.0, interval: float = 0.02, what: str = "condition"):
    """Poll ``condition`` until it is truthy (returns its value) or fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def wait_for_release(workdir: str, timeout: float = 60.0) -> bool:
    """Block until WORKDIR/release exists, for a step a test holds (in a worker process, a thread, a Dask
    worker): False if it never appeared, so a broken test leaves no thread behind."""
    deadline = time.monotonic() + timeout
    while not os.path.exists(os.path.join(workdir, "release")):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


@pytest.fixture
def inline():
    """Steps run on threads of this process (the inline executor) instead of worker processes."""
    from zart_nb._executors.inline import InlineExecutor
    from zart_nb._runtime import runtime

    runtime.shutdown_executor()
    runtime.executor_factory = InlineExecutor
    try:
        yield runtime
    finally:
        runtime.shutdown_executor()
        runtime.executor_factory = None


@pytest.fixture
def pool():
    """The process's worker pool, fresh for the test (its counters start at 0), shut down after it."""
    import zart_nb as zart
    from zart_nb._runtime import runtime

    zart.shutdown_pool()
    yield runtime
    zart.shutdown_pool()
