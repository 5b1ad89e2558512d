"""One journal as the app sees it: through the live engine's monitor, or read from the file for a moment.

A :class:`Source` never raises into the app: a read returns None and leaves its ``state`` and
``message`` saying why (missing, corrupt or foreign file, locked by a process that serves no monitor,
an engine that went away). Reads block: the app calls them from worker threads.

``zart serve`` opens its journals for a moment at each look for due work, without a monitor. A read that
meets it holding the file returns None with ``kept`` set: nothing new was read, and a screen keeps what it
shows (the state stays as it was; after ``BUSY_HINT`` seconds of it the header says "busy"). Only a
holder that keeps the file (serve for longer than ``SERVE_PATIENCE``, or any other process at once) makes
the journal "locked".
"""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import zart_nb as zart

T = TypeVar("T")

LIVE, FILE, LOCKED, MISSING, ERROR, BUSY = "live", "file", "locked", "missing", "error", "busy"
LOCK_TIMEOUT = 0.3
# zart serve holding the file: the header says "busy" after this many seconds of it (about two of the
# app's polls), and "locked" after SERVE_PATIENCE (zart's own readers wait that long for serve: the
# default of $ZART_LOCK_TIMEOUT)
BUSY_HINT = 4.0
SERVE_PATIENCE = 10.0

_children: list[subprocess.Popen[bytes]] = []
# The actions that start a run, as `zart` names them, and how a message says each was started.
CONTROL_ACTIONS = {"restart": "restarting", "rerun": "re-running a step", "retry": "retrying a step",
                   "fork": "forking"}

EventsCallback = Callable[["Source", list[zart.Event], bool], None]


def discover(target: str | None) -> list[Path]:
    """The journals to show: a file, every ``*.duckdb`` of a folder, or of ``./.zart/``."""
    path = Path(target) if target else Path(".zart")
    if path.is_dir():
        return sorted(p for p in path.glob("*.duckdb") if p.is_file()) or [path / "journal.duckdb"]
    return [path]


class Source:
    def __init__(self, path: Path, on_events: EventsCallback | None = None) -> None:
        self.path = path.expanduser().resolve()
        self.name = path.stem
        self.state = FILE
        self.message = ""
        self._on_events = on_events
        self._client: zart.MonitorClient | None = None
        self._subscription: object | None = None
        self._lock = threading.Lock()
        self.busy_hint, self.serve_patience = BUSY_HINT, SERVE_PATIENCE
        self._served_since: float | None = None  # when reads began to find zart serve holding the file
        self._read_once = False  # a read of the file has landed (a screen has something to keep)

    def __repr__(self) -> str:
        return f"<Source {self.path} {self.state}>"

    @property
    def live(self) -> bool:
        return self._client is not None

    @property
    def kept(self) -> bool:
        """The last read found the file held by ``zart serve`` for a moment: it read nothing new, and a
        screen keeps showing what it has."""
        return self._served_since is not None and self.state != LOCKED

    def connect(self) -> None:
        """Use the live engine's monitor if one serves this journal now (and subscribe to its events)."""
        with self._lock:
            if self._client is not None:
                return
            client = zart.MonitorClient.connect(self.path)
            if client is None:
                return
            if self._on_events is not None:
                def lost(reason: str, client: zart.MonitorClient = client) -> None:  # this client's stream
                    self._lost(reason, client)

                try:
                    self._subscription = client.subscribe(
                        lambda events, resync: self._on_events(self, events, resync) if self._on_events else None,
                        lost)
                except zart.MonitorError:
                    client.close()
                    return
            self._client = client
            self.state, self.message = LIVE, f"live from the engine (pid {client.pid})"

    def _lost(self, reason: str, client: zart.MonitorClient) -> None:
        """``client``'s engine went away (its stream's thread, or a read through it, found it): the app is
        told that events may have been lost. Once only, and never for a client dropped already: after a
        reconnect, a late word from the old stream must not drop the new one."""
        if self._drop(f"the engine went away ({reason}); reading the file", only=client) and \
                self._on_events is not None:
            self._on_events(self, [], True)

    def _drop(self, message: str, only: zart.MonitorClient | None = None) -> bool:
        """Stop using the engine (``only``: if ``only`` is still the client in use); False if it was not."""
        with self._lock:
            if only is not None and self._client is not only:
                return False
            client, self._client = self._client, None
            self._subscription = None
            self.state, self.message = FILE, message
        if client is not None:
            client.close()
        return True

    def read(self, fn: Callable[[zart.JournalReader], T]) -> T | None:
        """``fn(reader)`` through the live engine, else the file; None when neither can be read."""
        self.connect()
        client = self._client
        if client is not None:
            try:
                return fn(client)
            except zart.MonitorError as exc:  # its events stop too, some maybe unsent: as if lost
                self._lost(str(exc), client)
            except zart.ZartError as exc:
                self.message = str(exc)
                return None
        if not self.path.exists():
            self.state, self.message, self._served_since = MISSING, f"no journal at {self.path}", None
            return None
        reader = zart.journal(self.path, live=False, lock_timeout=LOCK_TIMEOUT)
        try:
            value = fn(reader)
            self._served_since, self._read_once = None, True
            if self.state != FILE:
                self.state, self.message = FILE, "read from the file"
            return value
        except zart.JournalLocked as exc:
            self._locked(exc)
        except zart.ZartError as exc:
            self.state, self.message, self._served_since = ERROR, str(exc), None
        except Exception as exc:  # DuckDB's own errors on a damaged file, and the like: shown, never raised
            self.state, self.message, self._served_since = ERROR, f"{type(exc).__name__}: {exc}", None
        finally:
            try:
                reader.close()
            except Exception:
                pass
        return None

    def _locked(self, exc: zart.JournalLocked) -> None:
        """The file is held by another process that serves no monitor: ``zart serve`` looking for due work
        is waited for (``kept``), any other holder, or serve past ``serve_patience``, makes it "locked"."""
        now = time.monotonic()
        if exc.held_by_serve:
            since = self._served_since = now if self._served_since is None else self._served_since
            if now - since < self.serve_patience:
                if now - since >= self.busy_hint or not self._read_once:
                    self.state, self.message = BUSY, (f"journal busy: {exc.owner} (zart serve) holds it for a "
                                                      "moment" + ("; showing the last read" if self._read_once
                                                                  else ""))
                return
        else:
            self._served_since = None
        self.state, self.message = LOCKED, f"locked: {exc.owner} holds it and serves no monitor"

    # --- actions (each returns a message for the app to show) -------------------------------------

    def cancel(self, execution_id: str) -> str:
        client = self._client
        if client is not None:  # answered at once; the engine's events show it end
            was = client.cancel(execution_id, origin=f"zart-tui (pid {os.getpid()})")
            done = "cancelling"
        else:
            was = zart.cancel(execution_id, journal=self.path)
            done = "cancelled"
        return f"{execution_id}: {done} (was {was.value})" if not was.finished else \
            f"{execution_id} is already {was.value}"

    def send_event(self, execution_id: str, name: str, data: str) -> str:
        """Send an event (``data``: its payload as JSON text, checked by ``zart.send_event``: not JSON or too
        large is ``zart.SerializationError``) through the live engine, else into the file."""
        sent = zart.send_event(execution_id, name, journal=self.path, payload_json=data)
        return f"{execution_id}: sent event {name!r}" if sent else f"{execution_id}: event {name!r} not sent"

    def delete(self, execution_id: str) -> str:
        client = self._client
        if client is not None:
            client.delete(execution_id)
        else:
            zart.delete(execution_id, journal=self.path)
        return f"{execution_id}: deleted"

    def resume(self, execution_id: str, step_key: str | None = None) -> str:
        """Resume (or retry a failed step of) an execution: in the live engine, else in a new ``zart resume``
        process, which then serves the monitor itself."""
        client = self._client
        if client is not None:
            if step_key is not None:
                client.retry(execution_id, step_key)
                return f"{execution_id}: retrying {step_key} in the engine (pid {client.pid})"
            client.resume(execution_id)
            return f"{execution_id}: resumed in the engine (pid {client.pid})"
        log_path = self._spawn([sys.executable, "-m", "zart_nb", "resume", execution_id, "--journal", str(self.path)])
        what = f"retrying {step_key}" if step_key else "resuming"
        return f"{execution_id}: {what} in a new `zart resume` process (output in {log_path.name})"

    def control(self, execution_id: str, action: str, step_key: str | None = None) -> str:
        """``restart``, ``rerun`` (``step_key`` again), ``retry`` (the failed ``step_key``) or ``fork`` (from
        ``step_key``): in the live engine (through its monitor endpoint), else in a new ``zart <action>``
        process, which then serves the monitor itself. The app's process never runs steps."""
        if action not in CONTROL_ACTIONS or (action != "restart" and not step_key):
            raise zart.ConfigurationError(f"unknown action {action!r} (or no step given)")
        client = self._client
        if client is not None:  # the engine runs it (this process never does)
            if action == "restart":
                reply = client.restart(execution_id)
            elif action == "rerun":
                reply = client.rerun(execution_id, [str(step_key)])
            elif action == "retry":
                reply = client.retry(execution_id, str(step_key))
            else:
                reply = client.fork(execution_id, str(step_key))
            stale = [str(key) for key in reply.get("stale") or []]
            return (f"{reply.get('execution_id', execution_id)}: {CONTROL_ACTIONS[action]} in the engine (pid "
                    f"{client.pid}), run {reply.get('run', '?')}"
                    + (f"; maybe stale: {', '.join(stale)}" if stale else ""))
        command = [sys.executable, "-m", "zart_nb", action, execution_id, "--journal", str(self.path)]
        if action == "rerun":
            command += ["--step", str(step_key)]
        elif action == "retry":
            command.append(str(step_key))
        elif action == "fork":
            command += ["--from-step", str(step_key)]
        log_path = self._spawn(command)
        return f"{execution_id}: {CONTROL_ACTIONS[action]} in a new `zart {action}` process (output in {log_path.name})"

    def _spawn(self, command: list[str]) -> Path:
        log_path = self.path.with_name(self.path.name + ".resume.log")
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            # Kept (and reaped later) so the process is never garbage-collected while it runs.
            _children[:] = [child for child in _children if child.poll() is None]
            _children.append(subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=fd, stderr=fd,
                                              start_new_session=True))
        finally:
            os.close(fd)
        return log_path

    def close(self) -> None:
        self._on_events = None
        self._drop("closed")
