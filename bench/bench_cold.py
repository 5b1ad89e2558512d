"""Cold start (issue 5): a new process per sample, against ``python -c "import zart_nb"`` of the same run.

    python bench/bench_cold.py                 # 15 samples of each, interleaved
    python bench/bench_cold.py --samples 30 --workers 2
    python bench/bench_cold.py --trees /work/main .   # two checkouts, interleaved (PYTHONPATH)

Measured, each in a fresh process started by this script (times from just before the spawn):
  import      ``python -c "import zart_nb"`` until it exits (the yardstick)
  finished    open a journal and return a completed execution's output, until the process exits
  resume      resume an execution whose 5 first steps are journaled: until its first new step starts
              (the step itself writes the time), so the worker pool's start-up is included
Reported as medians, and beyond the yardstick (the targets: finished <= 60 ms, resume <= 150 ms).
Two more references, measured the same way, put the first figure in context:
  eager       ``python -c "import zart_nb._api, _duckdb"``: what ``import zart_nb`` imported when the
              targets were set (the package is lazy since)
  duckdb      a process that only imports DuckDB and opens and closes the same journal: the floor of
              anything that reads a DuckDB file
Each tree's bytecode is compiled first (``compileall``), as ``pip install`` does: with
``PYTHONDONTWRITEBYTECODE`` set (it is, on some CI images) stale ``.pyc`` files would be recompiled in
every sample and add ~25 ms to every figure.
Run by hand, never by the test suite.
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

SCRIPT = textwrap.dedent('''
    import os, sys, time
    import zart_nb as zart

    journal, mark_dir, fail_at = sys.argv[1], sys.argv[2], int(sys.argv[3])

    @zart.step("mark")
    def mark(i, mark_dir, fail_at):
        path = os.path.join(mark_dir, f"step-{i}")
        if not os.path.exists(path):
            with open(path, "w") as handle:
                handle.write(repr(time.time()))
        if i == fail_at:
            raise RuntimeError("the first run stops here")
        return i

    @zart.workflow("cold")
    def cold(data):
        mark_dir, fail_at = data
        return [mark(i, mark_dir, fail_at) for i in range(8)]

    try:
        print(zart.run(cold, (mark_dir, fail_at), execution_id="cold-1", journal=journal, display=False))
    except zart.StepFailed:
        print("failed")
''')


def _spawn(args: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(seconds until the process exited, its start time on the wall clock)."""
    wall = time.time()
    start = time.perf_counter()
    subprocess.run(args, check=True, env=env, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start, wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=15)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--trees", nargs="*", default=[None], metavar="CHECKOUT",
                        help="measure these checkouts of zart_nb (by PYTHONPATH), interleaved")
    args = parser.parse_args()
    results = {}
    for tree in args.trees:
        results[tree] = ([], [], [], [], [])
    envs = {}
    for tree in args.trees:
        env = dict(os.environ, ZART_WORKERS=str(args.workers), ZART_DISPLAY="0")
        if tree is not None:
            env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(Path(tree).resolve()), env.get("PYTHONPATH")]))
        subprocess.run([sys.executable, "-P", "-c", "import compileall, os, zart_nb; "
                        "compileall.compile_dir(os.path.dirname(zart_nb.__file__), quiet=1)"],
                       check=True, env=env, stdout=subprocess.DEVNULL)
        envs[tree] = env
    for _ in range(args.samples):
        for tree in args.trees:
            _sample(envs[tree], *results[tree])
    print(f"cold start, {args.samples} samples, {args.workers} workers, medians "
          f"(load average {os.getloadavg()[0]:.2f}):")
    for tree, (imports, finishes, resumes, eagers, floors) in results.items():
        if tree is not None:
            print(f" {tree}:")
        base = statistics.median(imports)
        print(f"  python -c 'import zart_nb'           {base * 1000:7.1f} ms")
        for label, values in (("eager import (engine + duckdb)", eagers), ("duckdb: import, open, close", floors)):
            median = statistics.median(values)
            print(f"  {label:<37}{median * 1000:7.1f} ms   beyond the import {1000 * (median - base):6.1f} ms")
        for label, values, target in (("finished re-run (to exit)", finishes, 60),
                                      ("resume: first new step starts", resumes, 150)):
            median = statistics.median(values)
            print(f"  {label:<37}{median * 1000:7.1f} ms   beyond the import {1000 * (median - base):6.1f} ms "
                  f"(target <= {target} ms); beyond the eager import "
                  f"{1000 * (median - statistics.median(eagers)):6.1f} ms")


def _sample(env: dict[str, str], imports: list[float], finishes: list[float], resumes: list[float],
            eagers: list[float], floors: list[float]) -> None:
    """One sample of each measure, in a directory of its own."""
    root = Path(tempfile.mkdtemp(prefix="zart-cold-"))
    try:
        script = root / "cold.py"
        script.write_text(SCRIPT)
        template = root / "template"
        template.mkdir(mode=0o700)
        marks = root / "marks"
        marks.mkdir()
        # The template: steps 0-4 journaled, step 5 failed (the execution is failed, resumable).
        subprocess.run([sys.executable, str(script), str(template / "j.duckdb"), str(marks), "5"], check=True,
                       env=env, stdout=subprocess.DEVNULL)
        finished = root / "finished"
        finished.mkdir(mode=0o700)
        subprocess.run([sys.executable, str(script), str(finished / "j.duckdb"), str(marks), "-1"], check=True,
                       env=env, stdout=subprocess.DEVNULL)
        imports.append(_spawn([sys.executable, "-P", "-c", "import zart_nb"], env)[0])
        eagers.append(_spawn([sys.executable, "-P", "-c", "import zart_nb._api, _duckdb"], env)[0])
        floors.append(_spawn([sys.executable, "-P", "-c", "import sys, _duckdb; _duckdb.connect(sys.argv[1]).close()",
                              str(finished / "j.duckdb")], env)[0])
        finishes.append(_spawn([sys.executable, str(script), str(finished / "j.duckdb"), str(marks), "-1"],
                               env)[0])
        copy = root / "resume"
        shutil.copytree(template, copy)
        os.chmod(copy, 0o700)
        sample_marks = root / "marks-resume"
        sample_marks.mkdir()
        for i in range(5):  # the journaled steps do not run again; these files stand for them
            (sample_marks / f"step-{i}").write_text("0")
        _, wall = _spawn([sys.executable, str(script), str(copy / "j.duckdb"), str(sample_marks), "-1"], env)
        resumes.append(float((sample_marks / "step-5").read_text()) - wall)
        assert (sample_marks / "step-7").exists()
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
