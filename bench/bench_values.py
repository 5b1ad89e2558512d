"""P9, P10 and P11 (issue 14): a step returning a 200 MB float64 array (P9) or a 5M-row, 5-column DataFrame
(P10: int, float, float, categorical, tz-aware timestamp), the workflow failing after it, then a re-run that
reuses it; each figure the wall time of a whole process (python start to exit) against a baseline process
measured in the same run.

Run by hand, never by the test suite:

    python bench/bench_values.py                     # 200 MB (and 2 MB), 5 repeats, 2 workers
    python bench/bench_values.py --mb 50 --repeats 1 --json /tmp/p9.json
    python bench/bench_values.py --suite p10 --rows 5000000   # P10 only (needs pandas and pyarrow)

zart_nb's bytecode is compiled first, as ``pip install`` does (``--no-compile`` skips it: with
``PYTHONDONTWRITEBYTECODE`` set, each zart process then compiles every module it imports).

| measurement | what the process does |
|---|---|
| base-write | imports numpy, makes the array, ``pickle.dump``s it to a file, fsyncs it |
| zart-first | ``zart.run`` of a workflow whose step makes the array; the body then raises (a failed run) |
| base-read  | ``pickle.load``s that file and sums the array |
| zart-replay | the re-run: the step is reused (its value loaded from the journal), the body sums it |
| base-p11   | makes the array, ``np.save``s it + fsync, sums a ``np.load(mmap_mode="r")`` of it 3 times |
| zart-p11   | P11: a step makes the array, 3 later steps each take it as their argument and sum it |
| NAME@2 | NAME (base-write, zart-first, base-p11, zart-p11) with a 2 MB array (``--small-mb``) |

A 200 MB figure minus its 2 MB one is the part of the time that grows with the value; the 2 MB figure is
(nearly all) the process's fixed cost: interpreters, imports, the journal, the pool.

P9's first run is also split, on both sides, into the time ``before`` the array's making starts, the
``make``, the ``write`` (the baseline's ``pickle.dump`` + fsync; zart's worker storing the value, fsyncs
included, up to the step's journaled end) and what comes ``after`` it to the process's end (wall-clock
marks: the process's own, the worker's, the journal's). Making 400 MB of fresh pages and writing 200 MB
to this disk take 60-540 ms from one process to the next here, on both sides alike; the ratio with
the baseline's own make and write in place of zart's (same repeat) says what is zart's on any disk.

| process | what the process does |
|---|---|
| base-frame-write | P10: imports pandas, makes the frame, ``to_parquet``s it (pandas' defaults), fsyncs it |
| zart-frame-first | P10: ``zart.run`` of a workflow whose step makes the frame; the body then raises |
| base-frame-read  | P10: ``read_parquet``s that file and sums a column |
| zart-frame-replay | P10: the re-run: the step is reused (its frame loaded from the store), the body sums a column |

P10's processes that make the frame (base-frame-write, and zart-frame-first's step in its worker) also
report the peak of the making alone (``pd.DataFrame`` of five fresh columns peaks above 2.5x the frame on
its own) and reset the kernel's peak (``/proc/self/clear_refs``) once the frame exists, so the peak of
what follows (writing it) is printed apart: the peak a frame made with less waste would meet.

The two sides do the same work: the array is made with the same expression, and both replays sum it
(so every page is read: a mapped value is not cheaper merely for being left untouched). Each process
prints its own peak RSS (``VmHWM``) and, for zart, its largest worker's (``ru_maxrss`` of its children
after ``zart.shutdown_pool()``, which the process's exit would do anyway). Repeats alternate zart and
baseline runs, each on a fresh journal and file in a fresh folder; the medians are compared. The page
cache is not dropped (not possible without root on most machines): files are read back warm by both.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve()

CHILD = r'''
import os, pickle, resource, sys, time
mode, folder, mb = sys.argv[1], sys.argv[2], int(sys.argv[3])
n = mb * 1_000_000 // 8

def peak_kb():
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0

def make(n):
    import numpy as np
    return np.arange(n, dtype=np.float64) * 0.5

def timed_make(n, note=None):
    """make(n), its start and end (wall clock) printed, or written to ``note`` (from a worker)."""
    began = time.time()
    array = make(n)
    times = f"{began} {time.time()}"
    if note:
        with open(note, "w") as handle:
            handle.write(times)
    else:
        print(f"MAKE {times}")
    return array

def make_frame(rows):
    import numpy as np
    import pandas as pd
    i = np.arange(rows)
    return pd.DataFrame({"id": i, "x": i * 0.5, "y": np.sqrt(i),
                         "cat": pd.Categorical.from_codes(i % 7, list("abcdefg")),
                         "ts": pd.date_range("2024-01-01", periods=rows, freq="s", tz="Europe/Paris")})

def made_frame(rows, note=None):
    """make_frame, then the process's peak so far written to ``note`` (or returned) and reset, so the
    peak at exit is what came after the frame existed (``ru_maxrss`` of a child reads the reset peak)."""
    frame = make_frame(rows)
    made = peak_kb()
    with open("/proc/self/clear_refs", "w") as handle:
        handle.write("5")
    if note:
        with open(note, "w") as handle:
            handle.write(str(made))
    return frame, made

if mode == "base-frame-write":
    path = os.path.join(folder, "frame.parquet")
    frame, made = made_frame(int(sys.argv[3]))
    frame.to_parquet(path)
    fd = os.open(path, os.O_RDONLY)
    os.fsync(fd)
    print(f"MADE {made} {peak_kb()}")
    print(f"RSS {max(made, peak_kb())} 0")
    sys.exit(0)
if mode == "base-frame-read":
    import pandas as pd
    print(f"SUM {float(pd.read_parquet(os.path.join(folder, 'frame.parquet'))['x'].sum())}")
    print(f"RSS {peak_kb()} 0")
    sys.exit(0)

if mode == "base-write":
    array = timed_make(n)
    with open(os.path.join(folder, "value.pickle"), "wb") as handle:
        pickle.dump(array, handle, protocol=5)
        handle.flush()
        os.fsync(handle.fileno())
    print(f"WRITTEN {time.time()}")
    print(f"RSS {peak_kb()} 0")
elif mode == "base-p11":
    import numpy as np
    path = os.path.join(folder, "value.npy")
    with open(path, "wb") as handle:
        np.save(handle, make(n))
        handle.flush()
        os.fsync(handle.fileno())
    mapped = np.load(path, mmap_mode="r")
    print(f"SUM {[float(mapped.sum()) for _ in range(3)]}")
    print(f"RSS {peak_kb()} 0")
elif mode == "base-read":
    with open(os.path.join(folder, "value.pickle"), "rb") as handle:
        array = pickle.load(handle)
    print(f"SUM {float(array.sum())}")
    print(f"RSS {peak_kb()} 0")
else:
    import zart_nb as zart

    @zart.step("make-array")
    def make_array(n):
        return timed_make(n, os.path.join(folder, "made-at"))

    @zart.step("total")
    def total(array):
        return float(array.sum())

    @zart.workflow("bench-p11")
    def p11(n):
        array = zart.wait([zart.schedule(make_array, n)])[0]
        return zart.wait([zart.schedule(total, array) for _ in range(3)])

    @zart.workflow("bench-values")
    def flow(params):
        n, flag = params
        array = zart.wait([zart.schedule(make_array, n)])[0]
        if os.path.exists(flag):
            raise RuntimeError("failing after the array step")
        return float(array.sum())

    @zart.step("make-frame")
    def make_frame_step(rows):
        return made_frame(rows, os.path.join(folder, "made"))[0]

    @zart.workflow("bench-frame")
    def frame_flow(params):
        rows, flag = params
        frame = zart.wait([zart.schedule(make_frame_step, rows)])[0]
        if os.path.exists(flag):
            raise RuntimeError("failing after the frame step")
        return float(frame["x"].sum())

    flag = os.path.join(folder, "fail")
    if mode.startswith("zart-frame-"):
        if mode == "zart-frame-first":
            open(flag, "w").close()
        else:
            os.unlink(flag)
        try:
            out = zart.run(frame_flow, (int(sys.argv[3]), flag), execution_id="p10",
                           journal=os.path.join(folder, "f.duckdb"), display=False)
            print(f"SUM {out}")
        except zart.TaskError:
            pass
        zart.shutdown_pool()
        after = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        made = int(open(os.path.join(folder, "made")).read()) if mode == "zart-frame-first" else 0
        if made:
            print(f"MADE {made} {after}")
        print(f"RSS {peak_kb()} {max(made, after)}")
        sys.exit(0)
    if mode == "zart-p11":
        print(f"SUM {zart.run(p11, n, execution_id='p11', journal=os.path.join(folder, 'p11.duckdb'))}")
        zart.shutdown_pool()
        print(f"RSS {peak_kb()} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}")
        sys.exit(0)
    if mode == "zart-first":
        open(flag, "w").close()
    else:
        os.unlink(flag)
    try:
        out = zart.run(flow, (n, flag), execution_id="p9", journal=os.path.join(folder, "j.duckdb"),
                       display=False)
        print(f"SUM {out}")
    except zart.TaskError:
        pass
    zart.shutdown_pool()
    print(f"RSS {peak_kb()} {resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}")
'''


def run_child(mode: str, folder: Path, mb: int, env: dict[str, str]) -> dict[str, float]:
    # -P: the child imports the zart_nb this script imported (PYTHONPATH's, or the installed one), never one in
    # the current directory (``python -c`` would put it first: run from a checkout, a tree on PYTHONPATH lost)
    began = time.time()
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-P", "-c", CHILD, mode, str(folder), str(mb)], capture_output=True,
                          text=True, env=env, timeout=600)
    elapsed = time.perf_counter() - started
    ended = time.time()
    if proc.returncode != 0:
        raise SystemExit(f"{mode} failed ({proc.returncode}):\n{proc.stdout}\n{proc.stderr}")
    rss = [line.split() for line in proc.stdout.splitlines() if line.startswith("RSS ")][-1]
    out = {"seconds": elapsed, "driver_mb": _mb(rss[1]), "worker_mb": _mb(rss[2])}
    made = [line.split() for line in proc.stdout.splitlines() if line.startswith("MADE ")]
    if made:  # the frame's making peaked at the first figure; what followed (the write) at the second
        out["made_mb"], out["after_made_mb"] = _mb(made[-1][1]), _mb(made[-1][2])
    if mode in ("base-write", "zart-first"):
        out.update(_parts(mode, proc.stdout, folder, began, ended))
    return out


def _parts(mode: str, stdout: str, folder: Path, began: float, ended: float) -> dict[str, float]:
    """A first run's wall time in four parts (wall-clock marks from the process, its worker and its
    journal): ``before`` the array's making starts (interpreters, imports, the journal, the dispatch),
    ``make`` (the same expression on both sides), ``write`` (the baseline's ``pickle.dump`` + fsync; zart's
    worker storing the value: its file written and fsynced, and the folder's entry), ``after`` (to the
    process's end: for zart the reply, the failed run's records, the journal's release, the exit)."""
    if mode == "base-write":
        lines = {line.split()[0]: line.split()[1:] for line in stdout.splitlines()}
        make_began, make_ended = map(float, lines["MAKE"])
        written = float(lines["WRITTEN"][0])
    else:
        make_began, make_ended = map(float, (folder / "made-at").read_text().split())
        (folder / "made-at").unlink()
        import duckdb  # the journal, closed by the finished process (read here, never by the child)

        with duckdb.connect(str(folder / "j.duckdb"), read_only=True) as conn:
            row = conn.execute("SELECT finished_at FROM steps WHERE execution_id = 'p9' AND name = 'make-array' "
                               "AND current").fetchone()
        assert row is not None, "the first run journaled no make-array step"
        written = float(row[0])
    return {"before": make_began - began, "make": make_ended - make_began, "write": written - make_ended,
            "after": ended - written}


def _mb(kib: str) -> float:
    """A peak the kernel counts in KiB (``VmHWM``, ``ru_maxrss``) in MB, the unit of the values it is
    compared with (``--mb``, the frame's 33 bytes a row / 1e6). Before, the peaks were MiB divided by
    MB: every peak ratio read 4.9% low (P10's driver 2.18x was 2.29x)."""
    return int(kib) * 1024 / 1e6


P9_MODES = ("base-write", "zart-first", "base-read", "zart-replay", "base-p11", "zart-p11")
P10_MODES = ("base-frame-write", "zart-frame-first", "base-frame-read", "zart-frame-replay")


def _print_parts(results: dict[str, list[dict[str, float]]], mb: int, ratios: dict[str, float]) -> None:
    """P9's first run in parts (``_parts``), and its ratio with the parts that are not zart's (making
    the array, writing its bytes to this disk) taken from the baseline of the same repeat: what the
    ratio is on any disk, once the disk and the noise of making 400 MB of fresh pages are the same."""
    names = ("before", "make", "write", "after")
    print(f"P9 first run in parts, s (medians; {mb} MB): " + "; ".join(
        f"{part} {statistics.median(r[part] for r in results['zart-first']):.3f} vs "
        f"{statistics.median(r[part] for r in results['base-write']):.3f}" for part in names))
    own = [(z["before"] + z["after"] + b["make"] + b["write"]) / b["seconds"]
           for z, b in zip(results["zart-first"], results["base-write"], strict=True)]
    extra = [z["before"] + z["after"] - b["before"] - b["after"]
             for z, b in zip(results["zart-first"], results["base-write"], strict=True)]
    ratios["first-same-disk"] = statistics.median(own)
    print(f"P9 first run with the baseline's make and write in place of zart's (same repeat): "
          f"{ratios['first-same-disk']:.2f}x (range {min(own):.2f}-{max(own):.2f}); zart's time outside "
          f"the make and the write beyond the baseline's: +{statistics.median(extra):.3f} s "
          f"(range {min(extra):.3f}-{max(extra):.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=200, help="size of the array in MB (default 200)")
    parser.add_argument("--rows", type=int, default=5_000_000, help="rows of P10's frame (default 5M)")
    parser.add_argument("--suite", choices=("all", "p9", "p10"), default="all", help="p9: P9 and P11; p10: P10")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--small-mb", type=int, default=2,
                        help="P9 and P11 are also run at this size (above the 1 MiB threshold, default 2): the "
                             "difference between the two sizes is the part of the time that grows with the "
                             "value, the rest a fixed cost of the process (0: not run)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--json", help="write the results here too")
    parser.add_argument("--no-compile", action="store_true",
                        help="do not compile zart_nb's bytecode first (with PYTHONDONTWRITEBYTECODE set, every "
                             "zart process, driver and worker, then compiles its modules: ~80 ms of CPU each)")
    args = parser.parse_args()
    env = {**os.environ, "ZART_WORKERS": str(args.workers), "ZART_MONITOR": "0"}
    if not args.no_compile:  # as `pip install` leaves a package (bench_cold.py does the same)
        subprocess.run([sys.executable, "-P", "-c", "import compileall, os, zart_nb; "
                        "compileall.compile_dir(os.path.dirname(zart_nb.__file__), quiet=1)"],
                       check=True, env=env, stdout=subprocess.DEVNULL)
    modes = (P9_MODES if args.suite != "p10" else ()) + (P10_MODES if args.suite != "p9" else ())
    results: dict[str, list[dict[str, float]]] = {m: [] for m in modes}
    small = [m for m in ("base-write", "zart-first", "base-p11", "zart-p11") if m in modes] if args.small_mb else []
    results.update({f"{m}@{args.small_mb}": [] for m in small})
    stores: dict[str, float] = {}
    for _ in range(args.repeats):
        folder = Path(tempfile.mkdtemp(prefix="zart-p9-"))
        try:
            for mode in results:
                base_mode, _, at = mode.partition("@")
                size = args.rows if mode in P10_MODES else int(at) if at else args.mb
                results[mode].append(run_child(base_mode, folder, size, env))
            for name in ("j", "f"):
                store = folder / f"{name}.duckdb.values"
                stores[name] = sum(f.stat().st_size for f in store.rglob("*") if f.is_file()) / 1e6 \
                    if store.exists() else 0.0
                if (folder / f"{name}.duckdb").exists():
                    stores[name + "-journal"] = (folder / f"{name}.duckdb").stat().st_size / 1e6
        finally:
            shutil.rmtree(folder, ignore_errors=True)
    median = {mode: {key: statistics.median(run[key] for run in runs) for key in runs[0]}
              for mode, runs in results.items()}
    import zart_nb

    print(f"{args.repeats} repeats (medians), {args.workers} workers, zart_nb from {Path(zart_nb.__file__).parent}"
          f"{' (not compiled first)' if args.no_compile else ''}, load average {os.getloadavg()[0]:.2f}")
    print(f"journal and store sizes, MB (last repeat): {stores}")
    # The spread of each process's runs next to its median: a disk that writes fast in one repeat and slowly in
    # the next moves a ratio more than any change to zart does (stop 27: P9's first run 0.76x, 1.75x, 2.14x).
    print(f"{'process':<18} {'seconds':>8} {'range s':>11} {'driver RSS MB':>14} {'worker RSS MB':>14}")
    for mode, row in median.items():
        times = [run["seconds"] for run in results[mode]]
        spread = f"{min(times):.2f}-{max(times):.2f}"
        print(f"{mode:<18} {row['seconds']:>8.2f} {spread:>11} {row['driver_mb']:>14.0f} {row['worker_mb']:>14.0f}")
    ratios: dict[str, float] = {}
    if args.suite != "p10":
        ratios["first"] = median["zart-first"]["seconds"] / median["base-write"]["seconds"]
        ratios["replay"] = median["zart-replay"]["seconds"] / median["base-read"]["seconds"]
        ratios["peak"] = max(median["zart-first"]["driver_mb"], median["zart-first"]["worker_mb"],
                             median["zart-replay"]["driver_mb"]) / args.mb
        ratios["p11"] = median["zart-p11"]["seconds"] / median["base-p11"]["seconds"]
        print(f"P9: {args.mb} MB array: first run {ratios['first']:.2f}x (target <= 1.5), replay "
              f"{ratios['replay']:.2f}x (target <= 1.5), peak RSS {ratios['peak']:.2f}x the value (target <= 2)")
        print(f"P11: the array passed to 3 steps {ratios['p11']:.2f}x (target <= 2), driver peak RSS "
              f"{median['zart-p11']['driver_mb'] / args.mb:.2f}x the value")
        for name, zart_mode, base_mode in (("P9 first run", "zart-first", "base-write"),
                                           ("P11", "zart-p11", "base-p11")):
            if f"{zart_mode}@{args.small_mb}" not in median:
                continue
            fixed_zart = median[f"{zart_mode}@{args.small_mb}"]["seconds"]
            fixed_base = median[f"{base_mode}@{args.small_mb}"]["seconds"]
            grown_zart = median[zart_mode]["seconds"] - fixed_zart
            grown_base = median[base_mode]["seconds"] - fixed_base
            key = zart_mode.removeprefix("zart-")
            ratios[f"{key}-grown"] = grown_zart / grown_base if grown_base > 0 else float("nan")
            print(f"{name}: the part that grows with the value ({args.mb} MB minus {args.small_mb} MB) "
                  f"{grown_zart:.2f} s vs {grown_base:.2f} s ({ratios[f'{key}-grown']:.2f}x); at "
                  f"{args.small_mb} MB {fixed_zart:.2f} s vs {fixed_base:.2f} s (the process's fixed cost: "
                  f"+{fixed_zart - fixed_base:.2f} s)")
        _print_parts(results, args.mb, ratios)
    if args.suite != "p9":
        frame_mb = args.rows * 33 / 1e6  # 8 + 8 + 8 + 1 + 8 bytes a row in memory
        ratios["p10-first"] = median["zart-frame-first"]["seconds"] / median["base-frame-write"]["seconds"]
        ratios["p10-replay"] = median["zart-frame-replay"]["seconds"] / median["base-frame-read"]["seconds"]
        ratios["p10-peak"] = max(median["zart-frame-first"]["driver_mb"], median["zart-frame-first"]["worker_mb"],
                                 median["zart-frame-replay"]["driver_mb"]) / frame_mb
        print(f"P10: {args.rows:,}-row frame ({frame_mb:.0f} MB): first run {ratios['p10-first']:.2f}x "
              f"(target <= 1.5), replay {ratios['p10-replay']:.2f}x (target <= 1.5), peak RSS "
              f"{ratios['p10-peak']:.2f}x the frame (target <= 2; the baseline's read_parquet peaks at "
              f"{median['base-frame-read']['driver_mb']:.0f} MB)")
        base, first = median["base-frame-write"], median["zart-frame-first"]
        ratios["p10-made"] = base["made_mb"] / frame_mb
        ratios["p10-peak-after-made"] = max(first["after_made_mb"], first["driver_mb"],
                                            median["zart-frame-replay"]["driver_mb"]) / frame_mb
        print(f"P10: making the frame alone peaks at {base['made_mb']:.0f} MB ({ratios['p10-made']:.2f}x) in the "
              f"baseline, {first['made_mb']:.0f} MB in zart's worker; once it is made, the peak is "
              f"{base['after_made_mb']:.0f} MB for to_parquet, {first['after_made_mb']:.0f} MB for zart's worker: "
              f"zart's peak beyond the making {ratios['p10-peak-after-made']:.2f}x the frame (target <= 2)")
    if args.json:
        Path(args.json).write_text(json.dumps({"mb": args.mb, "rows": args.rows, "median": median,
                                               "runs": results, "ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()
