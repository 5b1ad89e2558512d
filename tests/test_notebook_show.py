"""zart.show: an execution's runs, steps and timeline as HTML (no plotting library, nothing unpickled)."""
import re

import pytest

import zart_nb as zart


@zart.step("square", retries=1)
def square(i, marker):
    import os

    if i == 3 and not os.path.exists(marker):
        open(marker, "w").close()
        raise RuntimeError("the first attempt fails")
    if i == 5 and os.path.exists(marker + ".fail"):
        raise ValueError("five is broken")
    return i * i


@zart.workflow("squares")
def squares(spec):
    return zart.wait([zart.schedule(square, i, spec["marker"]) for i in range(spec["n"])])


def test_show_renders_runs_steps_attempts_and_a_timeline(tmp_path):
    journal = tmp_path / "j.duckdb"
    marker = str(tmp_path / "marker")
    open(marker + ".fail", "w").close()
    spec = {"n": 8, "marker": marker}
    with pytest.raises(zart.StepFailed, match="five is broken"):
        zart.run(squares, spec, execution_id="sq-1", journal=journal, workers=2)
    import os

    os.unlink(marker + ".fail")
    zart.run(squares, spec, execution_id="sq-1", journal=journal, workers=2)  # run 2: step 5 again
    view = zart.show("sq-1", journal)
    assert repr(view) == "Execution sq-1 [completed] squares: 8/8 steps completed, 0 failed, run 2"
    page = view._repr_html_()
    for i in range(8):
        assert f"<code>square#{i}</code>" in page
    assert page.count("reused from run 1") == 7 and "executed (failed before)" in page
    svg = page[page.index("<svg"):page.index("</svg>")]
    reader = zart.journal(journal)
    try:
        steps, attempts = reader.list_steps("sq-1"), reader.list_attempts("sq-1")
        workers = {s.worker.split(":")[0] for s in steps} | {a.worker.split(":")[0] for a in attempts}
    finally:
        reader.close()
    assert len(attempts) == 3  # square#3 attempt 1 (retried), square#5 attempts 1 and 2 in run 1
    assert svg.count("<rect") == len(steps) + len(attempts)  # a bar per attempt
    lanes = re.findall(r'<text x="4" y="\d+">([^<]+)</text>', svg)
    assert sorted(lanes) == sorted(workers)  # one lane per worker
    assert "square#3 attempt 1 (run 1) failed: RuntimeError: the first attempt fails" in svg
    assert "square#0 attempt 1 (run 1, reused in run 2): completed" in svg
    assert "run 1</text>" in svg and "run 2</text>" in svg
    assert "<h4>Failed attempts</h4>" in page and "five is broken" in page
    zart.show(zart.start(squares, spec, execution_id="sq-1", journal=journal, display=False))  # an Execution
    with pytest.raises(zart.ExecutionNotFound, match="no execution 'nope'"):
        zart.show("nope", journal)
