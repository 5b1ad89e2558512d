"""A journal's source in zart-tui: when it stops using a live engine, the app is told that events may
have been lost, so nothing it holds as in flight outlives the engine's stream."""
from __future__ import annotations

import threading

from conftest import wait_until
from tui_helpers import driving
from zart_tui.source import LIVE, Source

import zart_nb as zart


def test_a_read_that_finds_the_engine_gone_says_its_events_were_lost(tmp_path):
    """A read through the engine that fails drops the engine, and with it the event stream (events it had
    not sent yet are gone: a step's end, an execution's end). The app must hear it as a resync, or it keeps
    the steps it held in flight for good (zart-tui showed a phantom "not journaled yet" row: the stream
    ended by the read's failure, unlike an engine that exits, never said so)."""
    got: list[tuple[list[zart.Event], bool]] = []
    lock = threading.Lock()

    def on_events(source: Source, events: list[zart.Event], resync: bool) -> None:
        with lock:
            got.append((events, resync))

    with driving(tmp_path, quick=1) as journal:
        source = Source(journal, on_events)
        try:
            source.connect()
            assert source.state == LIVE, source.message
            in_flight = wait_until(lambda: [e.step_key for events, _ in list(got) for e in events
                                            if isinstance(e, zart.StepEvent) and e.step_key.startswith("slow-")],
                                   what="the slow steps in flight, from the engine's stream")
            assert in_flight

            def engine_gone(reader: zart.JournalReader) -> object:
                if isinstance(reader, zart.MonitorClient):  # the read through the engine fails as if it left
                    raise zart.MonitorError("the engine went away (connection reset)")
                return reader.list_executions()  # then the file, which the driver holds

            with lock:
                before = len(got)
            source.read(engine_gone)
            assert source.state != LIVE, source.message
            with lock:  # a resync: what was in flight is read again
                assert ([], True) in got[before:], got[before:]
        finally:
            source.close()
