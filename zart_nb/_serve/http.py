"""``zart serve --http HOST:PORT``: an HTTP API (Starlette on uvicorn) over the served journals.

Every request needs ``Authorization: Bearer <token>``; each journal has its own token, in an owner-only
file beside it (``<journal>.token``, made by the first ``zart serve --http``), and the token names the
journal a request acts on. Reads go through the typed read API (never a pickle); input is JSON. The
OpenAPI document is at ``/openapi.json``.
"""
from __future__ import annotations

import contextlib
import dataclasses
import enum
import hmac
import json
import logging
import os
import secrets
import stat
import threading
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .._errors import (
    ConfigurationError,
    DefinitionError,
    DefinitionNotFound,
    ExecutionNotFound,
    JournalError,
    JournalLocked,
    MonitorError,
    StateConflict,
    ZartError,
)
from .._journal import schedules as sql

if TYPE_CHECKING:
    from starlette.requests import Request
    from starlette.responses import Response

    from .._journal import Journal
    from .loop import Serve

logger = logging.getLogger("zart_nb")

MAX_BODY = 1 << 20  # bytes of JSON a request may carry
DEFAULT_HOST = "127.0.0.1"
LIST_LIMIT = 1000


def token_path(journal: str | os.PathLike[str]) -> Path:
    """Where the bearer token of ``journal`` is kept: ``<journal>.token`` beside it."""
    path = Path(journal)
    return path.with_name(path.name + ".token")


def ensure_token(journal: str | os.PathLike[str]) -> str:
    """The journal's token, made (owner-only, 0600) when there is none. A token file others may read or
    write, or that is not this user's, is refused (ConfigurationError naming it)."""
    path = token_path(journal)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        info = os.lstat(path)
        if stat.S_ISLNK(info.st_mode) or not stat.S_ISREG(info.st_mode):
            raise ConfigurationError(f"{path} is not a regular file; remove it (zart serve makes a new token)") \
                from None
        if info.st_uid != os.getuid() or info.st_mode & 0o077:
            raise ConfigurationError(f"{path} may be read or written by others (mode {info.st_mode & 0o777:o}); "
                                     f"run `chmod 600 {path}` or remove it (a new token is made)") from None
        token = path.read_text().strip()
        if len(token) < 16:
            raise ConfigurationError(f"{path} holds no usable token; remove it (a new one is made)") from None
        return token
    token = secrets.token_urlsafe(32)
    try:
        os.write(fd, (token + "\n").encode())
    finally:
        os.close(fd)
    return token


def parse_address(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``:PORT`` or ``PORT`` (host 127.0.0.1); ConfigurationError otherwise."""
    host, _, port = text.rpartition(":")
    host = host.strip("[]") or DEFAULT_HOST
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 0 <= number <= 65535:
        raise ConfigurationError(f"--http wants HOST:PORT (e.g. 127.0.0.1:8750), got {text!r}")
    return host, number


def jsonable(value: Any) -> Any:
    """A record (dataclass), enum, datetime, list or dict as plain JSON values."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {field.name: jsonable(getattr(value, field.name)) for field in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, datetime):
        return value.astimezone().isoformat()
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    return value


class HttpError(Exception):
    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers or {}


def _status_of(exc: ZartError) -> tuple[int, dict[str, str]]:
    if isinstance(exc, (ExecutionNotFound, DefinitionNotFound)):
        return 404, {}
    if isinstance(exc, JournalLocked):
        return 503, {"Retry-After": "1"}
    if isinstance(exc, ConfigurationError):
        return 400, {}
    if isinstance(exc, (DefinitionError, StateConflict)):
        return 409, {}
    if isinstance(exc, (JournalError, MonitorError)):
        return 503, {"Retry-After": "1"}
    return 500, {}


class Api:
    """The routes, over ``serve``'s journals (each chosen by its token)."""

    def __init__(self, serve: Serve) -> None:
        self.serve = serve
        self.tokens: list[tuple[bytes, Journal]] = []
        self._tokens_lock = threading.Lock()
        self.sync_tokens()

    def sync_tokens(self) -> None:
        """A token for every served journal (serve may have found new ones in ./.zart/)."""
        with self._tokens_lock:
            known = {journal for _, journal in self.tokens}
            self.tokens += [(ensure_token(journal.path).encode(), journal) for journal in self.serve.journals
                            if journal not in known]

    # --- plumbing --------------------------------------------------------------------------------

    def journal_of(self, request: Request) -> Journal:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token:
            raise HttpError(401, "a bearer token is needed (Authorization: Bearer <the token in "
                                 "<journal>.token>)", {"WWW-Authenticate": "Bearer"})
        given = token.strip().encode()
        if len(self.tokens) != len(self.serve.journals):
            self.sync_tokens()
        found = None
        for expected, journal in self.tokens:  # every token compared: the time says nothing of which
            if hmac.compare_digest(given, expected):
                found = journal
        if found is None:
            raise HttpError(401, "the token is not one of a served journal's", {"WWW-Authenticate": "Bearer"})
        return found

    @staticmethod
    async def body(request: Request) -> Any:
        raw = await request.body()
        if len(raw) > MAX_BODY:
            raise HttpError(413, f"the body is larger than {MAX_BODY} bytes")
        if not raw.strip():
            return None
        try:
            return json.loads(raw)
        except ValueError as exc:
            raise HttpError(400, f"the body is not JSON: {exc}") from None

    @contextlib.contextmanager
    def reader(self, journal: Journal) -> Any:
        """A typed reader: the file in this process, or the monitor of the process that holds it."""
        from .._journal.reader import FileJournalReader
        from .._monitor.client import MonitorClient

        with contextlib.ExitStack() as stack:
            try:
                stack.enter_context(journal.hold(write=False))
            except JournalLocked:
                client = MonitorClient.connect(journal.path)
                if client is None:
                    raise
                stack.enter_context(client)
                yield client
                return
            yield FileJournalReader(journal)

    # --- routes ----------------------------------------------------------------------------------

    def list_executions(self, journal: Journal, request: Request) -> Any:
        params = request.query_params
        status = params.get("status") or None
        try:
            limit = min(int(params.get("limit", "100")), LIST_LIMIT)
            offset = int(params.get("offset", "0"))
        except ValueError:
            raise HttpError(400, "limit and offset are whole numbers") from None
        if limit < 0 or offset < 0:
            raise HttpError(400, "limit and offset are whole numbers >= 0")
        with self.reader(journal) as reader:
            records = reader.list_executions(status, search=params.get("search") or None, limit=limit,
                                             offset=offset)
        return {"journal": str(journal.path), "executions": jsonable(records)}

    def execution(self, journal: Journal, execution_id: str) -> Any:
        with self.reader(journal) as reader:
            record = reader.execution_record(execution_id)
            if record is None:
                raise ExecutionNotFound(execution_id, journal.path)
            steps = reader.list_steps(execution_id, limit=LIST_LIMIT)
            runs = reader.list_runs(execution_id)
        return {**jsonable(record), "steps": jsonable(steps), "runs": jsonable(runs)}

    def cancel(self, journal: Journal, execution_id: str) -> Any:
        from .._control import request_cancel
        from .._monitor.client import MonitorClient

        origin = f"zart serve HTTP API (pid {os.getpid()})"
        try:
            return request_cancel(journal, execution_id, origin)
        except JournalLocked:
            client = MonitorClient.connect(journal.path)
            if client is None:
                raise
            with client:
                was = client.cancel(execution_id, origin=origin)
            return {"was": was.value, "status": "cancelling"}

    def start(self, journal: Journal, body: Any) -> tuple[int, Any]:
        """``POST /executions``; another process's turn at the journal is 503 with ``Retry-After`` (``turns``)."""
        from .turns import RETRY_AFTER, not_now

        if not isinstance(body, dict) or not isinstance(body.get("workflow"), str) or not body["workflow"]:
            raise HttpError(400, 'the body is {"workflow": "<name>", "data": <JSON>, "execution_id": "<optional>"}')
        workflow = body["workflow"]
        execution_id = body.get("execution_id") or f"{workflow}-{secrets.token_hex(6)}"
        if not isinstance(execution_id, str):
            raise HttpError(400, "execution_id is a string")
        busy = not_now(journal)  # another process's turn: answered at once, the file left to it
        if busy is not None:
            raise HttpError(503, busy, {"Retry-After": str(RETRY_AFTER)})
        try:
            return self._start(journal, workflow, execution_id, body.get("data"))
        except JournalLocked as exc:  # it took the file between the look and the open
            raise HttpError(503, f"{exc}; try again in {RETRY_AFTER} s", {"Retry-After": str(RETRY_AFTER)}) from None

    def _start(self, journal: Journal, workflow: str, execution_id: str, data: Any) -> tuple[int, Any]:
        from .loop import start_journaled

        if journal.execution_status(execution_id) is not None:  # a retried request starts nothing twice
            raise HttpError(409, f"execution {execution_id!r} exists already (GET /executions/{execution_id})")
        execution = start_journaled(journal, workflow, data, execution_id)
        self.serve.track(journal, execution)
        return 201, {"execution_id": execution_id, "workflow": workflow, "run": execution.run_number,
                     "status": execution.status.value}

    def event(self, journal: Journal, execution_id: str, name: str, payload: Any, key: str | None) -> Any:
        from .._messages import send_event

        delivered = send_event(execution_id, name, payload, journal=journal.path, idempotency_key=key)
        return {"execution_id": execution_id, "event": name, "delivered": bool(delivered)}

    def workflows(self, journal: Journal) -> Any:
        return {"workflows": journal.query(sql.workflow_names)}

    def schedules(self, journal: Journal) -> Any:
        from .recurring import schedules

        return {"schedules": jsonable(schedules(journal.path))}

    # --- the ASGI app ----------------------------------------------------------------------------

    def app(self) -> Any:
        from starlette.applications import Starlette
        from starlette.concurrency import run_in_threadpool
        from starlette.responses import JSONResponse
        from starlette.routing import Route

        def route(path: str, method: str,
                  handle: Callable[[Journal, Request], Awaitable[Any]]) -> Route:
            async def endpoint(request: Request) -> Response:
                try:
                    journal = self.journal_of(request)
                    result = await handle(journal, request)
                    status, content = result if isinstance(result, tuple) else (200, result)
                    return JSONResponse(content, status_code=status)
                except HttpError as exc:
                    return JSONResponse({"error": exc.message}, status_code=exc.status, headers=exc.headers)
                except ZartError as exc:
                    code, headers = _status_of(exc)
                    return JSONResponse({"error": str(exc), "type": type(exc).__name__}, status_code=code,
                                        headers=headers)

            return Route(path, endpoint, methods=[method])

        def sync(fn: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
            async def call(*args: Any) -> Any:
                return await run_in_threadpool(fn, *args)
            return call

        async def executions(journal: Journal, request: Request) -> Any:
            return await sync(self.list_executions)(journal, request)

        async def detail(journal: Journal, request: Request) -> Any:
            return await sync(self.execution)(journal, request.path_params["execution_id"])

        async def cancel(journal: Journal, request: Request) -> Any:
            return await sync(self.cancel)(journal, request.path_params["execution_id"])

        async def start(journal: Journal, request: Request) -> Any:
            return await sync(self.start)(journal, await self.body(request))

        async def event(journal: Journal, request: Request) -> Any:
            payload = await self.body(request)
            return await sync(self.event)(journal, request.path_params["execution_id"], request.path_params["name"],
                                          payload, request.headers.get("idempotency-key"))

        async def workflows(journal: Journal, request: Request) -> Any:
            return await sync(self.workflows)(journal)

        async def schedules(journal: Journal, request: Request) -> Any:
            return await sync(self.schedules)(journal)

        async def openapi(journal: Journal, request: Request) -> Any:
            return OPENAPI

        return Starlette(routes=[
            route("/openapi.json", "GET", openapi),
            route("/executions", "GET", executions),
            route("/executions", "POST", start),
            route("/executions/{execution_id:path}/events/{name}", "POST", event),
            route("/executions/{execution_id:path}/cancel", "POST", cancel),
            route("/executions/{execution_id:path}", "GET", detail),
            route("/workflows", "GET", workflows),
            route("/schedules", "GET", schedules),
        ])


class HttpServer:
    """uvicorn serving :class:`Api` on a thread of its own; ``stop()`` ends it."""

    def __init__(self, serve: Serve, address: str) -> None:
        try:
            import uvicorn
        except ImportError:
            raise ConfigurationError("zart serve --http needs starlette and uvicorn: "
                                     "`pip install 'zart_nb[serve]'`") from None
        self.host, self.port = parse_address(address)
        self.api = Api(serve)
        config = uvicorn.Config(self.api.app(), host=self.host, port=self.port, log_level="warning",
                                lifespan="off", access_log=False)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, name="zart-serve-http", daemon=True)

    def start(self, timeout: float = 10.0) -> str:
        """Start serving; returns its URL once it listens."""
        import time

        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                raise ConfigurationError(f"the HTTP API could not listen on {self.host}:{self.port}")
            time.sleep(0.02)
        servers = getattr(self._server, "servers", [])
        port = self.port
        for server in servers:
            for sock in server.sockets:
                port = sock.getsockname()[1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(10)


_ERROR = {"type": "object", "properties": {"error": {"type": "string"}, "type": {"type": "string"}}}
_ID = {"name": "execution_id", "in": "path", "required": True, "schema": {"type": "string"}}


def _op(summary: str, ok: str = "200", body: dict[str, Any] | None = None, params: list[Any] | None = None,
        extra: dict[str, str] | None = None) -> dict[str, Any]:
    responses: dict[str, Any] = {ok: {"description": "OK", "content": {"application/json": {"schema": {
        "type": "object"}}}}}
    for code, text in {"401": "no token, or not a served journal's", **(extra or {})}.items():
        responses[code] = {"description": text, "content": {"application/json": {"schema": _ERROR}}}
    operation: dict[str, Any] = {"summary": summary, "responses": responses, "parameters": params or []}
    if body is not None:
        operation["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return operation


OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "zart serve", "version": "1",
             "description": "Durable executions of the journal the bearer token names (the token is in "
                            "<journal>.token, beside the journal)."},
    "components": {"securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
    "security": [{"bearer": []}],
    "paths": {
        "/executions": {
            "get": _op("List executions, newest first", extra={"400": "limit or offset is not a whole number >= 0"},
                       params=[
                {"name": "status", "in": "query", "schema": {"type": "string"}},
                {"name": "search", "in": "query", "schema": {"type": "string"}},
                {"name": "limit", "in": "query", "schema": {"type": "integer", "maximum": LIST_LIMIT}},
                {"name": "offset", "in": "query", "schema": {"type": "integer"}}]),
            "post": _op("Start an execution of a journaled workflow (its latest definition) with JSON data",
                        ok="201", body={"type": "object", "required": ["workflow"], "properties": {
                            "workflow": {"type": "string"}, "data": {},
                            "execution_id": {"type": "string"}}},
                        extra={"400": "the body is not that JSON object", "404": "no journaled workflow of that name",
                               "409": "an execution of that id exists already", "413": "the body is over 1 MiB",
                               "503": "another process has the journal now (zart serve handed it over to a run "
                                      "that asked for it, or that process holds it): nothing was started; try "
                                      "again after the Retry-After header's seconds"}),
        },
        "/executions/{execution_id}": {
            "get": _op("An execution with its steps and runs (previews: nothing is unpickled)", params=[_ID],
                       extra={"404": "no such execution"}),
        },
        "/executions/{execution_id}/cancel": {
            "post": _op("Cancel an execution", params=[_ID], extra={"404": "no such execution"}),
        },
        "/executions/{execution_id}/events/{name}": {
            "post": _op("Send an event (its JSON payload) to an execution", body={}, params=[
                _ID, {"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                {"name": "Idempotency-Key", "in": "header", "schema": {"type": "string"}}],
                extra={"400": "the body is not JSON", "404": "no such execution",
                       "409": "the execution has finished", "413": "the body is over 1 MiB"}),
        },
        "/workflows": {"get": _op("The names of the journaled workflows")},
        "/schedules": {"get": _op("The recurring schedules, with their next tick")},
        "/openapi.json": {"get": _op("This document")},
    },
}
