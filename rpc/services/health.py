"""gRPC health checking: the ``grpc.health.v1.Health`` service (Check, Watch and List).

::

    from rpc.services import health

    servicer = health.enable_health(server)          # rpc.Server or rpc.sync.Server
    servicer.set("helloworld.Greeter", health.SERVING)
    servicer.set("", health.NOT_SERVING)             # "": the server as a whole

The application sets each service's status; the overall service ``""`` starts SERVING. ``Check``
answers a service's status (NOT_FOUND for a service never set), ``Watch`` sends the current
status at once and then every change (SERVICE_UNKNOWN while a service is unknown, without ending
the call, as the protocol asks), ``List`` all of them. When the server's ``stop()`` begins, every
service turns NOT_SERVING (watchers see it during the grace period) and later ``set()`` calls are
ignored, like grpcio's ``enter_graceful_shutdown()``.

``HealthServicer``'s methods are plain ``def``: ``server.add_service(health.SERVICE, servicer)``
serves it on either server. ``enable_health`` does that too, and on ``rpc.Server`` serves it with
``async def`` methods instead, so that a watcher holds no thread; it also hooks the stop.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any, Callable, Optional

import rpc
from codec import StatusCode

from .proto.grpc_health.v1 import health_pb2

__all__ = [
    "NOT_SERVING",
    "SERVICE",
    "SERVICE_NAME",
    "SERVICE_UNKNOWN",
    "SERVING",
    "UNKNOWN",
    "HealthServicer",
    "enable_health",
    "health_pb2",
]

#: The service's descriptor, for ``server.add_service(SERVICE, servicer)`` and ``rpc.Stub``.
SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"]
SERVICE_NAME = SERVICE.full_name  # "grpc.health.v1.Health"

# The serving statuses (``HealthCheckResponse.ServingStatus`` values).
UNKNOWN: int = health_pb2.HealthCheckResponse.UNKNOWN
SERVING: int = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING: int = health_pb2.HealthCheckResponse.NOT_SERVING
SERVICE_UNKNOWN: int = health_pb2.HealthCheckResponse.SERVICE_UNKNOWN

_STATUSES = frozenset(health_pb2.HealthCheckResponse.ServingStatus.values())

#: What a watcher's queue gets when its call has ended.
_END = object()


def _response(status: Any) -> Any:
    return health_pb2.HealthCheckResponse(status=status)


class HealthServicer:
    """The health statuses of a server's services, and the ``grpc.health.v1.Health`` methods.

    Thread-safe: ``set`` may be called from any thread (or the event loop); watchers on either
    server are woken. ``overall`` is the initial status of the service ``""``.
    """

    def __init__(self, overall: int = SERVING) -> None:
        self._lock = threading.Lock()
        self._statuses: dict[str, int] = {"": overall}
        self._watchers: dict[str, set[Callable[[Any], None]]] = {}
        self._shutting_down = False

    # ------------------------------------------------------------------ the application's side

    def set(self, service: str, status: int) -> None:
        """Set ``service``'s status (``SERVING``, ``NOT_SERVING``, ...; ``""`` for the whole
        server); watchers of it are told if it changed. Ignored once the server is stopping."""
        if status not in _STATUSES:
            raise ValueError(f"not a serving status: {status!r}")
        with self._lock:
            if self._shutting_down:
                return
            self._set_locked(service, status)

    def get(self, service: str) -> Optional[int]:
        """``service``'s status, or None if it was never set."""
        with self._lock:
            return self._statuses.get(service)

    def enter_graceful_shutdown(self) -> None:
        """Every service NOT_SERVING, for good (later ``set`` calls are ignored). ``enable_health``
        makes the server's ``stop()`` call this as it begins (grpcio's name)."""
        with self._lock:
            if self._shutting_down:
                return
            self._shutting_down = True
            for service in list(self._statuses):
                self._set_locked(service, NOT_SERVING)

    def _set_locked(self, service: str, status: int) -> None:
        changed = self._statuses.get(service) != status
        self._statuses[service] = status
        if changed:
            for notify in list(self._watchers.get(service, ())):
                notify(status)  # puts on a queue: never blocks, never calls back into us

    # ------------------------------------------------------------------ watchers

    def _watch(self, service: str, notify: Callable[[Any], None]) -> int:
        """Register ``notify`` for ``service``'s changes; its status now (at the same instant,
        so that no change is missed between the two)."""
        with self._lock:
            self._watchers.setdefault(service, set()).add(notify)
            return self._statuses.get(service, SERVICE_UNKNOWN)

    def _unwatch(self, service: str, notify: Callable[[Any], None]) -> None:
        with self._lock:
            watchers = self._watchers.get(service)
            if watchers is not None:
                watchers.discard(notify)
                if not watchers:
                    del self._watchers[service]

    # ------------------------------------------------------------------ the RPCs (plain def)

    def Check(self, request: Any, context: Any) -> Any:
        status = self.get(request.service)
        if status is None:
            raise rpc.RpcError(StatusCode.NOT_FOUND, f"unknown service {request.service!r}")
        return _response(status)

    def List(self, request: Any, context: Any) -> Any:
        with self._lock:
            statuses = dict(self._statuses)
        response: Any = health_pb2.HealthListResponse()
        for service, status in statuses.items():
            response.statuses[service].status = status
        return response

    def Watch(self, request: Any, context: Any) -> Iterator[Any]:
        """Blocks a thread per watcher: ``enable_health`` serves ``async`` methods on
        ``rpc.Server`` instead."""
        updates: queue.SimpleQueue[Any] = queue.SimpleQueue()
        service = request.service
        status: Any = self._watch(service, updates.put)
        try:
            # Woken when the call ends (cancelled, deadline, server stopped); False: it has.
            if not context.add_callback(lambda: updates.put(_END)):
                return
            last = None
            while status is not _END:
                if status != last:
                    yield _response(status)
                    last = status
                status = updates.get()
        finally:
            self._unwatch(service, updates.put)


class _AsyncHealth:
    """The same service with ``async def`` methods, for ``rpc.Server``: a watcher is a task
    waiting on a queue, not a thread."""

    def __init__(self, servicer: HealthServicer) -> None:
        self._servicer = servicer

    async def Check(self, request: Any, context: Any) -> Any:
        return self._servicer.Check(request, context)

    async def List(self, request: Any, context: Any) -> Any:
        return self._servicer.List(request, context)

    async def Watch(self, request: Any, context: Any) -> AsyncIterator[Any]:
        loop = asyncio.get_running_loop()
        updates: asyncio.Queue[int] = asyncio.Queue()

        def notify(status: int) -> None:  # any thread: set() may be called from one
            try:
                loop.call_soon_threadsafe(updates.put_nowait, status)
            except RuntimeError:  # the loop is closed: the call is over
                pass

        service = request.service
        status: Any = self._servicer._watch(service, notify)
        try:
            last = None
            while True:
                if status != last:
                    yield _response(status)
                    last = status
                status = await updates.get()
        finally:
            self._servicer._unwatch(service, notify)


def enable_health(server: Any, servicer: Optional[HealthServicer] = None) -> HealthServicer:
    """Serve ``grpc.health.v1.Health`` on ``server`` (``rpc.Server`` or ``rpc.sync.Server``);
    the servicer whose ``set()`` the application calls: ``servicer``, or a new one where only the
    overall service ``""`` is known (SERVING).

    Every status turns NOT_SERVING when ``server.stop()`` begins.
    """
    if servicer is None:
        servicer = HealthServicer()
    if isinstance(server, rpc.sync.Server):
        server.add_service(SERVICE, servicer)
    else:
        server.add_service(SERVICE, _AsyncHealth(servicer))
    server.add_stop_callback(servicer.enter_graceful_shutdown)
    return servicer
