"""The arguments of a call, as grpcio users pass them: grpcio's parameter order, ``credentials=``,
and a clear TypeError for the usual mistakes (a dict as metadata, a string as timeout), in the
asyncio and the blocking API, against real servers on loopback."""

from __future__ import annotations

import contextlib
from typing import Any

import h2rpc_test_pb2 as pb
import pytest

import rpc
from tests.interop.echo_servicer import SERVICE, make_server
from tests.interop.echo_servicer_sync import make_sync_server
from tests.rpc.helpers import run, serving, serving_blocking

REQUEST = pb.EchoRequest(payload=b"hi")


def sync_serving() -> contextlib.AbstractContextManager[str]:
    return serving_blocking(make_sync_server(max_workers=8))


# Each mistake: the call arguments, the exception type and the words of its message.
MISTAKES = [
    pytest.param(
        {"metadata": {"x-echo-a": "1"}},
        TypeError,
        "metadata must be a sequence of (key, value) pairs, not a dict",
        id="metadata-dict",
    ),
    pytest.param(
        {"metadata": "x-echo-a"},
        TypeError,
        "metadata must be a sequence of (key, value) pairs",
        id="metadata-str",
    ),
    pytest.param(
        {"timeout": "5"}, TypeError, "timeout must be a number of seconds, not str", id="timeout"
    ),
    pytest.param(
        {"credentials": object()},
        rpc.UsageError,
        "h2rpc has no call credentials",
        id="credentials",
    ),
]


@pytest.mark.parametrize(("kwargs", "error", "words"), MISTAKES)
def test_mistakes_raise_before_sending_and_the_channel_goes_on_async(
    kwargs: dict[str, Any], error: type[Exception], words: str
) -> None:
    async def main() -> None:
        async with serving(make_server()) as target, rpc.Channel(target) as channel:
            stub = rpc.Stub(channel, SERVICE)
            with pytest.raises(error) as info:
                stub.Unary(REQUEST, **kwargs)  # raised at the call, not when awaited
            assert words in str(info.value)
            with pytest.raises(error):
                stub.ClientStream(iter([REQUEST]), **kwargs)
            assert (await stub.Unary(REQUEST)).payload == b"hi"

    run(main())


@pytest.mark.parametrize(("kwargs", "error", "words"), MISTAKES)
def test_mistakes_raise_before_sending_and_the_channel_goes_on_blocking(
    kwargs: dict[str, Any], error: type[Exception], words: str
) -> None:
    with sync_serving() as target, rpc.sync.Channel(target) as channel:
        stub = rpc.Stub(channel, SERVICE)
        for attempt in (
            lambda: stub.Unary(REQUEST, **kwargs),
            lambda: stub.Unary.with_call(REQUEST, **kwargs),
            lambda: stub.Unary.future(REQUEST, **kwargs),
            lambda: stub.ServerStream(REQUEST, **kwargs),
            lambda: stub.ClientStream(iter([REQUEST]), **kwargs),
        ):
            with pytest.raises(error) as info:
                attempt()
            assert words in str(info.value)
        assert stub.Unary(REQUEST, timeout=5).payload == b"hi"


def test_grpcio_positional_order_and_credentials_none_blocking() -> None:
    # grpcio: (request, timeout, metadata, credentials, wait_for_ready, compression)
    metadata = [("x-echo-k", "v")]
    with sync_serving() as target, rpc.sync.Channel(target) as channel:
        stub = rpc.Stub(channel, SERVICE)
        assert stub.Unary(REQUEST, 5.0, metadata, None, True, "gzip").payload == b"hi"
        response, call = stub.Unary.with_call(REQUEST, 5.0, metadata, None)
        assert response.payload == b"hi" and call.trailing_metadata()["x-echo-k"] == "v"
        assert stub.Unary.future(REQUEST, 5.0, metadata).result(timeout=5).payload == b"hi"
        stream = stub.ServerStream(pb.EchoRequest(response_count=2), 5.0, metadata, None)
        assert [r.index for r in stream] == [0, 1]
        summary = stub.ClientStream(iter([REQUEST] * 3), 5.0, None, None, False, "identity")
        assert summary.received_count == 3
        summary, call = stub.ClientStream.with_call(iter([REQUEST] * 2), 5.0, metadata)
        assert summary.received_count == 2 and call.initial_metadata()["x-echo-k"] == "v"


def test_grpcio_positional_order_and_credentials_none_async() -> None:
    async def main() -> None:
        async with serving(make_server()) as target, rpc.Channel(target) as channel:
            stub = rpc.Stub(channel, SERVICE)
            call = stub.Unary(REQUEST, 5.0, [("x-echo-k", "v")], None, True, "gzip")
            assert (await call).payload == b"hi"
            assert (await call.trailing_metadata())["x-echo-k"] == "v"
            # grpc.aio's stream-request calls take the same order positionally
            summary = await stub.ClientStream(iter([REQUEST] * 2), 5.0, None, None)
            assert summary.received_count == 2
            assert (await stub.Unary(REQUEST, credentials=None)).payload == b"hi"

    run(main())


def test_timeout_type_error_also_in_a_deadline_scope() -> None:
    with pytest.raises(TypeError, match="timeout must be a number of seconds, not str '1'"):
        with rpc.deadline_scope("1"):  # type: ignore[arg-type]
            pass


def test_iterating_a_finished_response_stream_again_gives_its_end_again() -> None:
    with sync_serving() as target, rpc.sync.Channel(target) as channel:
        stub = rpc.Stub(channel, SERVICE)
        call = stub.ServerStream(pb.EchoRequest(response_count=3), timeout=5)
        assert [r.index for r in call] == [0, 1, 2]
        assert list(call) == [] and call.read() is rpc.EOF  # the end, again
        failing = stub.ServerStream(
            pb.EchoRequest(response_count=1, status_code=rpc.StatusCode.NOT_FOUND.value),
            timeout=5,
        )
        assert next(failing).index == 0
        for _ in range(2):  # the failure, again
            with pytest.raises(rpc.RpcError) as info:
                next(failing)
            assert info.value.code() == rpc.StatusCode.NOT_FOUND
