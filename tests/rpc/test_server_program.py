"""The server call's program, driven by hand: no sockets, no event loop, no threads.

``ServerCallCore.serve()`` yields commands (READ, SEND, CALL_DEF, ...) and is resumed with their
outcomes; these tests play the driver, feeding each command's result back (or throwing its
failure in), over a fake stream that records what the call sends. Each test pins one decision the
program makes, in the order a shell would see it.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterator
from typing import Any, Optional, cast

import pytest

import rpc
from codec import (
    Status,
    StatusCode,
    build_request_headers,
    encode_message,
    parse_trailers,
)
from rpc._core.messages import EOF
from rpc._core.server_call import (
    ANEXT,
    ARM,
    AWAIT,
    CALL_ASYNC,
    CALL_DEF,
    DONE,
    HOLD,
    NEXT,
    READ,
    REQUEST_STREAM,
    SEND,
    SEND_NEXT,
    CallCancelled,
    Command,
    HandlerFailed,
    Program,
    ServerCallCore,
    ServerCallSettings,
)
from rpc._core.server_context import ThreadServicerContext, request_iterator
from transport import StreamResetError

PATH = "/t.T/M"

# ---------------------------------------------------------------------- a fake stream


class FakeSession:
    tls = None


class FakeConnection:
    peer = "ipv4:127.0.0.1:5555"
    session = FakeSession()


class FakeStream:
    """What the core uses of a transport stream, recording what the call sends."""

    def __init__(self, headers: list[tuple[bytes, bytes]]) -> None:
        self.request_headers = headers
        self.local_closed = False
        self.error: Optional[Exception] = None
        self.connection = FakeConnection()
        self.headers: list[list[tuple[bytes, bytes]]] = []
        self.trailers: Optional[list[tuple[bytes, bytes]]] = None
        #: A whole non-gRPC response (headers and body), if one was sent.
        self.response: Optional[tuple[list[tuple[bytes, bytes]], bytes]] = None

    def send_headers(self, headers: list[tuple[bytes, bytes]], *, end_stream: bool = False) -> None:
        assert not self.local_closed
        self.headers.append(headers)

    def send_trailers(self, headers: list[tuple[bytes, bytes]]) -> None:
        assert not self.local_closed
        self.trailers = headers
        self.local_closed = True

    def respond(self, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        assert not self.local_closed
        self.response = (headers, body)
        self.local_closed = True

    def status(self) -> Status:
        assert self.trailers is not None, "no trailers were sent"
        return parse_trailers(self.trailers)


def request_headers(path: str = PATH, **kwargs: Any) -> list[tuple[bytes, bytes]]:
    return build_request_headers(path, "localhost", **kwargs)


def make_call(
    handlers: dict[str, rpc.MethodHandler], headers: Optional[list[tuple[bytes, bytes]]] = None
) -> tuple[ServerCallCore, FakeStream]:
    def lookup(path: str, metadata: object) -> Optional[rpc.MethodHandler]:
        return handlers.get(path)

    settings = ServerCallSettings(
        lookup=lookup,
        max_receive_message_length=1024,
        max_send_message_length=None,
        compression=None,
    )
    stream = FakeStream(headers if headers is not None else request_headers())
    return ServerCallCore(settings, cast(Any, stream)), stream


def finish(program: Program, value: Any = None, *, throw: Optional[BaseException] = None) -> Any:
    """Resume ``program`` once more; it must end: its value."""
    with pytest.raises(StopIteration) as stop:
        if throw is not None:
            program.throw(throw)
        else:
            program.send(value)
    return stop.value.value


# ---------------------------------------------------------------------- a hand driver


class HandContext(ThreadServicerContext):
    """A def handler's context whose programs the test's driver runs."""

    def __init__(self, call: ServerCallCore, driver: HandDriver) -> None:
        super().__init__(call)
        self._driver = driver

    def _drive(self, program: Program) -> Any:
        return self._driver.drive(program)


class HandDriver:
    """Performs commands at once: READ takes the next of ``chunks`` (an exception in it is
    thrown into the program instead), SEND records the bytes; every opcode is logged."""

    def __init__(self, call: ServerCallCore, chunks: list[Any]) -> None:
        self.call = call
        self.chunks = deque(chunks)
        self.sent: list[bytes] = []
        self.ops: list[int] = []
        self.context = HandContext(call, self)

    def drive(self, program: Program) -> Any:
        value: Any = None
        failure: Optional[BaseException] = None
        while True:
            try:
                command = program.send(value) if failure is None else program.throw(failure)
            except StopIteration as stop:
                return stop.value
            value = failure = None
            self.ops.append(command[0])
            try:
                value = self.perform(command)
            except Exception as exc:
                failure = exc

    def perform(self, command: Command) -> Any:
        op = command[0]
        if op == READ:
            chunk = self.chunks.popleft()
            if isinstance(chunk, BaseException):
                raise chunk
            return chunk
        if op == SEND:
            self.sent.append(command[1])
            return None
        if op == CALL_DEF:
            argument = command[2]
            if argument is REQUEST_STREAM:
                argument = request_iterator(self.context)
            return command[1](argument, self.context)
        if op == NEXT:
            return next(command[1], DONE)
        if op == SEND_NEXT:  # send, then the next response (the handler's failure wrapped)
            self.sent.append(command[1])
            try:
                return next(command[2][1], DONE)
            except Exception as exc:
                raise HandlerFailed(exc) from None
        if op in (ARM, HOLD):
            return None
        raise AssertionError(f"a def-handler driver got {command!r}")

    def serve(self) -> Optional[Status]:
        status: Optional[Status] = self.drive(self.call.serve())
        self.call.end(status)
        return status


def framed(payload: bytes) -> bytes:
    return encode_message(payload)


def unary(behavior: Any) -> dict[str, rpc.MethodHandler]:
    return {PATH: rpc.unary_unary_rpc_method_handler(behavior)}


# ---------------------------------------------------------------------- the unary shape


def test_a_unary_call_reads_twice_calls_holds_sends_then_ends_ok() -> None:
    def handler(request: bytes, context: Any) -> bytes:
        return request.upper()

    call, stream = make_call(unary(handler))
    program = call.serve()
    assert program.send(None) == (READ,)
    assert program.send(framed(b"ping")) == (READ,)  # to the half-close: one message only
    command = program.send(b"")
    assert command[0] == CALL_DEF and command[2] == b"ping"
    response = command[1](command[2], None)
    assert program.send(response) == (HOLD,)  # nothing is read from here on
    assert program.send(None) == (SEND, framed(b"PING"))
    assert len(stream.headers) == 1  # the response headers went first, without waiting
    status = finish(program)
    assert status == Status(StatusCode.OK, "")
    call.end(status)
    assert stream.status().code == StatusCode.OK


def test_an_async_handler_is_called_then_awaited_by_the_driver() -> None:
    async def handler(request: bytes, context: Any) -> bytes:
        return request

    call, _ = make_call(unary(handler))
    program = call.serve()
    program.send(None)
    program.send(framed(b"x"))
    command = program.send(b"")
    assert command[0] == CALL_ASYNC
    coroutine = command[1](command[2], None)
    assert program.send(coroutine) == (AWAIT, coroutine)
    with pytest.raises(StopIteration) as stop:
        coroutine.send(None)
    response = stop.value.value
    assert program.send(response) == (HOLD,)
    assert program.send(None)[0] == SEND
    assert finish(program).code == StatusCode.OK


def test_a_handler_that_raises_is_unknown_without_its_message() -> None:
    def handler(request: bytes, context: Any) -> bytes:
        raise ValueError("secret")

    call, stream = make_call(unary(handler))
    driver = HandDriver(call, [framed(b"x"), b""])
    status = driver.serve()
    assert status == Status(StatusCode.UNKNOWN, "Unexpected ValueError in handler")
    assert stream.status().code == StatusCode.UNKNOWN
    assert "secret" not in stream.status().message
    assert driver.sent == []


def test_abort_ends_with_its_status_and_trailing_metadata() -> None:
    def handler(request: bytes, context: Any) -> Any:
        return context.abort(StatusCode.NOT_FOUND, "no such thing", (("k", "v"),))

    call, stream = make_call(unary(handler))
    status = HandDriver(call, [framed(b"x"), b""]).serve()
    assert status == Status(StatusCode.NOT_FOUND, "no such thing")
    assert stream.status().code == StatusCode.NOT_FOUND
    assert (b"k", b"v") in stream.trailers  # type: ignore[operator]


def test_set_code_then_raise_sends_that_code_and_details_as_grpcio_does() -> None:
    def handler(request: bytes, context: Any) -> bytes:
        context.set_code(StatusCode.UNIMPLEMENTED)
        context.set_details("Method not implemented!")
        raise NotImplementedError("Method not implemented!")

    call, _ = make_call(unary(handler))
    status = HandDriver(call, [framed(b"x"), b""]).serve()
    assert status == Status(StatusCode.UNIMPLEMENTED, "Method not implemented!")


def test_set_code_with_a_return_value_sends_no_message() -> None:
    def handler(request: bytes, context: Any) -> bytes:
        context.set_code(StatusCode.ALREADY_EXISTS)
        return b"ignored"

    call, _ = make_call(unary(handler))
    driver = HandDriver(call, [framed(b"x"), b""])
    assert driver.serve() == Status(StatusCode.ALREADY_EXISTS, "")
    assert HOLD not in driver.ops and driver.sent == []


# ---------------------------------------------------------------------- requests


def test_a_request_stream_ended_inside_a_message_is_internal() -> None:
    called: list[bytes] = []
    call, stream = make_call(unary(lambda request, context: called.append(request)))
    program = call.serve()
    assert program.send(None) == (READ,)
    assert program.send(framed(b"hello")[:-2]) == (READ,)  # not a whole message yet
    status = finish(program, b"")  # the half-close, inside the message
    assert status == Status(StatusCode.INTERNAL, "request stream ended inside a message")
    assert called == []
    call.end(status)
    assert stream.headers == []  # Trailers-Only
    assert stream.status().code == StatusCode.INTERNAL


def test_two_requests_for_a_unary_method_are_internal() -> None:
    call, _ = make_call(unary(lambda request, context: request))
    driver = HandDriver(call, [framed(b"a") + framed(b"b"), b""])
    status = driver.serve()
    assert status == Status(StatusCode.INTERNAL, "more than one request message for a unary method")


def test_a_request_streaming_handler_reads_through_its_context() -> None:
    def handler(requests: Iterator[bytes], context: Any) -> bytes:
        return b"+".join(requests)

    handlers = {PATH: rpc.stream_unary_rpc_method_handler(handler)}
    call, _ = make_call(handlers)
    driver = HandDriver(call, [framed(b"a"), framed(b"b") + framed(b"c"), b""])
    assert driver.serve() == Status(StatusCode.OK, "")
    assert driver.sent == [framed(b"a+b+c")]
    # The call shape: the handler is called at once with the stream; its reads are the READs.
    assert driver.ops == [CALL_DEF, READ, READ, READ, HOLD, SEND]


def test_context_read_is_the_read_request_program() -> None:
    call, _ = make_call({PATH: rpc.stream_stream_rpc_method_handler(lambda r, c: None)})
    program = call.serve()
    command = program.send(None)
    assert command[0] == CALL_DEF and command[2] is REQUEST_STREAM
    read = call.read_request()
    assert read.send(None) == (READ,)
    assert finish(read, framed(b"one")) == b"one"
    read = call.read_request()
    assert read.send(None) == (READ,)
    assert finish(read, b"") is EOF


# ---------------------------------------------------------------------- responses


def test_a_def_server_stream_is_iterated_with_next_and_each_response_sent() -> None:
    def handler(request: bytes, context: Any) -> Iterator[bytes]:
        yield from (request * n for n in (1, 2))

    handlers = {PATH: rpc.unary_stream_rpc_method_handler(handler)}
    call, _ = make_call(handlers)
    driver = HandDriver(call, [framed(b"x"), b""])
    assert driver.serve() == Status(StatusCode.OK, "")
    assert driver.sent == [framed(b"x"), framed(b"xx")]
    assert driver.ops == [READ, READ, CALL_DEF, NEXT, SEND_NEXT, SEND_NEXT]


def test_a_handler_failing_between_responses_is_its_error_not_a_lost_client() -> None:
    def handler(request: bytes, context: Any) -> Iterator[bytes]:
        yield request
        raise TimeoutError("the handler's own")  # a send timeout would mean the client is gone

    handlers = {PATH: rpc.unary_stream_rpc_method_handler(handler)}
    call, _ = make_call(handlers)
    driver = HandDriver(call, [framed(b"x"), b""])
    status = driver.serve()
    assert status is not None and status.code == StatusCode.UNKNOWN
    assert status.message == "Unexpected TimeoutError in handler"
    assert driver.sent == [framed(b"x")]


def test_an_async_generator_is_iterated_with_anext() -> None:
    async def handler(request: bytes, context: Any) -> Any:
        yield request

    handlers = {PATH: rpc.unary_stream_rpc_method_handler(handler)}
    call, _ = make_call(handlers)
    program = call.serve()
    program.send(None)
    program.send(framed(b"x"))
    command = program.send(b"")
    assert command[0] == CALL_ASYNC
    command = program.send(command[1](command[2], None))
    assert command[0] == ANEXT
    step = command
    assert program.send(b"first") == (SEND_NEXT, framed(b"first"), step)
    assert finish(program, DONE) == Status(StatusCode.OK, "")


def test_a_failed_send_means_the_client_is_gone() -> None:
    call, stream = make_call(unary(lambda request, context: request))
    driver = HandDriver(call, [framed(b"x"), b""])
    program = call.serve()
    for chunk in (None, framed(b"x"), b""):
        command = program.send(chunk)
    program.send(command[1](command[2], None))  # HOLD
    assert program.send(None)[0] == SEND
    # The transport failed the stream: the program decides there is nobody to answer.
    assert finish(program, throw=StreamResetError(8, remote=True)) is None
    assert driver.sent == []
    assert stream.trailers is None


# ---------------------------------------------------------------------- the head


def test_an_unknown_method_is_unimplemented_trailers_only() -> None:
    call, stream = make_call({}, request_headers("/no.Such/Method"))
    program = call.serve()
    status = finish(program)  # decided before any command
    assert status == Status(StatusCode.UNIMPLEMENTED, "Method not found: /no.Such/Method")
    call.end(status)
    assert stream.headers == []
    assert stream.status().code == StatusCode.UNIMPLEMENTED


def test_a_non_grpc_content_type_is_answered_http_415_and_nothing_else() -> None:
    headers = [
        (name, b"text/plain" if name == b"content-type" else value)
        for name, value in request_headers()
    ]
    call, stream = make_call(unary(lambda request, context: request), headers)
    assert finish(call.serve()) is None  # answered already: nobody to send a status to
    assert stream.response is not None
    response_headers, body = stream.response
    assert (b":status", b"415") in response_headers
    assert (b"content-type", b"text/plain; charset=utf-8") in response_headers
    assert b"gRPC server" in body and b"text/plain" in body
    call.end(None)
    assert stream.headers == [] and stream.trailers is None


# ---------------------------------------------------------------------- from outside


def test_a_client_reset_while_an_async_handler_runs_cancels_it_and_sends_nothing() -> None:
    async def handler(request: bytes, context: Any) -> bytes:
        return request

    call, stream = make_call(unary(handler))
    ended: list[bool] = []
    assert call.add_callback(lambda: ended.append(True))
    program = call.serve()
    program.send(None)
    program.send(framed(b"x"))
    command = program.send(b"")
    coroutine = command[1](command[2], None)
    assert program.send(coroutine)[0] == AWAIT
    # The client resets the stream while the handler is awaited: the event says stop it ...
    assert call.stream_failed() is True
    assert call.cancelled() and not call.is_active()
    # ... the asyncio driver cancels the task and throws CallCancelled in its place.
    coroutine.close()
    status = finish(program, throw=CallCancelled())
    assert status is None
    call.end(status)
    assert stream.trailers is None and ended == [True]
    assert call.stream_failed() is False  # once ended, nothing more to stop


def test_a_client_reset_while_a_def_handler_runs_fails_its_next_write() -> None:
    def handler(request: bytes, context: Any) -> Iterator[bytes]:
        yield b"first"
        context._call.stream_failed()  # the transport's callback, as the handler runs
        yield b"second"

    handlers = {PATH: rpc.unary_stream_rpc_method_handler(handler)}
    call, stream = make_call(handlers)
    driver = HandDriver(call, [framed(b"x"), b""])
    assert driver.serve() is None
    assert driver.sent == [framed(b"first")]  # the second is never framed
    assert stream.trailers is None


def test_a_passed_deadline_is_armed_then_deadline_exceeded() -> None:
    async def handler(request: bytes, context: Any) -> bytes:
        return request

    call, stream = make_call(unary(handler), request_headers(timeout=0.5))
    program = call.serve()
    command = program.send(None)
    assert command[0] == ARM
    assert 0 < command[1] - time.monotonic() <= 0.5
    assert call.time_remaining() is not None
    assert program.send(None) == (READ,)
    program.send(framed(b"x"))
    command = program.send(b"")
    coroutine = command[1](command[2], None)
    program.send(coroutine)
    assert call.deadline_passed() is True  # the driver's timer fired
    coroutine.close()
    status = finish(program, throw=CallCancelled())
    assert status == Status(StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
    call.end(status)
    assert stream.status().code == StatusCode.DEADLINE_EXCEEDED


def test_a_def_handler_past_its_deadline_still_ends_deadline_exceeded() -> None:
    def handler(request: bytes, context: Any) -> bytes:
        # A thread cannot be stopped: the blocking server's watcher ends the call meanwhile.
        assert context._call.deadline_passed() is True
        context._call.end(context._call.status_after_cancel())
        return request

    call, stream = make_call(unary(handler), request_headers(timeout=5))
    driver = HandDriver(call, [framed(b"x"), b""])
    status = driver.drive(call.serve())
    assert status == Status(StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
    assert driver.sent == []  # the late response is dropped
    assert driver.ops[0] == ARM
    assert stream.status().code == StatusCode.DEADLINE_EXCEEDED


def test_a_cancellation_from_the_server_itself_is_unavailable() -> None:
    async def handler(request: bytes, context: Any) -> bytes:
        return request

    call, _ = make_call(unary(handler))
    program = call.serve()
    program.send(None)
    # The server stops and cancels the task while the request is being read.
    status = finish(program, throw=CallCancelled())
    assert status == Status(StatusCode.UNAVAILABLE, "server is shutting down")


# ---------------------------------------------------------------------- the context surface


def test_add_callback_runs_at_the_end_and_is_refused_after_it() -> None:
    call, _ = make_call(unary(lambda request, context: request))
    driver = HandDriver(call, [framed(b"x"), b""])
    seen: list[Any] = []
    driver.context.add_done_callback(seen.append)
    driver.serve()
    assert seen == [driver.context]
    assert driver.context.add_callback(lambda: None) is False
    driver.context.add_done_callback(seen.append)  # after the end: at once
    assert seen == [driver.context, driver.context]
