"""``zart.sql`` over a journal holding many tables (issue 14): a query naming one, and one over a step's all.

Run by hand, never by the test suite:

    python bench/bench_sql.py                      # journals of 100 and 1,000 stored frames
    python bench/bench_sql.py --tables 3000 --rows 10000

A fan-out of ``--tables`` steps each returns a small DataFrame (stored as Parquet); then, in the same
process, ``zart.sql`` runs a query over one table (by its key's view), over all of them (the step's view)
and over the listing (``zart_tables``), each against the baseline of plain DuckDB reading the same Parquet
file(s) with ``read_parquet`` on an in-memory connection. Printed: seconds (medians of ``--repeats``) and
``zart / plain``.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile

CHILD = r'''
import json, os, statistics, sys, time
import duckdb
import numpy as np
import pandas as pd
import zart_nb as zart

@zart.step("load-{i}")
def load(i, rows):
    return pd.DataFrame({"i": np.full(rows, i), "x": np.arange(rows) * 0.5})

@zart.workflow("bench-sql")
def flow(params):
    count, rows = params
    return len(zart.wait([zart.schedule(load, i, rows) for i in range(count)]))

count, rows, repeats, folder = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
journal = os.path.join(folder, "j.duckdb")
zart.run(flow, (count, rows), execution_id="s", journal=journal, display=False)
tables = os.path.join(folder, "j.duckdb.values", "tables", "s")
one = os.path.join(tables, "load-7.parquet")

def timed(run):
    times = []
    for _ in range(repeats):
        began = time.perf_counter()
        run()
        times.append(time.perf_counter() - began)
    return statistics.median(times)

def plain(sql):
    with duckdb.connect(":memory:") as conn:
        return conn.execute(sql).fetchall()

out = {
    "one": (timed(lambda: zart.sql('select sum(x) from "s/load-7"', journal=journal)),
            timed(lambda: plain(f"select sum(x) from read_parquet('{one}')"))),
    "all": (timed(lambda: zart.sql('select sum(x) from "s/load-{i}"', journal=journal)),
            timed(lambda: plain(f"select sum(x) from read_parquet('{tables}/*.parquet')"))),
    "listing": (timed(lambda: zart.sql("select count(*) from zart_tables", journal=journal)),
                timed(lambda: plain(f"select count(*) from glob('{tables}/*.parquet')"))),
}
print(json.dumps(out))
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--tables", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--rows", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    import json

    import zart_nb

    print(f"zart_nb from {os.path.dirname(zart_nb.__file__)}, {args.rows} rows a table, medians of "
          f"{args.repeats}, load average {os.getloadavg()[0]:.2f}")
    print(f"{'tables':>7} {'query':<8} {'zart.sql s':>11} {'plain s':>8} {'ratio':>6}")
    env = {**os.environ, "ZART_MONITOR": "0"}
    for count in args.tables:
        with tempfile.TemporaryDirectory(prefix="zart-sql-") as folder:
            proc = subprocess.run([sys.executable, "-P", "-c", CHILD, str(count), str(args.rows),
                                   str(args.repeats), folder], env=env, capture_output=True, text=True,
                                  check=True, timeout=1800)
        for name, (zart_s, plain_s) in json.loads(proc.stdout.strip().splitlines()[-1]).items():
            print(f"{count:>7} {name:<8} {zart_s:>11.3f} {plain_s:>8.3f} {zart_s / plain_s:>6.1f}")


if __name__ == "__main__":
    main()
