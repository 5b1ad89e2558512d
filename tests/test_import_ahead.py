"""The driver imports the module a step's output needs while the worker still pickles and writes it
(``_executors.importahead``): real worker processes, a module the driver has not imported."""
import os
import sys
import uuid

import zart_nb as zart
from zart_nb import _serialization as ser
from zart_nb._executors.base import WireTask
from zart_nb._executors.importahead import THREAD_NAME, wanted
from zart_nb._executors.worker import Runner

# A module of the test's own: on import it notes which thread of which process imported it. Its value's
# pickling (in the worker, after the step returned) waits until the driver has imported it, so the reply is
# made only after the import ahead happened: without it, the step fails (the wait ends) or the module is
# imported by whoever loads the value, not by the import-ahead thread.
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


def _modules(tmp_path, monkeypatch):
    """(the steps' module, imported; the name of the values' module, not imported here)"""
    name = f"ahead_{uuid.uuid4().hex[:12]}"
    (tmp_path / f"{name}.py").write_text(MODULE)
    (tmp_path / f"{name}_steps.py").write_text(STEPS.replace("VALUES", name))
    monkeypatch.syspath_prepend(str(tmp_path))
    zart.shutdown_pool()  # a new pool: its workers get this sys.path
    return __import__(f"{name}_steps"), name


def test_the_driver_imports_an_outputs_module_while_the_worker_writes_it(tmp_path, monkeypatch):
    from zart_nb._runtime import runtime

    steps, name = _modules(tmp_path, monkeypatch)
    assert name not in sys.modules
    make_waits = steps.make_waits

    @zart.workflow("import-ahead")
    def flow(pid):
        value = zart.wait([zart.schedule(make_waits, pid)])[0]
        return type(value).__module__, value.driver_pid

    try:
        assert zart.run(flow, os.getpid(), journal=tmp_path / "j.duckdb", workers=1) == (name, os.getpid())
        assert (tmp_path / f"imported-{os.getpid()}").read_text() == THREAD_NAME
        assert runtime.executor is not None and runtime.executor.imported_ahead == [name]
    finally:
        sys.modules.pop(name, None)
        sys.modules.pop(f"{name}_steps", None)
        zart.shutdown_pool()


def test_a_builtin_output_names_no_module(tmp_path, monkeypatch):
    from zart_nb._runtime import runtime

    steps, name = _modules(tmp_path, monkeypatch)
    make_int = steps.make_int

    @zart.workflow("no-import-ahead")
    def flow(x):
        return zart.wait([zart.schedule(make_int, x) for _ in range(3)])

    try:
        assert zart.run(flow, 1, journal=tmp_path / "j.duckdb", workers=1) == [2, 2, 2]
        assert runtime.executor is not None and runtime.executor.imported_ahead == []
    finally:
        sys.modules.pop(name, None)
        sys.modules.pop(f"{name}_steps", None)
        zart.shutdown_pool()


class _Point:
    pass


def _point():
    return _Point()


def test_the_runner_names_an_output_types_module_once_and_only_with_a_store(tmp_path):
    named: list[str] = []
    runner = Runner(imports=named.append)

    def task(task_id, store):
        return WireTask(task_id, "f1", ser.dumps_by_value(_point), ser.dumps(((), {})), "e-1", f"k#{task_id}", 1,
                        store)

    assert runner.run(task(1, None)).ok and named == []  # no value store (a cluster's worker): nothing named
    store = (str(tmp_path / "values"), 1 << 20)
    assert runner.run(task(2, store)).ok and runner.run(task(3, store)).ok
    assert named == [__name__]


def test_only_plain_module_names_not_yet_imported_are_wanted():
    assert not wanted("sys") and not wanted("builtins") and not wanted("__main__")
    assert not wanted("os; print(1)") and not wanted("a..b") and not wanted("x" * 300)
    assert wanted("some_module_nobody_imported.sub")
