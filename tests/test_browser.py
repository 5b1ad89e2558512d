"""One real-browser check: JupyterLab on loopback, driven by Playwright with Debian's chromium, runs
notebooks/health_check.ipynb and sees the progress bar reach 100% and the counts; saves a screenshot
under tests/artifacts/. Skipped (with the reason) where chromium, Playwright or JupyterLab is absent.

    pip install playwright jupyterlab && apt-get install -y chromium
    python -m pytest -m browser tests/test_browser.py
"""
import json
import os
import shutil
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest
from conftest import wait_until

CHROMIUM = "/usr/bin/chromium"
ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"


def _missing() -> str | None:
    if not os.path.exists(CHROMIUM):
        return f"{CHROMIUM} is not installed (apt-get install -y chromium)"
    for module in ("playwright", "jupyterlab"):
        try:
            __import__(module)
        except ImportError:
            return f"{module} is not installed (pip install playwright jupyterlab)"
    return None


pytestmark = [pytest.mark.browser, pytest.mark.timeout(300),
              pytest.mark.skipif(_missing() is not None, reason=str(_missing())),
              pytest.mark.filterwarnings("ignore")]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def lab(tmp_path):
    """JupyterLab on loopback serving a copy of health_check.ipynb; yields (url, token, folder)."""
    folder = tmp_path / "lab"
    folder.mkdir()
    shutil.copy(ROOT / "notebooks" / "health_check.ipynb", folder / "health_check.ipynb")
    port, token = _free_port(), "zart-browser-test"
    env = dict(os.environ, JUPYTER_CONFIG_DIR=str(tmp_path / "config"), JUPYTER_DATA_DIR=str(tmp_path / "data"),
               JUPYTER_RUNTIME_DIR=str(tmp_path / "runtime"), IPYTHONDIR=str(tmp_path / "ipython"))
    env.pop("ZART_JOURNAL", None)
    # the kernel of this environment, under a name of its own (the notebook names "python3")
    subprocess.run([sys.executable, "-m", "ipykernel", "install", "--prefix", str(tmp_path / "data-prefix"),
                    "--name", "python3"], check=True, capture_output=True, env=env)
    env["JUPYTER_PATH"] = str(tmp_path / "data-prefix" / "share" / "jupyter")
    log = open(tmp_path / "lab.log", "w")
    proc = subprocess.Popen([sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root", "--ip=127.0.0.1",
                             f"--port={port}", f"--IdentityProvider.token={token}",
                             "--LabApp.expose_app_in_browser=True", f"--ServerApp.root_dir={folder}"],
                            cwd=folder, env=env, stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"

    def up():
        try:
            with urllib.request.urlopen(f"{url}/api/status?token={token}", timeout=2) as response:
                return json.load(response)
        except OSError:
            return None

    try:
        wait_until(up, timeout=90, interval=0.3, what="JupyterLab to start")
        yield url, token, folder
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def test_jupyterlab_shows_the_widget_reach_100_percent(lab):
    from playwright.sync_api import sync_playwright

    url, token, folder = lab
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(f"{url}/lab/tree/health_check.ipynb?token={token}", timeout=90_000)
            page.wait_for_function(  # the notebook is rendered and its kernel is idle
                "() => window.jupyterapp && document.querySelectorAll('.jp-Notebook .jp-Cell').length > 5 && "
                "document.querySelector('.jp-StatusBar-Widget') && document.body.innerText.includes('| Idle')",
                timeout=120_000)
            no_news = page.get_by_role("button", name="No")
            if no_news.count():
                no_news.first.click()  # the "official Jupyter news" notification
            page.evaluate("() => { window.jupyterapp.commands.execute('notebook:run-all-cells'); }")
            bar = page.locator(".widget-hprogress .progress-bar").first
            bar.wait_for(timeout=120_000)
            page.wait_for_function(
                "() => [...document.querySelectorAll('.widget-hprogress .progress-bar')]"
                ".some(b => b.style.width === '100%')", timeout=120_000)
            page.wait_for_function(
                "() => document.body.innerText.includes('Total issues:     1')", timeout=120_000)
            page.wait_for_function(  # what the steps printed, streamed from the workers, may render last
                "() => document.querySelector('.jp-Notebook').innerText"
                ".includes('[check-service#1] checking payments')", timeout=120_000)
            # JupyterLab may leave a cell scrolled out of view unrendered (its innerText is then ''), so the
            # widget is brought into view and its text waited for, not read once
            widget = page.locator(".widget-vbox").filter(has=page.locator(".widget-hprogress")).first
            widget.scroll_into_view_if_needed()
            page.wait_for_function(
                "() => [...document.querySelectorAll('.widget-vbox')].some(box => "
                "['3/3 done', '3 completed', 'health-check-run-1'].every(text => box.textContent.includes(text)))",
                timeout=60_000)
            widget_text = widget.text_content() or ""
            assert "3/3 done" in widget_text and "3 completed" in widget_text
            assert "health-check-run-1" in widget_text
            body = page.locator(".jp-Notebook").inner_text()
            assert "[check-service#1] checking payments" in body
            widget.scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "health_check.png"), full_page=False)
            run_cell = page.locator(".jp-Cell").filter(has=page.locator(".widget-hprogress")).first
            run_cell.screenshot(path=str(ARTIFACTS / "widget.png"))  # the README's picture
        finally:
            browser.close()
