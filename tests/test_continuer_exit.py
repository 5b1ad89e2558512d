"""The continuer stops in threading's exit hooks, before atexit closes the journals: an execution that
suspends after that is not taken (no thread of it opens the file while the interpreter finalizes, which
aborted the process inside DuckDB), and processes that exit right after suspending exit cleanly."""
from __future__ import annotations

import subprocess
import sys
import textwrap

from test_suspend_processes import _env, _status


def test_after_its_stop_the_continuer_takes_no_execution_and_the_process_exits_cleanly(tmp_path):
    journal = tmp_path / "j.duckdb"
    script = tmp_path / "late.py"
    script.write_text(textwrap.dedent(f"""
        import threading, time, suspend_lib, zart_nb as zart
        from zart_nb._suspend import continuer
        from zart_nb._runtime import runtime
        continuer._stop()  # what threading's exit hooks call as the interpreter exits
        execution = zart.start(suspend_lib.sleepy, {{"seconds": 3600, "log": {str(tmp_path / 'log')!r}}},
                               execution_id="late", journal={str(journal)!r}, display=False)
        deadline = time.monotonic() + 60
        while execution.status is not zart.ExecutionStatus.SLEEPING and time.monotonic() < deadline:
            time.sleep(0.02)
        assert execution.status is zart.ExecutionStatus.SLEEPING, execution.status
        run = next((t for t in threading.enumerate() if t.name == "zart-late"), None)
        if run is not None:
            run.join(60)  # its run thread has handed it to the continuer, or not
        assert not continuer.has(runtime.journal({str(journal)!r}), "late")
        assert not any(t.name == "zart-continuer" for t in threading.enumerate())
        print("ok", flush=True)
    """))
    for _ in range(2):  # every exit is clean (SIGABRT was 1 in ~20 under load before)
        done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True,
                              timeout=120, env=_env(ZART_SUSPEND_AFTER="0.5"))
        assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr
        assert _status(journal, "late") == "sleeping"  # left in the file for zart serve or a resume
        journal.unlink()


def test_the_continuer_stops_before_non_daemon_threads_are_waited_for_and_before_atexit(tmp_path):
    """What its exit hook guarantees: once the main thread ends, the continuer is stopped while the
    interpreter still waits for the process's non-daemon threads, and before any atexit callback (the
    journals close in one). A non-daemon thread sees it stopped; the atexit callback comes after. (With
    an atexit callback instead, the thread would wait in vain: the interpreter waits for it first.)"""
    script = tmp_path / "order.py"
    script.write_text(textwrap.dedent("""
        import atexit, threading, time
        from zart_nb._suspend import continuer
        seen = []
        atexit.register(lambda: print(" ".join(seen + ["atexit"]), flush=True))

        def watch():  # a non-daemon thread: the interpreter waits for it before any atexit callback
            deadline = time.monotonic() + 30
            while not continuer._stopping and time.monotonic() < deadline:
                time.sleep(0.01)
            seen.append("stopped" if continuer._stopping else "running")

        threading.Thread(target=watch, name="watch").start()
        assert not continuer._stopping
    """))
    done = subprocess.run([sys.executable, str(script)], cwd=tmp_path, capture_output=True, text=True, timeout=120,
                          env=_env())
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["stopped", "atexit"], done.stdout
