"""Whose turn it is at a journal ``zart serve`` serves, for a start asked over HTTP.

Serve holds a journal only around its own due work, and hands it over to a run of another process that
asks for it (``_handover``). A ``POST /executions`` that comes meanwhile does not take the file: while
serve leaves the journal to the process it handed it to, or another process holds it (it serves the
journal's monitor endpoint), the start is answered at once with 503 and ``Retry-After``
(:data:`RETRY_AFTER`), naming that process, instead of waiting for the lock or taking the file from
the process it was lent to in the moment before that process opened it. The client tries again; the
start is journaled once (a retried ``execution_id`` that did start is 409).
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from .._errors import MonitorError

if TYPE_CHECKING:
    from .._journal import Journal

logger = logging.getLogger("zart_nb")

RETRY_AFTER = 2  # seconds a client is told to wait before it asks again for a journal another process has


def not_now(journal: Journal) -> str | None:
    """Why a start of ``journal`` must wait (another process's turn), in words; None: it may go now."""
    from .._handover import desk

    asker = desk.blocked(journal)
    if asker is not None:
        return (f"zart serve handed the journal {journal.path} over to process {asker} (a run that asked for it); "
                f"try again in {RETRY_AFTER} s")
    if journal.is_open:
        return None
    from .._monitor import endpoint

    try:
        holder = endpoint.find_live(journal.path)
    except MonitorError as exc:
        logger.debug("zart serve: cannot tell who holds %s: %s", journal.path, exc)
        return None
    if holder is None:
        return None
    return f"process {holder.pid} holds the journal {journal.path} (a run of its own); try again in {RETRY_AFTER} s"
