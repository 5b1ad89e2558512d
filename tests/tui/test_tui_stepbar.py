"""The execution screen's step bar counts the rows it shows: while steps run, the engine's running steps
come after the journal's records (the journal has no row of them yet), and the bar counts both, saying
which are running (it said "steps 1-1 of 1" above three rows). A real driver on two worker processes;
its two gated steps wait for a release file."""
from __future__ import annotations

from textual.widgets import DataTable, Static
from tui_helpers import driving, open_running, rows, run_async, wait_for
from zart_tui.app import ZartApp
from zart_tui.screens.execution import PAGE, ExecutionScreen


def bar_of(screen: ExecutionScreen) -> str:
    return str(screen.query_one("#stepbar", Static).render())


def running_rows(screen: ExecutionScreen) -> list[list[str]] | None:
    found = [r for r in rows(screen.query_one("#steps", DataTable)) if r[0].startswith("slow-")]
    return found if len(found) == 2 and all(r[1] == "running" for r in found) else None


@run_async
async def test_the_step_bar_counts_the_running_rows(tmp_path):
    with driving(tmp_path, quick=1) as journal:
        app = ZartApp(str(journal.parent), poll=30)
        async with app.run_test(size=(150, 40)) as pilot:
            screen = await open_running(pilot, "bar")
            await wait_for(pilot, lambda: running_rows(screen), what="both slow steps listed running")
            shown = rows(screen.query_one("#steps", DataTable))
            assert [r[:2] for r in shown] == [["quick-0", "completed"], ["slow-0", "running"], ["slow-1", "running"]]
            # the bar is drawn with the rows: both come from the same read
            assert bar_of(screen).startswith("3 steps: 1 done, 2 running"), bar_of(screen)


@run_async
async def test_a_paged_step_bar_counts_the_running_rows_too(tmp_path):
    quick = PAGE + 1  # two pages of records, and two running steps after the last
    with driving(tmp_path, quick=quick) as journal:
        app = ZartApp(str(journal.parent), poll=30)
        async with app.run_test(size=(150, 40)) as pilot:
            screen = await open_running(pilot, "bar")
            await wait_for(pilot, lambda: screen.total == quick and screen.progress and screen.progress.running == 2,
                           what="the quick steps journaled, the slow ones running")
            total = quick + 2
            assert bar_of(screen).startswith(f"steps 1-{PAGE} of {total} (2 running, not journaled yet: on the "
                                             "last page)"), bar_of(screen)
            assert running_rows(screen) is None  # they are on the last page
            await pilot.press("G")
            await wait_for(pilot, lambda: running_rows(screen), what="the last page, with the running steps")
            assert screen.query_one("#steps", DataTable).row_count == PAGE + 2
            assert bar_of(screen).startswith(f"steps {total - PAGE - 1}-{total} of {total} (2 running, "
                                             "not journaled yet)"), bar_of(screen)


@run_async
async def test_a_step_running_again_with_its_record_on_another_page_is_counted_once(tmp_path):
    quick = PAGE + 1  # slow-0's record (run 1) is on the second page; a rerun runs it again
    with driving(tmp_path, quick, "rerun") as journal:
        app = ZartApp(str(journal.parent), poll=30)
        async with app.run_test(size=(150, 40)) as pilot:
            screen = await open_running(pilot, "bar")
            await wait_for(pilot, lambda: screen.progress and screen.progress.running == 1,
                           what="slow-0 running again, its record on the last page")  # read with its page
            total = quick + 2
            assert bar_of(screen).startswith(f"steps 1-{PAGE} of {total} (1 running again: its record on "
                                             "another page)"), bar_of(screen)
            await pilot.press("G")
            await wait_for(pilot, lambda: screen.page_start == total - PAGE and "slow-0" in screen.steps,
                           what="the last page (the last PAGE steps), with slow-0's record")
            shown = [r[0] for r in rows(screen.query_one("#steps", DataTable))]
            assert len(shown) == PAGE, [key for key in shown if key not in screen.steps]  # no second slow-0 row
            assert [r[0] for r in rows(screen.query_one("#steps", DataTable))].count("slow-0") == 1
            assert bar_of(screen).startswith(f"steps {total - PAGE + 1}-{total} of {total}  "), bar_of(screen)
