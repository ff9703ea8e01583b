"""rpc.interop's checks catch what they are meant to catch (in-process, no grpcio needed).

The matrix shows that correct peers pass; these tests show that the client's cases fail against
servers that break the descriptions (probes accepted, compression ignored or forced, metadata not
echoed, wrong sizes), that the server checks compression per message and observes its other
knobs, and that the command lines exit as documented.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Awaitable
from typing import Any, Callable, Optional

import pytest

import rpc
from rpc.interop import server as interop_server
from rpc.interop._cases import CASES, CaseFailed
from rpc.interop._common import TEST_SERVICE
from rpc.interop.proto import messages_pb2
from tests.interop.peers import REPO_ROOT, peer_environment


def run(body: Callable[[rpc.Channel], Awaitable[Any]], **server_options: Any) -> Any:
    """Run ``body(channel)`` against an in-process interop server."""

    async def main() -> Any:
        server = interop_server.build_server(**server_options)
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        try:
            async with rpc.Channel(f"127.0.0.1:{port}") as channel:
                return await asyncio.wait_for(body(channel), 20)
        finally:
            await server.stop(0)

    return asyncio.run(main())


def failure_of(case: str, **server_options: Any) -> Optional[str]:
    """The reason ``case`` fails against the in-process server, or None if it passes."""

    async def body(channel: rpc.Channel) -> Optional[str]:
        try:
            await CASES[case](channel)
        except CaseFailed as exc:
            return str(exc)
        return None

    result: Optional[str] = run(body, **server_options)
    return result


def test_every_case_passes_against_the_server_in_process() -> None:
    failures = {case: failure_of(case) for case in CASES}
    assert failures == dict.fromkeys(CASES)


@pytest.mark.parametrize("case", ["client_compressed_unary", "client_compressed_streaming"])
def test_a_server_that_ignores_expect_compressed_fails_the_probe(
    monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    monkeypatch.setattr(interop_server, "_check_expected_compression", lambda *args: None)
    reason = failure_of(case)
    assert reason is not None and "feature probe" in reason and "succeeded" in reason


@pytest.mark.parametrize("case", ["server_compressed_unary", "server_compressed_streaming"])
def test_a_server_that_never_compresses_fails(monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    monkeypatch.setattr(interop_server, "COMPRESSION", "identity")
    reason = failure_of(case)
    assert reason is not None and "compressed flag is clear" in reason


@pytest.mark.parametrize("case", ["server_compressed_unary", "server_compressed_streaming"])
def test_a_server_that_always_compresses_fails(monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    monkeypatch.setattr(rpc.ServicerContext, "disable_next_message_compression", lambda self: None)
    reason = failure_of(case, compression="gzip")
    assert reason is not None and "compressed flag is set" in reason


def test_a_server_that_does_not_echo_metadata_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    async def no_echo(context: Any) -> None:
        pass

    monkeypatch.setattr(interop_server, "_echo_metadata", no_echo)
    reason = failure_of("custom_metadata")
    assert reason is not None and "x-grpc-test-echo-initial" in reason


def test_wrong_payload_sizes_and_contents_fail(monkeypatch: pytest.MonkeyPatch) -> None:
    def one_more(size: int) -> Any:
        return messages_pb2.Payload(body=bytes(size + 1))

    monkeypatch.setattr(interop_server, "zeros_payload", one_more)
    for case in ("large_unary", "server_streaming", "ping_pong"):
        reason = failure_of(case)
        assert reason is not None and "bytes, expected" in reason, case

    def not_zeros(size: int) -> Any:
        return messages_pb2.Payload(body=b"x" * size)

    monkeypatch.setattr(interop_server, "zeros_payload", not_zeros)
    reason = failure_of("large_unary")
    assert reason is not None and "not all zeros" in reason


def _input(size: int, expect_compressed: bool) -> Any:
    return messages_pb2.StreamingInputCallRequest(
        payload=messages_pb2.Payload(body=bytes(size)),
        expect_compressed=messages_pb2.BoolValue(value=expect_compressed),
    )


def test_the_server_checks_each_message_not_the_call_encoding() -> None:
    async def body(channel: rpc.Channel) -> None:
        stub = rpc.Stub(channel, TEST_SERVICE)
        # An uncompressed message marked expect_compressed, in a gzip call: rejected.
        call = stub.StreamingInputCall(compression="gzip")
        await call.write(_input(10, True))
        await call.write(_input(10, True), compress=False)
        await call.done_writing()
        with pytest.raises(rpc.RpcError) as info:
            await call
        assert info.value.code() == rpc.StatusCode.INVALID_ARGUMENT
        # A compressed message marked false is accepted (the descriptions ask nothing of it).
        call = stub.StreamingInputCall(compression="gzip")
        await call.write(_input(10, False))
        await call.done_writing()
        assert (await call).aggregated_payload_size == 10

    run(body)


def test_the_server_observes_interval_us_and_half_duplex() -> None:
    def request(*sizes: int, interval_us: int = 0) -> Any:
        return messages_pb2.StreamingOutputCallRequest(
            response_parameters=[
                messages_pb2.ResponseParameters(size=n, interval_us=interval_us) for n in sizes
            ]
        )

    async def body(channel: rpc.Channel) -> None:
        stub = rpc.Stub(channel, TEST_SERVICE)
        started = time.monotonic()
        responses = [r async for r in stub.StreamingOutputCall(request(1, 2, interval_us=100_000))]
        assert [len(r.payload.body) for r in responses] == [1, 2]
        assert time.monotonic() - started >= 0.2
        call = stub.HalfDuplexCall()
        await call.write(request(3))
        await call.write(request(4, 5))
        read = asyncio.ensure_future(call.read())
        await asyncio.sleep(0.1)  # a time that must pass without a response...
        assert not read.done()  # ... as nothing comes before the half-close
        await call.done_writing()
        assert len((await read).payload.body) == 3
        assert [len(r.payload.body) async for r in call] == [4, 5]

    run(body)


def test_the_server_rejects_unknown_response_types() -> None:
    async def body(channel: rpc.Channel) -> None:
        stub = rpc.Stub(channel, TEST_SERVICE)
        with pytest.raises(rpc.RpcError) as info:
            await stub.UnaryCall(messages_pb2.SimpleRequest(response_type=1, response_size=1))
        assert info.value.code() == rpc.StatusCode.INVALID_ARGUMENT

    run(body)


def _client(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rpc.interop.client", *args],
        cwd=REPO_ROOT,
        env=peer_environment(),
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_the_client_exits_nonzero_with_the_reason_when_a_case_fails() -> None:
    import socket

    with socket.socket() as unused:  # a port nobody listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    done = _client("--server_host", "127.0.0.1", "--server_port", str(port))
    assert done.returncode == 1
    assert "FAIL large_unary: unexpected status UNAVAILABLE" in done.stderr


def test_the_client_rejects_unknown_cases_and_a_test_ca_without_a_file() -> None:
    done = _client("--server_port", "1", "--test_case", "no_such_case")
    assert done.returncode == 2 and "unknown --test_case" in done.stderr
    done = _client("--server_port", "1", "--use_tls", "--use_test_ca")
    assert done.returncode == 2 and "--use_test_ca needs --ca_file" in done.stderr
