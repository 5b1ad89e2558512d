"""The list stays live and keys answer while an engine in another process completes many steps a second
(issue 13, item 7: it froze for ~20 s at 12-15k steps/s). No timing assertions: what is shown is.

The cause: events asked for a read every 0.25 s tick, and each read (a textual ``exclusive`` worker)
cancelled the one before; a read slower than the tick (both cores busy with the steps) was always
cancelled before it was shown, so the list stayed put until the events stopped. The test makes every
read take 0.4 s, as on that loaded machine, so the starvation shows on any machine."""
from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from conftest import wait_until
from textual.widgets import DataTable, Static
from tui_helpers import rows, run_async, wait_for
from zart_tui.app import ZartApp
from zart_tui.source import Source

from zart_nb._monitor import endpoint as endpoint_file

DRIVER = Path(__file__).parent.parent / "scripts" / "fanout_driver.py"
STEPS = 150_000


def _fan(table: DataTable) -> tuple[str, int] | None:
    """(status, steps done) of the ``fan`` row, whatever the columns are."""
    for row in rows(table):
        if "fan" in row:
            status = next(cell for cell in row if cell in ("running", "completed", "failed", "interrupted"))
            done = next(cell for cell in row if "/" in cell and cell.split()[-1].split("/")[0].isdigit())
            return status, int(done.split()[-1].split("/")[0])
    return None


@run_async
async def test_the_list_refreshes_and_keys_answer_while_thousands_of_steps_complete(tmp_path, monkeypatch):
    read = Source.read

    def slow_read(self, fn):  # on the app's read threads: a read as slow as on a loaded machine
        threading.Event().wait(0.4)
        return read(self, fn)

    monkeypatch.setattr(Source, "read", slow_read)
    journal = tmp_path / ".zart" / "nb.duckdb"
    journal.parent.mkdir()
    gate = tmp_path / "gate"  # the fan-out's last step ends once it exists: the test says when it may finish
    driver = subprocess.Popen([sys.executable, str(DRIVER), str(journal), str(STEPS), str(gate)], cwd=tmp_path,
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: endpoint_file.read(journal), timeout=60, what="the driver's endpoint")
        app = ZartApp(str(journal.parent), poll=30)  # a long poll: what moves the list is the events
        async with app.run_test(size=(120, 30)) as pilot:
            await pilot.pause()
            table = app.screen.query_one("#executions", DataTable)
            seen: list[int] = []

            def progressed() -> bool:
                fan = _fan(table)
                if fan is not None and fan[0] == "running" and (not seen or fan[1] != seen[-1]):
                    seen.append(fan[1])
                return len(seen) >= 4 or (fan is not None and fan[0] == "completed")

            await wait_for(pilot, progressed, timeout=120, what="the running fan-out's count to move")
            # the list moved at least four times while the steps completed (a frozen list stays put)
            assert len(seen) >= 4, seen
            assert seen == sorted(seen) and seen[-1] <= STEPS
            # a key that needs a read is answered while the steps still complete: filter by failed (none)
            await pilot.press("2")
            await wait_for(pilot, lambda: _fan(table) is None, what="the failed filter's (empty) list")
            empty = str(app.screen.query_one("#empty", Static).render())
            assert "No executions match status failed" in empty
            assert driver.poll() is None  # the fan-out was still running when the key's answer was shown
            gate.touch()
            await pilot.press("0")
            await wait_for(pilot, lambda: _fan(table) is not None and (_fan(table)[0] == "completed" or
                                                                       _fan(table)[1] > seen[-1]),
                           timeout=120, what="the fan-out to move on")
            await wait_for(pilot, lambda: _fan(table) == ("completed", STEPS + 1), timeout=120,
                           what="the fan-out completed on screen")
            # the counts (read again only on execution events) follow the status change
            await wait_for(pilot, lambda: "completed 1" in str(app.screen.query_one("#header").render())
                           and "running" not in str(app.screen.query_one("#header").render()).split("\n")[0],
                           what="the header's counts")
        out, err = driver.communicate(timeout=120)
        assert "FAN completed" in out, err
    finally:
        gate.touch()
        if driver.poll() is None:
            driver.kill()
        driver.communicate()  # closes its pipes (left open, they are unraisable warnings in a later test)


@run_async
async def test_a_read_landing_as_the_app_closes_is_dropped_quietly():
    """A screen's read can land after the app began closing: the screen is still attached but its widgets
    are gone, and showing the read met ``NoMatches`` (a worker failure, seen once in CI as a pilot test
    ended). The refresher drops such a read; a read that lands normally is shown."""
    from textual.app import App
    from textual.screen import Screen
    from textual.widgets import Static
    from zart_tui.refresh import Refresher

    shown: list[str] = []

    class Plain(Screen[None]):
        def compose(self):
            yield Static(id="here")

    class Host(App[None]):
        def on_mount(self) -> None:
            self.push_screen(Plain())

    app = Host()
    async with app.run_test() as pilot:
        await pilot.pause()
        screen = app.screen
        refresher = Refresher(screen, lambda: None, lambda _: None, name="test")
        refresher._done(lambda: shown.append(str(screen.query_one("#here", Static).id)))
        refresher._done(lambda: screen.query_one("#gone", Static))  # (raised NoMatches before)
        assert shown == ["here"] and not refresher.running
