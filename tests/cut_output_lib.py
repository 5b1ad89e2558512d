"""A workflow whose step's output is cut (past its first 16 KiB and last 64 KiB), beside one whose output is
whole: for tests/test_cut_output.py and tests/tui/test_tui_cut_output.py."""
from __future__ import annotations

import zart_nb as zart

LINES = 20_000  # 20,000 lines of 52 characters: about 1 MB, cut


@zart.step("loud")
def loud(n: int) -> int:
    for i in range(n):
        print(f"line {i:06d} " + "x" * 40)
    print("done")
    return n


@zart.step("quiet")
def quiet() -> str:
    print("one line")
    return "ok"


@zart.workflow("cut-output")
def cut_output(n: int) -> int:
    zart.wait([zart.schedule(quiet)])
    return loud(n)


def make(journal) -> dict[str, zart.StepRecord]:
    zart.run(cut_output, LINES, execution_id="cut-1", journal=journal, display=False)
    reader = zart.journal(journal, live=False)
    try:
        return {step.step_key: step for step in reader.list_steps("cut-1")}
    finally:
        reader.close()
