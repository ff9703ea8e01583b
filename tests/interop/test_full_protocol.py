"""The full protocol against real gRPC, both directions, real processes on loopback.

Each feature is checked twice: h2rpc's async client against a grpcio server process
(``h2rpc->grpcio``), and grpcio's client against an h2rpc server process (``grpcio->h2rpc``).
Peers with special settings (stream limits, TLS, small message limits) are started per test.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from peer_options import CALL_BEGUN
from peers import (
    GRPCIO_AVAILABLE,
    GRPCIO_UNAVAILABLE_REASON,
    INTEROP_DIR,
    PeerProcess,
    peer_environment,
    python_peer_argv,
    start_peer,
)

if not GRPCIO_AVAILABLE:
    pytest.skip(GRPCIO_UNAVAILABLE_REASON, allow_module_level=True)

import grpc
import h2rpc_test_pb2 as pb
import h2rpc_test_pb2_grpc as pb_grpc
import trustme

import rpc
from tests.rpc.helpers import eventually, wait_until

SERVICE = pb.DESCRIPTOR.services_by_name["EchoTest"]
SCRIPTS = {"grpcio": INTEROP_DIR / "grpcio_peer.py", "h2rpc": INTEROP_DIR / "h2rpc_peer.py"}
GRPC_CODE = {code.value[0]: code for code in grpc.StatusCode}


@contextlib.contextmanager
def peer(kind: str, *flags: str) -> Iterator[tuple[PeerProcess, str]]:
    """A fresh peer server process of ``kind`` with extra command-line ``flags``.

    ``h2rpc_sync`` is the h2rpc peer serving with the blocking ``rpc.sync.Server``.
    """
    if kind == "h2rpc_sync":
        kind, flags = "h2rpc", ("--sync", *flags)
    proc, port = start_peer([*python_peer_argv(SCRIPTS[kind]), *flags])
    try:
        yield proc, f"127.0.0.1:{port}"
    finally:
        proc.stop()
        proc.remove_logs()


def wait_for_calls(proc: PeerProcess, count: int) -> None:
    """Wait until an h2rpc peer started with ``--log-calls`` has begun ``count`` more Unary calls
    (counted in its stderr from the previous ``new_stderr()`` on)."""
    log: list[str] = []

    def begun() -> bool:
        log.append(proc.new_stderr())
        return "".join(log).count(CALL_BEGUN) >= count

    wait_until(begun, message=f"the server did not begin {count} calls")


def run(coro: Any, timeout: float = 40) -> Any:
    async def bounded() -> Any:
        return await asyncio.wait_for(coro, timeout)

    return asyncio.run(bounded())


def code_of(error: grpc.RpcError) -> int:
    return int(error.code().value[0])


@pytest.fixture(params=["h2rpc", "h2rpc_sync"])
def grpcio_stub(request: pytest.FixtureRequest) -> Iterator[pb_grpc.EchoTestStub]:
    """A grpcio stub on the async h2rpc server, then on the blocking one."""
    target = request.getfixturevalue(f"{request.param}_server_target")
    with grpc.insecure_channel(target) as channel:
        yield pb_grpc.EchoTestStub(channel)


# --- deadlines ---------------------------------------------------------------------------


def test_deadline_expiry_on_a_sleeping_grpcio_server(grpcio_server_target: str):
    async def body() -> None:
        async with rpc.Channel(grpcio_server_target) as channel:
            stub = rpc.Stub(channel, SERVICE)
            started = time.monotonic()
            with pytest.raises(rpc.RpcError) as info:
                await stub.Unary(pb.EchoRequest(sleep_ms=3000), timeout=0.3)
            assert info.value.code() == rpc.StatusCode.DEADLINE_EXCEEDED
            assert time.monotonic() - started < 2
            reply = await stub.Unary(pb.EchoRequest(), timeout=5)
            assert 3 < reply.time_remaining <= 5  # grpcio saw our grpc-timeout

    run(body())


def test_deadline_expiry_on_a_sleeping_h2rpc_server(grpcio_stub: pb_grpc.EchoTestStub):
    started = time.monotonic()
    with pytest.raises(grpc.RpcError) as info:
        grpcio_stub.Unary(pb.EchoRequest(sleep_ms=3000), timeout=0.3)
    assert info.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    assert time.monotonic() - started < 2
    reply = grpcio_stub.Unary(pb.EchoRequest(), timeout=5)
    assert 3 < reply.time_remaining <= 5.1  # we saw grpcio's grpc-timeout (it adds a little)
    assert grpcio_stub.Unary(pb.EchoRequest(), timeout=5).time_remaining > 0
    assert grpcio_stub.Unary(pb.EchoRequest()).time_remaining == -1


# --- cancellation ------------------------------------------------------------------------


def test_cancel_after_begin_and_after_first_response_against_grpcio(grpcio_server_target: str):
    async def body() -> None:
        async with rpc.Channel(grpcio_server_target) as channel:
            stub = rpc.Stub(channel, SERVICE)
            call = stub.ClientStream()
            await call.write(pb.EchoRequest(payload=b"x"))
            assert call.cancel()
            assert await call.code() == rpc.StatusCode.CANCELLED
            call = stub.Bidi()
            await call.write(pb.EchoRequest(payload=b"first"))
            assert (await call.read()).payload == b"first"
            call.cancel()
            with pytest.raises(rpc.RpcError) as info:
                await call.read()
            assert info.value.code() == rpc.StatusCode.CANCELLED
            # The connection is fine afterwards.
            assert (await stub.Unary(pb.EchoRequest(payload=b"ok"))).payload == b"ok"

    run(body())


def test_cancel_after_begin_and_after_first_response_against_h2rpc(
    grpcio_stub: pb_grpc.EchoTestStub,
):
    begun = threading.Event()

    def never_ending() -> Iterator[pb.EchoRequest]:
        yield pb.EchoRequest(payload=b"x")
        begun.set()  # grpcio came back for more: the call has begun
        time.sleep(30)  # a request stream that never ends

    future = grpcio_stub.ClientStream.future(never_ending())
    assert begun.wait(5)
    assert future.cancel()
    assert future.code() == grpc.StatusCode.CANCELLED

    def two() -> Iterator[pb.EchoRequest]:
        yield pb.EchoRequest(payload=b"first")
        time.sleep(30)  # and then nothing: the request stream stalls

    call = grpcio_stub.Bidi(two())
    assert next(call).payload == b"first"
    call.cancel()
    with pytest.raises(grpc.RpcError) as info:
        next(call)
    assert info.value.code() == grpc.StatusCode.CANCELLED
    assert grpcio_stub.Unary(pb.EchoRequest(payload=b"ok")).payload == b"ok"


# --- compression -------------------------------------------------------------------------


def test_gzip_both_ways_and_per_message_against_grpcio(grpcio_server_target: str):
    payload = b"squeeze " * 4000

    async def body() -> None:
        async with rpc.Channel(grpcio_server_target, compression="gzip") as channel:
            stub = rpc.Stub(channel, SERVICE)
            reply = await stub.Unary(pb.EchoRequest(payload=payload, compress_response=True))
            assert reply.payload == payload
            request = pb.EchoRequest(
                payload=payload, response_count=4, compress_response=True, uncompressed_odd=True
            )
            call = stub.ServerStream(request)
            assert [r.index async for r in call] == [0, 1, 2, 3]
            writer = stub.ClientStream(compression="deflate")
            for i in range(4):
                await writer.write(pb.EchoRequest(payload=payload), compress=i % 2 == 0)
            await writer.done_writing()
            assert (await writer).received_bytes == 4 * len(payload)

    run(body())


def test_gzip_both_ways_and_per_message_against_h2rpc(h2rpc_server_target: str):
    payload = b"squeeze " * 4000
    with grpc.insecure_channel(h2rpc_server_target, compression=grpc.Compression.Gzip) as ch:
        stub = pb_grpc.EchoTestStub(ch)
        reply = stub.Unary(pb.EchoRequest(payload=payload, compress_response=True))
        assert reply.payload == payload
        request = pb.EchoRequest(
            payload=payload, response_count=4, compress_response=True, uncompressed_odd=True
        )
        assert [r.index for r in stub.ServerStream(request)] == [0, 1, 2, 3]
        requests = [pb.EchoRequest(payload=payload)] * 3
        reply = stub.ClientStream(iter(requests), compression=grpc.Compression.Deflate)
        assert reply.received_bytes == 3 * len(payload)


# --- limits ------------------------------------------------------------------------------

LIMIT = 1024 * 1024


@pytest.mark.parametrize("server", ["grpcio", "h2rpc", "h2rpc_sync"])
def test_over_limit_message_each_way_h2rpc_client(server: str):
    async def body(target: str) -> None:
        async with rpc.Channel(target, max_receive_message_length=LIMIT) as channel:
            stub = rpc.Stub(channel, SERVICE)
            with pytest.raises(rpc.RpcError) as info:  # the server's receive limit
                await stub.Unary(pb.EchoRequest(payload=bytes(LIMIT + 100)), timeout=10)
            assert info.value.code() == rpc.StatusCode.RESOURCE_EXHAUSTED
            with pytest.raises(rpc.RpcError) as info:  # our receive limit
                await stub.Unary(pb.EchoRequest(response_size=LIMIT + 100), timeout=10)
            assert info.value.code() == rpc.StatusCode.RESOURCE_EXHAUSTED
            reply = await stub.Unary(pb.EchoRequest(response_size=LIMIT - 100), timeout=10)
            assert len(reply.payload) == LIMIT - 100

    with peer(server, "--max-receive-message-length", str(LIMIT)) as (_, target):
        run(body(target))


@pytest.mark.parametrize("server", ["grpcio", "h2rpc", "h2rpc_sync"])
def test_over_limit_message_each_way_grpcio_client(server: str):
    with peer(server, "--max-receive-message-length", str(LIMIT)) as (_, target):
        options = [("grpc.max_receive_message_length", LIMIT)]
        with grpc.insecure_channel(target, options=options) as channel:
            stub = pb_grpc.EchoTestStub(channel)
            with pytest.raises(grpc.RpcError) as info:
                stub.Unary(pb.EchoRequest(payload=bytes(LIMIT + 100)), timeout=10)
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
            with pytest.raises(grpc.RpcError) as info:
                stub.Unary(pb.EchoRequest(response_size=LIMIT + 100), timeout=10)
            assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def test_300_concurrent_streams_against_a_grpcio_limit_of_100():
    async def body(target: str) -> None:
        async with rpc.Channel(target) as channel:
            stub = rpc.Stub(channel, SERVICE)
            replies = await asyncio.gather(
                *(stub.Unary(pb.EchoRequest(payload=b"%d" % i, sleep_ms=50)) for i in range(300))
            )
            assert [r.payload for r in replies] == [b"%d" % i for i in range(300)]

    with peer("grpcio", "--max-concurrent-streams", "100") as (_, target):
        run(body(target))


@pytest.mark.parametrize("server", ["h2rpc", "h2rpc_sync"])
def test_300_concurrent_streams_from_grpcio_against_an_h2rpc_limit_of_100(server: str):
    with peer(server, "--max-concurrent-streams", "100") as (_, target):
        with grpc.insecure_channel(target) as channel:
            stub = pb_grpc.EchoTestStub(channel)
            futures = [
                stub.Unary.future(pb.EchoRequest(payload=b"%d" % i, sleep_ms=50), timeout=30)
                for i in range(300)
            ]
            assert [f.result().payload for f in futures] == [b"%d" % i for i in range(300)]


# --- a server killed mid-call, and a graceful stop ---------------------------------------


def test_server_killed_mid_call_h2rpc_client_sees_unavailable():
    async def body(proc: PeerProcess, target: str) -> None:
        async with rpc.Channel(target) as channel:
            stub = rpc.Stub(channel, SERVICE)
            await stub.Unary(pb.EchoRequest())
            pending = stub.Unary(pb.EchoRequest(sleep_ms=30_000))
            await pending.initial_metadata()  # the server is in the call
            proc.kill()
            started = time.monotonic()
            with pytest.raises(rpc.RpcError) as info:
                await pending
            assert info.value.code() == rpc.StatusCode.UNAVAILABLE
            assert time.monotonic() - started < 2

    with peer("grpcio") as (proc, target):
        run(body(proc, target))


@pytest.mark.parametrize("server", ["h2rpc", "h2rpc_sync"])
def test_server_killed_mid_call_grpcio_client_sees_unavailable(server: str):
    with peer(server, "--log-calls") as (proc, target), grpc.insecure_channel(target) as channel:
        stub = pb_grpc.EchoTestStub(channel)
        stub.Unary(pb.EchoRequest(), timeout=10)
        proc.new_stderr()
        future = stub.Unary.future(pb.EchoRequest(sleep_ms=30_000), timeout=20)
        wait_for_calls(proc, 1)  # the server is in the call
        proc.kill()
        started = time.monotonic()
        assert future.code() == grpc.StatusCode.UNAVAILABLE
        assert time.monotonic() - started < 2


def test_graceful_stop_of_grpcio_finishes_h2rpc_calls_in_flight():
    async def body(proc: PeerProcess, target: str) -> None:
        async with rpc.Channel(target) as channel:
            stub = rpc.Stub(channel, SERVICE)
            await stub.Unary(pb.EchoRequest())
            calls = [stub.Unary(pb.EchoRequest(payload=b"%d" % i, sleep_ms=400)) for i in range(10)]
            await asyncio.gather(*(call.initial_metadata() for call in calls))  # all in flight
            proc.send_signal(signal.SIGTERM)  # the peer stops with a 1 s grace
            replies = await asyncio.gather(*calls)
            assert [r.payload for r in replies] == [b"%d" % i for i in range(10)]

    with peer("grpcio") as (proc, target):
        run(body(proc, target))


@pytest.mark.parametrize("server", ["h2rpc", "h2rpc_sync"])
def test_graceful_stop_of_h2rpc_finishes_grpcio_calls_in_flight(server: str):
    """The server stops (1 s grace) while grpcio has calls in flight and keeps starting new
    ones: those in flight finish OK; a new one is either served (it reached the server before
    the client read the first GOAWAY, or while the server still ran) or fails UNAVAILABLE (no
    server left to take it). Nothing else."""
    with peer(server, "--log-calls") as (proc, target), grpc.insecure_channel(target) as channel:
        stub = pb_grpc.EchoTestStub(channel)
        stub.Unary(pb.EchoRequest(), timeout=10)
        proc.new_stderr()
        futures = [
            stub.Unary.future(pb.EchoRequest(payload=b"%d" % i, sleep_ms=400), timeout=10)
            for i in range(10)
        ]
        wait_for_calls(proc, 10)  # all ten are in the server's hands
        proc.send_signal(signal.SIGTERM)
        later = []
        end = time.monotonic() + 10
        while time.monotonic() < end:
            exited = proc.poll() is not None
            later.append(stub.Unary.future(pb.EchoRequest(payload=b"new", sleep_ms=50), timeout=5))
            if exited:
                break  # (this last call started after the server had gone)
            time.sleep(0.005)
        assert [f.result().payload for f in futures] == [b"%d" % i for i in range(10)]
        outcomes = []
        for future in later:
            error = future.exception()
            if error is None:
                assert future.result().payload == b"new"
                outcomes.append("OK")
            else:
                outcomes.append(error.code().name)
        assert set(outcomes) <= {"OK", "UNAVAILABLE"}, outcomes
        assert outcomes[-1] == "UNAVAILABLE" and len(outcomes) > 10, outcomes
        assert proc.wait(10) == 0, proc.stderr_text()


# --- keepalive ---------------------------------------------------------------------------


def test_h2rpc_keepalive_detects_a_grpcio_server_that_stops_answering():
    async def body(proc: PeerProcess, target: str) -> None:
        channel = rpc.Channel(target, keepalive_time=0.3, keepalive_timeout=0.5)
        async with channel:
            stub = rpc.Stub(channel, SERVICE)
            await stub.Unary(pb.EchoRequest())
            pending = asyncio.ensure_future(stub.Unary(pb.EchoRequest(sleep_ms=200)))
            proc.send_signal(signal.SIGSTOP)  # frozen: the socket stays open, nothing answers
            try:
                started = time.monotonic()
                with pytest.raises(rpc.RpcError) as info:
                    await pending
                assert info.value.code() == rpc.StatusCode.UNAVAILABLE
                assert time.monotonic() - started < 3
            finally:
                proc.send_signal(signal.SIGCONT)

    with peer("grpcio") as (proc, target):
        run(body(proc, target))


GRPCIO_LONG_CALL = """
import os, sys
sys.path.insert(0, os.environ["H2RPC_TEST_PROTO_DIR"])
import grpc, h2rpc_test_pb2 as pb, h2rpc_test_pb2_grpc as pb_grpc
stub = pb_grpc.EchoTestStub(grpc.insecure_channel(sys.argv[1]))
print("calling", flush=True)
stub.Unary(pb.EchoRequest(sleep_ms=30_000), timeout=60)
"""


def test_h2rpc_server_keepalive_detects_a_grpcio_client_that_stops_answering():
    """grpcio's client is frozen mid-call (SIGSTOP): our server's PINGs go unanswered."""
    flags = ("--keepalive-time", "0.3", "--keepalive-timeout", "0.5", "--log-calls")
    with peer("h2rpc", *flags) as (proc, target):
        client = subprocess.Popen(
            [sys.executable, "-c", GRPCIO_LONG_CALL, target],
            stdout=subprocess.PIPE,
            text=True,
            env=peer_environment(),
        )
        try:
            assert client.stdout is not None and client.stdout.readline() == "calling\n"
            wait_for_calls(proc, 1)  # the server is in the call
            client.send_signal(signal.SIGSTOP)
            log: list[str] = []

            def gave_up() -> bool:
                log.append(proc.new_stderr())
                return "did not answer a keepalive PING" in "".join(log)

            wait_until(gave_up, message="the server never gave up")
        finally:
            client.kill()
            client.wait(5)


def test_h2rpc_server_keepalive_pings_are_answered_by_grpcio_clients():
    with peer("h2rpc", "--keepalive-time", "0.1", "--keepalive-timeout", "1") as (_, target):
        with grpc.insecure_channel(target) as channel:
            stub = pb_grpc.EchoTestStub(channel)
            reply = stub.Unary(pb.EchoRequest(payload=b"alive", sleep_ms=1500), timeout=10)
            assert reply.payload == b"alive"  # the server's pings were ACKed throughout


def test_grpcio_server_says_too_many_pings_and_h2rpc_backs_off():
    async def body(target: str) -> None:
        channel = rpc.Channel(
            target, keepalive_time=0.05, keepalive_timeout=5, keepalive_permit_without_calls=True
        )
        async with channel:
            stub = rpc.Stub(channel, SERVICE)
            await stub.Unary(pb.EchoRequest())
            conn = channel._conn
            assert conn is not None
            await eventually(lambda: conn.goaway_received, timeout=4)
            assert conn.goaway_debug_data == b"too_many_pings"
            assert (await stub.Unary(pb.EchoRequest(payload=b"again"))).payload == b"again"
            assert channel._connection_options.keepalive_time == pytest.approx(0.1)

    with peer("grpcio") as (_, target):
        run(body(target))


# --- TLS ---------------------------------------------------------------------------------


class Pki:
    def __init__(self, directory: Path) -> None:
        ca = trustme.CA()
        server = ca.issue_cert("localhost", "127.0.0.1")
        client = ca.issue_cert("client.example")
        self.ca = directory / "ca.pem"
        ca.cert_pem.write_to_path(str(self.ca))
        self.server_cert = directory / "server.pem"
        self.server_key = directory / "server.key"
        self.server_cert.write_bytes(b"".join(p.bytes() for p in server.cert_chain_pems))
        server.private_key_pem.write_to_path(str(self.server_key))
        self.client_cert = b"".join(p.bytes() for p in client.cert_chain_pems)
        self.client_key = client.private_key_pem.bytes()

    def server_flags(self, mutual: bool) -> list[str]:
        flags = ["--tls-cert", str(self.server_cert), "--tls-key", str(self.server_key)]
        if mutual:
            flags += ["--tls-ca", str(self.ca), "--require-client-auth"]
        return flags


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return Pki(tmp_path_factory.mktemp("pki"))


@pytest.mark.parametrize("mutual", [False, True], ids=["tls", "mtls"])
def test_tls_h2rpc_client_to_grpcio_server(pki: Pki, mutual: bool):
    async def body(target: str) -> None:
        client = {"private_key": pki.client_key, "certificate_chain": pki.client_cert}
        context = rpc.ssl_channel_context(pki.ca, **(client if mutual else {}))
        async with rpc.Channel(target, ssl_context=context, server_hostname="localhost") as ch:
            reply = await rpc.Stub(ch, SERVICE).Unary(pb.EchoRequest(payload=b"tls"), timeout=10)
            assert reply.payload == b"tls"

    with peer("grpcio", *pki.server_flags(mutual)) as (_, target):
        run(body(target))


@pytest.mark.parametrize("mutual", [False, True], ids=["tls", "mtls"])
def test_tls_grpcio_client_to_h2rpc_server(pki: Pki, mutual: bool):
    credentials = grpc.ssl_channel_credentials(
        root_certificates=pki.ca.read_bytes(),
        private_key=pki.client_key if mutual else None,
        certificate_chain=pki.client_cert if mutual else None,
    )
    options = [("grpc.ssl_target_name_override", "localhost")]
    with peer("h2rpc", *pki.server_flags(mutual)) as (_, target):
        with grpc.secure_channel(target, credentials, options) as channel:
            reply = pb_grpc.EchoTestStub(channel).Unary(pb.EchoRequest(payload=b"tls"), timeout=10)
            assert reply.payload == b"tls"


def test_mtls_h2rpc_server_refuses_a_grpcio_client_without_a_certificate(pki: Pki):
    credentials = grpc.ssl_channel_credentials(root_certificates=pki.ca.read_bytes())
    options = [("grpc.ssl_target_name_override", "localhost")]
    with peer("h2rpc", *pki.server_flags(True)) as (_, target):
        with grpc.secure_channel(target, credentials, options) as channel:
            with pytest.raises(grpc.RpcError) as info:
                pb_grpc.EchoTestStub(channel).Unary(pb.EchoRequest(), timeout=10)
            assert info.value.code() == grpc.StatusCode.UNAVAILABLE


# --- rich errors -------------------------------------------------------------------------

DETAILS = b"\x08\x05\x12\x09not found"  # a google.rpc.Status: code 5, message "not found"


def test_status_details_from_grpcio_reach_h2rpc(grpcio_server_target: str):
    async def body() -> None:
        async with rpc.Channel(grpcio_server_target) as channel:
            request = pb.EchoRequest(status_code=5, status_message="nope", status_details=DETAILS)
            with pytest.raises(rpc.RpcError) as info:
                await rpc.Stub(channel, SERVICE).Unary(request)
            assert info.value.code() == rpc.StatusCode.NOT_FOUND
            assert info.value.status_details() == DETAILS

    run(body())


def test_status_details_from_h2rpc_reach_grpcio(grpcio_stub: pb_grpc.EchoTestStub):
    request = pb.EchoRequest(status_code=5, status_message="nope", status_details=DETAILS)
    with pytest.raises(grpc.RpcError) as info:
        grpcio_stub.Unary(request)
    assert info.value.code() == grpc.StatusCode.NOT_FOUND
    assert dict(info.value.trailing_metadata())["grpc-status-details-bin"] == DETAILS


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-q"]))


def calls_begun(channel: rpc.sync.Channel) -> int:
    """Calls on the channel's connection whose response headers came: the server has begun them.

    (The echo servers send their headers before they sleep; a blocking unary call has no API to
    wait for its headers alone.)
    """
    conn = channel._conn
    if conn is None:
        return 0
    with conn.lock:
        return sum(s.response_headers is not None for s in conn.session.streams.values())


def test_graceful_stop_of_grpcio_finishes_blocking_h2rpc_calls_in_flight():
    with peer("grpcio") as (proc, target), rpc.sync.Channel(target) as channel:
        stub = rpc.Stub(channel, SERVICE)
        stub.Unary(pb.EchoRequest())
        with ThreadPoolExecutor(10) as pool:
            futures = [
                pool.submit(stub.Unary, pb.EchoRequest(payload=b"%d" % i, sleep_ms=400))
                for i in range(10)
            ]
            wait_until(lambda: calls_begun(channel) == 10)  # all ten are in the server's hands
            proc.send_signal(signal.SIGTERM)
            assert [f.result(10).payload for f in futures] == [b"%d" % i for i in range(10)]


def test_blocking_server_stop_with_calls_in_flight_seen_by_blocking_client():
    with peer("h2rpc_sync") as (proc, target), rpc.sync.Channel(target) as channel:
        stub = rpc.Stub(channel, SERVICE)
        stub.Unary(pb.EchoRequest())
        with ThreadPoolExecutor(10) as pool:
            futures = [
                pool.submit(stub.Unary, pb.EchoRequest(payload=b"%d" % i, sleep_ms=400))
                for i in range(10)
            ]
            wait_until(lambda: calls_begun(channel) == 10)  # all ten are in the server's hands
            proc.send_signal(signal.SIGTERM)
            assert [f.result(10).payload for f in futures] == [b"%d" % i for i in range(10)]
        assert proc.wait(10) == 0
