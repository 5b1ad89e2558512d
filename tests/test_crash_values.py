"""The crash campaign with data-sized values: drivers and workers SIGKILLed at random points of a workflow
whose steps write arrays above the value threshold and Parquet tables, pass them by reference, and whose
output goes to the value store.

Invariants at every kill point, besides the campaign's (the journal opens, a recorded step never runs
again, no run hangs, the output is an uninterrupted run's): every value the journal points to is there
and whole (``zart.scrub``: a kill at any point of a large write loses nothing already journaled); what a
kill leaves is an orphan ``zart gc`` removes, after which the store is still whole and a re-run reuses
every step.

    ZART_CRASH_VALUE_KILLS=40 python -m pytest tests/test_crash_values.py -q
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap

import pytest
from conftest import wait_until
from test_crash_campaign import LAUNCH_TIMEOUT, SEED, _alive, _calls, _children, _completed

pytest.importorskip("numpy")
pytest.importorskip("pandas")
pytest.importorskip("pyarrow")

import zart_nb as zart  # noqa: E402
from zart_nb._runtime import runtime  # noqa: E402

KILLS = int(os.environ.get("ZART_CRASH_VALUE_KILLS", "8"))
pytestmark = pytest.mark.timeout(max(600, 40 * KILLS))
N = 4

DRIVER = textwrap.dedent('''
    import json, os, sys
    import numpy as np
    import pandas as pd
    import zart_nb as zart

    journal, log, execution_id = sys.argv[1], sys.argv[2], sys.argv[3]

    def note(key):
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.write(fd, f"{key} {zart.context().attempt}\\n".encode())
        os.close(fd)

    @zart.step("big")
    def big(i):
        note(f"big#{i}")
        return np.full(1_500_000, float(i + 1))  # 12 MB: a value file

    @zart.step("frame")
    def frame(i):
        note(f"frame#{i}")
        k = np.arange(300_000)
        return pd.DataFrame({"k": k % 7, "v": k * (i + 1.0)})  # a Parquet table

    @zart.step("use")
    def use(array, df, i):
        note(f"use#{i}")
        return float(array.sum()) + float(df["v"].sum()) + i  # both arrive by reference

    @zart.workflow("large")
    def large(n):
        arrays = zart.wait([zart.schedule(big, i) for i in range(n)])
        frames = zart.wait([zart.schedule(frame, i) for i in range(n)])
        sums = zart.wait([zart.schedule(use, arrays[i], frames[i], i) for i in range(n)])
        return {"sums": sums, "last": arrays[-1] * 2}  # a 12 MB output: stored by the driver

    output = zart.run(large, N_STEPS, execution_id=execution_id, journal=journal, workers=2, display=False)
    print("OUTPUT " + json.dumps({"sums": output["sums"], "last": float(output["last"].sum())}), flush=True)
''').replace("N_STEPS", str(N))
K = sum(range(300_000))
EXPECTED = {"sums": [1_500_000 * (i + 1) + K * (i + 1) + i for i in range(N)], "last": 2 * 1_500_000 * N * 1.0}


def _scrub(journal) -> zart.ScrubReport:
    report = zart.scrub(journal)
    runtime.journal(journal).close()  # released at once: the next launch must not wait for this process
    return report


def test_kills_during_large_writes_lose_nothing_journaled(tmp_path):
    rng = random.Random(SEED + 14)
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    journal = tmp_path / "values.duckdb"
    env = dict(os.environ, ZART_DISPLAY="0", ZART_LOCK_TIMEOUT="60")
    kills = worker_kills = launches = 0
    history: list[str] = []
    for round_number in range(1000):
        if kills >= KILLS:
            break
        execution_id = f"v-{round_number}"
        log = tmp_path / f"calls-{round_number}.log"
        recorded: dict[str, int] = {}
        while True:
            launches += 1
            proc = subprocess.Popen([sys.executable, str(script), str(journal), str(log), execution_id],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            kill_at = rng.uniform(0.3, 3.0) if kills < KILLS else None
            killed = worker_killed = False
            if kill_at is not None:
                try:
                    proc.wait(timeout=kill_at)
                except subprocess.TimeoutExpired:
                    workers = _children(proc.pid)
                    if workers and rng.random() < 0.25:
                        victim = rng.choice(workers)
                        os.kill(victim, signal.SIGKILL)
                        worker_kills += 1
                        worker_killed = True
                        history.append(f"{execution_id}: worker {victim} killed at {kill_at:.2f}s")
                    else:
                        proc.kill()
                        proc.communicate()
                        killed = True
                        kills += 1
                        history.append(f"{execution_id}: driver killed at {kill_at:.2f}s")
                        wait_until(lambda ws=workers: not any(_alive(w) for w in ws), timeout=30,
                                   what=f"the workers {workers} of a killed driver to exit")
            failed = False
            if not killed:
                out, err = proc.communicate(timeout=LAUNCH_TIMEOUT)
                failed = worker_killed and proc.returncode != 0 and "WorkerCrashed" in err
                assert proc.returncode == 0 or failed, (history, err[-3000:])
                if not failed:
                    assert json.loads(out.split("OUTPUT ", 1)[1]) == EXPECTED, history
            if journal.exists():
                report = _scrub(journal)
                assert report.ok, (report.damaged, history)  # nothing journaled points at a lost value
            completed = _completed(journal, execution_id) if journal.exists() else set()
            calls = _calls(log)
            for key in completed:
                recorded.setdefault(key, calls[key])
            rerun = {key: (calls[key], at) for key, at in recorded.items() if calls[key] != at}
            assert rerun == {}, (rerun, history)
            if not killed and not failed:
                break
    assert kills >= KILLS
    swept = zart.gc(journal, min_age=0)  # what the kills left: orphans (a killed write, a superseded table)
    runtime.journal(journal).close()
    after = _scrub(journal)
    assert after.ok and after.checked > 0
    log = tmp_path / "calls-0.log"  # round 0's: the driver's globals (its log's path) are in its steps' code
    before = _calls(log)
    done = subprocess.run([sys.executable, str(script), str(journal), str(log), "v-0"], capture_output=True,
                          text=True, env=env, timeout=LAUNCH_TIMEOUT)
    assert done.returncode == 0, done.stderr[-3000:]
    assert json.loads(done.stdout.split("OUTPUT ", 1)[1]) == EXPECTED
    assert _calls(log) == before, history  # nothing ran again: the output and the steps' values are whole
    print(f"value crash campaign: {kills} driver kills, {worker_kills} worker kills, {launches} launches, "
          f"gc removed {len(swept.removed)} orphan(s)")
