"""A step's detail in a notebook (``zart.show(execution_id, step=key)``) says when its output was cut, in
zart-tui's words: its section is titled "captured output (cut: N characters skipped in the middle)" and
the ``[zart: ...]`` line that stands for the middle is marked apart; ``zart.show`` of the execution names
the cut steps. A real run on worker processes, then the view in this process and in a real kernel."""
from __future__ import annotations

import html
import re

import pytest
from cut_output_lib import make
from nbhelpers import execute

import zart_nb as zart
from zart_nb._notebook.show_step import NOTE_STYLE

NOTE = "[zart: {:,} characters of output skipped; the first 16 KiB and the last 64 KiB are kept]"


def sections(page: str) -> list[str]:
    return [html.unescape(title) for title in re.findall(r"<h4>([^<]*)</h4>", page)]


def test_the_step_detail_says_the_output_was_cut_and_marks_the_note(journal):
    steps = make(journal)
    skipped = steps["loud#0"].log_skipped
    assert skipped > 900_000

    view = zart.show("cut-1", journal, step="loud#0")
    assert repr(view) == (f"Step loud#0 of cut-1 [completed]: run 1, attempts 1; output cut: {skipped:,} "
                          "characters skipped in the middle")
    page = view._repr_html_()
    assert f"captured output (cut: {skipped:,} characters skipped in the middle)" in sections(page)
    note = html.escape(NOTE.format(skipped))
    marked = re.findall(f"<span style='{re.escape(NOTE_STYLE)}'>([^<]*)</span>", page)
    assert marked == [note + "\n"]  # the note alone is marked, the step's lines are not
    assert html.escape("line 000000 " + "x" * 40) in page and html.escape("line 019999 " + "x" * 40) in page

    whole = zart.show("cut-1", journal, step="quiet#0")._repr_html_()
    assert "captured output" in sections(whole) and "cut:" not in whole and "one line\n" in whole

    execution = zart.show("cut-1", journal)._repr_html_()
    assert (f"<code>loud#0</code> ({skipped:,} characters skipped in the middle)" in execution
            and "<code>quiet#0</code> (" not in execution)
    with pytest.raises(zart.ConfigurationError, match="has no journaled step 'nope'"):
        zart.show("cut-1", journal, step="nope")


def test_a_kernel_shows_the_step_detail_with_its_cut(journal, tmp_path):
    skipped = make(journal)["loud#0"].log_skipped
    nb = execute(["import zart_nb as zart",
                  f"zart.show('cut-1', {str(journal)!r}, step='loud#0')"], tmp_path)
    shown = [out for out in nb.cells[1].outputs if out.get("output_type") == "execute_result"]
    assert len(shown) == 1, nb.cells[1].outputs
    page, plain = shown[0]["data"]["text/html"], shown[0]["data"]["text/plain"]
    assert f"captured output (cut: {skipped:,} characters skipped in the middle)" in sections(page)
    assert plain.endswith(f"output cut: {skipped:,} characters skipped in the middle")


@zart.step("shaky", retries=1)
def shaky() -> None:
    print("trying", zart.context().attempt)
    raise RuntimeError(f"no luck {zart.context().attempt}")


@zart.workflow("shaky-flow")
def shaky_flow(_: object) -> None:
    shaky()


def test_a_failed_steps_last_attempt_is_shown_once(tmp_path):
    """A step whose two attempts failed: its record is its last attempt's, so the detail shows that
    attempt's traceback and output once, as the step's, and the earlier attempt's apart (before, the
    last attempt's were shown twice)."""
    journal = tmp_path / "j.duckdb"
    with pytest.raises(zart.StepFailed):
        zart.run(shaky_flow, None, execution_id="s1", journal=journal)
    page = zart.show("s1", journal, step="shaky#0")._repr_html_()
    assert [t for t in sections(page) if "traceback" in t or "captured output" in t] == [
        "traceback", "traceback of attempt 1 (run 1)", "captured output", "captured output of attempt 1 (run 1)"]
    assert page.count("trying 2") == 1 and page.count("trying 1") == 1
