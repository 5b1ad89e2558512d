"""`zart resume` beside other processes: it serves the monitor endpoint while it runs (as a kernel does),
and when another process's engine holds the journal it has that engine run the resume and follows it."""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from conftest import wait_until

import zart_nb as zart
from zart_nb._monitor import endpoint as endpoint_file
from zart_nb._monitor.client import MonitorClient


def _failed_execution(tmp_path: Path, journal: Path) -> None:
    """Execution ``later`` of a workflow defined in a script that is gone afterwards: its step ``stage#1``
    failed (``fail`` existed); run again, it waits for ``gate`` after touching ``started``."""
    fail = tmp_path / "fail"
    fail.touch()
    script = tmp_path / "first.py"
    script.write_text(textwrap.dedent(f"""
        import os, time
        import zart_nb as zart

        @zart.step("stage")
        def stage(i):
            if i == 1:
                if os.path.exists({str(fail)!r}):
                    raise RuntimeError("not yet")
                open({str(tmp_path / "started")!r}, "w").close()
                while not os.path.exists({str(tmp_path / "gate")!r}):
                    time.sleep(0.02)
            return i * 10

        @zart.workflow("staged")
        def staged(n):
            return sum(stage(i) for i in range(n))

        try:
            zart.run(staged, 3, execution_id="later", journal={str(journal)!r}, workers=1)
        except zart.StepFailed as exc:
            print("FAILED", exc.step_key)
    """))
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert "FAILED stage#1" in proc.stdout, proc.stderr
    script.unlink()
    fail.unlink()


def _zart(*args: str, cwd: Path, **kwargs) -> subprocess.Popen[str]:
    # A one-second lock timeout: a command that waited for the held file instead fails fast.
    return subprocess.Popen([sys.executable, "-m", "zart_nb", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd=cwd, env={**os.environ, "ZART_LOCK_TIMEOUT": "1"}, **kwargs)


def _stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.kill()
        proc.wait()


def test_zart_resume_serves_the_monitor_while_it_runs(tmp_path):
    journal = tmp_path / "j.duckdb"
    _failed_execution(tmp_path, journal)
    resume = _zart("resume", "later", "--journal", str(journal), cwd=tmp_path)
    try:
        wait_until((tmp_path / "started").exists, timeout=60, what="the resumed step to start")
        client = wait_until(lambda: MonitorClient.connect(journal), what="the endpoint of `zart resume`")
        with client:
            assert client.pid == resume.pid
            records = {r.execution_id: r.status for r in client.list_executions()}
            assert records == {"later": zart.ExecutionStatus.RUNNING}
        (tmp_path / "gate").touch()
        out, err = resume.communicate(timeout=60)
    finally:
        _stop(resume)
    assert resume.returncode == 0, err
    assert "Execution completed (run 2)." in out and "output: 30" in out
    assert not endpoint_file.endpoint_path(journal).exists()  # it stopped serving as it released the file


HOLDER = """
import os, sys, time
import zart_nb as zart

@zart.step("ready")
def ready():
    return "released"

@zart.workflow("holder")
def holder(release):
    while not os.path.exists(release):  # in the body: the engine holds the journal, its workers are free
        time.sleep(0.02)
    return ready()

print("HOLDER", zart.run(holder, sys.argv[2], execution_id="holder", journal=sys.argv[1], workers=1), flush=True)
"""


def test_zart_resume_has_the_engine_holding_the_journal_run_it_and_follows_it(tmp_path):
    journal = tmp_path / "j.duckdb"
    _failed_execution(tmp_path, journal)
    (tmp_path / "gate").touch()  # the resumed step does not wait
    (tmp_path / "holder.py").write_text(HOLDER)
    release = tmp_path / "release"
    engine = subprocess.Popen([sys.executable, str(tmp_path / "holder.py"), str(journal), str(release)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    try:
        wait_until(lambda: endpoint_file.read(journal), timeout=60, what="the engine's endpoint")
        resume = _zart("resume", "later", "--journal", str(journal), cwd=tmp_path)
        try:
            out, err = resume.communicate(timeout=60)
        finally:
            _stop(resume)
        assert resume.returncode == 0, (out, err)
        assert f"in process {engine.pid}, which holds the journal (run 2)" in out
        assert "Execution completed (run 2)." in out and "output: 30" in out
        with MonitorClient.connect(journal) as client:  # the engine is still holding it: it ran run 2
            runs = client.list_runs("later")
        assert [(r.run_number, r.status.value, r.pid) for r in runs] == [
            (1, "failed", runs[0].pid), (2, "completed", engine.pid)]
        release.touch()
        out, err = engine.communicate(timeout=60)
        assert "HOLDER released" in out, err
    finally:
        _stop(engine)
