"""zart-tui's step screen on a step whose output was cut: the section's title says how much of the middle
was skipped, and the ``[zart: ...]`` line that stands for it is styled apart from what the step printed
(Textual's pilot, a real run)."""
from __future__ import annotations

from cut_output_lib import make
from textual.widgets import Static
from tui_helpers import open_first_execution, run_async, settle, wait_for
from zart_tui.app import ZartApp
from zart_tui.screens.step import NOTE_STYLE, StepScreen


@run_async
async def test_the_step_screen_says_an_output_was_cut_and_shows_the_note_apart(tmp_path):
    journal = tmp_path / ".zart" / "nb.duckdb"
    skipped = make(journal)["loud#0"].log_skipped
    assert skipped > 900_000
    app = ZartApp(str(journal))
    async with app.run_test(size=(150, 50)) as pilot:
        steps = await open_first_execution(pilot)
        await pilot.press(*["down"] * steps.index("loud#0"), "enter")
        await settle(pilot)
        assert isinstance(app.screen, StepScreen) and app.screen.step.step_key == "loud#0"

        def detail():
            return app.screen.query_one("#step-detail", Static).render()

        await wait_for(pilot, lambda: "captured output" in str(detail()), what="the captured output section")
        text = detail()
        plain = str(text)
        assert f"captured output (cut: {skipped:,} characters skipped in the middle)" in plain
        note = f"[zart: {skipped:,} characters of output skipped; the first 16 KiB and the last 64 KiB are kept]"
        start = plain.index(note)
        styled = [span for span in text.spans if span.start <= start < span.end]
        assert len(styled) == 1 and set(str(styled[0].style).replace("ansi_", "").split()) == set(NOTE_STYLE.split())
        line = plain.index("line 000000 ")  # the step's own lines keep the plain style
        assert not [span for span in text.spans if span.start <= line < span.end and span.style]
