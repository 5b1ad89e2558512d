"""The execution screen lists the events sent to an execution and not consumed yet, and sends one (e)."""
from __future__ import annotations

import pytest
from textual.widgets import Static
from tui_helpers import run_async, settle, wait_for
from zart_tui.app import ZartApp
from zart_tui.screens.confirm import ConfirmScreen
from zart_tui.screens.execution import ExecutionScreen

import zart_nb as zart
from zart_nb._messages import pending_events


@zart.workflow("waits-briefly")
def waits_briefly(_: None) -> object:
    return zart.wait_for_event("approve", timeout=0.05)  # EventTimeout: the execution fails (and takes events)


@run_async
async def test_pending_events_are_listed_and_one_is_sent_from_the_screen(tmp_path):
    journal = tmp_path / ".zart" / "nb.duckdb"
    with pytest.raises(zart.EventTimeout):
        zart.run(waits_briefly, None, execution_id="w-1", journal=journal)
    assert zart.send_event("w-1", "note", {"from": "test"}, journal=journal)
    zart.journal(journal, live=False).close()
    from zart_nb._runtime import runtime
    runtime.journal(journal).close()
    app = ZartApp(str(journal))
    async with app.run_test(size=(150, 40)) as pilot:
        await settle(pilot)
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ExecutionScreen)
        summary = str(app.screen.query_one("#summary", Static).render())
        assert "events: 1 sent, not consumed yet: note" in summary
        await pilot.press("E")
        await pilot.press(*'approve {"ok": true}')
        await pilot.press("enter")
        await settle(pilot)
        assert isinstance(app.screen, ConfirmScreen)
        await pilot.press("y")
        await wait_for(pilot, lambda: len(pending_events("w-1", journal=journal)) == 2, what="the event to be sent")
        await pilot.press("E")  # a payload that is not JSON: zart.send_event refuses it, the screen says why
        await pilot.press(*"approve {ok: true}")
        await pilot.press("enter")
        await settle(pilot)
        await pilot.press("y")
        await wait_for(pilot, lambda: any("the payload of event 'approve' is not JSON" in n.message
                                          and n.severity == "error" for n in app._notifications),
                       what="the refusal's note")
    assert [(e.name, e.payload) for e in pending_events("w-1", journal=journal)] == [
        ("note", '{"from":"test"}'), ("approve", '{"ok":true}')]
