"""The two ends the fault tests put the proxy between: h2rpc servers (async, blocking) in this
process or grpcio's in a child process, and clients (h2rpc async, h2rpc blocking, grpcio) behind
one small interface, so that every fault runs the same test body on each pair.

A call returns an ``Outcome``: the status name, the responses, and how long it took.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

import h2rpc_test_pb2 as pb
from echo_servicer import EchoTestServicer, make_server
from echo_servicer_sync import EchoTestServicer as SyncEchoTestServicer
from echo_servicer_sync import make_sync_server

import rpc
from tests.rpc.server_thread import ServerThread

SERVICE = pb.DESCRIPTOR.services_by_name["EchoTest"]
MAX_MESSAGE = 64 * 1024 * 1024


@dataclass
class Outcome:
    code: str
    responses: list[Any] = field(default_factory=list)
    seconds: float = 0.0
    details: str = ""


# ====================================================================== servers


class Produced:
    """Bytes the server's stream handlers have produced so far (for memory-bound checks), and
    whether a handler is still running."""

    def __init__(self) -> None:
        self.bytes = 0
        self.running = 0
        self.lock = threading.Lock()

    def add(self, n: int) -> None:
        with self.lock:
            self.bytes += n

    def enter(self, delta: int) -> None:
        with self.lock:
            self.running += delta


class CountingServicer(EchoTestServicer):
    """EchoTest whose ServerStream counts what it yields (before the transport takes it)."""

    def __init__(self, produced: Produced) -> None:
        self.produced = produced

    async def ServerStream(self, request: Any, context: Any) -> Any:
        self.produced.enter(1)
        try:
            async for response in super().ServerStream(request, context):
                self.produced.add(len(response.payload))
                yield response
        finally:
            self.produced.enter(-1)

    async def ClientStream(self, request_iterator: Any, context: Any) -> Any:
        self.produced.enter(1)
        try:
            return await super().ClientStream(request_iterator, context)
        finally:
            self.produced.enter(-1)


class SyncCountingServicer(SyncEchoTestServicer):
    def __init__(self, produced: Produced) -> None:
        self.produced = produced

    def ServerStream(self, request: Any, context: Any) -> Iterator[Any]:
        self.produced.enter(1)
        try:
            for response in super().ServerStream(request, context):
                self.produced.add(len(response.payload))
                yield response
        finally:
            self.produced.enter(-1)

    def ClientStream(self, request_iterator: Any, context: Any) -> Any:
        self.produced.enter(1)
        try:
            return super().ClientStream(request_iterator, context)
        finally:
            self.produced.enter(-1)


class H2rpcServer:
    """An h2rpc server in this process: ``kind`` "async" (its own loop thread) or "blocking"."""

    def __init__(self, kind: str, **options: Any) -> None:
        self.kind = kind
        self.produced = Produced()
        options.setdefault("max_receive_message_length", MAX_MESSAGE)
        options.setdefault("max_send_message_length", MAX_MESSAGE)
        self._thread: Optional[ServerThread] = None
        self._sync: Optional[rpc.sync.Server] = None
        if kind == "async":
            servicer = CountingServicer(self.produced)
            self._thread = ServerThread(lambda: make_server(servicer=servicer, **options))
            self.target = self._thread.__enter__()
            self.port = self._thread.port
        else:
            self._sync = make_sync_server(servicer=SyncCountingServicer(self.produced), **options)
            self.port = self._sync.add_insecure_port("127.0.0.1:0")
            self._sync.start()
            self.target = f"127.0.0.1:{self.port}"

    def connections(self) -> int:
        if self._thread is not None:
            server = self._thread.server
            return int(
                self._thread.call(lambda: sum(len(x.connections) for x in server._listeners))
            )
        assert self._sync is not None
        return sum(len(listener.connections) for listener in self._sync._listeners)

    def tasks(self) -> int:
        """asyncio tasks on the async server's loop (0 for the blocking server)."""
        if self._thread is None:
            return 0
        return int(self._thread.call(lambda: len(asyncio.all_tasks())))

    def stop(self) -> None:
        if self._thread is not None:
            self._thread.__exit__(None, None, None)
        if self._sync is not None:
            self._sync.stop(grace=0.5)


# ====================================================================== clients


def _request(**fields: Any) -> Any:
    return pb.EchoRequest(**fields)


class BlockingClient:
    """``rpc.sync.Channel``."""

    kind = "blocking"

    def __init__(self, target: str, **options: Any) -> None:
        options.setdefault("max_receive_message_length", MAX_MESSAGE)
        self.channel = rpc.sync.Channel(target, **options)
        self.stub = rpc.Stub(self.channel, SERVICE)

    def unary(self, timeout: float, **fields: Any) -> Outcome:
        started = time.monotonic()
        try:
            response = self.stub.Unary(_request(**fields), timeout=timeout)
        except rpc.RpcError as exc:
            return Outcome(exc.code().name, [], time.monotonic() - started, exc.details() or "")
        return Outcome("OK", [response], time.monotonic() - started)

    def server_stream(
        self, timeout: float, on_response: Optional[Callable[[int], None]] = None, **fields: Any
    ) -> Outcome:
        started = time.monotonic()
        responses: list[Any] = []
        try:
            for response in self.stub.ServerStream(_request(**fields), timeout=timeout):
                responses.append(response)
                if on_response is not None:
                    on_response(len(responses))
        except rpc.RpcError as exc:
            return Outcome(exc.code().name, responses, time.monotonic() - started, exc.details())
        return Outcome("OK", responses, time.monotonic() - started)

    def client_stream(self, timeout: float, requests: Iterator[Any]) -> Outcome:
        started = time.monotonic()
        try:
            response = self.stub.ClientStream(requests, timeout=timeout)
        except rpc.RpcError as exc:
            return Outcome(exc.code().name, [], time.monotonic() - started, exc.details() or "")
        return Outcome("OK", [response], time.monotonic() - started)

    def close(self) -> None:
        self.channel.close()


class AsyncClient:
    """``rpc.Channel`` on an event loop of its own thread (so tests drive it like the others)."""

    kind = "async"

    def __init__(self, target: str, **options: Any) -> None:
        options.setdefault("max_receive_message_length", MAX_MESSAGE)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="fault-client", daemon=True
        )
        self._thread.start()

        async def make() -> Any:
            return rpc.Channel(target, **options)

        self.channel = self._run(make())
        self.stub = rpc.Stub(self.channel, SERVICE)

    def _run(self, coro: Any) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(60)

    def unary(self, timeout: float, **fields: Any) -> Outcome:
        async def call() -> Outcome:
            started = time.monotonic()
            try:
                response = await self.stub.Unary(_request(**fields), timeout=timeout)
            except rpc.RpcError as exc:
                return Outcome(exc.code().name, [], time.monotonic() - started, exc.details())
            return Outcome("OK", [response], time.monotonic() - started)

        return self._run(call())  # type: ignore[no-any-return]

    def server_stream(
        self, timeout: float, on_response: Optional[Callable[[int], None]] = None, **fields: Any
    ) -> Outcome:
        async def call() -> Outcome:
            started = time.monotonic()
            responses: list[Any] = []
            try:
                async for response in self.stub.ServerStream(_request(**fields), timeout=timeout):
                    responses.append(response)
                    if on_response is not None:
                        on_response(len(responses))
            except rpc.RpcError as exc:
                return Outcome(
                    exc.code().name, responses, time.monotonic() - started, exc.details()
                )
            return Outcome("OK", responses, time.monotonic() - started)

        return self._run(call())  # type: ignore[no-any-return]

    def client_stream(self, timeout: float, requests: Iterator[Any]) -> Outcome:
        async def call() -> Outcome:
            started = time.monotonic()
            try:
                response = await self.stub.ClientStream(requests, timeout=timeout)
            except rpc.RpcError as exc:
                return Outcome(exc.code().name, [], time.monotonic() - started, exc.details())
            return Outcome("OK", [response], time.monotonic() - started)

        return self._run(call())  # type: ignore[no-any-return]

    def tasks(self) -> int:
        async def count() -> int:
            return len(asyncio.all_tasks())

        return int(self._run(count()))

    def close(self) -> None:
        self._run(self.channel.close())

        async def leftover() -> int:
            await asyncio.sleep(0)
            return len(asyncio.all_tasks()) - 1  # minus this one

        self.leftover_tasks = self._run(leftover())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)
        self.loop.close()


class GrpcioClient:
    """grpcio's blocking channel, in this process."""

    kind = "grpcio"

    def __init__(self, target: str, **options: Any) -> None:
        import grpc
        import h2rpc_test_pb2_grpc as pb_grpc

        self.grpc = grpc
        names = {
            "keepalive_time": ("grpc.keepalive_time_ms", 1000),
            "keepalive_timeout": ("grpc.keepalive_timeout_ms", 1000),
        }
        pairs = [
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            # Keepalive pings even when the call sends nothing (the blackhole tests' case).
            ("grpc.http2.max_pings_without_data", 0),
            # Reconnect at once once a fault is lifted (grpcio's backoff starts at 1 s).
            ("grpc.initial_reconnect_backoff_ms", 100),
        ]
        for key, value in options.items():
            name, scale = names[key]
            pairs.append((name, int(value * scale)))
            if key == "keepalive_timeout":
                # grpcio 1.85 times its keepalive pings out after this (default 60 s), not
                # after keepalive_timeout alone.
                pairs.append(("grpc.http2.ping_timeout_ms", int(value * scale)))
        self.channel = grpc.insecure_channel(target, options=pairs)
        self.stub = pb_grpc.EchoTestStub(self.channel)

    def _code(self, exc: Any) -> tuple[str, str]:
        return exc.code().name, exc.details() or ""

    def unary(self, timeout: float, **fields: Any) -> Outcome:
        started = time.monotonic()
        try:
            response = self.stub.Unary(_request(**fields), timeout=timeout)
        except self.grpc.RpcError as exc:
            return Outcome(*self._code(exc)[:1], [], time.monotonic() - started, self._code(exc)[1])
        return Outcome("OK", [response], time.monotonic() - started)

    def server_stream(
        self, timeout: float, on_response: Optional[Callable[[int], None]] = None, **fields: Any
    ) -> Outcome:
        started = time.monotonic()
        responses: list[Any] = []
        try:
            for response in self.stub.ServerStream(_request(**fields), timeout=timeout):
                responses.append(response)
                if on_response is not None:
                    on_response(len(responses))
        except self.grpc.RpcError as exc:
            code, details = self._code(exc)
            return Outcome(code, responses, time.monotonic() - started, details)
        return Outcome("OK", responses, time.monotonic() - started)

    def client_stream(self, timeout: float, requests: Iterator[Any]) -> Outcome:
        started = time.monotonic()
        try:
            response = self.stub.ClientStream(requests, timeout=timeout)
        except self.grpc.RpcError as exc:
            code, details = self._code(exc)
            return Outcome(code, [], time.monotonic() - started, details)
        return Outcome("OK", [response], time.monotonic() - started)

    def close(self) -> None:
        self.channel.close()


CLIENTS = {"async": AsyncClient, "blocking": BlockingClient, "grpcio": GrpcioClient}
