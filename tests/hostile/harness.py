"""Shared pieces of the hostile-peer tests: a server under attack and a well-behaved client."""

from __future__ import annotations

import threading
import time
from typing import Any, Optional

import h2rpc_test_pb2 as pb

import rpc
from tests.interop.echo_servicer import SERVICE, make_server
from tests.rpc.helpers import wait_until
from tests.rpc.server_thread import ServerThread


class GoodClient:
    """Calls the server once every few ms on its own connection, noting failures and latency."""

    def __init__(self, target: str) -> None:
        self._target = target
        self._stop = threading.Event()
        self.latencies: list[float] = []
        self.failures: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> GoodClient:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        with rpc.sync.Channel(self._target) as channel:
            stub = rpc.Stub(channel, SERVICE)
            while not self._stop.is_set():
                started = time.monotonic()
                try:
                    reply = stub.Unary(pb.EchoRequest(payload=b"good"), timeout=5)
                    assert reply.payload == b"good"
                    self.latencies.append(time.monotonic() - started)
                except BaseException as exc:
                    self.failures.append(exc)
                time.sleep(0.005)  # the pace of the good client's calls, not a wait

    def check(self, max_p99: float = 2.0, calls: int = 5) -> None:
        """No call failed, and the p99 latency stayed normal (waits for ``calls`` calls)."""
        wait_until(
            lambda: len(self.latencies) >= calls or bool(self.failures),
            message="the good client barely ran",
        )
        assert not self.failures, self.failures[:3]
        ordered = sorted(self.latencies)
        p99 = ordered[int(len(ordered) * 0.99) - 1 if len(ordered) > 1 else 0]
        assert p99 < max_p99, f"p99 latency {p99:.3f} s"


def serve(**options: Any) -> ServerThread:
    return ServerThread(lambda: make_server(**options))


def count_live(cls: type) -> int:
    """Objects of ``cls`` still alive after a collection (weak proxies are skipped: on PyPy
    ``isinstance`` on a dead one raises)."""
    import gc

    gc.collect()
    gc.collect()
    count = 0
    for obj in gc.get_objects():
        try:
            count += isinstance(obj, cls)
        except ReferenceError:
            pass
    return count


class Memory:
    """Traced allocations (tracemalloc) from ``start()``; PyPy has no tracemalloc: then every
    reading is None and the callers check only the behaviour, not the bytes."""

    def __init__(self) -> None:
        try:
            import tracemalloc
        except ImportError:
            self._tm = None
        else:
            self._tm = tracemalloc

    def start(self) -> Optional[int]:
        if self._tm is None:
            return None
        self._tm.start()
        return int(self._tm.get_traced_memory()[0])

    def current(self) -> Optional[int]:
        return None if self._tm is None else int(self._tm.get_traced_memory()[0])

    def peak(self) -> Optional[int]:
        return None if self._tm is None else int(self._tm.get_traced_memory()[1])

    def stop(self) -> None:
        if self._tm is not None:
            self._tm.stop()


def megabytes(value: Optional[int]) -> str:
    return "n/a" if value is None else f"{value / 1e6:.2f} MB"
