"""The driver imports the module a step's output needs while the worker still pickles and writes it
(``WireImport``, imported on the committer's thread): real worker processes, modules the driver has not
imported yet."""
import os
import subprocess
import sys
import textwrap
import uuid

import pytest

import zart_nb as zart
from zart_nb import _serialization as ser
from zart_nb._executors.base import WireTask
from zart_nb._executors.worker import Runner
from zart_nb._runtime import _plain_module_name

# A module of the test's own: on import it notes which thread of which process imported it. Its value's
# pickling (in the worker, after the step returned) waits until the driver has imported it, so the reply is
# made only after the import ahead happened: without it, the step fails (the wait ends) or the module is
# imported by whoever loads the value, after the reply.
MODULE = '''
import os, threading, time

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, f"imported-{os.getpid()}"), "w") as handle:
    handle.write(threading.current_thread().name)


class Waits:
    def __init__(self, driver_pid):
        self.driver_pid = driver_pid

    def __reduce__(self):
        if os.getpid() != self.driver_pid:
            marker = os.path.join(HERE, f"imported-{self.driver_pid}")
            deadline = time.monotonic() + 20
            while not os.path.exists(marker):
                if time.monotonic() > deadline:
                    raise RuntimeError("the driver did not import this module ahead of the reply")
                time.sleep(0.01)
        return (Waits, (self.driver_pid,))
'''
# The steps, in a module the driver imports: the values' module is imported by the step, in the worker.
STEPS = '''
import zart_nb as zart


@zart.step("make-waits")
def make_waits(driver_pid):
    import VALUES

    return VALUES.Waits(driver_pid)


@zart.step("make-int")
def make_int(x):
    return x + 1
'''


@pytest.fixture
def modules(tmp_path, monkeypatch):
    """(the steps' module, imported here; the name of the values' module, not imported here)"""
    name = f"ahead_{uuid.uuid4().hex[:12]}"
    (tmp_path / f"{name}.py").write_text(MODULE)
    (tmp_path / f"{name}_steps.py").write_text(STEPS.replace("VALUES", name))
    monkeypatch.syspath_prepend(str(tmp_path))
    zart.shutdown_pool()  # a new pool: its workers get this sys.path
    try:
        yield __import__(f"{name}_steps"), name
    finally:
        sys.modules.pop(name, None)
        sys.modules.pop(f"{name}_steps", None)
        zart.shutdown_pool()


def test_the_driver_imports_an_outputs_module_while_the_worker_pickles_it(tmp_path, modules):
    steps, name = modules
    assert name not in sys.modules
    make_waits = steps.make_waits

    @zart.workflow("import-ahead")
    def flow(pid):
        value = zart.wait([zart.schedule(make_waits, pid)])[0]
        return type(value).__module__, value.driver_pid

    assert zart.run(flow, os.getpid(), journal=tmp_path / "j.duckdb", workers=1, display=False) == \
        (name, os.getpid())
    # imported by the committer, where outputs are loaded, one at a time: not the pool's I/O thread
    assert (tmp_path / f"imported-{os.getpid()}").read_text() == "zart-committer"


def test_a_builtin_output_names_no_module(tmp_path, modules):
    steps, name = modules
    make_int = steps.make_int

    @zart.workflow("no-import-ahead")
    def flow(x):
        return zart.wait([zart.schedule(make_int, x) for _ in range(3)])

    assert zart.run(flow, 1, journal=tmp_path / "j.duckdb", workers=1, display=False) == [2, 2, 2]
    assert name not in sys.modules and not (tmp_path / f"imported-{os.getpid()}").exists()


class _Point:
    pass


def _point():
    return _Point()


def _none():
    return None


def test_the_runner_names_an_output_types_module_once(tmp_path):
    named: list[str] = []
    runner = Runner(announce=named.append)
    store = (str(tmp_path / "values"), 1 << 20)

    def task(task_id, fn):
        return WireTask(task_id, fn.__name__, ser.dumps_by_value(fn), ser.dumps(((), {})), "e-1", f"k#{task_id}",
                        1, store)

    assert runner.run(task(1, _none)).ok and named == []  # None, int, str...: the driver has them
    assert runner.run(task(2, _point)).ok and runner.run(task(3, _point)).ok
    assert named == [__name__]  # once per type
    assert Runner().run(task(4, _point)).ok  # a runner nobody listens to (a cluster's worker) names nothing


def test_only_plain_module_names_are_imported():
    assert _plain_module_name("numpy") and _plain_module_name("pandas.core.frame")
    assert not _plain_module_name("os; print(1)") and not _plain_module_name("a..b")
    assert not _plain_module_name("") and not _plain_module_name("x" * 300)


# The failure that once made an import ahead be reverted: the driver imported numpy on a thread of its own
# while another thread unpickled a small numpy output, and one of the two concurrent imports failed
# ("partially initialized module numpy._core.numeric"). A fresh process each time: numpy is not imported in
# the driver when the first outputs come, large (announced, then stored) and small (inline pickles) at once.
MIXED = textwrap.dedent('''
    import sys
    import zart_nb as zart

    @zart.step("big")
    def big(n):
        import numpy as np
        return np.arange(n, dtype=np.float64)

    @zart.step("small")
    def small(i):
        import numpy as np
        return np.arange(4) + i

    @zart.workflow("mixed-numpy")
    def flow(n):
        handles = [zart.schedule(big, n)] + [zart.schedule(small, i) for i in range(40)]
        values = zart.wait(handles)
        return [float(values[0].sum())] + [int(v.sum()) for v in values[1:]]

    assert "numpy" not in sys.modules
    out = zart.run(flow, 300_000, journal=sys.argv[1], workers=2, display=False)
    assert out[0] == float(sum(range(300_000))), out[0]
    assert out[1:] == [6 + 4 * i for i in range(40)], out[1:]
    print("ok")
''')


@pytest.mark.parametrize("attempt", range(4))
def test_large_and_small_numpy_outputs_arriving_together_in_a_fresh_driver(tmp_path, attempt):
    pytest.importorskip("numpy")
    script = tmp_path / "mixed.py"
    script.write_text(MIXED)
    env = {**os.environ, "ZART_MONITOR": "0", "ZART_VALUE_THRESHOLD": "100000"}
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "j.duckdb")], capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "ok"
