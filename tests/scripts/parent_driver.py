"""Driver process for the children tests: a parent whose child waits for a gate, in another process.

    python parent_driver.py JOURNAL GATE

Runs execution ``wp`` of ``waiting_parent`` (its body starts the child ``wp/gated-child#0``, whose step
waits for GATE) and prints ``wp <status>`` when it ends.
"""
from __future__ import annotations

import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from waiting_lib import waiting_parent  # noqa: E402

import zart_nb as zart  # noqa: E402


def main() -> int:
    execution = zart.start(waiting_parent, sys.argv[2], execution_id="wp", journal=sys.argv[1], display=False,
                           workers=2)
    try:
        execution.result(timeout=120)
    except BaseException:  # cancelled from the test: said below
        pass
    print("wp", execution.status.value, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
