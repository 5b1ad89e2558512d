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


def test_a_late_word_from_a_dropped_stream_leaves_the_engine_reconnected_to(tmp_path):
    """A stream's thread can report its engine lost after a read through that engine dropped it and the
    source connected again (a fresh client, a fresh stream): that late word is about the old client. It
    must neither drop the new one (the app fell back to reading a file the engine holds) nor send the app
    a second resync."""
    got: list[tuple[list[zart.Event], bool]] = []
    lock = threading.Lock()

    def on_events(source: Source, events: list[zart.Event], resync: bool) -> None:
        with lock:
            got.append((events, resync))

    def engine_gone(reader: zart.JournalReader) -> object:
        if isinstance(reader, zart.MonitorClient):
            raise zart.MonitorError("the engine went away (connection reset)")
        return reader.list_executions()

    with driving(tmp_path, quick=1) as journal:
        source = Source(journal, on_events)
        try:
            source.connect()
            assert source.state == LIVE, source.message
            old_stream = source._subscription
            source.read(engine_gone)  # drops that client and its stream, with a resync
            source.connect()
            assert source.state == LIVE, source.message
            new_stream = source._subscription
            assert new_stream is not old_stream
            with lock:
                resyncs = sum(1 for _, resync in got if resync)
            old_stream._on_lost("the event stream broke: connection reset")  # what its thread calls
            assert source.state == LIVE and source._subscription is new_stream, source.message
            assert source.read(lambda reader: isinstance(reader, zart.MonitorClient)) is True
            with lock:
                assert sum(1 for _, resync in got if resync) == resyncs
        finally:
            source.close()
