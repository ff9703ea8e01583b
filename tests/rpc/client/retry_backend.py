"""A backend for retry tests: the same handlers on an h2rpc server and on a grpcio server.

Each request is JSON naming a ``key`` (one per test call) and a script: fail the first
``fail`` attempts with ``code`` (and a ``pushback`` trailer), answer slowly on the first
attempt (hedging), or fail after the first streamed response. The backend records, per key,
every attempt's ``grpc-previous-rpc-attempts`` header (None when absent), what a client stream
sent, and which attempts were cancelled, so that a test can check what the server saw.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent import futures
from typing import Any, Optional

import rpc

SERVICE = "t.Retry"


class Record:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        #: key -> the grpc-previous-rpc-attempts value each attempt carried (None: absent)
        self.attempts: dict[str, list[Optional[str]]] = defaultdict(list)
        #: key -> per attempt, the requests of a client stream
        self.streamed: dict[str, list[list[str]]] = defaultdict(list)
        #: key -> attempts that ended cancelled (hedging)
        self.cancelled: dict[str, list[int]] = defaultdict(list)

    def start(self, key: str, context: Any) -> int:
        previous = None
        for item in context.invocation_metadata():
            name, value = (item.key, item.value) if hasattr(item, "key") else item
            if name == "grpc-previous-rpc-attempts":
                previous = value
        with self.lock:
            self.attempts[key].append(previous)
            return len(self.attempts[key]) - 1


class Handlers:
    def __init__(self, record: Record, status: Any) -> None:
        self.record = record
        self.status = status  # the backend's StatusCode enum

    def _fail(self, context: Any, script: dict[str, Any]) -> None:
        code = next(c for c in self.status if _number(c) == script.get("code", 14))
        if "pushback" in script:
            context.set_trailing_metadata((("grpc-retry-pushback-ms", script["pushback"]),))
        context.abort(code, f"scripted failure {script.get('code', 14)}")

    def unary(self, request: bytes, context: Any) -> bytes:
        script = json.loads(request)
        attempt = self.record.start(script["key"], context)
        if attempt < script.get("fail", 0):
            self._fail(context, script)
        if script.get("slow_first") and attempt == 0:
            end = time.monotonic() + 5
            while context.is_active() and time.monotonic() < end:
                time.sleep(0.01)
            if not context.is_active():
                with self.record.lock:
                    self.record.cancelled[script["key"]].append(attempt)
            return b"slow"
        return f"ok:{attempt}".encode()

    def server_stream(self, request: bytes, context: Any) -> Iterator[bytes]:
        script = json.loads(request)
        attempt = self.record.start(script["key"], context)
        if attempt < script.get("fail", 0):
            self._fail(context, script)
        yield f"first:{attempt}".encode()
        if script.get("fail_after_first"):
            self._fail(context, script)
        yield f"second:{attempt}".encode()

    def _slow(self, context: Any, script: dict[str, Any], attempt: int) -> None:
        """The slow first attempt of a hedging test: no answer until cancelled (or ``slow``
        seconds, 5 unless the script says)."""
        end = time.monotonic() + float(script.get("slow", 5))
        while context.is_active() and time.monotonic() < end:
            time.sleep(0.01)
        if not context.is_active():
            with self.record.lock:
                self.record.cancelled[script["key"]].append(attempt)

    def client_stream(self, requests: Iterator[bytes], context: Any) -> bytes:
        first = next(requests)  # (the attempt is counted when it starts, not when it ends)
        script = json.loads(first)
        attempt = self.record.start(script["key"], context)
        received = [first.decode(), *(r.decode() for r in requests)]
        with self.record.lock:
            self.record.streamed[script["key"]].append(received)
        if attempt < script.get("fail", 0):
            self._fail(context, script)
        if script.get("slow_first"):
            if attempt == 0:
                self._slow(context, script, attempt)
                return b"slow"
            # The hedge that wins: a moment for the slow attempt's thread to read the requests
            # it was sent at the same time before the answer cancels it.
            time.sleep(0.2)
        return f"got:{len(received)}:{attempt}".encode()

    def bidi(self, requests: Iterator[bytes], context: Any) -> Iterator[bytes]:
        """Echoes each request as it comes (``attempt:index``); a slow first attempt reads
        them all and answers nothing until cancelled."""
        first = next(requests)
        script = json.loads(first)
        attempt = self.record.start(script["key"], context)
        received = [first.decode()]
        if attempt < script.get("fail", 0):
            self._fail(context, script)
        if script.get("slow_first") and attempt == 0:
            received.extend(r.decode() for r in requests)
            with self.record.lock:
                self.record.streamed[script["key"]].append(received)
            self._slow(context, script, attempt)
            return
        yield f"{attempt}:0".encode()
        for request in requests:
            received.append(request.decode())
            yield f"{attempt}:{len(received) - 1}".encode()
        with self.record.lock:
            self.record.streamed[script["key"]].append(received)


def _number(code: Any) -> int:
    value = code.value
    return int(value[0] if isinstance(value, tuple) else value)


@contextlib.contextmanager
def h2rpc_backend() -> Iterator[tuple[str, Record]]:
    record = Record()
    handlers = Handlers(record, rpc.StatusCode)
    generic = rpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Unary": rpc.unary_unary_rpc_method_handler(handlers.unary),
            "ServerStream": rpc.unary_stream_rpc_method_handler(handlers.server_stream),
            "ClientStream": rpc.stream_unary_rpc_method_handler(handlers.client_stream),
            "Bidi": rpc.stream_stream_rpc_method_handler(handlers.bidi),
        },
    )
    server = rpc.sync.Server([generic], max_workers=16)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", record
    finally:
        server.stop(0.5).wait(5)


@contextlib.contextmanager
def grpcio_backend() -> Iterator[tuple[str, Record]]:
    import grpc

    record = Record()
    handlers = Handlers(record, grpc.StatusCode)
    generic = grpc.method_handlers_generic_handler(
        SERVICE,
        {
            "Unary": grpc.unary_unary_rpc_method_handler(handlers.unary),
            "ServerStream": grpc.unary_stream_rpc_method_handler(handlers.server_stream),
            "ClientStream": grpc.stream_unary_rpc_method_handler(handlers.client_stream),
            "Bidi": grpc.stream_stream_rpc_method_handler(handlers.bidi),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    server.add_generic_rpc_handlers((generic,))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}", record
    finally:
        server.stop(0.5).wait(5)


BACKENDS = {"h2rpc": h2rpc_backend, "grpcio": grpcio_backend}
