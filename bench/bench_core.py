"""Core benchmarks of zart_nb (DESIGN.md section 7): P1, P2, P3 and P5, and P8 (mixed step durations).

Run by hand, never by the test suite:

    python bench/bench_core.py                  # all of them, workers = os.cpu_count()
    python bench/bench_core.py p1 p3 --workers 2 --repeats 5
    python bench/bench_core.py p1 --no-baseline # zart only (e.g. under py-spy)

Every ratio is zart / baseline, both measured in this run with the same worker count; the baseline is
a bare ``concurrent.futures.ProcessPoolExecutor``. Both pools are warmed up before timing, each zart
measurement uses a fresh journal in its own temporary directory, and zart and baseline repeats are
interleaved so machine noise hits both alike. Times are medians over the repeats.

What a zart time includes: the whole ``zart.run`` call, i.e. creating/opening the DuckDB journal,
writing the run, dispatching, the side log, and the final fold of all step rows into DuckDB (done
before ``zart.run`` returns). The journal create/open cost alone is printed separately.
"""
from __future__ import annotations

import argparse
import concurrent.futures as cf
import cProfile
import datetime as dt
import faulthandler
import gc
import json
import multiprocessing
import os
import platform
import pstats
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb

import zart_nb as zart
from zart_nb._runtime import runtime  # only to close a benchmark's journal and count dispatches

HERE = Path(__file__).resolve().parent


# --- the work -----------------------------------------------------------------------------------


def noop(i: int) -> None:
    """The baseline's task (pickled by reference; the spawn workers import this script)."""
    return None


@zart.step("noop")
def noop_step(i: int) -> None:
    return None


@zart.step("maybe-fail")
def maybe_fail(i: int, last: int, marker: str) -> None:
    # Decided in the worker process: the marker file exists only during P3's first run.
    if i == last and os.path.exists(marker):
        raise RuntimeError(f"step {i} fails while {marker} exists")
    return None


@zart.workflow("bench-fan-out")
def fan_out(n: int) -> int:
    handles = [zart.schedule(noop_step, i) for i in range(n)]
    return len(zart.wait(handles))


@zart.workflow("bench-sequential")
def sequential(n: int) -> int:
    for i in range(n):
        noop_step(i)
    return n


@zart.workflow("bench-fail-last")
def fail_last(spec: dict) -> int:
    n, marker = spec["n"], spec["marker"]
    handles = [zart.schedule(maybe_fail, i, n - 1, marker) for i in range(n)]
    return len(zart.wait(handles))


@zart.step("nap")
def nap_step(seconds: float, i: int) -> None:
    time.sleep(seconds)


QUICK_TIMES: list[float] = []


@zart.workflow("bench-mixed")
def mixed(spec: dict) -> int:
    """Rounds of one slow step scheduled first and quick ones after it; records, per round, how long
    the quick steps' results took (what a user waits for when some land behind the slow step)."""
    rounds, quick, slow = spec["rounds"], spec["quick"], spec["slow"]
    QUICK_TIMES.clear()
    done = 0
    for r in range(rounds):
        t0 = time.perf_counter()
        slow_handle = zart.schedule(nap_step, slow, r)
        done += len(zart.wait([zart.schedule(noop_step, r * quick + i) for i in range(quick)]))
        QUICK_TIMES.append(time.perf_counter() - t0)
        zart.wait([slow_handle])
        done += 1
    return done


CHUNK_TIMES: list[float] = []


@zart.workflow("bench-big")
def big(spec: dict) -> int:
    n, chunk = spec["n"], spec["chunk"]
    done = 0
    CHUNK_TIMES.clear()
    for start in range(0, n, chunk):
        t0 = time.perf_counter()
        handles = [zart.schedule(noop_step, i) for i in range(start, min(n, start + chunk))]
        done += len(zart.wait(handles))
        CHUNK_TIMES.append(time.perf_counter() - t0)
    return done


# --- helpers ------------------------------------------------------------------------------------


class Scratch:
    """A fresh temporary directory holding one journal; closed and removed afterwards."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="zart-bench-")
        self.journal = os.path.join(self.dir, "journal.duckdb")

    def close(self) -> None:
        try:
            runtime.forget_journal(runtime.journal(self.journal))
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)


PROFILER: cProfile.Profile | None = None  # --cprofile: the driver's calling thread, timed runs only


def profiled_run(workflow: Any, data: Any, **kwargs: Any) -> tuple[Any, float]:
    """``zart.run`` timed (and profiled with --cprofile); returns (output, seconds)."""
    if PROFILER is not None:
        PROFILER.enable()
    try:
        t0 = time.perf_counter()
        out = zart.run(workflow, data, **kwargs)
        return out, time.perf_counter() - t0
    finally:
        if PROFILER is not None:
            PROFILER.disable()


def timed_zart(workflow: Any, data: Any, workers: int, expect: Any = None) -> float:
    scratch = Scratch()
    try:
        out, elapsed = profiled_run(workflow, data, execution_id="bench", journal=scratch.journal,
                                    workers=workers)
        if expect is not None and out != expect:
            raise AssertionError(f"{workflow!r} returned {out!r}, expected {expect!r}")
        return elapsed
    finally:
        scratch.close()


def rss_mb() -> float:
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def journal_open_cost() -> float:
    """Seconds to create a journal file, open it (schema, writer thread) and close it."""
    scratch = tempfile.mkdtemp(prefix="zart-bench-")
    try:
        journal = runtime.journal(os.path.join(scratch, "j.duckdb"), grace=0)
        t0 = time.perf_counter()
        with journal.hold():
            pass
        return time.perf_counter() - t0
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def git_state() -> str:
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True,
                                text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "zart_nb"], cwd=HERE.parent,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return commit + (" (zart_nb/ has uncommitted changes)" if dirty else "")
    except Exception:
        return "unknown"


class Bench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.workers = args.workers
        self.repeats = args.repeats
        self.results: dict[str, dict] = {}
        self.pool: cf.ProcessPoolExecutor | None = None

    # warm-up ---------------------------------------------------------------------------------------

    def warm(self) -> None:
        t0 = time.perf_counter()
        timed_zart(fan_out, 20 * self.workers, self.workers)  # start zart's pool, send noop_step
        timed_zart(sequential, 20, self.workers)
        timed_zart(fail_last, {"n": 20 * self.workers, "marker": "/nonexistent"}, self.workers)
        zart_warm = time.perf_counter() - t0
        base_warm = 0.0
        if not self.args.no_baseline:
            t0 = time.perf_counter()
            self.pool = cf.ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
            list(self.pool.map(noop, range(50 * self.workers), chunksize=1))
            for i in range(20):
                self.pool.submit(noop, i).result()
            base_warm = time.perf_counter() - t0
        print(f"warm-up: zart {zart_warm:.2f} s, baseline {base_warm:.2f} s; "
              f"journal create+open+close alone: {journal_open_cost() * 1e3:.1f} ms "
              f"(included in every zart time below)", flush=True)

    # the comparison loop ---------------------------------------------------------------------------

    def compare(self, name: str, steps: int, zart_fn: Callable[[], float],
                base_fn: Callable[[], float], target: float, aim: float) -> None:
        zart_times: list[float] = []
        base_times: list[float] = []
        for r in range(self.repeats):
            gc.collect()
            zart_times.append(zart_fn())
            if not self.args.no_baseline:
                gc.collect()
                base_times.append(base_fn())
            base_txt = f"  baseline {base_times[-1]:.3f} s" if base_times else ""
            print(f"  {name} repeat {r + 1}: zart {zart_times[-1]:.3f} s{base_txt}", flush=True)
        z = statistics.median(zart_times)
        row = {"steps": steps, "zart_s": z, "zart_us_per_step": z / steps * 1e6,
               "zart_all_s": zart_times, "target": target, "aim": aim}
        line = f"{name}: zart {z:.3f} s ({z / steps * 1e6:.0f} µs/step)"
        if base_times:
            b = statistics.median(base_times)
            ratio = z / b
            row.update(base_s=b, base_us_per_step=b / steps * 1e6, base_all_s=base_times, ratio=ratio,
                       pass_target=ratio <= target)
            verdict = "MEETS" if ratio <= target else "MISSES"
            line += (f" | baseline {b:.3f} s ({b / steps * 1e6:.0f} µs/task) | ratio {ratio:.3f} "
                     f"({verdict} target <= {target}, aim <= {aim})")
        self.results[name] = {**self.results.get(name, {}), **row}
        print(line, flush=True)

    # P1 --------------------------------------------------------------------------------------------

    def p1(self) -> None:
        n = self.args.p1_steps
        print(f"P1: {n} no-op steps fanned out and waited, vs pool.map(chunksize=1)", flush=True)
        self.compare("P1", n, lambda: timed_zart(fan_out, n, self.workers, expect=n),
                     lambda: self._base_map(n), 0.5, 0.25)

    def p1w(self) -> None:
        """P1 on a journal that is already open (a notebook's second cell): no file creation."""
        n = self.args.p1_steps
        print(f"P1w: {n} no-op steps fanned out and waited on an open journal, vs pool.map(chunksize=1)",
              flush=True)
        scratch = Scratch()
        journal = runtime.journal(scratch.journal)
        counter = iter(range(1_000_000))
        try:
            with journal.hold():
                profiled_run(fan_out, 10, execution_id="p1w-warm", journal=scratch.journal,
                             workers=self.workers)

                def once() -> float:
                    out, elapsed = profiled_run(fan_out, n, execution_id=f"p1w-{next(counter)}",
                                                journal=scratch.journal, workers=self.workers)
                    if out != n:
                        raise AssertionError(f"fan_out returned {out!r}, expected {n!r}")
                    return elapsed

                self.compare("P1w", n, once, lambda: self._base_map(n), 0.5, 0.25)
        finally:
            scratch.close()

    def _base_map(self, n: int) -> float:
        assert self.pool is not None
        t0 = time.perf_counter()
        for _ in self.pool.map(noop, range(n), chunksize=1):
            pass
        return time.perf_counter() - t0

    # P2 --------------------------------------------------------------------------------------------

    def p2(self) -> None:
        n = self.args.p2_steps
        print(f"P2: {n} sequential no-op steps, vs {n} x pool.submit(noop).result()", flush=True)
        self.compare("P2", n, lambda: timed_zart(sequential, n, self.workers, expect=n),
                     lambda: self._base_submit(n), 3.0, 1.5)

    def _base_submit(self, n: int) -> float:
        assert self.pool is not None
        t0 = time.perf_counter()
        for i in range(n):
            self.pool.submit(noop, i).result()
        return time.perf_counter() - t0

    # P3 --------------------------------------------------------------------------------------------

    def p3(self) -> None:
        n = self.args.p3_steps
        print(f"P3: re-run of a {n}-step execution whose last step failed, vs pool.map of {n}",
              flush=True)
        first_runs: list[float] = []

        def one() -> float:
            scratch = Scratch()
            try:
                marker = os.path.join(scratch.dir, "fail-marker")
                Path(marker).touch()
                spec = {"n": n, "marker": marker}
                t0 = time.perf_counter()
                try:
                    zart.run(fail_last, spec, execution_id="bench-p3", journal=scratch.journal,
                             workers=self.workers)
                except zart.StepError as exc:
                    if exc.step_key != f"maybe-fail#{n - 1}":
                        print(f"  warning: first run failed at {exc!r}", flush=True)
                else:
                    raise AssertionError("P3's first run did not fail")
                first_runs.append(time.perf_counter() - t0)
                os.unlink(marker)
                # A cold re-run, as after a kernel restart: the journal is closed first.
                runtime.journal(scratch.journal).close()
                pool = runtime.get_executor(self.workers)
                dispatched = 0
                original = pool.submit

                def counting_submit(tasks: list) -> None:
                    nonlocal dispatched
                    dispatched += len(tasks)
                    original(tasks)

                pool.submit = counting_submit  # type: ignore[method-assign]
                gc.collect()
                try:
                    out, elapsed = profiled_run(fail_last, spec, execution_id="bench-p3",
                                                journal=scratch.journal, workers=self.workers)
                finally:
                    del pool.submit
                if out != n:
                    raise AssertionError(f"P3 re-run returned {out!r}, expected {n}")
                with runtime.journal(scratch.journal).hold():
                    runs = zart.journal(scratch.journal).list_runs("bench-p3")
                last = runs[-1]
                if dispatched != 1 or last.executed != 1 or last.reused != n - 1:
                    raise AssertionError(f"P3 re-run dispatched {dispatched} task(s), executed "
                                         f"{last.executed}, reused {last.reused}; expected 1, 1, {n - 1}")
                return elapsed
            finally:
                scratch.close()

        self.compare("P3", n, one, lambda: self._base_map(n), 0.1, 0.02)
        first = statistics.median(first_runs)
        self.results["P3"].update(first_run_s=first, first_run_us_per_step=first / n * 1e6)
        print(f"  (P3 first, failing run of {n} steps: median {first:.3f} s, "
              f"{first / n * 1e6:.0f} µs/step; re-run verified: 1 dispatch, {n - 1} reused)", flush=True)

    # P8 --------------------------------------------------------------------------------------------

    def p8(self) -> None:
        """Mixed durations: quick steps that land behind a slow one on the same worker (an idle
        worker takes them back, rather than leave them waiting for the slow step)."""
        rounds, quick, slow = self.args.p8_rounds, self.args.p8_quick, self.args.p8_slow
        print(f"P8: {rounds} rounds of one {slow * 1e3:g} ms step scheduled first and {quick} no-op steps "
              f"after it; time until the no-op steps' results are in, per round", flush=True)
        latencies, walls = [], []
        for r in range(self.repeats):
            gc.collect()
            spec = {"rounds": rounds, "quick": quick, "slow": slow}
            wall = timed_zart(mixed, spec, self.workers, expect=rounds * (quick + 1))
            latency = statistics.median(QUICK_TIMES)
            latencies.append(latency)
            walls.append(wall)
            print(f"  P8 repeat {r + 1}: quick steps' results in {latency * 1e3:.1f} ms (median of "
                  f"{rounds} rounds; worst {max(QUICK_TIMES) * 1e3:.1f} ms), wall {wall:.3f} s", flush=True)
        latency, wall = statistics.median(latencies), statistics.median(walls)
        self.results["P8"] = {"rounds": rounds, "quick": quick, "slow_s": slow, "quick_latency_s": latency,
                              "quick_latency_all_s": latencies, "wall_s": wall, "wall_all_s": walls}
        print(f"P8: quick steps' results in {latency * 1e3:.1f} ms per round (a {slow * 1e3:g} ms step "
              f"beside them), wall {wall:.3f} s", flush=True)

    # P5 --------------------------------------------------------------------------------------------

    def p5(self) -> None:
        n, chunk = self.args.p5_steps, self.args.p5_chunk
        print(f"P5: {n} no-op steps in one execution, scheduled and waited in chunks of {chunk}",
              flush=True)
        rows = []
        for r in range(self.args.p5_repeats):
            gc.collect()
            scratch = Scratch()
            try:
                rss0, peak0 = rss_mb(), peak_rss_mb()
                out, elapsed = profiled_run(big, {"n": n, "chunk": chunk}, execution_id="bench-p5",
                                            journal=scratch.journal, workers=self.workers)
                rss1, peak1 = rss_mb(), peak_rss_mb()
                if out != n:
                    raise AssertionError(f"P5 returned {out!r}, expected {n}")
                chunks = list(CHUNK_TIMES)
            finally:
                scratch.close()
            gc.collect()
            rss2 = rss_mb()
            row = {"steps": n, "chunk": chunk, "wall_s": elapsed, "steps_per_s": n / elapsed,
                   "us_per_step": elapsed / n * 1e6, "rss_before_mb": rss0, "rss_after_mb": rss1,
                   "rss_after_close_mb": rss2, "peak_rss_before_mb": peak0, "peak_rss_after_mb": peak1,
                   "chunk_s": chunks}
            rows.append(row)
            print(f"  P5 repeat {r + 1}: {elapsed:.2f} s, {n / elapsed:.0f} steps/s "
                  f"({elapsed / n * 1e6:.0f} µs/step); driver RSS {rss0:.0f} -> {rss1:.0f} MB "
                  f"({rss2:.0f} MB after the journal is closed); peak RSS {peak0:.0f} -> {peak1:.0f} MB",
                  flush=True)
            print(f"    chunk times (s): first {chunks[0]:.2f}, median {statistics.median(chunks):.2f}, "
                  f"last {chunks[-1]:.2f}", flush=True)
        best = sorted(rows, key=lambda x: x["wall_s"])[len(rows) // 2]
        self.results["P5"] = {**best, "all_wall_s": [x["wall_s"] for x in rows]}
        print(f"P5: {best['wall_s']:.2f} s, {best['steps_per_s']:.0f} steps/s, "
              f"{best['us_per_step']:.0f} µs/step, driver RSS {best['rss_before_mb']:.0f} -> "
              f"{best['rss_after_mb']:.0f} MB (peak {best['peak_rss_after_mb']:.0f} MB)", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("benchmarks", nargs="*", metavar="{p1,p1w,p2,p3,p5,p8,all}",
                        help="which to run (default: all)")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--repeats", type=int, default=5, help="repeats of P1-P3 (median reported)")
    parser.add_argument("--p1-steps", type=int, default=2000)
    parser.add_argument("--p2-steps", type=int, default=500)
    parser.add_argument("--p3-steps", type=int, default=10_000)
    parser.add_argument("--p5-steps", type=int, default=100_000)
    parser.add_argument("--p5-chunk", type=int, default=10_000, help="steps scheduled per wait in P5")
    parser.add_argument("--p5-repeats", type=int, default=1)
    parser.add_argument("--p8-rounds", type=int, default=20)
    parser.add_argument("--p8-quick", type=int, default=50, help="no-op steps after the slow one, per round")
    parser.add_argument("--p8-slow", type=float, default=0.1, help="seconds the slow step of each round takes")
    parser.add_argument("--no-baseline", action="store_true", help="zart only (for profiling)")
    parser.add_argument("--cprofile", type=int, metavar="N", default=0,
                        help="profile the calling thread during the timed zart runs (warm-up, P3's "
                             "first run and baselines excluded) and print the top N functions by "
                             "own time, per benchmark")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    parser.add_argument("--hang-timeout", type=float, default=900,
                        help="dump every thread's traceback and exit if one benchmark takes longer")
    args = parser.parse_args()
    wanted = [b.lower() for b in args.benchmarks] or ["all"]
    unknown = set(wanted) - {"p1", "p1w", "p2", "p3", "p5", "p8", "all"}
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    chosen = ["p1", "p1w", "p2", "p3", "p5", "p8"] if "all" in wanted else list(dict.fromkeys(wanted))

    print(f"zart_nb bench: {dt.datetime.now().isoformat(timespec='seconds')}, git {git_state()}, "
          f"Python {platform.python_version()}, duckdb {duckdb.__version__}, "
          f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}, workers {args.workers}, "
          f"repeats {args.repeats}", flush=True)
    bench = Bench(args)
    faulthandler.dump_traceback_later(args.hang_timeout, exit=True)
    bench.warm()
    global PROFILER
    for name in chosen:
        faulthandler.dump_traceback_later(args.hang_timeout, exit=True)
        if args.cprofile:
            PROFILER = cProfile.Profile()
        getattr(bench, name)()
        if PROFILER is not None and PROFILER.getstats():
            print(f"--- cProfile of the timed zart runs of {name.upper()} (calling thread only) ---")
            pstats.Stats(PROFILER, stream=sys.stdout).sort_stats("tottime").print_stats(args.cprofile)
            PROFILER = None
    faulthandler.cancel_dump_traceback_later()
    if bench.pool is not None:
        bench.pool.shutdown()
    zart.shutdown_pool()
    print("\nsummary:")
    for name, row in bench.results.items():
        if name == "P8":
            print(f"  P8  quick steps' results in {row['quick_latency_s'] * 1e3:.1f} ms per round, "
                  f"wall {row['wall_s']:.3f} s")
        elif name == "P5":
            print(f"  P5  {row['wall_s']:8.2f} s  {row['steps_per_s']:7.0f} steps/s  "
                  f"{row['us_per_step']:6.0f} µs/step  RSS {row['rss_before_mb']:.0f} -> "
                  f"{row['rss_after_mb']:.0f} MB")
        elif "ratio" in row:
            print(f"  {name}  zart {row['zart_s']:.3f} s ({row['zart_us_per_step']:.0f} µs/step)  "
                  f"baseline {row['base_s']:.3f} s ({row['base_us_per_step']:.0f} µs/task)  "
                  f"ratio {row['ratio']:.3f} (target <= {row['target']})")
        else:
            print(f"  {name}  zart {row['zart_s']:.3f} s ({row['zart_us_per_step']:.0f} µs/step)")
    if args.json:
        meta = {"date": dt.datetime.now().isoformat(timespec="seconds"), "git": git_state(),
                "workers": args.workers, "cpus": os.cpu_count(), "python": platform.python_version(),
                "duckdb": duckdb.__version__, "repeats": args.repeats}
        Path(args.json).write_text(json.dumps({"meta": meta, "results": bench.results}, indent=2))


if __name__ == "__main__":
    main()
