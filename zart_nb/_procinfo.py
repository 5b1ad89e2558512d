"""What ``/proc`` says of another process (Linux; nothing elsewhere): its command line and environment,
and whether it is ``zart serve``. A leaf module (it imports only ``os``), so the errors can ask it
(``JournalLocked.held_by_serve``) as well as the CLI's discovery (``_discovery``)."""
from __future__ import annotations

import os


def proc(pid: int, name: str) -> list[str]:
    """The NUL-separated parts of ``/proc/PID/NAME`` (``cmdline``, ``environ``); ``[]`` when unreadable."""
    try:
        with open(f"/proc/{pid}/{name}", "rb") as handle:
            raw = handle.read(256 * 1024)
    except OSError:
        return []
    return [part.decode("utf-8", "replace") for part in raw.split(b"\0") if part]


def is_serve(pid: int) -> bool:
    """Whether process ``pid`` runs ``zart serve`` (``zart serve ...`` or ``python -m zart_nb serve ...``)."""
    argv = proc(pid, "cmdline")
    return any(arg == "serve" and os.path.basename(before) in ("zart", "zart_nb")
               for before, arg in zip(argv, argv[1:], strict=False))
