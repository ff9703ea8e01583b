"""The two h2rpc servers the proxies are put in front of: one asyncio ``rpc.Server``, one
blocking ``rpc.sync.Server``, each serving EchoTest and a Probe that tells which backend answered
and what a backend saw of a call (its deadline, its cancellation)."""

from __future__ import annotations

import threading
import time
from typing import Any, Optional

from echo_servicer import EchoTestServicer
from echo_servicer_sync import SERVICE as ECHO_SERVICE
from echo_servicer_sync import EchoTestServicer as SyncEchoTestServicer

import rpc
from tests.rpc.server_thread import ServerThread

PROBE = "proxy.Probe"
#: The interop cases' large messages (8 MiB) must get through.
LARGE = 64 * 1024 * 1024


class Probe:
    """A backend's extra service: ``Who`` names the backend; ``Hang`` runs until its call
    ends, and records what the backend saw of it (its deadline, its cancellation)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.calls = 0
        self.started = threading.Event()
        self.ended = threading.Event()
        #: The deadline the handler saw (time_remaining at its start), None without one.
        self.time_remaining: Optional[float] = None
        self.cancelled = False
        self._lock = threading.Lock()

    def reset(self) -> None:
        self.started.clear()
        self.ended.clear()
        self.time_remaining = None
        self.cancelled = False

    def who(self, request: bytes, context: rpc.ServicerContext) -> bytes:
        with self._lock:
            self.calls += 1
        return self.name.encode()

    def hang(self, request: bytes, context: rpc.ServicerContext) -> bytes:
        self.time_remaining = context.time_remaining()
        self.started.set()
        end = time.monotonic() + 30
        while context.is_active() and time.monotonic() < end:
            time.sleep(0.01)
        self.cancelled = not context.is_active()
        self.ended.set()
        return b"never cancelled"

    def handlers(self) -> Any:
        return rpc.method_handlers_generic_handler(
            PROBE,
            {
                "Who": rpc.unary_unary_rpc_method_handler(self.who),
                "Hang": rpc.unary_unary_rpc_method_handler(self.hang),
            },
        )


class Backends:
    """The two servers behind the proxy and their probes."""

    def __init__(self) -> None:
        self.probes = [Probe("async"), Probe("sync")]
        self._thread = ServerThread(self._make_async)
        # A proxy carries every client's calls to a backend on one or a few connections: the
        # blocking server's per-connection share of its pool must be all of it (README).
        self._sync = rpc.sync.Server(
            [self.probes[1].handlers()],
            max_workers=256,
            max_calls_per_connection=256,
            max_receive_message_length=LARGE,
        )
        self._sync.add_service(ECHO_SERVICE, SyncEchoTestServicer())
        #: "host:port" of the two servers, once started.
        self.addresses: list[str] = []

    def _make_async(self) -> rpc.Server:
        server = rpc.Server([self.probes[0].handlers()], max_receive_message_length=LARGE)
        server.add_service(ECHO_SERVICE, EchoTestServicer())
        return server

    def start(self) -> None:
        self._thread.__enter__()
        sync_port = self._sync.add_insecure_port("127.0.0.1:0")
        self._sync.start()
        self.addresses = [f"127.0.0.1:{self._thread.port}", f"127.0.0.1:{sync_port}"]

    def stop(self) -> None:
        self._sync.stop(0.5)
        self._thread.__exit__(None, None, None)

    def hung(self, timeout: float = 5.0) -> Probe:
        """The probe whose Hang handler started (the proxy chose that backend)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            for probe in self.probes:
                if probe.started.is_set():
                    return probe
            time.sleep(0.01)
        raise AssertionError("no backend started the Hang call")

    def reset(self) -> None:
        for probe in self.probes:
            probe.reset()
