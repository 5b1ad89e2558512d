"""Which executor an execution uses: the ``executor=`` option and ``$ZART_EXECUTOR``, checked without
importing Dask, and the Dask executors made from them (``distributed`` is imported only then)."""
from __future__ import annotations

import os
import re
import sys
from typing import TYPE_CHECKING, Any

from .._errors import ConfigurationError
from .base import Executor, OutcomeSink

if TYPE_CHECKING:
    from .dask import DaskExecutor

ExecutorSpec = Any  # None, "local", a Dask scheduler address, or a distributed.Client
"""What ``executor=`` accepts."""

LOCAL = "local"
DASK_EXTRA = "pip install 'zart_nb[dask]'"
_ADDRESS = re.compile(r"^(?:[a-z][a-z0-9+.-]*://\S+|[^\s/:]+:\d+)$")  # tcp://host:8786, host:8786


def target(spec: ExecutorSpec, option: str = "executor") -> str | Any | None:
    """``None`` for the local pool, else a Dask scheduler address or a ``distributed.Client``.

    ``spec`` None falls back to ``$ZART_EXECUTOR``. Checked without importing ``distributed``."""
    if spec is None:
        spec = os.environ.get("ZART_EXECUTOR") or None
        option = "ZART_EXECUTOR"
        if spec is None:
            return None
    if isinstance(spec, str):
        value = spec.strip()
        if value == LOCAL:
            return None
        if _ADDRESS.match(value):
            return value
        raise ConfigurationError(f"{option} must be 'local', a Dask scheduler address like "
                                 f"'tcp://host:8786', or a distributed.Client; got {spec!r}")
    if _is_dask_client(spec):
        return spec
    raise ConfigurationError(f"{option} must be 'local', a Dask scheduler address like 'tcp://host:8786', "
                             f"or a distributed.Client; got a {type(spec).__module__}.{type(spec).__qualname__}")


def _is_dask_client(value: Any) -> bool:
    distributed = sys.modules.get("distributed")  # a Client exists only if distributed was imported
    return distributed is not None and isinstance(value, distributed.Client)


def cache_key(where: str | Any) -> tuple[str, Any]:
    return ("address", where) if isinstance(where, str) else ("client", id(where))


def dask_executor(where: str | Any, sink: OutcomeSink) -> Executor:
    """A :class:`DaskExecutor` on a client, or on a new client connected to an address."""
    executor_class = _import_dask(where)
    if isinstance(where, str):
        return executor_class.connect(where, sink)
    if where.status in ("closing", "closed"):
        raise ConfigurationError(f"executor={where!r}: that distributed.Client is closed; pass an open one")
    return executor_class(where, sink)


def usable(executor: Executor) -> bool:
    """Not shut down, and (for Dask) its client still open."""
    if executor.closed:
        return False
    client = getattr(executor, "client", None)
    return client is None or client.status not in ("closing", "closed")


def _import_dask(where: str | Any) -> type[DaskExecutor]:
    try:
        from .dask import DaskExecutor
    except ImportError as exc:
        if (exc.name or "").split(".")[0] not in ("distributed", "dask"):
            raise
        raise ConfigurationError(f"executor={where!r} needs Dask distributed, which is not installed "
                                 f"({exc}); install the extra: {DASK_EXTRA}") from exc
    return DaskExecutor
