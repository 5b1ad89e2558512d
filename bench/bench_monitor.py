"""P6 (monitor half): P1 and P2 with a monitor client subscribed and polling, vs without one.

    python bench/bench_monitor.py --workers 2 --repeats 5

The engine runs here, on one journal held open for the whole run (so its monitor endpoint stays up, as
in a notebook). For the "with" runs a client process (the TUI's load: subscribed to the events and
reading stats, the executions page and the newest execution's first steps page every 0.25 s) is
started and waits until subscribed; runs with and without alternate. Prints medians and the ratio
with / without (target <= 1.1).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zart_nb as zart
from zart_nb._runtime import runtime

CLIENT = """
import os, sys, time, zart_nb as zart
path, ready, stop = sys.argv[1:4]
client = zart.MonitorClient.connect(path)
assert client is not None, "no live engine"
seen = [0]
mode = os.environ.get("BENCH_CLIENT", "both")
if mode in ("both", "subscribe"):
    sub = client.subscribe(lambda events, resync: seen.__setitem__(0, seen[0] + len(events)))
open(ready, "w").close()
reads = 0
while not os.path.exists(stop):
    if mode == "subscribe":
        time.sleep(0.05)
        continue
    client.stats()
    executions = client.list_executions(limit=200)
    if executions:
        client.list_steps(executions[0].execution_id, limit=500)
    reads += 1
    time.sleep(0.25)
print(seen[0], reads)
"""


@zart.step("noop")
def noop_step(i: int) -> None:
    return None


@zart.workflow("bench-fan-out")
def fan_out(n: int) -> int:
    return len(zart.wait([zart.schedule(noop_step, i) for i in range(n)]))


@zart.workflow("bench-sequential")
def sequential(n: int) -> int:
    for i in range(n):
        noop_step(i)
    return n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--p1-steps", type=int, default=2000)
    parser.add_argument("--p2-steps", type=int, default=500)
    args = parser.parse_args()
    folder = tempfile.mkdtemp(prefix="zart-bench-monitor-")
    path = os.path.join(folder, "journal.duckdb")
    journal = runtime.journal(path)
    counter = iter(range(1_000_000))

    def timed(workflow: object, n: int) -> float:
        t0 = time.perf_counter()
        out = zart.run(workflow, n, execution_id=f"run-{next(counter)}", journal=path, workers=args.workers)
        elapsed = time.perf_counter() - t0
        assert out == n, out
        return elapsed

    try:
        with journal.hold():
            timed(fan_out, 200)  # starts the pool and the monitor endpoint
            timed(sequential, 50)
            for name, workflow, steps in (("P1", fan_out, args.p1_steps), ("P2", sequential, args.p2_steps)):
                times: dict[bool, list[float]] = {False: [], True: []}
                for _ in range(args.repeats):
                    times[False].append(timed(workflow, steps))
                    ready, stop = Path(folder, "ready"), Path(folder, "stop")
                    ready.unlink(missing_ok=True)
                    stop.unlink(missing_ok=True)
                    client = subprocess.Popen([sys.executable, "-P", "-c", CLIENT, path, str(ready), str(stop)],
                                              stdout=subprocess.PIPE, text=True)
                    while not ready.exists():
                        if client.poll() is not None:
                            raise RuntimeError("the client process failed")
                        time.sleep(0.01)
                    times[True].append(timed(workflow, steps))
                    stop.touch()
                    events, reads = client.communicate(timeout=60)[0].split()
                    print(f"  {name}: without {times[False][-1]:.3f} s, with {times[True][-1]:.3f} s "
                          f"(client got {events} events, made {reads} polls)", flush=True)
                without, with_client = statistics.median(times[False]), statistics.median(times[True])
                ratio = with_client / without
                print(f"{name} ({steps} steps): without a client {without:.3f} s, with a subscribed polling "
                      f"client {with_client:.3f} s, ratio {ratio:.3f} "
                      f"({'MEETS' if ratio <= 1.1 else 'MISSES'} target <= 1.1)", flush=True)
    finally:
        runtime.forget_journal(journal)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
