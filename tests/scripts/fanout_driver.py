"""Driver process for the TUI's load test: one execution of many quick steps, as fast as the pool goes.

    python fanout_driver.py JOURNAL STEPS [GATE]

Runs execution ``fan``: STEPS no-op steps scheduled at once (about 12-15k completed per second on two
cores), and with GATE one more step, scheduled last, that ends once the file GATE exists (so the test
says when the fan-out may finish). Prints ``FAN <status>`` and exits.
"""
from __future__ import annotations

import os
import sys
import time

import zart_nb as zart


@zart.step("noop")
def noop(i: int) -> int:
    return i


@zart.step("gate")
def gate(path: str) -> bool:
    while not os.path.exists(path):
        time.sleep(0.05)
    return True


@zart.workflow("fan-out")
def fan_out(args: tuple[int, str | None]) -> int:
    n, gate_file = args
    handles = [zart.schedule(noop, i) for i in range(n)]
    if gate_file is not None:
        handles.append(zart.schedule(gate, gate_file))
    zart.wait(handles)
    return n


if __name__ == "__main__":
    gate_file = sys.argv[3] if len(sys.argv) > 3 else None
    execution = zart.run(fan_out, (int(sys.argv[2]), gate_file), execution_id="fan", journal=sys.argv[1])
    print("FAN completed", execution, flush=True)
