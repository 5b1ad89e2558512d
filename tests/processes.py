"""Real processes for the tests: ``zart serve`` on a journal, stopped as a user would, and the environment
every child process gets (the tests folder on its path, so workflows are importable by reference)."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

TESTS = Path(__file__).parent


def env(**extra: str) -> dict[str, str]:
    """This process's environment, the tests folder first on ``PYTHONPATH``, and ``extra``."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(TESTS), os.environ.get("PYTHONPATH", "")]), **extra}


def serve(journal: Path, cwd: Path, log: Path, *args: str, **extra: str) -> subprocess.Popen[bytes]:
    """``zart serve --journal JOURNAL --poll 0.5 ARGS`` in ``cwd``, its stderr appended to ``log``."""
    with log.open("ab") as stderr:  # the child keeps its own descriptor
        return subprocess.Popen([sys.executable, "-m", "zart_nb", "serve", "--journal", str(journal), "--poll",
                                 "0.5", *args], stdout=subprocess.DEVNULL, stderr=stderr, cwd=cwd,
                                env=env(**extra))


def stop(proc: subprocess.Popen[bytes]) -> int:
    """SIGTERM (as Ctrl-C in a terminal or a service manager would), then its exit code; killed if it is
    still there after 60 s."""
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def script(path: Path, body: str) -> Path:
    """``body`` (dedented) written to ``path``."""
    path.write_text(textwrap.dedent(body))
    return path
