"""An engine advertises its monitor endpoint only once the run it starts is journaled: a client that connects
as soon as the endpoint appears reads the execution (test_monitor_endpoint_trust once read no record).

The driver holds its first run inside ``begin_run`` (the transaction that journals it) until the test opens a
gate: before the fix, the endpoint was served during that window and answered "no such execution"."""
from __future__ import annotations

import subprocess
import sys
import textwrap

from conftest import wait_until

import zart_nb as zart
from zart_nb._monitor import endpoint as endpoint_file
from zart_nb._monitor.client import MonitorClient

_DRIVER = """
import os, time
import zart_nb as zart
from zart_nb._journal.journal import Journal

begin_run = Journal.begin_run

def held_begin_run(self, *args, **kwargs):  # the run is about to be journaled: wait for the test's gate
    open({inside!r}, "w").close()
    deadline = time.monotonic() + 90
    while not os.path.exists({gate!r}) and time.monotonic() < deadline:
        time.sleep(0.01)
    return begin_run(self, *args, **kwargs)

Journal.begin_run = held_begin_run

@zart.step("order-wait")
def wait_for(path):
    deadline = time.monotonic() + 90
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)
    return "done"

@zart.workflow("order-flow")
def flow(path):
    return wait_for(path)

print("RESULT", zart.run(flow, {release!r}, execution_id="first", journal={journal!r}, workers=1, display=False))
"""


def test_the_endpoint_is_advertised_only_once_the_run_is_journaled(tmp_path):
    journal, gate, inside, release = (tmp_path / "j.duckdb", tmp_path / "gate", tmp_path / "inside",
                                      tmp_path / "release")
    script = tmp_path / "driver.py"
    script.write_text(textwrap.dedent(_DRIVER.format(journal=str(journal), gate=str(gate), inside=str(inside),
                                                     release=str(release))))
    driver = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, cwd=tmp_path)
    try:
        wait_until(inside.exists, timeout=90, what="the driver to begin journaling its run")
        # The engine holds the journal and has not journaled the run: nothing may be advertised yet.
        assert endpoint_file.read(journal) is None
        assert MonitorClient.connect(journal) is None
        gate.touch()
        client = wait_until(lambda: MonitorClient.connect(journal), timeout=60, what="the driver's endpoint")
        with client:  # the first client that can connect reads the run it serves
            record = client.execution_record("first")
            assert record is not None and record.status is zart.ExecutionStatus.RUNNING
            assert [run.run_number for run in client.list_runs("first")] == [1]
        release.touch()
        out, err = driver.communicate(timeout=90)
    finally:
        gate.touch()
        release.touch()
        if driver.poll() is None:
            driver.kill()
            driver.communicate()
    assert driver.returncode == 0, err
    assert "RESULT done" in out
