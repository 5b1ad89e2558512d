"""P6 (widget half): P1 and P2 in a real Jupyter kernel, with the progress widget displayed vs without.

    python bench/bench_widget.py --workers 2 --repeats 5

Runs a python3 kernel (jupyter_client), defines the no-op workloads of ``bench_core.py`` in it and
times ``zart.run(..., display=True)`` against ``display=False``, interleaved, each on a fresh journal;
the client consumes every iopub message (widget comm traffic included), as a frontend would.
Prints medians and the ratio widget / no widget (target <= 1.15).
"""
from __future__ import annotations

import argparse
import json
import statistics
import tempfile

from jupyter_client.manager import start_new_kernel

SETUP = """
import time, tempfile, os, zart_nb as zart

@zart.step("noop")
def noop_step(i):
    return None

@zart.workflow("bench-fan-out")
def fan_out(n):
    return len(zart.wait([zart.schedule(noop_step, i) for i in range(n)]))

@zart.workflow("bench-sequential")
def sequential(n):
    for i in range(n):
        noop_step(i)
    return n

def timed(workflow, n, display):
    path = os.path.join(tempfile.mkdtemp(), "j.duckdb")
    t = time.perf_counter()
    zart.run(workflow, n, journal=path, workers=WORKERS, display=display)
    elapsed = time.perf_counter() - t
    zart.journal(path).close()
    return elapsed
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--p1-steps", type=int, default=2000)
    parser.add_argument("--p2-steps", type=int, default=500)
    args = parser.parse_args()
    km, kc = start_new_kernel(kernel_name="python3", cwd=tempfile.mkdtemp())
    messages = 0

    def run(code: str) -> str:
        nonlocal messages
        out: list[str] = []

        def hook(msg: dict) -> None:
            nonlocal messages
            messages += 1
            if msg["msg_type"] == "stream":
                out.append(msg["content"]["text"])

        reply = kc.execute_interactive(code, timeout=600, output_hook=hook)
        if reply["content"]["status"] != "ok":
            raise RuntimeError(f"{reply['content'].get('ename')}: {reply['content'].get('evalue')}")
        return "".join(out)

    try:
        run(f"WORKERS = {args.workers}\n" + SETUP)
        run("timed(fan_out, 200, False); timed(fan_out, 200, True)")  # warm the pool and the imports
        results = {}
        for name, workflow, steps in (("P1", "fan_out", args.p1_steps), ("P2", "sequential", args.p2_steps)):
            times: dict[bool, list[float]] = {False: [], True: []}
            for _ in range(args.repeats):
                for display in (False, True):
                    times[display].append(float(run(f"print(timed({workflow}, {steps}, {display}))")))
            plain, widget = statistics.median(times[False]), statistics.median(times[True])
            results[name] = {"without": plain, "with_widget": widget, "ratio": widget / plain}
            print(f"{name}: {steps} steps, without widget {plain:.3f}s, with widget {widget:.3f}s, "
                  f"ratio {widget / plain:.2f} (target <= 1.15)")
        print(json.dumps(results))
    finally:
        kc.stop_channels()
        km.shutdown_kernel(now=True)


if __name__ == "__main__":
    main()
