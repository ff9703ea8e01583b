"""The client's decisions, tested without sockets, threads or sleeps.

The core's programs (``ClientCallCore`` and ``ChannelCore._connection``) yield commands; here a
hand-written driver performs them with fake streams and connections, so every decision (the order
of the steps, transparent retry, the deadline, Trailers-Only, the request writer, the connection
policy) is checked on its own, the way both shells and the futures see it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Callable, Optional

import pytest

import rpc
from codec.http2_errors import CANCEL, REFUSED_STREAM
from rpc._core.client_call import (
    HEAD,
    NEXT_REQUEST,
    NOT_READY,
    OPEN,
    PAUSE,
    READ,
    SEND,
    START_WRITER,
    STREAM,
    CallSettings,
    ClientCallCore,
    Program,
)
from rpc._core.messages import EOF
from rpc._handlers import Cardinality
from transport import ConnectionClosedError, StreamResetError

NAMES = {
    STREAM: "STREAM",
    OPEN: "OPEN",
    SEND: "SEND",
    HEAD: "HEAD",
    READ: "READ",
    PAUSE: "PAUSE",
    NEXT_REQUEST: "NEXT_REQUEST",
    START_WRITER: "START_WRITER",
}
OK_HEAD = [(b":status", b"200"), (b"content-type", b"application/grpc")]
OK_TRAILERS = [(b"grpc-status", b"0")]


def framed(payload: bytes) -> bytes:
    return b"\x00" + len(payload).to_bytes(4, "big") + payload


class FakeStream:
    """As much of a transport stream as the core reads; sending is recorded by the driver."""

    def __init__(self) -> None:
        self.remote_ended = False
        self.trailers: Optional[list[tuple[bytes, bytes]]] = None
        self.local_closed = False
        self.resets: list[int] = []

    def reset(self, code: int) -> None:
        self.resets.append(code)
        self.local_closed = True

    def end(self) -> None:
        self.local_closed = True


class Server:
    """Scripted answers to the commands of one call: ``answers[name]`` is a list of results (or
    exceptions to raise), taken in order."""

    def __init__(self, **answers: list[Any]) -> None:
        self.answers = answers
        self.log: list[str] = []
        self.sent: list[tuple[bytes, bool]] = []
        self.streams: list[FakeStream] = []

    def perform(self, call: ClientCallCore, command: tuple[Any, ...]) -> Any:
        name = NAMES[command[0]]
        self.log.append(name)
        if name == "STREAM":
            return drive(call._open_stream(), lambda c: self.perform(call, c))
        if name == "OPEN":
            stream = FakeStream()
            self.streams.append(stream)
            return self.next("OPEN", stream)
        if name == "SEND":
            self.sent.append((command[1], command[2]))
            return self.next("SEND", None)
        if name == "PAUSE":
            self.log[-1] = f"PAUSE {command[1]}"
            return None
        if name == "NEXT_REQUEST":
            return next(command[1], EOF)
        if name == "START_WRITER":
            return None
        answer = self.next(name, None)
        if name == "READ" and answer == b"":  # the stream ends, with the trailers
            stream = call._stream
            assert isinstance(stream, FakeStream)
            stream.remote_ended = True
            stream.trailers = self.answers.get("TRAILERS", OK_TRAILERS)
        return answer

    def next(self, name: str, default: Any) -> Any:
        queue = self.answers.get(name)
        if not queue:
            return default
        answer = queue.pop(0)
        if isinstance(answer, BaseException):
            raise answer
        return answer


def drive(program: Program, perform: Callable[[tuple[Any, ...]], Any]) -> Any:
    """What every shell does: send each outcome back in, or throw the failure in."""
    result: Any = None
    error: Optional[Exception] = None
    while True:
        try:
            command = program.send(result) if error is None else program.throw(error)
        except StopIteration as stop:
            return stop.value
        result, error = None, None
        try:
            result = perform(command)
        except Exception as exc:
            error = exc


SETTINGS = CallSettings(
    authority="example.test",
    scheme="http",
    user_agent="test",
    compression=None,
    max_receive_message_length=None,
    max_send_message_length=None,
)


def make_call(
    kind: Cardinality = Cardinality.UNARY_UNARY,
    request: Any = b"ping",
    serializer: Callable[[Any], bytes] = bytes,
) -> ClientCallCore:
    return ClientCallCore(
        SETTINGS, kind, request, "/t.T/M", serializer, bytes, timeout=None, metadata=None
    )


def unary(call: ClientCallCore, server: Server) -> Any:
    return drive(call._single_response(), lambda c: server.perform(call, c))


def test_a_unary_call_opens_sends_takes_the_head_then_reads_to_the_end() -> None:
    call = make_call()
    server = Server(HEAD=[OK_HEAD], READ=[framed(b"pong"), b""])
    assert unary(call, server) == b"pong"
    assert server.log == ["STREAM", "OPEN", "SEND", "HEAD", "READ", "READ"]
    assert server.sent == [(framed(b"ping"), True)]
    assert call._status is not None and call._status.code == rpc.StatusCode.OK


def test_a_refused_stream_is_sent_again_on_a_new_stream_after_a_pause() -> None:
    call = make_call()
    refused = StreamResetError(REFUSED_STREAM, remote=True)
    server = Server(HEAD=[refused, OK_HEAD], READ=[framed(b"pong"), b""])
    assert unary(call, server) == b"pong"
    assert server.log == [
        "STREAM", "OPEN", "SEND", "HEAD",
        "PAUSE 0.01",
        "STREAM", "OPEN", "SEND", "HEAD", "READ", "READ",
    ]  # fmt: skip
    assert len(server.streams) == 2 and call._retries == 1


def test_a_stream_refused_by_goaway_while_opening_is_opened_again() -> None:
    call = make_call()
    gone = ConnectionClosedError("GOAWAY", refused=True)
    server = Server(OPEN=[gone, FakeStream()], HEAD=[OK_HEAD], READ=[framed(b"pong"), b""])
    assert unary(call, server) == b"pong"
    assert server.log[:4] == ["STREAM", "OPEN", "OPEN", "SEND"]


def test_a_reset_that_is_not_a_refusal_ends_the_call_with_its_mapped_status() -> None:
    call = make_call()
    server = Server(HEAD=[StreamResetError(CANCEL, remote=True)])
    with pytest.raises(rpc.RpcError) as info:
        unary(call, server)
    assert info.value.code() == rpc.StatusCode.CANCELLED
    assert "PAUSE" not in " ".join(server.log)


def test_the_deadline_while_waiting_for_the_head_is_deadline_exceeded_and_resets() -> None:
    call = make_call()
    server = Server(HEAD=[TimeoutError()])
    with pytest.raises(rpc.RpcError) as info:
        unary(call, server)
    assert info.value.code() == rpc.StatusCode.DEADLINE_EXCEEDED
    assert server.streams[0].resets == [CANCEL]


def test_a_trailers_only_answer_ends_the_call_at_the_head() -> None:
    call = make_call()
    stream = FakeStream()
    stream.remote_ended = True  # the head ended the stream: Trailers-Only
    head = [(b":status", b"200"), (b"content-type", b"application/grpc"), (b"grpc-status", b"5")]
    server = Server(OPEN=[stream], HEAD=[head])
    with pytest.raises(rpc.RpcError) as info:
        unary(call, server)
    assert info.value.code() == rpc.StatusCode.NOT_FOUND
    assert "READ" not in server.log


def test_a_second_response_to_a_unary_call_is_internal() -> None:
    call = make_call()
    server = Server(HEAD=[OK_HEAD], READ=[framed(b"a") + framed(b"b")])
    with pytest.raises(rpc.RpcError) as info:
        unary(call, server)
    assert info.value.code() == rpc.StatusCode.INTERNAL


def test_a_request_the_serializer_rejects_is_internal_and_opens_no_stream() -> None:
    def serializer(message: Any) -> bytes:
        raise TypeError("not a message")

    call = make_call(serializer=serializer)
    server = Server()
    with pytest.raises(rpc.RpcError) as info:
        unary(call, server)
    assert info.value.code() == rpc.StatusCode.INTERNAL
    assert "Exception serializing request" in info.value.details()
    assert server.log == []


def test_the_writer_sends_each_request_then_half_closes() -> None:
    call = make_call(Cardinality.STREAM_UNARY, request=[b"a", b"b"])
    server = Server()
    drive(call._send_requests(), lambda c: server.perform(call, c))
    assert server.log == ["STREAM", "OPEN", "START_WRITER"]
    drive(call._write_requests(iter([b"a", b"b"])), lambda c: server.perform(call, c))
    assert server.sent == [(framed(b"a"), False), (framed(b"b"), False)]
    assert server.streams[0].local_closed and call._done_writing


def test_a_failing_request_iterator_ends_the_call_unknown() -> None:
    def requests() -> Iterator[bytes]:
        yield b"a"
        raise ValueError("boom")

    call = make_call(Cardinality.STREAM_UNARY, request=())
    server = Server()
    drive(call._write_requests(requests()), lambda c: server.perform(call, c))
    assert call._status is not None and call._status.code == rpc.StatusCode.UNKNOWN
    assert "Exception iterating requests" in call._status.message
    assert server.streams[0].resets == [CANCEL]


def test_a_message_already_decoded_is_read_without_a_program() -> None:
    call = make_call(Cardinality.UNARY_STREAM)
    server = Server(HEAD=[OK_HEAD], READ=[framed(b"a") + framed(b"b"), b""])
    assert call._ready_message() is NOT_READY  # nothing sent yet: the program must run
    assert drive(call._read_any(), lambda c: server.perform(call, c)) == b"a"
    assert call._ready_message() == b"b"  # decoded from the same chunk: no waiting
    assert call._ready_message() is NOT_READY  # the end must still be read
    assert drive(call._read_any(), lambda c: server.perform(call, c)) is EOF
