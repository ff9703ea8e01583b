"""Retry and hedging decisions, tested on the call programs without sockets, threads or sleeps.

A scripted driver performs the commands the core yields (as ``tests/rpc/test_client_program.py``
does): each attempt's stream answers with the next scripted head, so every gRFC A6 decision is
seen in the order of commands, the pauses, and the heads of the attempts.
"""

from __future__ import annotations

import time
from typing import Any, Callable, Optional

import pytest

import rpc
from codec.http2_errors import CANCEL, REFUSED_STREAM
from rpc._core.client_call import (
    HEAD,
    NEXT_REQUEST,
    OPEN,
    PAUSE,
    READ,
    SEND,
    SEND_ON,
    START_WRITER,
    STREAM,
    WAIT_ANY,
    CallSettings,
    ClientCallCore,
    Program,
)
from rpc._core.messages import EOF
from rpc._handlers import Cardinality
from rpc.client.retry import (
    STOP,
    CallRetry,
    ChannelRetry,
    RetryBuffer,
    RetryThrottle,
    pushback_of,
)
from rpc.client.service_config import RetryPolicy, RetryThrottling, parse_service_config
from transport import StreamResetError

OK_HEAD = [(b":status", b"200"), (b"content-type", b"application/grpc")]


def trailers_only(code: int, *extra: tuple[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    return [*OK_HEAD, (b"grpc-status", str(code).encode()), *extra]


def framed(payload: bytes) -> bytes:
    return b"\x00" + len(payload).to_bytes(4, "big") + payload


class FakeStream:
    def __init__(self, head: Any) -> None:
        self.head = head  # what HEAD gives: headers, or an exception
        self.response_headers: Optional[list[tuple[bytes, bytes]]] = None
        self.remote_ended = False
        self.trailers: Optional[list[tuple[bytes, bytes]]] = None
        self.local_closed = False
        self.resets: list[int] = []
        self.error: Optional[Exception] = None
        self.sent: list[tuple[bytes, bool]] = []
        self.ended = False

    def arrive(self) -> None:
        """The scripted head arrives (hedging reads it without HEAD)."""
        if isinstance(self.head, BaseException):
            self.error = self.head
        elif self.head is not None:
            self.response_headers = self.head
            if any(name == b"grpc-status" for name, _ in self.head):
                self.remote_ended = True

    def _take_response_headers(self) -> Any:
        if self.error is not None:
            raise self.error
        return self.response_headers

    def reset(self, code: int) -> None:
        self.resets.append(code)
        self.local_closed = True

    def end(self) -> None:
        self.ended = self.local_closed = True


class Driver:
    """Performs commands: OPEN gives a stream with the next scripted head; WAIT_ANY lets the
    attempts' heads arrive in the scripted order (``arrivals``: stream indexes, or "timeout")."""

    def __init__(
        self,
        heads: list[Any],
        reads: Optional[list[bytes]] = None,
        arrivals: Any = (),
        early: bool = False,
    ) -> None:
        self.early = early  # a Trailers-Only head is there as soon as the stream opens
        self.heads = heads
        self.reads = list(reads or [framed(b"pong"), b""])
        self.arrivals = list(arrivals)
        self.streams: list[FakeStream] = []
        self.log: list[str] = []
        self.opened_heads: list[Any] = []

    def perform(self, call: ClientCallCore, command: tuple[Any, ...]) -> Any:
        op = command[0]
        if op == STREAM:
            self.log.append("STREAM")
            return drive(call._open_stream(), lambda c: self.perform(call, c))
        if op == OPEN:
            self.log.append("OPEN")
            head = self.heads.pop(0)
            if isinstance(head, rpc.RpcError):
                raise head
            stream = FakeStream(head)
            if self.early and head is not None and any(n == b"grpc-status" for n, _ in head):
                stream.arrive()
            self.streams.append(stream)
            self.opened_heads.append(call._headers)
            return stream
        if op == SEND:
            self.log.append("SEND")
            stream = call._stream
            assert isinstance(stream, FakeStream)
            stream.sent.append((command[1], command[2]))
            stream.local_closed = stream.local_closed or command[2]
            return None
        if op == SEND_ON:
            stream = command[1]
            self.log.append(f"SEND_ON {self.streams.index(stream)}")
            stream.sent.append((command[2], command[3]))
            return None
        if op == HEAD:
            self.log.append("HEAD")
            stream = call._stream
            assert isinstance(stream, FakeStream)
            stream.arrive()
            return stream._take_response_headers()
        if op == READ:
            self.log.append("READ")
            data = self.reads.pop(0)
            if data == b"":
                stream = call._stream
                assert isinstance(stream, FakeStream)
                stream.remote_ended = True
                stream.trailers = [(b"grpc-status", b"0")]
            return data
        if op == PAUSE:
            self.log.append(f"PAUSE {command[1]:.2f}")
            return None
        if op == WAIT_ANY:
            streams, timeout = command[1], command[2]
            arrival = self.arrivals.pop(0)
            shown = timeout if timeout is None else round(timeout, 2)
            self.log.append(f"WAIT {len(streams)} {shown}")
            if arrival == "timeout":
                _skip(timeout)
            else:
                self.streams[arrival].arrive()
            return None
        if op == NEXT_REQUEST:
            return next(command[1], EOF)
        if op == START_WRITER:
            self.log.append("START_WRITER")
            return None
        raise AssertionError(command)


_now = [0.0]


def _skip(seconds: Optional[float]) -> None:
    """A hedging delay passes: the core reads time.monotonic() (patched by the fixture)."""
    _now[0] += seconds or 0.0


@pytest.fixture(autouse=True)
def fake_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    _now[0] = 1000.0
    monkeypatch.setattr(time, "monotonic", lambda: _now[0])


def drive(program: Program, perform: Callable[[tuple[Any, ...]], Any]) -> Any:
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
            if command[0] == PAUSE:
                _skip(command[1])
        except Exception as exc:
            error = exc


POLICY = {
    "maxAttempts": 4,
    "initialBackoff": "1s",
    "maxBackoff": "3s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}


def settings(method: dict[str, Any], retry: Optional[ChannelRetry] = None, **extra: Any) -> Any:
    config = parse_service_config(
        {"methodConfig": [{"name": [{"service": "t.T"}], **method}], **extra}
    )
    return CallSettings(
        authority="example.test",
        scheme="http",
        user_agent="test",
        compression=None,
        max_receive_message_length=None,
        max_send_message_length=None,
        service_config=config,
        retry=retry or ChannelRetry(config.retry_throttling),
    )


def make_call(
    call_settings: Any, kind: Cardinality = Cardinality.UNARY_UNARY, request: Any = b"ping"
) -> ClientCallCore:
    call = ClientCallCore(
        call_settings, kind, request, "/t.T/M", bytes, bytes, timeout=None, metadata=None
    )
    if call._retry is not None:
        call._retry._rand = lambda low, high: 1.0  # no jitter: the backoff itself
    return call


def unary(call: ClientCallCore, driver: Driver) -> Any:
    return drive(call._single_response(), lambda c: driver.perform(call, c))


def previous_attempts(headers: Any) -> Optional[bytes]:
    return dict(headers).get(b"grpc-previous-rpc-attempts")


# --- retry policy ---------------------------------------------------------------------------


def test_retryable_failures_back_off_exponentially_with_the_attempt_count_header() -> None:
    call = make_call(settings({"retryPolicy": POLICY}))
    driver = Driver([trailers_only(14), trailers_only(14), trailers_only(14), OK_HEAD])
    assert unary(call, driver) == b"pong"
    assert driver.log == [
        "STREAM", "OPEN", "SEND", "HEAD",
        "STREAM", "PAUSE 1.00", "OPEN", "SEND", "HEAD",
        "STREAM", "PAUSE 2.00", "OPEN", "SEND", "HEAD",
        "STREAM", "PAUSE 3.00", "OPEN", "SEND", "HEAD", "READ", "READ",
    ]  # fmt: skip
    assert [previous_attempts(h) for h in driver.opened_heads] == [None, b"1", b"2", b"3"]
    assert all(s.sent == [(framed(b"ping"), True)] for s in driver.streams)


def test_jitter_is_within_a_fifth_of_the_backoff() -> None:
    policy = RetryPolicy(
        max_attempts=5,
        initial_backoff=1.0,
        max_backoff=10.0,
        backoff_multiplier=2.0,
        retryable_status_codes=frozenset({rpc.StatusCode.UNAVAILABLE}),
    )
    delays = []
    for _ in range(200):
        retry = CallRetry(policy, None, None, RetryBuffer(100), 100)
        delays.append(retry.retry_delay(rpc.StatusCode.UNAVAILABLE, None))
    assert all(d is not None and 0.8 <= d <= 1.2 for d in delays)
    assert max(d for d in delays if d) - min(d for d in delays if d) > 0.1  # really random


def test_a_code_not_retryable_and_the_last_attempt_end_the_call() -> None:
    call = make_call(settings({"retryPolicy": POLICY}))
    driver = Driver([trailers_only(13)])
    with pytest.raises(rpc.RpcError) as info:
        unary(call, driver)
    assert info.value.code() == rpc.StatusCode.INTERNAL and len(driver.streams) == 1

    call = make_call(settings({"retryPolicy": {**POLICY, "maxAttempts": 2}}))
    driver = Driver([trailers_only(14)] * 3)
    with pytest.raises(rpc.RpcError) as info:
        unary(call, driver)
    assert info.value.code() == rpc.StatusCode.UNAVAILABLE and len(driver.streams) == 2


def test_response_headers_commit_the_call() -> None:
    call = make_call(settings({"retryPolicy": POLICY}), Cardinality.UNARY_STREAM)
    driver = Driver([OK_HEAD, OK_HEAD], reads=[framed(b"a"), b""])
    got = drive(call._read(), lambda c: driver.perform(call, c))
    assert got == b"a" and call._retry is not None and call._retry.committed
    # The stream then fails: no retry, whatever the code.
    call._on_read_error(StreamResetError(REFUSED_STREAM, remote=True))
    assert call._status is not None and len(driver.streams) == 1


def test_a_reset_before_the_head_is_an_attempt_the_policy_retries() -> None:
    call = make_call(settings({"retryPolicy": POLICY}))
    reset = StreamResetError(0x2, remote=True)  # INTERNAL_ERROR -> INTERNAL
    call = make_call(settings({"retryPolicy": {**POLICY, "retryableStatusCodes": ["INTERNAL"]}}))
    driver = Driver([reset, OK_HEAD])
    assert unary(call, driver) == b"pong"
    assert len(driver.streams) == 2


def test_a_connection_failure_at_open_is_an_attempt_the_policy_retries() -> None:
    call = make_call(settings({"retryPolicy": POLICY}))
    down = rpc.RpcError(rpc.StatusCode.UNAVAILABLE, "failed to connect")
    driver = Driver([down, OK_HEAD])
    assert unary(call, driver) == b"pong"
    assert driver.log[:4] == ["STREAM", "OPEN", "PAUSE 1.00", "OPEN"]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(b"250", 0.25), (b"0", 0.0), (b"-1", STOP), (b"soon", STOP), (b"007", STOP),
     (b"2147483648", STOP)],
)  # fmt: skip
def test_pushback_values(value: bytes, expected: float) -> None:
    assert pushback_of([("grpc-retry-pushback-ms", value)]) == expected
    assert pushback_of([("other", "1")]) is None


def test_pushback_replaces_the_backoff_and_resets_it() -> None:
    call = make_call(settings({"retryPolicy": POLICY}))
    push = (b"grpc-retry-pushback-ms", b"500")
    driver = Driver([trailers_only(14), trailers_only(14, push), trailers_only(14), OK_HEAD])
    assert unary(call, driver) == b"pong"
    pauses = [entry for entry in driver.log if entry.startswith("PAUSE")]
    assert pauses == ["PAUSE 1.00", "PAUSE 0.50", "PAUSE 1.00"]  # back to initialBackoff


def test_pushback_stop_ends_the_retries() -> None:
    call = make_call(settings({"retryPolicy": POLICY}))
    driver = Driver([trailers_only(14, (b"grpc-retry-pushback-ms", b"-1")), OK_HEAD])
    with pytest.raises(rpc.RpcError):
        unary(call, driver)
    assert len(driver.streams) == 1


def test_throttle_tokens() -> None:
    throttle = RetryThrottle(RetryThrottling(max_tokens=4, token_ratio=0.5))
    assert throttle.allows_retry() and throttle.tokens == 4
    throttle.record_failure()
    throttle.record_failure()  # 2: at the threshold
    assert not throttle.allows_retry()
    throttle.record_success()  # 2.5
    assert throttle.allows_retry() and throttle.tokens == 2.5
    for _ in range(10):
        throttle.record_failure()
    assert throttle.tokens == 0
    for _ in range(20):
        throttle.record_success()
    assert throttle.tokens == 4


def test_throttled_channel_does_not_retry_and_counts_the_calls() -> None:
    call_settings = settings(
        {"retryPolicy": POLICY}, retryThrottling={"maxTokens": 2, "tokenRatio": 1}
    )
    call = make_call(call_settings)
    driver = Driver([trailers_only(14), OK_HEAD])
    with pytest.raises(rpc.RpcError):
        unary(call, driver)  # 2 -> 1 tokens: at the threshold, no retry
    assert len(driver.streams) == 1
    ok = make_call(call_settings)
    assert unary(ok, Driver([OK_HEAD])) == b"pong"  # success: back to 2
    throttle = call_settings.retry.throttle
    assert throttle is not None and throttle.tokens == 2


def test_retries_disabled_channel_has_no_retry_state() -> None:
    config = parse_service_config({"methodConfig": [{"name": [{}], "retryPolicy": POLICY}]})
    call_settings = CallSettings(
        authority="a",
        scheme="http",
        user_agent="t",
        compression=None,
        max_receive_message_length=None,
        max_send_message_length=None,
        service_config=config,
        retry=None,
    )
    assert make_call(call_settings)._retry is None


def test_the_method_config_sets_timeout_wait_for_ready_and_size_limits() -> None:
    call = make_call(
        settings(
            {
                "timeout": "2s",
                "waitForReady": True,
                "maxRequestMessageBytes": 10,
                "maxResponseMessageBytes": 20,
            }
        )
    )
    assert call._deadline == pytest.approx(time.monotonic() + 2)
    assert call._wait_for_ready and call._max_send == 10 and call._max_receive == 20
    shorter = ClientCallCore(
        settings({"timeout": "2s"}),
        Cardinality.UNARY_UNARY,
        b"",
        "/t.T/M",
        bytes,
        bytes,
        timeout=0.5,
        metadata=None,
        wait_for_ready=False,
    )
    assert shorter._deadline == pytest.approx(time.monotonic() + 0.5)
    assert not shorter._wait_for_ready
    other = ClientCallCore(
        settings({"timeout": "2s"}), Cardinality.UNARY_UNARY, b"", "/u.U/M", bytes, bytes,
        timeout=None, metadata=None,
    )  # fmt: skip
    assert other._deadline is None


def test_a_backoff_longer_than_the_deadline_ends_the_call_at_the_deadline() -> None:
    call = ClientCallCore(
        settings({"retryPolicy": {**POLICY, "initialBackoff": "5s", "maxBackoff": "5s"}}),
        Cardinality.UNARY_UNARY, b"ping", "/t.T/M", bytes, bytes, timeout=2.0, metadata=None,
    )  # fmt: skip
    assert call._retry is not None
    call._retry._rand = lambda low, high: 1.0
    driver = Driver([trailers_only(14), OK_HEAD])
    with pytest.raises(rpc.RpcError) as info:
        unary(call, driver)
    assert info.value.code() == rpc.StatusCode.DEADLINE_EXCEEDED
    assert [e for e in driver.log if e.startswith("PAUSE")] == ["PAUSE 2.00"]
    assert len(driver.streams) == 1


# --- request streams: kept, replayed, committed when too big --------------------------------


def stream_call(call_settings: Any, requests: list[bytes]) -> tuple[ClientCallCore, Driver]:
    call = make_call(call_settings, Cardinality.STREAM_UNARY, request=iter(requests))
    return call, Driver([trailers_only(14), OK_HEAD])


def run_stream_call(call: ClientCallCore, driver: Driver) -> Any:
    """The reader, then the writer when the reader asks for it (as a shell's task would)."""

    def perform(command: tuple[Any, ...]) -> Any:
        if command[0] == START_WRITER:
            driver.log.append("START_WRITER")
            drive(call._write_requests(call._request), perform)
            return None
        if command[0] == STREAM:
            driver.log.append("STREAM")
            return drive(call._open_stream(), perform)
        return driver.perform(call, command)

    return drive(call._single_response(), perform)


def test_a_request_stream_is_replayed_on_the_retry() -> None:
    call, driver = stream_call(settings({"retryPolicy": POLICY}), [b"a", b"b", b"c"])
    assert run_stream_call(call, driver) == b"pong"
    first, second = driver.streams
    sent = [(framed(m), False) for m in (b"a", b"b", b"c")]
    assert first.sent == sent and first.ended
    assert second.sent == sent and second.ended
    assert previous_attempts(driver.opened_heads[1]) == b"1"


def test_a_request_stream_answered_at_once_is_retried_with_every_request_and_its_end() -> None:
    # The server fails the first attempt before reading a request: the writer finds its stream
    # answered, stops, and the next attempt's opener replays and restarts it.
    call = make_call(
        settings({"retryPolicy": POLICY}), Cardinality.STREAM_UNARY, iter([b"a", b"b", b"c"])
    )
    driver = Driver([trailers_only(14), OK_HEAD], early=True)
    assert run_stream_call(call, driver) == b"pong"
    first, second = driver.streams
    assert first.sent == [] and first.resets == [CANCEL]
    assert second.sent == [(framed(m), False) for m in (b"a", b"b", b"c")] and second.ended
    assert driver.log.count("START_WRITER") == 2


def test_a_request_stream_beyond_the_per_call_buffer_commits_and_is_not_retried() -> None:
    small = ChannelRetry(None, per_call_limit=12)
    call, driver = stream_call(settings({"retryPolicy": POLICY}, small), [b"a", b"b", b"c"])
    with pytest.raises(rpc.RpcError):
        run_stream_call(call, driver)
    assert len(driver.streams) == 1 and call._retry is not None and call._retry.committed
    assert small.buffer.used == 0


def test_the_channel_buffer_is_shared_and_given_back() -> None:
    shared = ChannelRetry(None, channel_limit=12)
    assert shared.buffer.reserve(10)
    call, driver = stream_call(settings({"retryPolicy": POLICY}, shared), [b"a"])
    with pytest.raises(rpc.RpcError):
        run_stream_call(call, driver)  # 6 bytes do not fit beside the 10: committed
    assert len(driver.streams) == 1 and shared.buffer.used == 10
    shared.buffer.release(10)
    call, driver = stream_call(settings({"retryPolicy": POLICY}, shared), [b"a"])
    assert run_stream_call(call, driver) == b"pong"
    assert shared.buffer.used == 0  # released when the call ended


def test_a_refused_request_stream_is_replayed_transparently_without_a_policy() -> None:
    call_settings = settings({})
    call = make_call(call_settings, Cardinality.STREAM_UNARY, request=iter([b"a", b"b"]))
    refused = StreamResetError(REFUSED_STREAM, remote=True)
    driver = Driver([refused, OK_HEAD])
    assert run_stream_call(call, driver) == b"pong"
    second = driver.streams[1]
    assert second.sent == [(framed(b"a"), False), (framed(b"b"), False)] and second.ended
    assert previous_attempts(driver.opened_heads[1]) is None  # not an attempt of the policy


# --- hedging --------------------------------------------------------------------------------

HEDGE = {"maxAttempts": 3, "hedgingDelay": "0.5s", "nonFatalStatusCodes": ["UNAVAILABLE"]}


def test_hedges_go_out_a_delay_apart_and_the_first_answer_wins() -> None:
    call = make_call(settings({"hedgingPolicy": HEDGE}))
    # Attempt 0 never answers; after 0.5 s attempt 1 goes out, and answers first.
    driver = Driver([None, OK_HEAD], arrivals=["timeout", 1])
    assert unary(call, driver) == b"pong"
    assert driver.log == [
        "OPEN", "SEND", "WAIT 1 0.5",
        "OPEN", "SEND", "WAIT 2 0.5",
        "READ", "READ",
    ]  # fmt: skip
    slow, fast = driver.streams
    assert slow.resets == [CANCEL] and fast.resets == []
    assert call._stream is fast
    assert [previous_attempts(h) for h in driver.opened_heads] == [None, b"1"]


def test_a_non_fatal_failure_sends_the_next_hedge_at_once() -> None:
    call = make_call(settings({"hedgingPolicy": {**HEDGE, "hedgingDelay": "60s"}}))
    driver = Driver([trailers_only(14), OK_HEAD], arrivals=[0, 1])
    assert unary(call, driver) == b"pong"
    assert driver.log == [
        "OPEN", "SEND", "WAIT 1 60.0", "OPEN", "SEND", "WAIT 1 60.0", "READ", "READ",
    ]  # fmt: skip


def test_a_fatal_status_cancels_the_other_hedges() -> None:
    call = make_call(settings({"hedgingPolicy": HEDGE}))
    driver = Driver([None, trailers_only(3)], arrivals=["timeout", 1])
    with pytest.raises(rpc.RpcError) as info:
        unary(call, driver)
    assert info.value.code() == rpc.StatusCode.INVALID_ARGUMENT
    assert driver.streams[0].resets == [CANCEL]


def test_when_every_hedge_fails_the_last_status_ends_the_call() -> None:
    call = make_call(settings({"hedgingPolicy": {**HEDGE, "maxAttempts": 2}}))
    driver = Driver([trailers_only(14), trailers_only(14)], arrivals=[0, 1])
    with pytest.raises(rpc.RpcError) as info:
        unary(call, driver)
    assert info.value.code() == rpc.StatusCode.UNAVAILABLE
    assert len(driver.streams) == 2


def test_hedging_pushback_stop_sends_no_more_hedges() -> None:
    call = make_call(settings({"hedgingPolicy": HEDGE}))
    stop = trailers_only(14, (b"grpc-retry-pushback-ms", b"-1"))
    driver = Driver([stop, OK_HEAD], arrivals=[0])
    with pytest.raises(rpc.RpcError):
        unary(call, driver)
    assert len(driver.streams) == 1


def test_hedging_pushback_delays_the_next_hedge() -> None:
    call = make_call(settings({"hedgingPolicy": HEDGE}))
    push = trailers_only(14, (b"grpc-retry-pushback-ms", b"2000"))
    driver = Driver([push, OK_HEAD], arrivals=[0, 1])
    assert unary(call, driver) == b"pong"
    assert driver.log[:6] == ["OPEN", "SEND", "WAIT 1 0.5", "PAUSE 2.00", "OPEN", "SEND"]


class Stepper:
    """Drives a program one command at a time, so that a test can interleave the reader's
    program with the application's writes (as the shells' concurrent writer does)."""

    def __init__(self, program: Program, perform: Callable[[tuple[Any, ...]], Any]) -> None:
        self.program = program
        self.perform = perform
        self.result: Any = None
        self.command: tuple[Any, ...] = program.send(None)

    def step(self) -> None:
        result: Any = None
        error: Optional[Exception] = None
        try:
            result = self.perform(self.command)
            if self.command[0] == PAUSE:
                _skip(self.command[1])
        except Exception as exc:
            error = exc
        try:
            self.command = self.program.send(result) if error is None else self.program.throw(error)
        except StopIteration as stop:
            self.result, self.command = stop.value, (None,)

    def run_until(self, op: int) -> None:
        while self.command[0] != op:
            assert self.command[0] is not None, "the program ended"
            self.step()

    def finish(self) -> Any:
        while self.command[0] is not None:
            self.step()
        return self.result


def write(call: ClientCallCore, driver: Driver, message: bytes) -> None:
    def perform(command: tuple[Any, ...]) -> Any:
        if command[0] == STREAM:
            driver.log.append("STREAM")
            return drive(call._open_stream(), perform)
        return driver.perform(call, command)

    drive(call._write(message, False, True), perform)


def test_a_hedged_client_stream_replays_kept_requests_and_sends_new_ones_to_every_attempt() -> None:
    call = make_call(settings({"hedgingPolicy": HEDGE}), Cardinality.STREAM_UNARY, request=None)
    driver = Driver([None, OK_HEAD], arrivals=["timeout", 1])
    write(call, driver, b"a")  # before the call is read: kept, the first attempt replays it
    reader = Stepper(call._single_response(), lambda c: driver.perform(call, c))
    reader.run_until(WAIT_ANY)
    write(call, driver, b"b")  # to the one attempt
    reader.step()  # the hedging delay passes: the second attempt gets "a", "b" replayed
    reader.run_until(WAIT_ANY)
    write(call, driver, b"c")  # to both attempts
    drive(call._end_requests(), lambda c: driver.perform(call, c))
    assert reader.finish() == b"pong"  # the second attempt answers first
    slow, fast = driver.streams
    every = [(framed(m), False) for m in (b"a", b"b", b"c")]
    assert slow.sent == every and fast.sent == every and slow.ended and fast.ended
    assert slow.resets == [CANCEL] and fast.resets == [] and call._stream is fast
    assert [previous_attempts(h) for h in driver.opened_heads] == [None, b"1"]
    # (A WAIT is logged when the reader performs it, after the writes made while it waits.)
    assert driver.log == [
        "OPEN", "SEND_ON 0",
        "SEND_ON 0", "WAIT 1 0.5",
        "OPEN", "SEND_ON 1", "SEND_ON 1",
        "SEND_ON 0", "SEND_ON 1", "WAIT 2 0.5",
        "READ", "READ",
    ]  # fmt: skip
    assert call._retry is not None and call._retry._buffer.used == 0


def test_a_bidi_stream_failing_non_fatally_is_hedged_at_once_with_every_request() -> None:
    call = make_call(
        settings({"hedgingPolicy": {**HEDGE, "hedgingDelay": "60s"}}),
        Cardinality.STREAM_STREAM,
        iter([b"a", b"b", b"c"]),
    )
    driver = Driver([trailers_only(14), OK_HEAD], arrivals=[0, 1])

    def perform(command: tuple[Any, ...]) -> Any:
        if command[0] == START_WRITER:  # the writer runs to its end at once here
            driver.log.append("START_WRITER")
            drive(call._write_requests(call._request), perform)
            return None
        return driver.perform(call, command)

    assert drive(call._read(), perform) == b"pong"
    first, second = driver.streams
    every = [(framed(m), False) for m in (b"a", b"b", b"c")]
    assert first.sent == every and second.sent == every and second.ended
    assert driver.log.count("START_WRITER") == 1 and driver.log.count("OPEN") == 2


def test_a_hedged_request_stream_outgrowing_the_buffer_commits_to_the_fullest_attempt() -> None:
    small = ChannelRetry(None, per_call_limit=12)  # two requests of 6 bytes fit, not three
    call = make_call(
        settings({"hedgingPolicy": HEDGE}, small), Cardinality.STREAM_UNARY, request=None
    )
    driver = Driver([OK_HEAD, None, None], arrivals=["timeout", "timeout"])
    write(call, driver, b"a")
    reader = Stepper(call._single_response(), lambda c: driver.perform(call, c))
    reader.run_until(WAIT_ANY)
    reader.step()
    reader.run_until(WAIT_ANY)  # two attempts, each sent "a"
    write(call, driver, b"b")
    write(call, driver, b"c")  # too big for the buffer: committed to attempt 0, 1 cancelled
    drive(call._end_requests(), lambda c: driver.perform(call, c))
    assert reader.finish() == b"pong"
    first, second = driver.streams
    assert first.sent == [(framed(m), False) for m in (b"a", b"b", b"c")] and first.ended
    assert second.sent == [(framed(m), False) for m in (b"a", b"b")] and not second.ended
    assert second.resets == [CANCEL] and first.resets == []
    assert len(driver.streams) == 2 and driver.log.count("OPEN") == 2  # no third hedge
    assert call._retry is not None and call._retry.committed and small.buffer.used == 0


def test_a_hedged_request_stream_outgrowing_the_buffer_with_no_attempt_in_flight_ends() -> None:
    # The only attempt failed non-fatally and the next waits for the server's pushback when the
    # requests outgrow the buffer: no attempt may start any more, the failure is the call's.
    small = ChannelRetry(None, per_call_limit=6)
    call = make_call(
        settings({"hedgingPolicy": HEDGE}, small), Cardinality.STREAM_UNARY, request=None
    )
    push = trailers_only(14, (b"grpc-retry-pushback-ms", b"2000"))
    driver = Driver([push, OK_HEAD], arrivals=[0])
    write(call, driver, b"a")
    reader = Stepper(call._single_response(), lambda c: driver.perform(call, c))
    reader.run_until(PAUSE)
    write(call, driver, b"b")  # too big: committed, and nothing in flight
    with pytest.raises(rpc.RpcError) as info:
        reader.finish()
    assert info.value.code() == rpc.StatusCode.UNAVAILABLE
    assert len(driver.streams) == 1 and small.buffer.used == 0


def test_a_hedged_request_stream_too_big_before_it_starts_is_one_attempt() -> None:
    small = ChannelRetry(None, per_call_limit=6)
    call = make_call(
        settings({"hedgingPolicy": HEDGE}, small), Cardinality.STREAM_UNARY, request=None
    )
    driver = Driver([OK_HEAD, OK_HEAD])
    write(call, driver, b"a")
    write(call, driver, b"b")  # committed: the stream opens now and gets "a" replayed first
    drive(call._end_requests(), lambda c: driver.perform(call, c))
    assert unary(call, driver) == b"pong"
    (only,) = driver.streams
    assert only.sent == [(framed(b"a"), False), (framed(b"b"), False)] and only.ended
    assert small.buffer.used == 0


def test_a_server_stream_is_hedged_too() -> None:
    call = make_call(settings({"hedgingPolicy": HEDGE}), Cardinality.UNARY_STREAM)
    driver = Driver([None, OK_HEAD], arrivals=["timeout", 1])
    assert drive(call._read(), lambda c: driver.perform(call, c)) == b"pong"
    assert driver.streams[0].resets == [CANCEL] and call._stream is driver.streams[1]
