"""Steps on a real Dask cluster: ``distributed.LocalCluster`` with two worker *processes* (one thread
each), started once for the module. Kills are real signals to the cluster's worker processes (their
pids come from ``client.run(os.getpid)``); drivers killed mid-run are real subprocesses.

The scheduler is made with ``allowed-failures`` 1, so one worker death while a task runs reschedules
it, and a second one fails it with Dask's ``KilledWorker`` (which zart_nb reports as ``WorkerCrashed``).
"""
from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import wait_for_release, wait_until
from nbhelpers import execute, text

import zart_nb as zart
from zart_nb._cli import main as cli_main
from zart_nb._definitions import limit_of

distributed = pytest.importorskip("distributed")
dask = pytest.importorskip("dask")

DRIVER = Path(__file__).resolve().parent / "scripts" / "fault_driver.py"
DEADLINE = 60.0  # generous: the machine is shared and noisy


# --- the cluster ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def cluster():
    """``(client, address)`` of a LocalCluster of 2 worker processes, for the whole module."""
    noisy = logging.getLogger("distributed")
    level = noisy.level
    # Killed workers make the scheduler and nannies log warnings by design; errors still show.
    noisy.setLevel(logging.ERROR)
    # dashboard_address ":0": the scheduler always serves HTTP, by default on 8787, which another
    # cluster on this machine (a parallel test run) may hold
    with dask.config.set({"distributed.scheduler.allowed-failures": 1}):
        local = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                         dashboard_address=":0", silence_logs=logging.ERROR)
    client = distributed.Client(local, set_as_default=False)
    try:
        client.wait_for_workers(2, timeout=DEADLINE)
        yield client, local.scheduler_address
    finally:
        from zart_nb._runtime import runtime

        runtime.shutdown_remote_executors()
        client.close()
        local.close()
        noisy.setLevel(level)


def worker_pids(client) -> dict[str, int]:
    """Address -> pid of every worker of the cluster now."""
    return client.run(os.getpid)


def two_workers(client) -> None:
    """Wait until the nannies have replaced killed workers and nothing runs (the next test's start)."""
    wait_until(lambda: len(client.scheduler_info(n_workers=-1)["workers"]) == 2
               and not any(client.processing().values()), timeout=DEADLINE, what="2 idle workers")


# --- steps (this module is importable on the cluster's workers: they are pickled by reference) ----


def note(workdir: str, label: str) -> None:
    """Append ``label pid`` to WORKDIR/counter.log in one O_APPEND write."""
    fd = os.open(os.path.join(workdir, "counter.log"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.write(fd, f"{label} {os.getpid()}\n".encode())
    finally:
        os.close(fd)


def counter(workdir: Path) -> list[tuple[str, int]]:
    path = workdir / "counter.log"
    if not path.exists():
        return []
    return [(label, int(pid)) for label, pid in (line.split() for line in path.read_text().splitlines())]


@zart.step("whoami")
def whoami(i: int) -> tuple[int, int]:
    return i * i, os.getpid()


@zart.step("talk")
def talk(i: int) -> int:
    print(f"out {i}")
    print(f"err {i}", file=sys.stderr)
    return i


@zart.step("gated")
def gated(workdir: str, i: int) -> int:
    note(workdir, f"gated-{i}")
    wait_for_release(workdir)
    return i


@zart.step("flaky", retries=zart.RetryPolicy(retries=2, backoff=0.05))
def flaky(workdir: str) -> str:
    note(workdir, "flaky")
    if len(counter(Path(workdir))) < 3:
        raise RuntimeError("not yet")
    return f"lucky attempt {zart.context().attempt}"


@zart.step("fragile")
def fragile(workdir: str) -> int:
    note(workdir, "fragile")
    if os.path.exists(os.path.join(workdir, "broken")):
        raise RuntimeError("broken")
    return os.getpid()


@zart.step("slow", timeout=1)
def slow(workdir: str) -> str:
    note(workdir, "slow")
    wait_for_release(workdir)
    return "too late"


@zart.step("kills-its-worker")
def kills_its_worker() -> str:
    os.kill(os.getpid(), signal.SIGKILL)
    return "unreachable"


@zart.step("gated-square")
def gated_square(workdir: str, x: int) -> int:
    note(workdir, f"square-{x}")
    wait_for_release(workdir)
    return x * x


@zart.step("talks-twice")
def talks_twice(workdir: str) -> int:
    """Prints a line and an unfinished one once WORKDIR/go exists, then waits for the release."""
    note(workdir, "talks-twice")
    wait_until(lambda: os.path.exists(os.path.join(workdir, "go")), timeout=DEADLINE, what="go")
    print(f"run in pid {os.getpid()}", flush=True)
    print("waiting...", end="", flush=True)
    wait_for_release(workdir)
    print(" released")
    return os.getpid()


@zart.workflow("talks-twice-flow")
def talks_twice_flow(workdir: str) -> int:
    return talks_twice(workdir)


@zart.workflow("squares")
def squares(data: dict) -> list:
    return zart.wait([zart.schedule(gated_square, data["workdir"], data["base"] + i) for i in range(3)])


@zart.workflow("fan-out")
def fan_out(n: int) -> list:
    return zart.wait([zart.schedule(whoami, i) for i in range(n)])


@zart.workflow("talks")
def talks(n: int) -> list:
    return zart.wait([zart.schedule(talk, i) for i in range(n)])


@zart.workflow("gates")
def gates(data: dict) -> list:
    return zart.wait([zart.schedule(gated, data["workdir"], i) for i in range(data["n"])])


@zart.workflow("flaky-flow")
def flaky_flow(workdir: str) -> str:
    return flaky(workdir)


@zart.workflow("fragile-flow")
def fragile_flow(workdir: str) -> int:
    return fragile(workdir)


@zart.workflow("slow-flow")
def slow_flow(workdir: str) -> list:
    return zart.wait([zart.schedule(slow, workdir)], return_exceptions=True)


@zart.workflow("crash-flow")
def crash_flow(_: None) -> list:
    return zart.wait([zart.schedule(kills_its_worker)], return_exceptions=True)


def read_journal(path: Path, read):
    """Apply ``read`` to a reader of the journal, then release the file."""
    reader = zart.journal(path)
    try:
        return read(reader)
    finally:
        reader.close()


# --- the tests -----------------------------------------------------------------------------------


def test_steps_run_on_the_cluster_and_journal_their_worker(cluster, journal):
    client, _ = cluster
    pids = worker_pids(client)
    out = zart.run(fan_out, 12, journal=journal, executor=client, execution_id="fan")
    assert [square for square, _ in out] == [i * i for i in range(12)]
    assert {pid for _, pid in out} <= set(pids.values())
    assert os.getpid() not in {pid for _, pid in out}
    steps = zart.journal(journal).list_steps("fan")
    assert len(steps) == 12 and {s.worker for s in steps} <= set(pids)
    assert all(s.started_at is not None and s.finished_at >= s.started_at for s in steps)


def test_a_step_function_travels_until_every_worker_holds_it(cluster, journal):
    from zart_nb._runtime import runtime

    client, _ = cluster
    two_workers(client)
    executor = runtime.get_executor(None, client)
    pids = set(worker_pids(client).values())
    for attempt in range(20):  # until both workers have run the step (Dask decides where)
        out = zart.run(fan_out, 12, journal=journal, executor=client, execution_id=f"travel-{attempt}")
        if {pid for _, pid in out} == pids:
            break
    else:
        pytest.fail("the step never ran on both workers")
    sent = executor.functions_sent
    out = zart.run(fan_out, 24, journal=journal, executor=client, execution_id="travel-held")
    assert [square for square, _ in out] == [i * i for i in range(24)]
    assert executor.functions_sent == sent  # every worker holds it: none of the 24 carried it
    # Workers that lost it (a restart, an evicted cache) answer FUNCTION_MISSING: sent again, with it
    client.run(lambda: __import__("zart_nb._executors.dask", fromlist=["_runners"])._runners.clear())
    out = zart.run(fan_out, 8, journal=journal, executor=client, execution_id="travel-lost")
    assert [square for square, _ in out] == [i * i for i in range(8)]
    assert executor.functions_sent > sent


def test_what_steps_print_on_the_cluster_is_shown_live_and_journaled(cluster, journal, capsys):
    client, _ = cluster
    assert zart.run(talks, 3, journal=journal, executor=client, execution_id="talks") == [0, 1, 2]
    out, err = capsys.readouterr()
    for i in range(3):  # outside a notebook, on the driver's own streams, with the step key
        assert f"[talk#{i}] out {i}" in out.splitlines() and f"[talk#{i}] err {i}" in err.splitlines()
    steps = zart.journal(journal).list_steps("talks")
    assert sorted(s.log for s in steps) == [f"out {i}\nerr {i}\n" for i in range(3)]


def test_address_string_env_and_scheduler_pick_the_cluster(cluster, journal, monkeypatch):
    client, address = cluster
    cluster_pids = set(worker_pids(client).values())

    registry = zart.TaskRegistry()
    registry.register("fan-out", fan_out)
    scheduler = zart.DurableScheduler(registry, journal, executor=address)
    assert {pid for _, pid in scheduler.run("by-address", "fan-out", 4)} <= cluster_pids

    monkeypatch.setenv("ZART_EXECUTOR", address)
    assert {pid for _, pid in zart.run(fan_out, 3, journal=journal)} <= cluster_pids
    # "local" overrides the environment: the local pool's worker processes run the steps.
    local = zart.run(fan_out, 2, journal=journal, executor="local", execution_id="local")
    assert not {pid for _, pid in local} & (cluster_pids | {os.getpid()})

    closed = distributed.Client(address, set_as_default=False)
    closed.close()
    with pytest.raises(zart.ConfigurationError, match="is closed"):
        zart.run(fan_out, 1, journal=journal, executor=closed)


def test_retries_back_off_and_journal_each_attempt(cluster, journal, tmp_path):
    client, _ = cluster
    assert zart.run(flaky_flow, str(tmp_path), journal=journal, executor=client,
                    execution_id="flaky") == "lucky attempt 3"
    assert [label for label, _ in counter(tmp_path)] == ["flaky"] * 3
    j = zart.journal(journal)
    (step,) = j.list_steps("flaky")
    assert step.status == zart.StepStatus.COMPLETED and step.attempts == 3
    attempts = j.list_attempts("flaky")
    assert [a.attempt for a in attempts] == [1, 2] and all("not yet" in a.error for a in attempts)
    assert {a.worker for a in attempts} <= set(worker_pids(client))


def test_zart_resume_finishes_a_failed_execution_on_the_cluster(cluster, journal, tmp_path, capsys):
    client, address = cluster
    (tmp_path / "broken").touch()
    with pytest.raises(zart.StepFailed, match="broken"):
        zart.run(fragile_flow, str(tmp_path), journal=journal, executor=client, execution_id="fragile")
    (tmp_path / "broken").unlink()
    assert cli_main(["resume", "fragile", "--journal", str(journal), "--executor", address]) == 0
    assert "Execution completed (run 2)" in capsys.readouterr().out
    assert [pid for _, pid in counter(tmp_path)][-1] in worker_pids(client).values()
    assert cli_main(["show", "fragile", "--journal", str(journal)]) == 0
    shown = capsys.readouterr().out
    assert "WORKER" in shown and shown.count("tcp://") == 2  # the step, and its failed attempt


def test_a_timed_out_attempt_fails_at_once_and_its_result_is_discarded(cluster, journal, tmp_path):
    client, _ = cluster
    (error,) = zart.run(slow_flow, str(tmp_path), journal=journal, executor=client, execution_id="slow")
    # It failed while the step was still blocked on the cluster (nothing released it yet).
    assert isinstance(error, zart.StepTimeout) and error.step_key == "slow#0"
    assert "timeout of 1s" in str(error) and not (tmp_path / "release").exists()
    assert [label for label, _ in counter(tmp_path)] == ["slow"]
    (tmp_path / "release").touch()
    two_workers(client)  # the remote function ran to its end; its result went nowhere
    (step,) = zart.journal(journal).list_steps("slow")
    assert step.status == zart.StepStatus.FAILED and step.output_preview is None
    assert step.worker in worker_pids(client)


def test_two_executions_in_flight_at_once_keep_their_own_results(cluster, journal, tmp_path):
    # Their steps have the same keys (squares#0-2) and, when each run numbered its attempts from 1, the same
    # attempt ids: the cluster's task keys (step key, executor, attempt id) were equal, so the cluster ran
    # one task for both and each got the first's result. Attempt ids are unique in the process now.
    client, _ = cluster

    def start(base: int) -> zart.Execution:
        return zart.start(squares, {"workdir": str(tmp_path), "base": base}, journal=journal, executor=client,
                          execution_id=f"squares-{base}", display=False)

    first, second = start(0), start(10)

    def in_flight(execution: zart.Execution) -> bool:
        progress = execution.progress()
        return progress is not None and progress.total == 3 and progress.finished == 0

    wait_until(lambda: in_flight(first) and in_flight(second), timeout=DEADLINE, what="both executions' steps")
    (tmp_path / "release").touch()
    assert first.result(timeout=DEADLINE) == [0, 1, 4]
    assert second.result(timeout=DEADLINE) == [100, 121, 144]
    assert sorted(label for label, _ in counter(tmp_path)) == sorted(f"square-{x}" for x in (0, 1, 2, 10, 11, 12))


def test_cancel_stops_queued_and_running_steps(cluster, journal, tmp_path):
    client, _ = cluster
    execution = zart.start(gates, {"workdir": str(tmp_path), "n": 4}, journal=journal, executor=client,
                           execution_id="cancel-me")
    wait_until(lambda: len(counter(tmp_path)) == 2, timeout=DEADLINE, what="two gated steps to start")
    execution.cancel()
    with pytest.raises(zart.Cancelled):
        execution.result(timeout=DEADLINE)
    assert execution.status == zart.ExecutionStatus.CANCELLED
    steps = zart.journal(journal).list_steps("cancel-me")
    assert sorted(s.status.value for s in steps) == ["cancelled"] * 4
    (tmp_path / "release").touch()
    two_workers(client)
    assert len(counter(tmp_path)) == 2  # the two queued ones never started


def test_a_worker_killed_mid_step_is_rescheduled_and_the_execution_completes(cluster, journal, tmp_path):
    client, _ = cluster
    pids = worker_pids(client)
    execution = zart.start(gates, {"workdir": str(tmp_path), "n": 1}, journal=journal, executor=client,
                           execution_id="kill-worker")
    ((_, victim),) = wait_until(lambda: counter(tmp_path), timeout=DEADLINE, what="the step to start")
    assert victim in pids.values()
    os.kill(victim, signal.SIGKILL)
    wait_until(lambda: len(counter(tmp_path)) == 2, timeout=DEADLINE, what="the step to start again")
    (tmp_path / "release").touch()
    assert execution.result(timeout=DEADLINE) == [0]
    (first, _), (second, rescheduled) = counter(tmp_path)
    assert first == second == "gated-0" and rescheduled != victim
    (step,) = zart.journal(journal).list_steps("kill-worker")
    assert step.status == zart.StepStatus.COMPLETED and step.attempts == 1
    two_workers(client)


def test_what_a_rescheduled_step_printed_before_its_worker_died_is_told_apart(cluster, journal, tmp_path):
    """A worker killed mid-step: Dask runs the task again under the same key. The lines of the run that
    died are followed by a note, then the later run's lines (they read as one run before); the journal
    keeps the later run's output."""
    from zart_nb._executors.dask import rerun_note

    client, _ = cluster
    addresses = {pid: address for address, pid in worker_pids(client).items()}
    lines: list[tuple[str, int, str, str]] = []
    execution = zart.start(talks_twice_flow, str(tmp_path), journal=journal, executor=client,
                           execution_id="rerun-lines")
    # (key, attempt, stream, text; the sink's fifth argument, the execution's id to name, is left out)
    execution.add_output_sink(lambda *line: lines.append(line[:4]))  # before the step prints: it waits for go
    ((_, victim),) = wait_until(lambda: counter(tmp_path), timeout=DEADLINE, what="the step to start")
    (tmp_path / "go").touch()
    wait_until(lambda: any(line == "waiting..." for *_, line in lines), timeout=DEADLINE,
               what="the unfinished line of the first run")
    os.kill(victim, signal.SIGKILL)
    (_, rerun) = wait_until(lambda: counter(tmp_path)[1:], timeout=DEADLINE, what="the step to start again")[0]
    wait_until(lambda: any(line == f"run in pid {rerun}\n" for *_, line in lines), timeout=DEADLINE,
               what="the later run's first line")
    (tmp_path / "release").touch()
    assert execution.result(timeout=DEADLINE) == rerun != victim
    later = next(address for address, pid in worker_pids(client).items() if pid == rerun)
    note_line = rerun_note(f"{addresses[victim]} x", f"{later} y")
    assert note_line == (f"[zart: Dask runs this attempt again from its start on {later} (the worker that ran it, "
                         f"{addresses[victim]}, was lost): the lines above are the earlier run's]\n")
    assert {(key, attempt) for key, attempt, _, _ in lines} == {("talks-twice#0", 1)}
    assert "".join(line for *_, line in lines) == (f"run in pid {victim}\nwaiting...\n{note_line}"
                                                   f"run in pid {rerun}\nwaiting... released\n")
    assert [stream for *_, stream, line in lines if line == note_line] == ["stderr"]
    (step,) = read_journal(journal, lambda reader: reader.list_steps("rerun-lines"))
    assert step.attempts == 1 and step.log == f"run in pid {rerun}\nwaiting... released\n"
    two_workers(client)


def test_lines_of_an_earlier_run_arriving_late_are_dropped():
    """The rule the driver applies to the tagged lines of one attempt, in the order the events arrive."""
    from zart_nb._executors.dask import DaskExecutor, _Flight, rerun_note

    flight = _Flight(task=object(), future=None)  # type: ignore[arg-type]
    shown: list = []
    for stream, line, run in [("stdout", "a1\n", "w1 a"), ("stdout", "a2 unfinished", "w1 a"),
                              ("stderr", "b1\n", "w2 b"), ("stdout", "a3 late\n", "w1 a"),
                              ("stdout", "untagged\n", ""), ("stdout", "b2\n", "w2 b")]:
        DaskExecutor._output(flight, ["output", 7, stream, line, run], shown)
    assert [(stream, text) for _, stream, text in shown] == [
        ("stdout", "a1\n"), ("stdout", "a2 unfinished"), ("stdout", "\n"), ("stderr", rerun_note("w1 a", "w2 b")),
        ("stderr", "b1\n"), ("stdout", "untagged\n"), ("stdout", "b2\n")]


def test_workers_dying_past_allowed_failures_fail_the_attempt_as_worker_crashed(cluster, journal):
    client, _ = cluster
    (error,) = zart.run(crash_flow, None, journal=journal, executor=client, execution_id="crash")
    assert isinstance(error, zart.WorkerCrashed), error
    assert "died" in str(error)
    two_workers(client)


def test_main_defined_steps_resume_after_the_driver_is_sigkilled(cluster, tmp_path):
    """tests/scripts/fault_driver.py, whose steps live in its __main__ (cloudpickled by value), run on
    the cluster through $ZART_EXECUTOR; SIGKILLed mid-run, a second driver finishes the execution."""
    client, address = cluster
    cluster_pids = set(worker_pids(client).values())
    journal, work = tmp_path / "j.duckdb", tmp_path / "work"
    work.mkdir()
    env = {**os.environ, "ZART_EXECUTOR": address}

    def driver(name: str) -> tuple[subprocess.Popen, Path]:
        out = tmp_path / f"{name}.out"
        with open(out, "wb") as handle:
            proc = subprocess.Popen([sys.executable, str(DRIVER), "phased", str(journal), str(work), "dk"],
                                    stdout=handle, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, env=env)
        return proc, out

    first, _ = driver("run1")
    try:
        # The 15 gated steps are scheduled after the first 5 were journaled; two of them start.
        wait_until(lambda: sum(int(label.split("-")[1]) >= 5 for label, _ in counter(work)) >= 2
                   or first.poll() is not None, timeout=DEADLINE, what="two gated steps to start")
        assert first.poll() is None, (tmp_path / "run1.out").read_text()
        before_kill = counter(work)
        first.send_signal(signal.SIGKILL)
        assert first.wait(DEADLINE) == -signal.SIGKILL
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    assert {pid for _, pid in before_kill} <= cluster_pids

    (work / "release").touch()  # the killed driver's running steps end too; their results go nowhere
    second, out = driver("run2")
    assert second.wait(DEADLINE) == 0, out.read_text()
    (line,) = [line for line in out.read_text().splitlines() if line.startswith("RESULT ")]
    assert json.loads(line[len("RESULT "):])["total"] == sum(i * i for i in range(20))

    runs = Counter(label for label, _ in counter(work))
    started_in_run1 = {label for label, _ in before_kill}
    assert started_in_run1 >= {f"work-{i}" for i in range(5)}  # the first five were journaled before the kill
    # Journaled before the kill: once. A gated step: once, or twice when run 1 had started it; the cluster may
    # still start one of run 1's tasks between the snapshot and the kill (its scheduler has not yet seen the
    # client go), so the snapshot cannot say which gated steps run 1 started.
    for i in range(20):
        assert runs[f"work-{i}"] in ((1, 2) if i >= 5 else (1,)), runs
    assert {pid for _, pid in counter(work)} <= set(worker_pids(client).values()) | cluster_pids

    def final(j):
        return j.list_runs("dk"), j.list_steps("dk")

    run_rows, steps = read_journal(journal, final)
    assert [(r.run_number, r.status.value) for r in run_rows] == [(1, "interrupted"), (2, "completed")]
    assert (run_rows[1].executed, run_rows[1].reused) == (15, 5)
    assert all(s.worker.startswith("tcp://") for s in steps)
    two_workers(client)


@pytest.mark.filterwarnings("ignore")  # the kernel's own (jupyter_client, zmq)
def test_steps_defined_in_a_notebook_cell_run_on_the_cluster(cluster, tmp_path):
    client, address = cluster
    nb = execute([
        "import os\n"
        "from dataclasses import dataclass\n"
        "import zart_nb as zart\n"
        "@dataclass\n"
        "class Reading:\n"
        "    sensor: int\n"
        "    pid: int\n"
        "@zart.step('read')\n"
        "def read(sensor):\n"
        "    print('reading', sensor)\n"
        "    return Reading(sensor, os.getpid())\n"
        "@zart.workflow('survey')\n"
        "def survey(n):\n"
        "    return zart.wait([zart.schedule(read, i) for i in range(n)])",
        f"import distributed\nclient = distributed.Client({address!r}, set_as_default=False)\n"
        "out = zart.run(survey, 4, journal='j.duckdb', executor=client, display=False)\n"
        "print('OUT', [r.sensor for r in out], all(isinstance(r, Reading) for r in out))\n"
        "print('PIDS', sorted({r.pid for r in out}))",
    ], tmp_path)
    lines = text(nb.cells[1], "stdout").splitlines()
    assert "OUT [0, 1, 2, 3] True" in lines, lines
    (pids,) = [json.loads(line[len("PIDS "):]) for line in lines if line.startswith("PIDS ")]
    assert set(pids) <= set(worker_pids(client).values())
    assert sorted(line for line in lines if line.startswith("[read#")) == [f"[read#{i}] reading {i}" for i in range(4)]


def test_bad_executor_values_are_refused_clearly(journal, monkeypatch):
    for bad in (42, "not an address", ""):
        with pytest.raises(zart.ConfigurationError, match="executor"):
            zart.run(fan_out, 1, journal=journal, executor=bad)
    monkeypatch.setenv("ZART_EXECUTOR", "bogus")
    with pytest.raises(zart.ConfigurationError, match="ZART_EXECUTOR"):
        zart.start(fan_out, 1, journal=journal)
    assert not journal.exists() or zart.journal(journal).list_executions() == []


def test_without_distributed_the_error_names_the_extra(tmp_path):
    """Nothing imports distributed unless asked; without it, asking names the extra to install."""
    script = textwrap.dedent(f"""
        import sys
        sys.modules["distributed"] = None  # as if it were not installed
        import zart_nb as zart

        @zart.step("one")
        def one():
            return 1

        @zart.workflow("w")
        def w(_):
            return one()

        assert zart.run(w, None, journal={str(tmp_path / "j.duckdb")!r}, executor="local") == 1
        try:
            zart.run(w, 2, journal={str(tmp_path / "j.duckdb")!r}, executor="tcp://127.0.0.1:8786")
        except zart.ConfigurationError as exc:
            print("ERROR", exc)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=DEADLINE)
    assert done.returncode == 0, done.stderr
    assert "ERROR" in done.stdout and "pip install 'zart_nb[dask]'" in done.stdout, done.stdout
    imported = subprocess.run([sys.executable, "-c", "import sys, zart_nb; print('distributed' in sys.modules)"],
                              capture_output=True, text=True, timeout=DEADLINE)
    assert imported.stdout.strip() == "False", imported.stderr


@zart.step("spanned-{i}")
def spanned(workdir: str, i: int) -> int:
    """Record when this attempt ran (``start end`` in WORKDIR/span-I); 0.2 s of work in between."""
    start = time.time()
    time.sleep(0.2)  # the work: what makes two attempts overlap when nothing limits them
    Path(workdir, f"span-{i}").write_text(f"{start} {time.time()}")
    return i


def test_a_queue_limits_the_attempts_on_the_cluster(cluster, journal, tmp_path):
    client, _ = cluster
    two_workers(client)
    queue = zart.Queue("dask-one-at-a-time", concurrency=1)

    @zart.workflow("dask-queued")
    def flow(workdir):
        return zart.wait([queue.schedule(spanned, workdir, i) for i in range(4)])

    assert zart.run(flow, str(tmp_path), journal=journal, executor=client, execution_id="dask-queue") == [0, 1, 2, 3]
    spans = sorted(tuple(map(float, path.read_text().split())) for path in tmp_path.glob("span-*"))
    assert len(spans) == 4
    for (_, end), (start, _) in zip(spans, spans[1:], strict=False):
        assert start >= end  # two workers, yet one attempt at a time
    assert limit_of(queue).active == 0
