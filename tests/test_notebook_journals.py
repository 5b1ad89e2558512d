"""A journal per notebook: two notebooks of one folder run at once (two real kernels), and the CLI
finds their executions without --journal."""
import os
import subprocess
import sys

import pytest
from conftest import wait_until
from jupyter_client.manager import start_new_kernel

pytestmark = pytest.mark.filterwarnings("ignore")

DEFINE = """
import os, time
import zart_nb as zart

@zart.step("gated")
def gated(gate, started):
    open(started, "w").close()
    while not os.path.exists(gate):
        time.sleep(0.01)
    return "opened"

@zart.step("quick")
def quick(i):
    return i + 1

@zart.workflow("slow")
def slow(paths):
    return gated(*paths)

@zart.workflow("fast")
def fast(n):
    return sum(zart.wait([zart.schedule(quick, i) for i in range(n)]))
"""


def _kernel(folder, notebook):
    env = dict(os.environ, JPY_SESSION_NAME=str(folder / notebook), ZART_LOCK_TIMEOUT="2")
    env.pop("ZART_JOURNAL", None)
    return start_new_kernel(kernel_name="python3", cwd=str(folder), env=env)


def _run(kc, code):
    out = []
    reply = kc.execute_interactive(code, timeout=120, output_hook=lambda msg: out.append(
        msg["content"].get("text", "") or msg["content"].get("evalue", "")))
    assert reply["content"]["status"] == "ok", (reply["content"], out)
    return "".join(out)


def test_two_notebooks_in_one_folder_run_at_once(tmp_path):
    gate, started = tmp_path / "gate", tmp_path / "started"
    km_a, kc_a = _kernel(tmp_path, "a.ipynb")
    km_b, kc_b = _kernel(tmp_path, "b.ipynb")
    try:
        _run(kc_a, DEFINE)
        _run(kc_b, DEFINE)
        msg_id = kc_a.execute(f"out = zart.run(slow, ({str(gate)!r}, {str(started)!r}), "
                              "execution_id='slow-a', workers=1, display=False)")
        wait_until(started.exists, timeout=60, what="notebook a's step to start")
        # a holds its journal while its step runs; b has one of its own and does not wait for a
        assert "21" in _run(kc_b, "print(zart.run(fast, 6, execution_id='fast-b', workers=1, display=False))")
        assert "b.duckdb" in _run(kc_b, "print(zart.journal().location)")
        gate.touch()
        reply = kc_a.get_shell_msg(timeout=60)
        while reply["parent_header"].get("msg_id") != msg_id:
            reply = kc_a.get_shell_msg(timeout=60)
        assert reply["content"]["status"] == "ok"
        # VS Code names the notebook in a global instead
        _run(kc_b, "__vsc_ipynb_file__ = os.path.join(os.getcwd(), 'sub', 'c.ipynb')\n"
                   "print(zart.run(fast, 2, execution_id='fast-c', workers=1, display=False))")
        for kc in (kc_a, kc_b):
            _run(kc, "zart.shutdown_pool()\nfor j in zart._runtime.runtime.open_journals(): j.close()")
    finally:
        for km, kc in ((km_a, kc_a), (km_b, kc_b)):
            kc.stop_channels()
            km.shutdown_kernel(now=True)
    zart_dir = tmp_path / ".zart"
    assert sorted(p.name for p in zart_dir.glob("*.duckdb")) == ["a.duckdb", "b.duckdb"]
    assert (tmp_path / "sub" / ".zart" / "c.duckdb").exists()
    env = {k: v for k, v in os.environ.items() if k not in ("ZART_JOURNAL", "JPY_SESSION_NAME")}
    cli = [sys.executable, "-m", "zart_nb._cli"]
    ls = subprocess.run(cli + ["ls"], cwd=tmp_path, capture_output=True, text=True, env=env, timeout=60)
    assert ls.returncode == 0, ls.stderr
    lines = ls.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "JOURNAL", "WORKFLOW"]
    assert {tuple(line.split()[:4]) for line in lines[1:]} == {
        ("slow-a", "a", "slow", "completed"), ("fast-b", "b", "fast", "completed")}
    show = subprocess.run(cli + ["show", "fast-b"], cwd=tmp_path, capture_output=True, text=True, env=env,
                          timeout=60)
    assert show.returncode == 0 and "Execution fast-b  [completed]" in show.stdout
    missing = subprocess.run(cli + ["show", "nope"], cwd=tmp_path, capture_output=True, text=True, env=env,
                             timeout=60)
    assert missing.returncode == 1 and "no execution 'nope' in any journal of .zart/" in missing.stderr


def test_plain_cli_beside_running_notebooks_reads_one_and_names_the_other(tmp_path):
    """Issue 13 item 4 with real kernels: a notebook's running execution (its kernel serves the monitor) is
    listed, shown and cancelled by the plain commands; a notebook whose kernel serves none
    (``$ZART_MONITOR=0``) is named with its kernel's pid at once, not after the 10 s lock wait."""
    gate, started = tmp_path / "gate", tmp_path / "started"
    quiet_gate, quiet_started = tmp_path / "quiet-gate", tmp_path / "quiet-started"
    km_a, kc_a = _kernel(tmp_path, "analysis.ipynb")
    os.environ["ZART_MONITOR"] = "0"
    try:
        km_q, kc_q = _kernel(tmp_path, "quiet.ipynb")
    finally:
        del os.environ["ZART_MONITOR"]
    try:
        _run(kc_a, DEFINE)
        _run(kc_q, DEFINE)
        quiet_pid = int(_run(kc_q, "print(os.getpid())"))
        kc_a.execute(f"zart.run(slow, ({str(gate)!r}, {str(started)!r}), execution_id='slow-a', workers=1, "
                     "display=False)")
        kc_q.execute(f"zart.run(slow, ({str(quiet_gate)!r}, {str(quiet_started)!r}), execution_id='slow-q', "
                     "workers=1, display=False)")
        wait_until(started.exists, timeout=60, what="notebook analysis's step to start")
        wait_until(quiet_started.exists, timeout=60, what="notebook quiet's step to start")
        env = {k: v for k, v in os.environ.items()
               if k not in ("ZART_JOURNAL", "JPY_SESSION_NAME", "ZART_LOCK_TIMEOUT")}
        cli = [sys.executable, "-m", "zart_nb._cli"]

        def zart_cli(*args):
            return subprocess.run(cli + list(args), cwd=tmp_path, capture_output=True, text=True, env=env,
                                  timeout=60)

        ls = zart_cli("ls")
        assert ls.returncode == 0, ls.stderr
        assert [line.split()[:4] for line in ls.stdout.splitlines()[1:]] == [
            ["slow-a", "analysis", "slow", "running"]]
        assert f"the kernel (pid {quiet_pid}) of notebook {tmp_path / 'quiet.ipynb'}" in ls.stderr
        assert "waiting up to" not in ls.stderr
        show = zart_cli("show", "slow-a")
        assert show.returncode == 4 and "Execution slow-a  [running]" in show.stdout, show.stderr
        cancel = zart_cli("cancel", "slow-a")
        assert cancel.returncode == 0 and "cancelled (was running)" in cancel.stdout, cancel.stderr
        assert zart_cli("show", "slow-a").returncode == 6  # cancelled
    finally:
        gate.touch()
        quiet_gate.touch()
        for km, kc in ((km_a, kc_a), (km_q, kc_q)):
            kc.stop_channels()
            km.shutdown_kernel(now=True)
