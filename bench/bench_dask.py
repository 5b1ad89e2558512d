"""P7 (DESIGN.md section 7): zart_nb steps on a Dask LocalCluster vs plain ``client.map`` + ``gather``.

Run by hand, never by the test suite:

    python bench/bench_dask.py                       # every workload (about 4 min here)
    python bench/bench_dask.py noop --repeats 5      # only the no-op steps
    python bench/bench_dask.py sleep --steps 500     # fewer 50 ms steps

One LocalCluster of 2 worker processes (1 thread each) serves every Dask measurement in the run.
Workloads: ``sleep``, 2,000 steps of 50 ms fanned out; ``noop``, 2,000 no-op steps fanned out;
``seq``, 200 no-op steps one after the other. For each, three contenders run in alternation, so
machine noise hits them alike:

- ``dask``: plain ``client.map(fn, range(n), pure=False)`` then ``client.gather`` (the floor); for
  ``seq``, ``client.submit(fn, i).result()`` n times;
- ``zart-dask``: ``zart.run`` of the workflow (schedule n steps and wait, or call them in turn) with
  ``executor=client``;
- ``zart-local``: the same workflow on zart_nb's local pool of 2 worker processes.

A zart time is the whole ``zart.run`` call on a fresh journal in its own temporary directory
(creating the DuckDB file, the run, dispatch, the fsynced results, the final fold). Times are medians.
The overhead per step is (zart-dask - dask) / n.
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import distributed

import zart_nb as zart
from zart_nb._runtime import runtime

SLEEP = 0.05


# --- the work (this script's functions travel by value to zart's workers, by reference to Dask's) --


def noop(i: int) -> None:
    return None


def nap(i: int) -> None:
    time.sleep(SLEEP)


@zart.step("noop")
def noop_step(i: int) -> None:
    return None


@zart.step("nap")
def nap_step(i: int) -> None:
    time.sleep(SLEEP)


@zart.workflow("bench-noop")
def noop_flow(n: int) -> int:
    return len(zart.wait([zart.schedule(noop_step, i) for i in range(n)]))


@zart.workflow("bench-nap")
def nap_flow(n: int) -> int:
    return len(zart.wait([zart.schedule(nap_step, i) for i in range(n)]))


@zart.workflow("bench-sequential")
def sequential_flow(n: int) -> int:
    for i in range(n):
        noop_step(i)
    return n


# --- the contenders ------------------------------------------------------------------------------


def plain_dask(client: distributed.Client, fn: Callable[[int], None], n: int) -> float:
    started = time.perf_counter()
    futures = client.map(fn, range(n), pure=False)
    client.gather(futures)
    elapsed = time.perf_counter() - started
    del futures
    return elapsed


def plain_sequential(client: distributed.Client, fn: Callable[[int], None], n: int) -> float:
    started = time.perf_counter()
    for i in range(n):
        client.submit(fn, i, pure=False).result()
    return time.perf_counter() - started


# name -> (the plain Dask way, its function, the zart workflow)
WORKLOADS = {"noop": (plain_dask, noop, noop_flow), "sleep": (plain_dask, nap, nap_flow),
             "seq": (plain_sequential, noop, sequential_flow)}
DEFAULT_STEPS = {"noop": 2000, "sleep": 2000, "seq": 200}


def zart_run(flow, n: int, executor) -> float:
    folder = tempfile.mkdtemp(prefix="zart-bench-dask-")
    try:
        journal = Path(folder) / "journal.duckdb"
        started = time.perf_counter()
        done = zart.run(flow, n, journal=journal, executor=executor, workers=2, display=False,
                        execution_id=f"bench-{time.time_ns()}")
        elapsed = time.perf_counter() - started
        assert done == n, done
        runtime.forget_journal(runtime.journal(journal))  # its folder goes next
        return elapsed
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def measure(client: distributed.Client, name: str, n: int, repeats: int) -> dict:
    plain, fn, flow = WORKLOADS[name]
    contenders: dict[str, Callable[[], float]] = {
        "dask": lambda: plain(client, fn, n),
        "zart-dask": lambda: zart_run(flow, n, client),
        "zart-local": lambda: zart_run(flow, n, "local"),
    }
    times: dict[str, list[float]] = {key: [] for key in contenders}
    for repeat in range(repeats):
        for key, run in contenders.items():
            times[key].append(run())
            print(f"  {name} #{repeat + 1} {key:10s} {times[key][-1]:7.3f} s", flush=True)
    medians = {key: statistics.median(values) for key, values in times.items()}
    floor = medians["dask"]
    report = {"workload": name, "steps": n, "repeats": repeats, "times": times, "medians": medians,
              "steps_per_s": {key: n / value for key, value in medians.items()},
              "ratio_vs_dask": {key: value / floor for key, value in medians.items()},
              "overhead_us_per_step_vs_dask": {key: (value - floor) / n * 1e6 for key, value in medians.items()}}
    print(f"{name}: {n} steps, medians of {repeats}")
    for key, value in medians.items():
        print(f"  {key:10s} {value:8.3f} s  {n / value:8.1f} steps/s  {value / floor:5.2f}x dask  "
              f"{(value - floor) / n * 1e6:+8.0f} us/step")
    return report


def warm_up(client: distributed.Client) -> None:
    plain_dask(client, noop, 50)
    zart_run(noop_flow, 50, client)
    zart_run(noop_flow, 50, "local")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workloads", nargs="*", choices=[[], *WORKLOADS], default=[])
    parser.add_argument("--steps", type=int, help="default: 2000 (200 for seq)")
    parser.add_argument("--repeats", type=int, default=None, help="default: 5 for noop, 1 for sleep")
    parser.add_argument("--json", type=Path, help="write the results here too")
    args = parser.parse_args()
    logging.getLogger("distributed").setLevel(logging.ERROR)
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0",
                                  silence_logs=logging.ERROR) as cluster, \
            distributed.Client(cluster) as client:
        client.wait_for_workers(2)
        warm_up(client)
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                                cwd=Path(__file__).parent).stdout.strip()
        header = {"date": dt.datetime.now().isoformat(timespec="seconds"), "commit": commit,
                  "python": platform.python_version(), "distributed": distributed.__version__,
                  "cpus": os.cpu_count(), "load": os.getloadavg()}
        print(json.dumps(header))
        reports = [measure(client, name, args.steps or DEFAULT_STEPS[name],
                           args.repeats or (1 if name == "sleep" else 5))
                   for name in (args.workloads or list(WORKLOADS))]
    runtime.close_all()
    if args.json:
        args.json.write_text(json.dumps({**header, "results": reports}, indent=2))


if __name__ == "__main__":
    sys.exit(main())
