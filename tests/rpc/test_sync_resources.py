"""What the blocking API holds after its calls and channels are done: nothing that outlives them
(found by the soak, tests/soak)."""

from __future__ import annotations

import gc
import threading
import time
import weakref
from typing import Any

import h2rpc_test_pb2 as pb
from echo_servicer_sync import EchoTestServicer, make_sync_server

import rpc

SERVICE = pb.DESCRIPTOR.services_by_name["EchoTest"]


class RememberingServicer(EchoTestServicer):
    def __init__(self) -> None:
        self.contexts: list[weakref.ref[Any]] = []

    def Unary(self, request: Any, context: Any) -> Any:
        self.contexts.append(weakref.ref(context))
        return super().Unary(request, context)


def test_finished_calls_are_not_kept_until_their_deadline() -> None:
    # The blocking server's deadline watcher held every call (context, stream, decoder...) until
    # its deadline passed, long after the call ended: with clients that set deadlines hours
    # ahead, memory grew with every call.
    servicer = RememberingServicer()
    server = make_sync_server(servicer=servicer)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with rpc.sync.Channel(f"127.0.0.1:{port}") as channel:
            stub = rpc.Stub(channel, SERVICE)
            for _ in range(100):
                assert stub.Unary(pb.EchoRequest(payload=b"x"), timeout=3600).payload == b"x"
        deadline = time.monotonic() + 5
        while True:
            gc.collect()
            alive = sum(ref() is not None for ref in servicer.contexts)
            if alive == 0 or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        assert len(servicer.contexts) == 100
        assert alive == 0, f"{alive} finished calls are still held"
    finally:
        server.stop(grace=1)


def test_a_closed_channel_leaves_no_future_threads() -> None:
    # Each blocking channel runs its futures and their callbacks on two threads that ended only
    # after 10 s idle: a program opening a channel per task kept two threads per recent channel.
    server = make_sync_server()
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    before = set(threading.enumerate())
    try:
        with rpc.sync.Channel(f"127.0.0.1:{port}") as channel:
            stub = rpc.Stub(channel, SERVICE)
            done = threading.Event()
            future = stub.Unary.future(pb.EchoRequest(payload=b"x"), timeout=3600)
            future.add_done_callback(lambda _: done.set())
            assert future.result(timeout=5).payload == b"x"
            assert done.wait(5)
            started = {t.name for t in set(threading.enumerate()) - before}
            assert {"h2rpc-futures", "h2rpc-future-callbacks"} <= started
        deadline = time.monotonic() + 3
        while True:
            left = [
                t.name
                for t in set(threading.enumerate()) - before
                if t.name.startswith("h2rpc-future")
            ]
            if not left or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        assert left == []
    finally:
        server.stop(grace=1)
