"""A crash campaign: drivers (and workers) SIGKILLed at random points of a mixed workflow.

Invariants checked at every kill point: the journal opens; no worker outlives its driver; a step the
journal recorded as completed never runs again; no run hangs; and every execution ends with the
output of an uninterrupted run.

The default is a fixed seed and a modest number of kill points. By hand, many more:

    ZART_CRASH_KILLS=300 ZART_CRASH_SEED=7 python -m pytest tests/test_crash_campaign.py -q
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pytest
from conftest import wait_until

import zart_nb as zart

KILLS = int(os.environ.get("ZART_CRASH_KILLS", "12"))
SEED = int(os.environ.get("ZART_CRASH_SEED", "20261130"))
LAUNCH_TIMEOUT = 120.0  # a launch not killed must finish within this: "no run hangs"
# The campaign as a whole takes ~3 s a kill point at rest and several times that on a loaded machine:
# the suite's 120 s per test would fail it for being slow, which is not what it checks.
pytestmark = pytest.mark.timeout(max(600, 20 * KILLS))

DRIVER = textwrap.dedent('''
    import json, os, sys, time
    import zart_nb as zart

    journal, log, execution_id = sys.argv[1], sys.argv[2], sys.argv[3]

    def note(key):
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        os.write(fd, f"{key} {zart.context().attempt}\\n".encode())
        os.close(fd)

    @zart.step("fan")
    def fan(i):
        note(f"fan#{i}")
        time.sleep(0.005 * (i % 4))
        return i * i

    @zart.step("seq")
    def seq(i, acc):
        note(f"seq#{i}")
        return acc + i

    @zart.step("flaky", retries=zart.RetryPolicy(retries=2, backoff=0.01))
    def flaky(i):
        note(f"flaky#{i}")
        if zart.context().attempt == 1:
            raise RuntimeError("first attempts fail")
        return -i

    @zart.workflow("mixed")
    def mixed(n):
        squares = zart.wait([zart.schedule(fan, i) for i in range(n)])
        acc = 0
        for i in range(6):
            acc = seq(i, acc)
        return {"squares": squares, "acc": acc, "flaky": zart.wait([zart.schedule(flaky, i) for i in range(3)])}

    output = zart.run(mixed, 10, execution_id=execution_id, journal=journal, workers=2, display=False)
    print("OUTPUT " + json.dumps(output), flush=True)
''')
EXPECTED = {"squares": [i * i for i in range(10)], "acc": 15, "flaky": [0, -1, -2]}


def _children(pid: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as handle:
                    fields = handle.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == pid and fields[0] != "Z":
                found.append(int(entry))
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _calls(log: Path) -> Counter[str]:
    if not log.exists():
        return Counter()
    return Counter(line.split()[0] for line in log.read_text().splitlines() if line)


def _completed(journal: Path, execution_id: str) -> set[str]:
    """The journal opens after any kill (this raises if it does not); the steps it holds completed."""
    reader = zart.journal(journal, live=False)
    try:
        return {s.step_key for s in reader.list_steps(execution_id) if s.status is zart.StepStatus.COMPLETED}
    finally:
        reader.close()


def test_random_kills_never_rerun_a_recorded_step_nor_change_the_output(tmp_path):
    rng = random.Random(SEED)
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    journal = tmp_path / "campaign.duckdb"
    env = dict(os.environ, ZART_DISPLAY="0", ZART_LOCK_TIMEOUT="60")
    kills = worker_kills = launches = 0
    history: list[str] = []
    for round_number in range(10_000):
        if kills >= KILLS:
            break
        execution_id = f"c-{round_number}"
        log = tmp_path / f"calls-{round_number}.log"
        recorded: dict[str, int] = {}  # step key -> calls when the journal first showed it completed
        while True:
            launches += 1
            proc = subprocess.Popen([sys.executable, str(script), str(journal), str(log), execution_id],
                                    stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
            kill_at = rng.uniform(0.0, 1.8) if kills < KILLS else None
            killed = worker_killed = False
            if kill_at is not None:
                try:
                    proc.wait(timeout=kill_at)
                except subprocess.TimeoutExpired:
                    workers = _children(proc.pid)
                    if workers and rng.random() < 0.25:
                        victim = rng.choice(workers)  # a worker dies: the driver heals and goes on
                        os.kill(victim, signal.SIGKILL)
                        worker_kills += 1
                        worker_killed = True
                        history.append(f"{execution_id}: worker {victim} killed at {kill_at:.2f}s")
                    else:
                        proc.kill()
                        proc.communicate()  # reaps it and closes its pipes
                        killed = True
                        kills += 1
                        history.append(f"{execution_id}: driver killed at {kill_at:.2f}s")
                        wait_until(lambda ws=workers: not any(_alive(w) for w in ws), timeout=30,
                                   what=f"the workers {workers} of a killed driver to exit")
            failed = False
            if not killed:
                out, err = proc.communicate(timeout=LAUNCH_TIMEOUT)
                # A killed worker fails the attempt it held (WorkerCrashed; these steps have no
                # retries but the flaky one): the execution fails, and the next launch resumes it.
                failed = worker_killed and proc.returncode != 0 and "WorkerCrashed" in err
                assert proc.returncode == 0 or failed, (history, err[-3000:])
                if not failed:
                    output = json.loads(out.split("OUTPUT ", 1)[1])
                    assert output == EXPECTED, history
            completed = _completed(journal, execution_id)
            calls = _calls(log)
            for key in completed:
                recorded.setdefault(key, calls[key])
            # A step recorded as completed never ran again after it was recorded.
            rerun = {key: (calls[key], at) for key, at in recorded.items() if calls[key] != at}
            assert rerun == {}, (rerun, history)
            if not killed and not failed:
                assert completed >= {f"fan#{i}" for i in range(10)} | {f"seq#{i}" for i in range(6)}
                break
    assert kills >= KILLS
    print(f"crash campaign: seed {SEED}, {kills} driver kills, {worker_kills} worker kills, {launches} launches")
