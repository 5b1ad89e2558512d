"""Redraw the documentation's pictures from the real programs (run by hand after a visible change; CI
does not compare them).

    python docs/pictures.py            # zart-tui's list and execution screens, from Textual's SVG export
    python docs/pictures.py --widget   # also the widget: tests/test_browser.py drives JupyterLab in chromium

The TUI pictures show a journal made here by real runs (a workflow that completed and one whose step
failed), in a temporary folder, at 110x30 with the clock and the journal's path fixed to read the same
every time. The widget picture is the browser test's screenshot (tests/artifacts/widget.png), copied.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STATIC = ROOT / "docs" / "_static"
SIZE = (110, 30)

WORKFLOWS = '''
import zart_nb as zart

@zart.step("check-{service}")
def check(service: str) -> str:
    if service == "legacy":
        raise RuntimeError("legacy answered 503")
    return "healthy"

@zart.workflow("health-check")
def health_check(services: list[str]) -> list[str]:
    return zart.wait([zart.schedule(check, s) for s in services])

zart.run(health_check, ["auth-api", "payments", "users-db", "search"], execution_id="health-1")
try:
    zart.run(health_check, ["auth-api", "legacy"], execution_id="health-2")
except zart.StepFailed:
    pass
'''


def make_journal(folder: Path) -> Path:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZART_")}
    subprocess.run([sys.executable, "-c", WORKFLOWS], cwd=folder, env=dict(env, ZART_WORKERS="2"), check=True)
    return folder / ".zart" / "journal.duckdb"


async def _until(pilot, condition, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"zart-tui did not show {what} in {timeout}s")
        await pilot.pause(0.1)


async def draw_tui(journal: Path, out: Path) -> None:
    from textual.widgets import DataTable
    from zart_tui.app import ZartApp

    app = ZartApp(str(journal), poll=3600)
    async with app.run_test(size=SIZE) as pilot:
        def rows(table_id: str) -> int:
            return sum(t.row_count for t in app.screen.query(f"#{table_id}").results(DataTable))

        await _until(pilot, lambda: rows("executions") >= 2, "the executions")
        await pilot.pause(0.3)
        (out / "tui-list.svg").write_text(app.export_screenshot(title="zart-tui"), encoding="utf-8")
        await pilot.press("enter")
        await _until(pilot, lambda: rows("steps") >= 1, "an execution's steps")
        await pilot.pause(0.3)
        (out / "tui-execution.svg").write_text(app.export_screenshot(title="zart-tui"), encoding="utf-8")


def draw_widget() -> None:
    artifact = ROOT / "tests" / "artifacts" / "widget.png"
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "browser",
                    "tests/test_browser.py"], cwd=ROOT, check=True)
    if not artifact.exists():
        sys.exit("the browser test took no screenshot (skipped? see its reason above)")
    shutil.copy(artifact, STATIC / "widget.png")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--widget", action="store_true", help="also redraw the widget (needs chromium)")
    parser.add_argument("--out", type=Path, default=STATIC, help=f"the folder to write to (default {STATIC})")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        asyncio.run(draw_tui(make_journal(Path(folder)), args.out))
    print(f"wrote {args.out / 'tui-list.svg'} and {args.out / 'tui-execution.svg'}")
    if args.widget:
        draw_widget()
        print(f"wrote {STATIC / 'widget.png'}")


if __name__ == "__main__":
    main()
