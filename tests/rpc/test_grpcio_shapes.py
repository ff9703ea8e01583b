"""grpcio's shapes without grpcio: the objects grpcio-generated ``_pb2_grpc`` code hands to a
channel and a server, replicated by their attributes (rpc must accept them by duck typing), and
grpcio's rule for a handler that raises after ``set_code``. The same against real grpcio peers,
with the generated modules of two grpcio-tools versions: tests/interop/test_grpcio_gencode.py.
"""

from __future__ import annotations

import collections
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import rpc
from rpc._core.registry import CONVERTED_CACHE_SIZE, Registry
from rpc._handlers import as_method_handler
from tests.rpc.helpers import run, serving

#: The fields of grpcio's ``grpc._utilities.RpcMethodHandler`` (a namedtuple), in its order.
GrpcioHandler = collections.namedtuple(
    "GrpcioHandler",
    (
        "request_streaming",
        "response_streaming",
        "request_deserializer",
        "response_serializer",
        "unary_unary",
        "unary_stream",
        "stream_unary",
        "stream_stream",
    ),
)


def grpcio_handler(kind: rpc.Cardinality, behavior: Any, **serializers: Any) -> GrpcioHandler:
    """What ``grpc.<kind>_rpc_method_handler(behavior, ...)`` returns."""
    behaviors = dict.fromkeys(("unary_unary", "unary_stream", "stream_unary", "stream_stream"))
    behaviors[kind.name.lower()] = behavior
    return GrpcioHandler(
        kind.request_streaming,
        kind.response_streaming,
        serializers.get("request_deserializer"),
        serializers.get("response_serializer"),
        **behaviors,
    )


class GrpcioDictionaryHandler:
    """What ``grpc.method_handlers_generic_handler(service, handlers)`` returns."""

    def __init__(self, service: str, handlers: dict[str, Any]) -> None:
        self._name = service
        self._handlers = {f"/{service}/{name}": h for name, h in handlers.items()}
        self.lookups = 0

    def service_name(self) -> str:
        return self._name

    def service(self, handler_call_details: Any) -> Any:
        self.lookups += 1
        return self._handlers.get(handler_call_details.method)


def upper(request: bytes, context: Any) -> bytes:
    return request.upper()


async def repeat(request: bytes, context: Any) -> AsyncIterator[bytes]:
    for i in range(3):
        yield request + str(i).encode()


def join(requests: Iterator[bytes], context: Any) -> bytes:
    return b"+".join(requests)


async def reverse_each(requests: AsyncIterator[bytes], context: Any) -> AsyncIterator[bytes]:
    async for r in requests:
        yield r[::-1]


def grpcio_handlers() -> dict[str, GrpcioHandler]:
    """The handlers a generated ``add_XServicer_to_server`` builds: plain ``def`` and ``async``."""
    return {
        "Upper": grpcio_handler(rpc.Cardinality.UNARY_UNARY, upper),
        "Repeat": grpcio_handler(rpc.Cardinality.UNARY_STREAM, repeat),
        "Join": grpcio_handler(rpc.Cardinality.STREAM_UNARY, join),
        "Reverse": grpcio_handler(rpc.Cardinality.STREAM_STREAM, reverse_each),
    }


# --- conversion -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", list(rpc.Cardinality), ids=lambda k: k.name)
def test_grpcio_method_handler_converts_by_its_attributes(kind: rpc.Cardinality) -> None:
    def serialize(m: Any) -> bytes:
        return b""

    def deserialize(b: bytes) -> Any:
        return None

    handler = as_method_handler(
        grpcio_handler(kind, upper, request_deserializer=deserialize, response_serializer=serialize)
    )
    assert handler == rpc.MethodHandler(kind, upper, deserialize, serialize)


def test_grpcio_method_handler_without_serializers_passes_bytes_through() -> None:
    handler = as_method_handler(grpcio_handler(rpc.Cardinality.UNARY_UNARY, upper))
    assert handler.request_deserializer(b"x") == b"x"
    assert handler.response_serializer(b"y") == b"y"


def test_rpc_method_handler_is_kept_as_it_is() -> None:
    handler = rpc.unary_unary_rpc_method_handler(upper)
    assert as_method_handler(handler) is handler


def test_objects_that_are_not_method_handlers_are_refused() -> None:
    with pytest.raises(TypeError, match="not a method handler"):
        as_method_handler(upper)
    no_behavior = grpcio_handler(rpc.Cardinality.UNARY_STREAM, None)
    with pytest.raises(TypeError, match="unary_stream"):
        as_method_handler(no_behavior)


# --- registration -----------------------------------------------------------------------


def test_registered_grpcio_handlers_are_converted_once_into_exact_paths() -> None:
    registry = Registry()
    registry.add_registered("raw.Bytes", grpcio_handlers())
    handler = registry._methods["/raw.Bytes/Upper"]
    assert isinstance(handler, rpc.MethodHandler)
    assert registry.lookup("/raw.Bytes/Upper") is handler
    assert registry.service_names == ["raw.Bytes"]


def test_registered_handlers_take_precedence_over_generic_ones_as_in_grpcio() -> None:
    """Generated code adds the same handlers both ways: the registered ones answer, by one dict
    lookup, and the generic handler is not asked."""
    registry = Registry()
    generic = GrpcioDictionaryHandler("raw.Bytes", grpcio_handlers())
    registry.add(generic)
    registry.add_registered("raw.Bytes", grpcio_handlers())
    assert registry.lookup("/raw.Bytes/Join") is registry._methods["/raw.Bytes/Join"]
    assert generic.lookups == 0
    assert registry.service_names == ["raw.Bytes"]


def test_registered_handlers_also_win_over_h2rpc_generic_handlers_of_the_same_paths() -> None:
    registry = Registry()
    registry.add(rpc.method_handlers_generic_handler("raw.Bytes", grpcio_handlers()))
    registered = grpcio_handlers()
    registry.add_registered("raw.Bytes", registered)
    handler = registry.lookup("/raw.Bytes/Upper")
    assert handler is not None and handler == as_method_handler(registered["Upper"])
    registry.add(rpc.method_handlers_generic_handler("raw.Bytes", grpcio_handlers()))
    assert registry.lookup("/raw.Bytes/Upper") is handler  # still the registered one


def test_registering_the_same_method_twice_is_an_error() -> None:
    registry = Registry()
    registry.add_registered("raw.Bytes", grpcio_handlers())
    with pytest.raises(ValueError, match="already registered"):
        registry.add_registered("raw.Bytes", grpcio_handlers())


def test_grpcio_generic_handler_result_is_converted_once_per_path() -> None:
    registry = Registry()
    generic = GrpcioDictionaryHandler("raw.Bytes", grpcio_handlers())
    registry.add(generic)
    first = registry.lookup("/raw.Bytes/Repeat")
    assert isinstance(first, rpc.MethodHandler)
    assert first.cardinality is rpc.Cardinality.UNARY_STREAM
    assert registry.lookup("/raw.Bytes/Repeat") is first
    assert generic.lookups == 2  # asked per call (it may choose per call); converted once
    assert registry.lookup("/raw.Bytes/Missing") is None
    assert registry.service_names == ["raw.Bytes"]


def test_generic_handler_choosing_a_new_handler_per_call_is_never_served_a_stale_one() -> None:
    class PerCall:
        def __init__(self) -> None:
            self.behaviors: list[Any] = []

        def service(self, handler_call_details: Any) -> Any:
            def behavior(request: bytes, context: Any) -> bytes:
                return request

            self.behaviors.append(behavior)
            return grpcio_handler(rpc.Cardinality.UNARY_UNARY, behavior)

    registry = Registry()
    per_call = PerCall()
    registry.add(per_call)
    for i in range(3):
        handler = registry.lookup("/any/Path")
        assert handler is not None and handler.behavior is per_call.behaviors[i]
    for i in range(CONVERTED_CACHE_SIZE + 10):  # any path at all: the cache stays bounded
        registry.lookup(f"/any/Path{i}")
    assert len(registry._converted_cache) <= CONVERTED_CACHE_SIZE


def _check_all_four_kinds(target: str) -> Any:
    async def calls() -> None:
        async with rpc.Channel(target) as ch:
            assert await ch.unary_unary("/raw.Bytes/Upper")(b"abc") == b"ABC"
            got = [m async for m in ch.unary_stream("/raw.Bytes/Repeat")(b"x")]
            assert got == [b"x0", b"x1", b"x2"]
            assert await ch.stream_unary("/raw.Bytes/Join")(iter([b"a", b"b"])) == b"a+b"
            got = [m async for m in ch.stream_stream("/raw.Bytes/Reverse")(iter([b"ab", b"cd"]))]
            assert got == [b"ba", b"dc"]

    return calls()


@pytest.mark.parametrize("route", ["generic", "registered", "both"])
def test_async_server_serves_grpcio_handlers_of_all_four_kinds(route: str) -> None:
    async def main() -> None:
        server = rpc.Server()
        if route in ("generic", "both"):
            server.add_generic_rpc_handlers(
                (GrpcioDictionaryHandler("raw.Bytes", grpcio_handlers()),)
            )
        if route in ("registered", "both"):
            server.add_registered_method_handlers("raw.Bytes", grpcio_handlers())
        async with serving(server) as target:
            await _check_all_four_kinds(target)

    run(main())


def test_blocking_server_serves_grpcio_handlers_both_ways_added() -> None:
    def plain(kind: rpc.Cardinality, behavior: Any) -> GrpcioHandler:
        return grpcio_handler(kind, behavior)

    def repeat_sync(request: bytes, context: Any) -> Iterator[bytes]:
        for i in range(3):
            yield request + str(i).encode()

    def reverse_sync(requests: Iterator[bytes], context: Any) -> Iterator[bytes]:
        for r in requests:
            yield r[::-1]

    handlers = {
        "Upper": plain(rpc.Cardinality.UNARY_UNARY, upper),
        "Repeat": plain(rpc.Cardinality.UNARY_STREAM, repeat_sync),
        "Join": plain(rpc.Cardinality.STREAM_UNARY, join),
        "Reverse": plain(rpc.Cardinality.STREAM_STREAM, reverse_sync),
    }
    server = rpc.sync.Server()
    server.add_generic_rpc_handlers((GrpcioDictionaryHandler("raw.Bytes", handlers),))
    server.add_registered_method_handlers("raw.Bytes", handlers)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        run(_check_all_four_kinds(f"127.0.0.1:{port}"))
    finally:
        server.stop(0.5)


# --- the channel side -------------------------------------------------------------------


@pytest.mark.parametrize("blocking", [False, True], ids=["async", "blocking"])
def test_channels_accept_the_registered_method_flag_of_generated_stubs(blocking: bool) -> None:
    """grpcio-generated stubs pass ``_registered_method=True`` (keyword) to every kind."""
    channel: Any = rpc.sync.Channel("127.0.0.1:1") if blocking else rpc.Channel("127.0.0.1:1")
    for name in ("unary_unary", "unary_stream", "stream_unary", "stream_stream"):
        factory = getattr(channel, name)
        callable_ = factory(
            "/raw.Bytes/M",
            request_serializer=bytes,
            response_deserializer=bytes,
            _registered_method=True,
        )
        assert repr(callable_).endswith("/raw.Bytes/M>")
        factory("/raw.Bytes/M", None, None, False)  # grpcio's positional order
    if blocking:
        channel.close()


# --- set_code, then raise: grpcio's rule ------------------------------------------------


def _failing(mode: str) -> Any:
    def behavior(request: bytes, context: Any) -> bytes:
        if mode in ("code+details", "code"):
            context.set_code(rpc.StatusCode.FAILED_PRECONDITION)
        if mode == "code+details":
            context.set_details("not now")
        if mode == "ok":
            context.set_code(rpc.StatusCode.OK)
        raise NotImplementedError("secret internal detail")

    return behavior


def _async_failing(mode: str) -> Any:
    sync_behavior = _failing(mode)

    async def behavior(request: bytes, context: Any) -> bytes:
        return sync_behavior(request, context)

    return behavior


SET_CODE_CASES = [
    ("code+details", rpc.StatusCode.FAILED_PRECONDITION, "not now"),
    ("code", rpc.StatusCode.FAILED_PRECONDITION, "Unexpected NotImplementedError in handler"),
    ("ok", rpc.StatusCode.UNKNOWN, "Unexpected NotImplementedError in handler"),
    ("none", rpc.StatusCode.UNKNOWN, "Unexpected NotImplementedError in handler"),
]


@pytest.mark.parametrize("server_kind", ["async-def", "async-coroutine", "blocking"])
@pytest.mark.parametrize(
    ("mode", "code", "details"), SET_CODE_CASES, ids=[c[0] for c in SET_CODE_CASES]
)
def test_exception_after_set_code_sends_that_code_and_details(
    server_kind: str, mode: str, code: rpc.StatusCode, details: str
) -> None:
    behavior = _async_failing(mode) if server_kind == "async-coroutine" else _failing(mode)
    handlers = rpc.method_handlers_generic_handler(
        "raw.Fail", {"M": rpc.unary_unary_rpc_method_handler(behavior)}
    )

    async def call(target: str) -> rpc.RpcError:
        async with rpc.Channel(target) as ch:
            with pytest.raises(rpc.RpcError) as info:
                await ch.unary_unary("/raw.Fail/M")(b"x")
            return info.value

    async def main() -> rpc.RpcError:
        async with serving(rpc.Server([handlers])) as target:
            return await call(target)

    if server_kind == "blocking":
        server = rpc.sync.Server([handlers])
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        try:
            error = run(call(f"127.0.0.1:{port}"))
        finally:
            server.stop(0.5)
    else:
        error = run(main())
    assert error.code() == code
    assert error.details() == details
    assert "secret" not in error.details()
