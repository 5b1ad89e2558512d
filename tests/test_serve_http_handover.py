"""`zart serve --http`'s start of a journaled workflow while serve has handed the journal over to another
process's run (``_handover``): answered at once with 503 and ``Retry-After`` (never a 10 s wait for the lock,
never a run that takes the file from the process it was lent to), and started once the journal is free.
A real HTTP client (httpx) against a real `zart serve`, and a real driver process."""
from __future__ import annotations

import subprocess
import sys
import textwrap

import httpx
import processes
import serve_lib
from conftest import wait_until
from test_serve_http import _free_port

import zart_nb as zart
from zart_nb._runtime import runtime


def _status(client: httpx.Client, execution_id: str) -> str | None:
    answer = client.get(f"/executions/{execution_id}")
    return answer.json()["status"] if answer.status_code == 200 else None


def test_an_http_start_while_the_journal_is_lent_is_503_with_retry_after_then_starts_once_it_is_free(tmp_path):
    journal = tmp_path / ".zart" / "journal.duckdb"
    (tmp_path / "open").touch()
    zart.run(serve_lib.gated, {"gate": str(tmp_path / "open")}, execution_id="setup", journal=journal, display=False)
    runtime.journal(journal).close()
    port = _free_port()
    log, driver_err = tmp_path / "serve.log", tmp_path / "driver.err"
    serve = processes.serve(journal, tmp_path, log, "--http", f":{port}")
    driver = None
    try:
        wait_until(lambda: "HTTP API on" in log.read_text(), timeout=60, what="the HTTP API to listen")
        token = journal.with_name("journal.duckdb.token").read_text().strip()
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", headers={"Authorization": f"Bearer {token}"},
                          timeout=60) as client:
            started = client.post("/executions", json={"workflow": "gated", "execution_id": "served",
                                                       "data": {"gate": str(tmp_path / "g1")}})
            assert started.status_code == 201, started.text  # serve holds the journal while it runs
            script = tmp_path / "driver.py"
            script.write_text(textwrap.dedent(f"""
                import serve_lib, zart_nb as zart
                data = {{"gate": {str(tmp_path / 'g2')!r}, "log": {str(tmp_path / 'd.log')!r}}}
                print(zart.run(serve_lib.gated, data, execution_id="driven", journal={str(journal)!r}, display=False))
            """))
            with driver_err.open("wb") as err:
                driver = subprocess.Popen([sys.executable, str(script)], cwd=tmp_path, stdout=subprocess.PIPE,
                                          stderr=err, env=processes.env(ZART_LOCK_TIMEOUT="0"))
            wait_until(lambda: "is handing the journal over" in driver_err.read_text(), timeout=60,
                       what="serve to accept the driver's handover request")
            (tmp_path / "g1").touch()  # serve's run ends; it lets the journal go to the driver
            wait_until(lambda: serve_lib.lines(tmp_path / "d.log") != [], timeout=60,
                       what="the driver's step to run (it holds the journal)")
            busy = client.post("/executions", json={"workflow": "ticker", "execution_id": "later", "data": 1})
            assert busy.status_code == 503, busy.text
            assert int(busy.headers["retry-after"]) >= 1
            assert "try again" in busy.json()["error"] and str(driver.pid) in busy.json()["error"], busy.json()
            assert driver.poll() is None  # nothing took the journal from the driver
            (tmp_path / "g2").touch()
            out, _ = driver.communicate(timeout=60)
            assert driver.returncode == 0, driver_err.read_text()
            assert out.decode().strip() == "opened"

            def started_later() -> bool:
                answer = client.post("/executions", json={"workflow": "gated", "execution_id": "later",
                                                          "data": {"gate": str(tmp_path / "open")}})
                assert answer.status_code in (201, 503), answer.text
                return answer.status_code == 201

            wait_until(started_later, timeout=60, what="the start to be taken once the journal is free")
            wait_until(lambda: _status(client, "later") == "completed", timeout=60, what="the late start to run")
            assert _status(client, "served") == "completed" and _status(client, "driven") == "completed"
    finally:
        if driver is not None and driver.poll() is None:
            driver.kill()
            driver.wait()
        code = processes.stop(serve)
    assert code == 0, log.read_text()
