"""Instructions a worker process spends on one no-op step, for callgrind: the worker's side of P1, which
``bench_counted.py`` (the driver only) does not see. This process drives one worker by hand over a
socketpair, as the pool does (tasks in batches of 64, the function sent once), with the worker run under
valgrind. One step's count is (count of N=5000 - count of N=1000) / 4000: start-up cancels out.

    python bench/bench_worker_counted.py 1000 w.1000.out
    python bench/bench_worker_counted.py 5000 w.5000.out
    grep ^summary w.1000.out w.5000.out

Select a tree with ``PYTHONPATH`` (the worker inherits it). Runs of one tree scatter by ~1% (62,500 to
63,150 at a913ce7: the worker's threads poll and batch by wall time). Run by hand, never by the suite.
"""
from __future__ import annotations

import os
import pickle
import socket
import subprocess
import sys
from multiprocessing.connection import Connection

from zart_nb import _serialization
from zart_nb._executors.base import WireTask

BATCH = 64


def main() -> None:
    steps, out = int(sys.argv[1]), sys.argv[2]
    parent, child = socket.socketpair()
    worker = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable, "-m",
         "zart_nb._executors.worker", str(child.fileno())],
        pass_fds=[child.fileno()], stdin=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=dict(os.environ))
    child.close()
    conn = Connection(parent.detach())
    if pickle.loads(conn.recv_bytes()) is not None:
        raise SystemExit("the worker did not start")
    fn_blob = _serialization.dumps(abs)
    args = _serialization.dumps(((1,), {}))
    sent = answered = 0
    while answered < steps:
        batch = [WireTask(i, "abs", fn_blob if i == 0 else None, args, "bench", f"noop#{i}", 1, None)
                 for i in range(sent, min(sent + BATCH, steps))]
        sent += len(batch)
        conn.send_bytes(pickle.dumps(("run", batch), 5))
        while answered < sent:
            answered += sum(type(item) is tuple for item in pickle.loads(conn.recv_bytes()))
    conn.close()  # the worker exits; valgrind writes its count
    worker.wait()


if __name__ == "__main__":
    main()
