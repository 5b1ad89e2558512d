"""Driver process for the TUI's load test: one execution of many quick steps, as fast as the pool goes.

    python fanout_driver.py JOURNAL STEPS

Runs execution ``fan``: STEPS no-op steps scheduled at once (about 12-15k completed per second on two
cores). Prints ``FAN <status>`` and exits.
"""
from __future__ import annotations

import sys

import zart_nb as zart


@zart.step("noop")
def noop(i: int) -> int:
    return i


@zart.workflow("fan-out")
def fan_out(n: int) -> int:
    return len(zart.wait([zart.schedule(noop, i) for i in range(n)]))


if __name__ == "__main__":
    execution = zart.run(fan_out, int(sys.argv[2]), execution_id="fan", journal=sys.argv[1])
    print("FAN completed", execution, flush=True)
