"""Interceptors: client and server side, all four call kinds, asyncio and blocking APIs.

Client: grpcio's shapes (``intercept_unary_unary`` and friends; ``async def`` on ``rpc.Channel``).
Server: grpcio's ``intercept_service`` (``def``, and ``async def`` on ``rpc.Server``) and
``rpc.Interceptor`` (one generator method for every kind). Chaining order, metadata and deadline
changes, short-circuits, status observed and replaced, timing, messages wrapped one by one.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

import rpc
from rpc import Cardinality, Status, StatusCode

from .helpers import run, serving

SERVICE = "t.T"
KINDS = ["UU", "US", "SU", "SS"]
KIND_OF = {
    "UU": Cardinality.UNARY_UNARY,
    "US": Cardinality.UNARY_STREAM,
    "SU": Cardinality.STREAM_UNARY,
    "SS": Cardinality.STREAM_STREAM,
}
PATH = {kind: f"/{SERVICE}/{kind}" for kind in KINDS}


# ---------------------------------------------------------------------- handlers


def _stamp(context: Any) -> bytes:
    """What the server saw: the x-tag metadata values, and whether there was a deadline."""
    tags = ",".join(str(v) for k, v in context.invocation_metadata() if k == "x-tag")
    deadline = context.time_remaining()
    return f"[{tags}|{'none' if deadline is None else f'dl<{int(deadline) + 1}'}]".encode()


async def _uu(request: bytes, context: Any) -> bytes:
    return request + _stamp(context)


async def _us(request: bytes, context: Any) -> Any:
    yield request
    yield _stamp(context)


async def _su(requests: Any, context: Any) -> bytes:
    return b"+".join([r async for r in requests]) + _stamp(context)


async def _ss(requests: Any, context: Any) -> Any:
    async for request in requests:
        yield request
    yield _stamp(context)


def _uu_def(request: bytes, context: Any) -> bytes:
    return request + _stamp(context)


def _us_def(request: bytes, context: Any) -> Any:
    yield request
    yield _stamp(context)


def _su_def(requests: Any, context: Any) -> bytes:
    return b"+".join(requests) + _stamp(context)


def _ss_def(requests: Any, context: Any) -> Any:
    yield from requests
    yield _stamp(context)


ASYNC_HANDLERS = {
    "UU": rpc.unary_unary_rpc_method_handler(_uu),
    "US": rpc.unary_stream_rpc_method_handler(_us),
    "SU": rpc.stream_unary_rpc_method_handler(_su),
    "SS": rpc.stream_stream_rpc_method_handler(_ss),
}
DEF_HANDLERS = {
    "UU": rpc.unary_unary_rpc_method_handler(_uu_def),
    "US": rpc.unary_stream_rpc_method_handler(_us_def),
    "SU": rpc.stream_unary_rpc_method_handler(_su_def),
    "SS": rpc.stream_stream_rpc_method_handler(_ss_def),
}


def _expected(kind: str, stamp: bytes, requests: tuple[bytes, ...] = (b"a", b"b")) -> list[bytes]:
    if kind == "UU":
        return [requests[0] + stamp]
    if kind == "US":
        return [requests[0], stamp]
    if kind == "SU":
        return [b"+".join(requests) + stamp]
    return [*requests, stamp]


# ---------------------------------------------------------------------- calling


async def call_async(channel: rpc.Channel, kind: str, **kwargs: Any) -> tuple[list[bytes], Any]:
    """One call of ``kind``: its responses and the call object."""
    method = getattr(channel, KIND_OF[kind].name.lower())(PATH[kind])
    if kind == "UU":
        call = method(b"a", **kwargs)
        return [await call], call
    if kind == "US":
        call = method(b"a", **kwargs)
        return [m async for m in call], call
    if kind == "SU":
        call = method(iter([b"a", b"b"]), **kwargs)
        return [await call], call
    call = method(iter([b"a", b"b"]), **kwargs)
    return [m async for m in call], call


def call_sync(channel: rpc.sync.Channel, kind: str, **kwargs: Any) -> tuple[list[bytes], Any]:
    method = getattr(channel, KIND_OF[kind].name.lower())(PATH[kind])
    if kind == "UU":
        response, call = method.with_call(b"a", **kwargs)
        return [response], call
    if kind == "US":
        call = method(b"a", **kwargs)
        return list(call), call
    if kind == "SU":
        response, call = method.with_call(iter([b"a", b"b"]), **kwargs)
        return [response], call
    call = method(iter([b"a", b"b"]), **kwargs)
    return list(call), call


def run_async_case(
    kind: str,
    client_interceptors: Any = (),
    server_interceptors: Any = (),
    handlers: Any = None,
    **kwargs: Any,
) -> tuple[list[bytes], Any]:
    async def main() -> tuple[list[bytes], Any]:
        server = rpc.Server(
            [rpc.method_handlers_generic_handler(SERVICE, handlers or ASYNC_HANDLERS)],
            interceptors=server_interceptors,
        )
        async with serving(server) as target:
            async with rpc.Channel(target, interceptors=client_interceptors) as channel:
                return await call_async(channel, kind, **kwargs)

    return run(main())  # type: ignore[no-any-return]


def run_sync_case(
    kind: str,
    client_interceptors: Any = (),
    server_interceptors: Any = (),
    handlers: Any = None,
    **kwargs: Any,
) -> tuple[list[bytes], Any]:
    server = rpc.sync.Server(
        [rpc.method_handlers_generic_handler(SERVICE, handlers or DEF_HANDLERS)],
        interceptors=server_interceptors,
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with rpc.sync.Channel(f"127.0.0.1:{port}", interceptors=client_interceptors) as channel:
            return call_sync(channel, kind, **kwargs)
    finally:
        server.stop(0.5)


def run_case(api: str, kind: str, **kwargs: Any) -> tuple[list[bytes], Any]:
    return (run_async_case if api == "async" else run_sync_case)(kind, **kwargs)


async def code_of(call: Any) -> StatusCode:
    return await call.code()  # type: ignore[no-any-return]


def final_code(api: str, call: Any) -> StatusCode:
    if api == "async":
        return run(code_of(call))  # type: ignore[no-any-return]
    return call.code()  # type: ignore[no-any-return]


def expect_error(api: str, kind: str, code: StatusCode, **kwargs: Any) -> rpc.RpcError:
    with pytest.raises(rpc.RpcError) as caught:
        run_case(api, kind, **kwargs)
    assert caught.value.code() == code, caught.value
    return caught.value


# ---------------------------------------------------------------------- client interceptors


class SyncTagger(
    rpc.sync.UnaryUnaryClientInterceptor,
    rpc.sync.UnaryStreamClientInterceptor,
    rpc.sync.StreamUnaryClientInterceptor,
    rpc.sync.StreamStreamClientInterceptor,
):
    """Blocking client interceptor for every kind: logs, adds an x-tag, may set a timeout."""

    def __init__(self, name: str, log: list[str], timeout: Any = None) -> None:
        self.name = name
        self.log = log
        self.timeout = timeout

    def _intercept(self, continuation: Any, details: Any, request: Any) -> Any:
        self.log.append(f"{self.name}>")
        metadata = [*(details.metadata or ()), ("x-tag", self.name)]
        details = details._replace(metadata=metadata)
        if self.timeout is not None:
            details = details._replace(timeout=self.timeout)
        call = continuation(details, request)
        self.log.append(f"<{self.name}")
        return call

    intercept_unary_unary = _intercept
    intercept_unary_stream = _intercept
    intercept_stream_unary = _intercept
    intercept_stream_stream = _intercept


class AsyncTagger(
    rpc.UnaryUnaryClientInterceptor,
    rpc.UnaryStreamClientInterceptor,
    rpc.StreamUnaryClientInterceptor,
    rpc.StreamStreamClientInterceptor,
):
    """grpc.aio's form of ``SyncTagger``."""

    def __init__(self, name: str, log: list[str], timeout: Any = None) -> None:
        self.name = name
        self.log = log
        self.timeout = timeout

    async def _intercept(self, continuation: Any, details: Any, request: Any) -> Any:
        self.log.append(f"{self.name}>")
        details.metadata.add("x-tag", self.name)  # grpc.aio: a Metadata to change in place
        if self.timeout is not None:
            details = details._replace(timeout=self.timeout)
        call = await continuation(details, request)
        self.log.append(f"<{self.name}")
        return call

    intercept_unary_unary = _intercept
    intercept_unary_stream = _intercept
    intercept_stream_unary = _intercept
    intercept_stream_stream = _intercept


def tagger(api: str, name: str, log: list[str], timeout: Any = None) -> Any:
    return (AsyncTagger if api == "async" else SyncTagger)(name, log, timeout)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("api", ["async", "sync"])
def test_client_interceptors_chain_in_order_and_change_metadata(api: str, kind: str) -> None:
    log: list[str] = []
    responses, call = run_case(
        api, kind, client_interceptors=[tagger(api, "A", log), tagger(api, "B", log)]
    )
    assert log == ["A>", "B>", "<B", "<A"]
    assert responses == _expected(kind, b"[A,B|none]")
    assert final_code(api, call) == StatusCode.OK


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("api", ["async", "sync"])
def test_client_interceptor_sets_the_deadline(api: str, kind: str) -> None:
    responses, _ = run_case(api, kind, client_interceptors=[tagger(api, "A", [], timeout=5.0)])
    assert responses == _expected(kind, b"[A|dl<5]")


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("api", ["async", "sync"])
def test_client_interceptor_short_circuits_with_an_error(api: str, kind: str) -> None:
    reached: list[str] = []

    def refuse(continuation: Any, details: Any, request: Any) -> Any:
        raise rpc.RpcError(StatusCode.UNAUTHENTICATED, "no token")

    async def refuse_async(continuation: Any, details: Any, request: Any) -> Any:
        raise rpc.RpcError(StatusCode.UNAUTHENTICATED, "no token")

    class Refuse:
        pass

    refuser = Refuse()
    name = rpc.interceptors.CLIENT_METHODS[KIND_OF[kind]]
    setattr(refuser, name, refuse_async if api == "async" else refuse)
    error = expect_error(
        api,
        kind,
        StatusCode.UNAUTHENTICATED,
        client_interceptors=[refuser, tagger(api, "inner", reached)],
    )
    assert error.details() == "no token"
    assert reached == []  # the inner interceptor, and the server, never saw the call


class SyncStatusWatcher(
    rpc.sync.UnaryUnaryClientInterceptor,
    rpc.sync.UnaryStreamClientInterceptor,
    rpc.sync.StreamUnaryClientInterceptor,
    rpc.sync.StreamStreamClientInterceptor,
):
    """Times unary-response calls and records their status (response streams: the call)."""

    def __init__(self) -> None:
        self.seen: list[Any] = []

    def _intercept(self, continuation: Any, details: Any, request: Any) -> Any:
        start = time.perf_counter()
        call = continuation(details, request)
        if hasattr(call, "exception"):  # a unary response: the call has ended
            self.seen.append((details.method, call.code(), time.perf_counter() - start))
        return call

    intercept_unary_unary = _intercept
    intercept_unary_stream = _intercept
    intercept_stream_unary = _intercept
    intercept_stream_stream = _intercept


class AsyncStatusWatcher(
    rpc.UnaryUnaryClientInterceptor,
    rpc.UnaryStreamClientInterceptor,
    rpc.StreamUnaryClientInterceptor,
    rpc.StreamStreamClientInterceptor,
):
    def __init__(self) -> None:
        self.seen: list[Any] = []

    async def _intercept(self, continuation: Any, details: Any, request: Any) -> Any:
        start = time.perf_counter()
        call = await continuation(details, request)
        code = await call.code()  # waits for the end (a stream's responses are dropped)
        self.seen.append((details.method, code, time.perf_counter() - start))
        return call

    intercept_unary_unary = _intercept
    intercept_unary_stream = _intercept
    intercept_stream_unary = _intercept
    intercept_stream_stream = _intercept


@pytest.mark.parametrize("kind", ["UU", "SU"])
@pytest.mark.parametrize("api", ["async", "sync"])
def test_client_interceptor_observes_status_and_times_the_call(api: str, kind: str) -> None:
    async def fail(request: Any, context: Any) -> Any:
        raise rpc.RpcError(StatusCode.NOT_FOUND, "nope")

    def fail_def(request: Any, context: Any) -> Any:
        raise rpc.RpcError(StatusCode.NOT_FOUND, "nope")

    behavior = fail if api == "async" else fail_def
    factory = (
        rpc.unary_unary_rpc_method_handler if kind == "UU" else rpc.stream_unary_rpc_method_handler
    )
    watcher = AsyncStatusWatcher() if api == "async" else SyncStatusWatcher()
    expect_error(
        api,
        kind,
        StatusCode.NOT_FOUND,
        client_interceptors=[watcher],
        handlers={kind: factory(behavior)},
    )
    ((method, code, elapsed),) = watcher.seen
    assert (method, code) == (PATH[kind], StatusCode.NOT_FOUND)
    assert 0 < elapsed < 10


def test_async_client_interceptor_may_return_a_response_instead_of_the_call() -> None:
    class Cache(rpc.UnaryUnaryClientInterceptor):
        async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
            if request == b"cached":
                return b"from cache"
            return await continuation(details, request)

    async def main() -> Any:
        server = rpc.Server([rpc.method_handlers_generic_handler(SERVICE, ASYNC_HANDLERS)])
        async with serving(server) as target:
            async with rpc.Channel(target, interceptors=[Cache()]) as channel:
                call = channel.unary_unary(PATH["UU"])(b"cached")
                cached = await call
                live = await channel.unary_unary(PATH["UU"])(b"x")
                return cached, await call.code(), live

    assert run(main()) == (b"from cache", StatusCode.OK, b"x[|none]")


def test_async_client_interceptor_with_write_calls() -> None:
    log: list[str] = []

    async def main() -> list[bytes]:
        server = rpc.Server([rpc.method_handlers_generic_handler(SERVICE, ASYNC_HANDLERS)])
        async with serving(server) as target:
            async with rpc.Channel(target, interceptors=[AsyncTagger("W", log)]) as channel:
                call = channel.stream_stream(PATH["SS"])()
                await call.write(b"a")
                await call.done_writing()
                return [m async for m in call]

    assert run(main()) == [b"a", b"[W|none]"]


def test_sync_future_goes_through_the_interceptors() -> None:
    log: list[str] = []
    server = rpc.sync.Server([rpc.method_handlers_generic_handler(SERVICE, DEF_HANDLERS)])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        with rpc.sync.Channel(f"127.0.0.1:{port}", interceptors=[SyncTagger("F", log)]) as channel:
            future = channel.unary_unary(PATH["UU"]).future(b"a")
            assert future.result(timeout=10) == b"a[F|none]"
            assert log == ["F>", "<F"]
            assert channel.unary_unary(PATH["UU"])(b"b") == b"b[F|none]"
    finally:
        server.stop(0.5)
    assert log == ["F>", "<F", "F>", "<F"]


def test_a_future_refused_by_an_interceptor_is_a_failed_future_as_in_grpcio() -> None:
    class Refuse(rpc.UnaryUnaryClientInterceptor):
        def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
            raise rpc.RpcError(StatusCode.UNAUTHENTICATED, "no token")

    with rpc.sync.Channel("127.0.0.1:1", interceptors=[Refuse()]) as channel:
        future = channel.unary_unary(PATH["UU"]).future(b"a")
        assert future.done() and not future.cancel()
        error = future.exception(timeout=1)
        assert isinstance(error, rpc.RpcError) and error.code() == StatusCode.UNAUTHENTICATED
        assert future.code() == StatusCode.UNAUTHENTICATED and future.details() == "no token"
        with pytest.raises(rpc.RpcError):
            future.result(timeout=1)
        called: list[Any] = []
        future.add_done_callback(called.append)
        assert called == [future]


def test_channel_without_interceptors_hands_out_the_plain_multi_callables() -> None:
    channel = rpc.sync.Channel("127.0.0.1:1")
    try:
        assert type(channel.unary_unary("/a/b")) is rpc.sync.UnaryUnaryMultiCallable
    finally:
        channel.close()
    with pytest.raises(TypeError, match="not a client interceptor"):
        rpc.sync.Channel("127.0.0.1:1", interceptors=[object()])


# ---------------------------------------------------------------------- server: intercept_service


class SyncServiceTagger(rpc.ServerInterceptor):
    """grpcio's shape: logs the lookup order, wraps the behavior to add trailing metadata."""

    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        self.log.append(f"{self.name}:{handler_call_details.method}")
        return continuation(handler_call_details)


class AsyncServiceTagger(rpc.ServerInterceptor):
    def __init__(self, name: str, log: list[str]) -> None:
        self.name = name
        self.log = log

    async def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        self.log.append(f"{self.name}:{handler_call_details.method}")
        return await continuation(handler_call_details)


class RequireToken(rpc.ServerInterceptor):
    """Short-circuit: no token, no handler (an RpcError from intercept_service)."""

    def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        metadata = dict(handler_call_details.invocation_metadata)
        if metadata.get("authorization") != "Bearer good":
            raise rpc.RpcError(StatusCode.UNAUTHENTICATED, "missing or bad token")
        return continuation(handler_call_details)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("api", ["async", "sync"])
def test_server_intercept_service_chains_in_order(api: str, kind: str) -> None:
    log: list[str] = []
    interceptors = [SyncServiceTagger("A", log), SyncServiceTagger("B", log)]
    responses, _ = run_case(api, kind, server_interceptors=interceptors)
    assert log == [f"A:{PATH[kind]}", f"B:{PATH[kind]}"]
    assert responses == _expected(kind, b"[|none]")


@pytest.mark.parametrize("kind", KINDS)
def test_async_server_awaits_async_intercept_service(kind: str) -> None:
    log: list[str] = []
    interceptors = [AsyncServiceTagger("A", log), SyncServiceTagger("B", log)]
    responses, _ = run_async_case(kind, server_interceptors=interceptors, handlers=DEF_HANDLERS)
    assert log == [f"A:{PATH[kind]}", f"B:{PATH[kind]}"]
    assert responses == _expected(kind, b"[|none]")


def test_sync_server_refuses_async_intercept_service() -> None:
    with pytest.raises(TypeError, match="async def intercept_service"):
        rpc.sync.Server(interceptors=[AsyncServiceTagger("A", [])])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("api", ["async", "sync"])
def test_server_intercept_service_short_circuits_unauthenticated(api: str, kind: str) -> None:
    error = expect_error(
        api, kind, StatusCode.UNAUTHENTICATED, server_interceptors=[RequireToken()]
    )
    assert error.details() == "missing or bad token"
    responses, _ = run_case(
        api,
        kind,
        server_interceptors=[RequireToken()],
        metadata=[("authorization", "Bearer good")],
    )
    assert responses == _expected(kind, b"[|none]")


@pytest.mark.parametrize("api", ["async", "sync"])
def test_intercept_service_returning_none_is_unimplemented(api: str) -> None:
    class Hide(rpc.ServerInterceptor):
        def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
            return None

    expect_error(api, "UU", StatusCode.UNIMPLEMENTED, server_interceptors=[Hide()])


@pytest.mark.parametrize("api", ["async", "sync"])
def test_intercept_service_wraps_the_behavior_grpcio_style(api: str) -> None:
    """A grpcio-style interceptor reads ``handler.unary_unary`` and returns a new handler."""

    class Suffix(rpc.ServerInterceptor):
        def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
            handler = continuation(handler_call_details)
            behavior = handler.unary_unary
            assert handler.unary_stream is None
            if api == "async":

                async def wrapped(request: Any, context: Any) -> Any:
                    return (await behavior(request, context)) + b"!"
            else:

                def wrapped(request: Any, context: Any) -> Any:
                    return behavior(request, context) + b"!"

            return rpc.unary_unary_rpc_method_handler(
                wrapped, handler.request_deserializer, handler.response_serializer
            )

    responses, _ = run_case(api, "UU", server_interceptors=[Suffix()])
    assert responses == [b"a[|none]!"]


# ---------------------------------------------------------------------- server: rpc.Interceptor


class Wrapping(rpc.Interceptor):
    """Wraps every message, records the status and the time, may replace the status."""

    def __init__(self, name: str, log: list[Any], replace: Any = None) -> None:
        self.name = name
        self.log = log
        self.replace = replace

    def intercept(self, details: Any, request: Any, context: Any) -> Any:
        start = time.perf_counter()
        self.log.append((f"{self.name}>", details.method, details.cardinality))
        context.wrap_requests(lambda m: m + self.name.lower().encode())
        context.wrap_responses(lambda m: m + self.name.encode())
        status = yield request
        self.log.append((f"<{self.name}", status.code, time.perf_counter() - start > 0))
        return self.replace


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("api", ["async", "sync"])
def test_server_interceptor_wraps_messages_and_sees_the_status(api: str, kind: str) -> None:
    log: list[Any] = []
    responses, _ = run_case(api, kind, server_interceptors=[Wrapping("X", log), Wrapping("Y", log)])
    # Requests: X's wrapper first, then Y's; responses: Y's first, then X's.
    requests = (b"axy", b"bxy")
    assert responses == [m + b"YX" for m in _expected(kind, b"[|none]", requests)]
    assert log == [
        ("X>", PATH[kind], KIND_OF[kind]),
        ("Y>", PATH[kind], KIND_OF[kind]),
        ("<Y", StatusCode.OK, True),
        ("<X", StatusCode.OK, True),
    ]


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("api", ["async", "sync"])
def test_server_interceptor_replaces_the_status(api: str, kind: str) -> None:
    replacement = Status(StatusCode.FAILED_PRECONDITION, "replaced")
    error = expect_error(
        api,
        kind,
        StatusCode.FAILED_PRECONDITION,
        server_interceptors=[Wrapping("X", [], replace=replacement)],
    )
    assert error.details() == "replaced"


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("api", ["async", "sync"])
def test_server_interceptor_short_circuits_before_the_handler(api: str, kind: str) -> None:
    called: list[str] = []
    log: list[Any] = []

    class Deny(rpc.Interceptor):
        def intercept(self, details: Any, request: Any, context: Any) -> Any:
            called.append(details.method)
            if context.invocation_metadata().get("authorization") is None:
                context.abort(StatusCode.UNAUTHENTICATED, "who are you")
            return (yield request)

    expect_error(
        api, kind, StatusCode.UNAUTHENTICATED, server_interceptors=[Wrapping("O", log), Deny()]
    )
    assert called == [PATH[kind]]
    assert log[-1][:2] == ("<O", StatusCode.UNAUTHENTICATED)  # the outer one saw the refusal


@pytest.mark.parametrize("api", ["async", "sync"])
def test_server_interceptor_sees_handler_errors_and_the_deadline(api: str) -> None:
    seen: list[Any] = []

    class Watch(rpc.Interceptor):
        def intercept(self, details: Any, request: Any, context: Any) -> Any:
            seen.append(details.timeout is not None and 0 < details.timeout <= 5)
            status = yield request
            seen.append((status.code, status.message))

    async def fail(request: Any, context: Any) -> Any:
        raise rpc.RpcError(StatusCode.NOT_FOUND, "nope")

    def fail_def(request: Any, context: Any) -> Any:
        raise rpc.RpcError(StatusCode.NOT_FOUND, "nope")

    handler = rpc.unary_unary_rpc_method_handler(fail if api == "async" else fail_def)
    expect_error(
        api,
        "UU",
        StatusCode.NOT_FOUND,
        server_interceptors=[Watch()],
        handlers={"UU": handler},
        timeout=5,
    )
    assert seen == [True, (StatusCode.NOT_FOUND, "nope")]


def test_async_server_interceptor_runs_for_def_handlers_too() -> None:
    log: list[Any] = []
    responses, _ = run_async_case(
        "SS", server_interceptors=[Wrapping("D", log)], handlers=DEF_HANDLERS
    )
    assert responses == [b"adD", b"bdD", b"[|none]D"]
    assert [entry[0] for entry in log] == ["D>", "<D"]


def test_interceptors_on_both_sides_together() -> None:
    log: list[Any] = []

    async def main() -> Any:
        server = rpc.Server(
            [rpc.method_handlers_generic_handler(SERVICE, ASYNC_HANDLERS)],
            interceptors=[RequireToken(), Wrapping("S", log)],
        )

        class Token(rpc.UnaryUnaryClientInterceptor):
            async def intercept_unary_unary(
                self, continuation: Any, details: Any, request: Any
            ) -> Any:
                details.metadata.add("authorization", "Bearer good")
                return await continuation(details, request)

        async with serving(server) as target:
            async with rpc.Channel(target, interceptors=[Token()]) as channel:
                return await asyncio.wait_for(channel.unary_unary(PATH["UU"])(b"q"), 10)

    assert run(main()) == b"qs[|none]S"


@pytest.mark.parametrize("api", ["async", "sync"])
def test_before_only_server_interceptors(api: str) -> None:
    """A plain ``intercept`` (no yield) and a generator that ends before yielding both run
    before the handler and are then done with."""
    seen: list[str] = []

    class Plain(rpc.Interceptor):
        def intercept(self, details: Any, request: Any, context: Any) -> Any:
            seen.append("plain")

    class Early(rpc.Interceptor):
        def intercept(self, details: Any, request: Any, context: Any) -> Any:
            seen.append("early")
            return
            yield  # a generator that never gets here

    responses, _ = run_case(api, "UU", server_interceptors=[Plain(), Early()])
    assert responses == [b"a[|none]"]
    assert seen == ["plain", "early"]
