"""P1, P2 and P3 for callgrind: a workload run N times in one process, so that instruction counts of the
driver (valgrind follows no worker process) compare two trees where wall time cannot (a shared, loaded
machine). One run's count is (count of N=4 - count of N=1) / 3: imports and the pool's start cancel out.

    valgrind --tool=callgrind --callgrind-out-file=p1.1.out python bench/bench_counted.py p1 1
    valgrind --tool=callgrind --callgrind-out-file=p1.4.out python bench/bench_counted.py p1 4
    grep ^summary p1.1.out p1.4.out

    python bench/bench_counted.py p3 setup DIR      # 4 journals whose last step failed (not counted)
    valgrind --tool=callgrind ... python bench/bench_counted.py p3 1 DIR   # then 4, each on a fresh DIR

Select a tree with ``PYTHONPATH``. P1 (2,000 steps fanned out) scatters ~1% between runs; P2 (500
sequential steps) scatters ~25%: its threads poll and wait, and valgrind makes the driver slow beside
native workers, so P2 is compared in wall time only. P3 is a re-run of 10,000 steps whose last one failed.
The replay loop and the outcome path alone: ``bench_outcomes.py``. Run by hand, never by the test suite.
"""
from __future__ import annotations

import os
import sys
import tempfile

import zart_nb as zart


@zart.step("noop")
def noop(i: int) -> int:
    return i


@zart.step("maybe")
def maybe(i: int, marker: str) -> int:
    if i == 9999 and os.path.exists(marker):
        raise RuntimeError("the first run fails here")
    return i


@zart.workflow("fan")
def fan(n: int) -> int:
    return len(zart.wait([zart.schedule(noop, i) for i in range(n)]))


@zart.workflow("seq")
def seq(n: int) -> int:
    return sum(noop(i) for i in range(n))


@zart.workflow("fan-fail")
def fan_fail(marker: str) -> int:
    return len(zart.wait([zart.schedule(maybe, i, marker) for i in range(10000)]))


def main() -> None:
    workload, count = sys.argv[1], sys.argv[2]
    if workload == "p3":
        folder = sys.argv[3]
        if count == "setup":
            for r in range(4):
                marker = os.path.join(folder, f"m{r}")
                open(marker, "w").close()
                try:
                    zart.run(fan_fail, marker, execution_id="p3", journal=os.path.join(folder, f"j{r}.duckdb"),
                             workers=2, display=False)
                except zart.StepFailed:
                    pass
                os.remove(marker)
            return
        for r in range(int(count)):
            out = zart.run(fan_fail, os.path.join(folder, f"m{r}"), execution_id="p3",
                           journal=os.path.join(folder, f"j{r}.duckdb"), workers=2, display=False)
            assert out == 10000
        return
    flow, size, expected = (fan, 2000, 2000) if workload == "p1" else (seq, 500, sum(range(500)))
    for r in range(int(count)):
        journal = os.path.join(tempfile.mkdtemp(), "j.duckdb")
        assert zart.run(flow, size, execution_id=f"{workload}-{r}", journal=journal, workers=2,
                        display=False) == expected


if __name__ == "__main__":
    main()
