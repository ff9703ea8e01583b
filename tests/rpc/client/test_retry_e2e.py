"""Retries and hedging end to end (gRFC A6), on both APIs, against an h2rpc and a grpcio server.

The backends fail scripted attempts and record the ``grpc-previous-rpc-attempts`` header each
attempt carried; the parity tests run grpcio's own client with the same service config against
the same servers and expect the same attempts.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections.abc import Iterator
from typing import Any, Optional

import pytest

import rpc
from tests.rpc.helpers import run, wait_until

from .retry_backend import BACKENDS, Record

try:
    import grpc
except ImportError:  # PyPy: the h2rpc-backed tests still run
    grpc = None

needs_grpcio = pytest.mark.skipif(grpc is None, reason="grpcio is not installed")

RETRY = {
    "maxAttempts": 4,
    "initialBackoff": "0.01s",
    "maxBackoff": "0.05s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}
_keys = itertools.count()


def service_config(policy: Optional[dict[str, Any]] = None, **extra: Any) -> str:
    method: dict[str, Any] = {"name": [{"service": "t.Retry"}]}
    if policy is not None:
        method.update(policy)
    return json.dumps({"methodConfig": [method], **extra})


def script(**fields: Any) -> bytes:
    return json.dumps({"key": f"k{next(_keys)}", **fields}).encode()


def key_of(request: bytes) -> str:
    return str(json.loads(request)["key"])


@pytest.fixture(params=sorted(BACKENDS))
def backend(request: pytest.FixtureRequest) -> Iterator[tuple[str, Record]]:
    if request.param == "grpcio" and grpc is None:
        pytest.skip("grpcio is not installed")
    with BACKENDS[request.param]() as served:
        yield served


# --- the three ways h2rpc calls: asyncio, blocking, blocking future -----------------------------


#: In a request list: the client's request iterator pauses here (a hedge goes out meanwhile).
PAUSE = None
PAUSE_SECONDS = 0.5


def paced(requests: list[Any]) -> Iterator[bytes]:
    for request in requests:
        if request is PAUSE:
            time.sleep(PAUSE_SECONDS)  # (the blocking writer's own thread)
        else:
            yield request


async def paced_async(requests: list[Any]) -> Any:
    for request in requests:
        if request is PAUSE:
            await asyncio.sleep(PAUSE_SECONDS)
        else:
            yield request


def call_async(target: str, method: str, request: Any, **options: Any) -> Any:
    async def main() -> Any:
        async with rpc.Channel(target, **options) as channel:
            if method == "ClientStream":
                return await channel.stream_unary("/t.Retry/ClientStream")(
                    paced_async(request) if PAUSE in request else iter(request), timeout=10
                )
            if method == "Bidi":
                call = channel.stream_stream("/t.Retry/Bidi")(paced_async(request), timeout=10)
                return [message async for message in call]
            if method == "ServerStream":
                call = channel.unary_stream("/t.Retry/ServerStream")(request, timeout=10)
                got = []
                try:
                    async for message in call:
                        got.append(message)
                except rpc.RpcError as exc:
                    return got, exc.code()
                return got, rpc.StatusCode.OK
            return await channel.unary_unary(f"/t.Retry/{method}")(request, timeout=10)

    return run(main())


def call_sync(target: str, method: str, request: Any, **options: Any) -> Any:
    with rpc.sync.Channel(target, **options) as channel:
        if method == "ClientStream":
            return channel.stream_unary("/t.Retry/ClientStream")(paced(request), timeout=10)
        if method == "Bidi":
            return list(channel.stream_stream("/t.Retry/Bidi")(paced(request), timeout=10))
        if method == "ServerStream":
            got = []
            try:
                for message in channel.unary_stream("/t.Retry/ServerStream")(request, timeout=10):
                    got.append(message)
            except rpc.RpcError as exc:
                return got, exc.code()
            return got, rpc.StatusCode.OK
        return channel.unary_unary(f"/t.Retry/{method}")(request, timeout=10)


def call_future(target: str, method: str, request: Any, **options: Any) -> Any:
    with rpc.sync.Channel(target, **options) as channel:
        if method == "ClientStream":
            future = channel.stream_unary("/t.Retry/ClientStream").future(
                paced(request), timeout=10
            )
        elif method in ("ServerStream", "Bidi"):  # (no future of a response stream)
            return call_sync(target, method, request, **options)
        else:
            future = channel.unary_unary(f"/t.Retry/{method}").future(request, timeout=10)
        return future.result(timeout=15)


CLIENTS = {"async": call_async, "sync": call_sync, "future": call_future}


@pytest.fixture(params=sorted(CLIENTS))
def client(request: pytest.FixtureRequest) -> Any:
    return CLIENTS[request.param]


def code_of(fn: Any) -> rpc.StatusCode:
    with pytest.raises(rpc.RpcError) as info:
        fn()
    return info.value.code()


# --- retry policy ---------------------------------------------------------------------------


def test_failed_attempts_are_retried_with_the_previous_attempts_header(
    backend: tuple[str, Record], client: Any
) -> None:
    target, record = backend
    request = script(fail=2)
    config = service_config({"retryPolicy": RETRY})
    assert client(target, "Unary", request, service_config=config) == b"ok:2"
    assert record.attempts[key_of(request)] == [None, "1", "2"]


def test_a_non_retryable_code_is_not_retried(backend: tuple[str, Record], client: Any) -> None:
    target, record = backend
    request = script(fail=2, code=3)
    config = service_config({"retryPolicy": RETRY})
    code = code_of(lambda: client(target, "Unary", request, service_config=config))
    assert code == rpc.StatusCode.INVALID_ARGUMENT
    assert record.attempts[key_of(request)] == [None]


def test_attempts_stop_at_max_attempts(backend: tuple[str, Record], client: Any) -> None:
    target, record = backend
    request = script(fail=10)
    config = service_config({"retryPolicy": {**RETRY, "maxAttempts": 3}})
    code = code_of(lambda: client(target, "Unary", request, service_config=config))
    assert code == rpc.StatusCode.UNAVAILABLE
    assert record.attempts[key_of(request)] == [None, "1", "2"]


def test_pushback_replaces_the_backoff(backend: tuple[str, Record], client: Any) -> None:
    # A 60 s backoff would outlive the 10 s deadline: only the 20 ms pushback lets it finish.
    target, record = backend
    request = script(fail=1, pushback="20")
    slow = {**RETRY, "initialBackoff": "60s", "maxBackoff": "60s"}
    config = service_config({"retryPolicy": slow})
    assert client(target, "Unary", request, service_config=config) == b"ok:1"
    assert record.attempts[key_of(request)] == [None, "1"]


@pytest.mark.parametrize("pushback", ["-1", "soon"])
def test_pushback_that_says_stop_ends_the_retries(
    backend: tuple[str, Record], client: Any, pushback: str
) -> None:
    target, record = backend
    request = script(fail=2, pushback=pushback)
    config = service_config({"retryPolicy": RETRY})
    code = code_of(lambda: client(target, "Unary", request, service_config=config))
    assert code == rpc.StatusCode.UNAVAILABLE
    assert record.attempts[key_of(request)] == [None]


def test_throttling_stops_retrying(backend: tuple[str, Record]) -> None:
    # 3 tokens, threshold 1.5: the first failure leaves 2 (a retry), the second 1 (no more);
    # the next call's first failure leaves 0: no retry at all.
    target, record = backend
    config = service_config(
        {"retryPolicy": RETRY}, retryThrottling={"maxTokens": 3, "tokenRatio": 0.1}
    )
    with rpc.sync.Channel(target, service_config=config) as channel:
        method = channel.unary_unary("/t.Retry/Unary")
        first, second = script(fail=10), script(fail=10)
        assert code_of(lambda: method(first, timeout=10)) == rpc.StatusCode.UNAVAILABLE
        assert code_of(lambda: method(second, timeout=10)) == rpc.StatusCode.UNAVAILABLE
    assert record.attempts[key_of(first)] == [None, "1"]
    assert record.attempts[key_of(second)] == [None]


def test_retries_off_by_option(backend: tuple[str, Record], client: Any) -> None:
    target, record = backend
    request = script(fail=1)
    config = service_config({"retryPolicy": RETRY})
    options = [("grpc.service_config", config), ("grpc.enable_retries", 0)]
    code = code_of(lambda: client(target, "Unary", request, options=options))
    assert code == rpc.StatusCode.UNAVAILABLE
    assert record.attempts[key_of(request)] == [None]


def test_a_client_stream_is_replayed_in_full(backend: tuple[str, Record], client: Any) -> None:
    target, record = backend
    first = script(fail=2)
    requests = [first] + [f"part{i}".encode() for i in range(5)]
    config = service_config({"retryPolicy": RETRY})
    assert client(target, "ClientStream", requests, service_config=config) == b"got:6:2"
    key = key_of(first)
    sent = [r.decode() for r in requests]
    assert record.streamed[key] == [sent, sent, sent]
    assert record.attempts[key] == [None, "1", "2"]


def test_a_client_stream_beyond_the_retry_buffer_is_not_retried(
    backend: tuple[str, Record], client: Any
) -> None:
    target, record = backend
    first = script(fail=1)
    requests = [first] + [b"x" * 100 for _ in range(3)]
    config = service_config({"retryPolicy": RETRY})
    code = code_of(
        lambda: client(
            target,
            "ClientStream",
            requests,
            options=[("grpc.service_config", config), ("grpc.per_rpc_retry_buffer_size", 150)],
        )
    )
    assert code == rpc.StatusCode.UNAVAILABLE
    assert record.attempts[key_of(first)] == [None]


def test_a_unary_request_beyond_the_retry_buffer_is_not_retried(
    backend: tuple[str, Record], client: Any
) -> None:
    target, record = backend
    request = script(fail=1, pad="x" * 200)
    config = service_config({"retryPolicy": RETRY})
    options = [("grpc.service_config", config), ("grpc.per_rpc_retry_buffer_size", 100)]
    code = code_of(lambda: client(target, "Unary", request, options=options))
    assert code == rpc.StatusCode.UNAVAILABLE
    assert record.attempts[key_of(request)] == [None]


def test_a_server_stream_is_retried_before_its_first_response_only(
    backend: tuple[str, Record], client: Any
) -> None:
    target, record = backend
    config = service_config({"retryPolicy": RETRY})
    early = script(fail=1)
    assert client(target, "ServerStream", early, service_config=config) == (
        [b"first:1", b"second:1"],
        rpc.StatusCode.OK,
    )
    late = script(fail_after_first=True)
    got, code = client(target, "ServerStream", late, service_config=config)
    assert (got, code) == ([b"first:0"], rpc.StatusCode.UNAVAILABLE)
    assert record.attempts[key_of(early)] == [None, "1"]
    assert record.attempts[key_of(late)] == [None]


def test_the_method_config_timeout_applies(backend: tuple[str, Record], client: Any) -> None:
    target, _ = backend
    request = script(slow_first=True)
    config = service_config({"timeout": "0.2s"})
    code = code_of(lambda: client(target, "Unary", request, service_config=config))
    assert code == rpc.StatusCode.DEADLINE_EXCEEDED


def test_the_deadline_spans_all_attempts(backend: tuple[str, Record], client: Any) -> None:
    # Backoff 0.15-0.25 s, then 0.3 s...: a 0.5 s deadline (from the config) leaves room for
    # two or three attempts, never the ten the script would fail.
    target, record = backend
    request = script(fail=10)
    policy = {**RETRY, "maxAttempts": 5, "initialBackoff": "0.2s", "maxBackoff": "1s"}
    config = service_config({"retryPolicy": policy, "timeout": "0.5s"})
    code = code_of(lambda: client(target, "Unary", request, service_config=config))
    assert code == rpc.StatusCode.DEADLINE_EXCEEDED
    assert 2 <= len(record.attempts[key_of(request)]) <= 3


# --- hedging --------------------------------------------------------------------------------

HEDGE = {"maxAttempts": 3, "hedgingDelay": "0.2s", "nonFatalStatusCodes": ["UNAVAILABLE"]}


def test_hedging_the_first_answer_wins_and_the_other_attempt_is_cancelled(
    backend: tuple[str, Record], client: Any
) -> None:
    target, record = backend
    request = script(slow_first=True)
    # Two attempts at most: on a busy machine a third could go out before the second answers.
    config = service_config({"hedgingPolicy": {**HEDGE, "maxAttempts": 2}})
    assert client(target, "Unary", request, service_config=config) == b"ok:1"
    key = key_of(request)
    assert record.attempts[key] == [None, "1"]
    wait_until(lambda: record.cancelled[key] == [0], timeout=5)


def test_hedging_non_fatal_failures_bring_the_next_attempt_forward(
    backend: tuple[str, Record], client: Any
) -> None:
    # 60 s between hedges: only the non-fatal failures start attempts two and three at once.
    target, record = backend
    request = script(fail=2)
    config = service_config({"hedgingPolicy": {**HEDGE, "hedgingDelay": "60s"}})
    assert client(target, "Unary", request, service_config=config) == b"ok:2"
    assert record.attempts[key_of(request)] == [None, "1", "2"]


def test_hedging_a_fatal_status_ends_the_call(backend: tuple[str, Record], client: Any) -> None:
    target, record = backend
    request = script(fail=2, code=3)
    config = service_config({"hedgingPolicy": HEDGE})
    code = code_of(lambda: client(target, "Unary", request, service_config=config))
    assert code == rpc.StatusCode.INVALID_ARGUMENT
    assert record.attempts[key_of(request)] == [None]


def test_hedging_a_client_stream_sends_every_request_to_every_attempt(
    backend: tuple[str, Record], client: Any
) -> None:
    # The first attempt reads every request, then answers nothing: the hedge 0.2 s later gets
    # the first two replayed, the last two (after the iterator's pause) go to both attempts.
    target, record = backend
    first = script(slow_first=True)
    requests = [first, b"a", b"b", PAUSE, b"c", b"d"]
    config = service_config({"hedgingPolicy": {**HEDGE, "maxAttempts": 2}})
    assert client(target, "ClientStream", requests, service_config=config) == b"got:5:1"
    key = key_of(first)
    sent = [r.decode() for r in requests if r is not PAUSE]
    assert record.attempts[key] == [None, "1"]
    wait_until(lambda: len(record.streamed[key]) == 2, timeout=5)
    assert record.streamed[key] == [sent, sent]
    wait_until(lambda: record.cancelled[key] == [0], timeout=5)


def test_hedging_a_client_stream_failing_non_fatally_replays_it_at_once(
    backend: tuple[str, Record], client: Any
) -> None:
    target, record = backend
    first = script(fail=1)
    requests = [first, b"a", b"b"]
    config = service_config({"hedgingPolicy": {**HEDGE, "hedgingDelay": "60s"}})
    assert client(target, "ClientStream", requests, service_config=config) == b"got:3:1"
    sent = [r.decode() for r in requests]
    assert record.streamed[key_of(first)] == [sent, sent]


def test_hedging_a_bidi_call_the_hedge_answers_every_request(
    backend: tuple[str, Record], client: Any
) -> None:
    target, record = backend
    first = script(slow_first=True)
    requests = [first, b"a", b"b"]
    config = service_config({"hedgingPolicy": {**HEDGE, "maxAttempts": 2}})
    assert client(target, "Bidi", requests, service_config=config) == [b"1:0", b"1:1", b"1:2"]
    key = key_of(first)
    sent = [r.decode() for r in requests]
    assert record.attempts[key] == [None, "1"]
    wait_until(lambda: len(record.streamed[key]) == 2, timeout=5)
    assert record.streamed[key] == [sent, sent]
    wait_until(lambda: record.cancelled[key] == [0], timeout=5)


def test_hedging_a_request_stream_beyond_the_retry_buffer_stops_hedging(
    backend: tuple[str, Record], client: Any
) -> None:
    # 3 requests of 100 bytes outgrow a 150-byte buffer long before the 0.3 s hedging delay:
    # the call commits to its one attempt, which answers (slowly, 1 s) with no hedge sent.
    target, record = backend
    first = script(slow_first=True, slow=1.0)
    requests = [first] + [b"x" * 100 for _ in range(3)]
    config = service_config({"hedgingPolicy": {**HEDGE, "hedgingDelay": "0.3s"}})
    options = [("grpc.service_config", config), ("grpc.per_rpc_retry_buffer_size", 150)]
    assert client(target, "ClientStream", requests, options=options) == b"slow"
    key = key_of(first)
    assert record.attempts[key] == [None]
    assert record.streamed[key] == [[r.decode() for r in requests]]


# --- parity with grpcio's own client ------------------------------------------------------------


def grpcio_call(
    target: str, method: str, request: Any, config: str, extra: Optional[list[Any]] = None
) -> Any:
    options = [("grpc.service_config", config), *(extra or [])]
    with grpc.insecure_channel(target, options=options) as channel:
        try:
            if method == "ClientStream":
                return channel.stream_unary("/t.Retry/ClientStream")(iter(request), timeout=10)
            return channel.unary_unary(f"/t.Retry/{method}")(request, timeout=10)
        except grpc.RpcError as exc:
            return rpc.StatusCode(exc.code())


@needs_grpcio
@pytest.mark.parametrize(
    ("fields", "policy"),
    [
        ({"fail": 2}, RETRY),
        ({"fail": 2, "code": 3}, RETRY),
        ({"fail": 10}, {**RETRY, "maxAttempts": 3}),
        ({"fail": 2, "pushback": "-1"}, RETRY),
        ({"fail": 1, "pushback": "20"}, {**RETRY, "initialBackoff": "60s", "maxBackoff": "60s"}),
    ],
)
def test_parity_with_grpcio_client(
    backend: tuple[str, Record], fields: dict[str, Any], policy: dict[str, Any]
) -> None:
    target, record = backend
    config = service_config({"retryPolicy": policy})
    theirs, ours = script(**fields), script(**fields)
    their_answer = grpcio_call(target, "Unary", theirs, config)
    try:
        our_answer: Any = call_sync(target, "Unary", ours, service_config=config)
    except rpc.RpcError as exc:
        our_answer = exc.code()
    assert our_answer == their_answer
    assert record.attempts[key_of(ours)] == record.attempts[key_of(theirs)]


@needs_grpcio
@pytest.mark.parametrize("method", ["Unary", "ClientStream"])
def test_parity_with_grpcio_client_beyond_the_retry_buffer(
    backend: tuple[str, Record], method: str
) -> None:
    target, record = backend
    config = service_config({"retryPolicy": RETRY})
    buffer = [("grpc.per_rpc_retry_buffer_size", 100)]
    answers, keys = [], []
    for ours in (False, True):
        first = script(fail=1, pad="x" * 200)
        request: Any = first if method == "Unary" else [first, b"y"]
        keys.append(key_of(first))
        if ours:
            try:
                answers.append(
                    call_sync(
                        target, method, request, options=[*buffer, ("grpc.service_config", config)]
                    )
                )
            except rpc.RpcError as exc:
                answers.append(exc.code())
        else:
            answers.append(grpcio_call(target, method, request, config, buffer))
    assert answers[0] == answers[1] == rpc.StatusCode.UNAVAILABLE
    assert record.attempts[keys[0]] == record.attempts[keys[1]] == [None]


@needs_grpcio
def test_parity_with_grpcio_client_stream_replay(backend: tuple[str, Record]) -> None:
    target, record = backend
    config = service_config({"retryPolicy": RETRY})
    theirs, ours = script(fail=1), script(fail=1)
    parts = [b"a", b"b", b"c"]
    assert grpcio_call(target, "ClientStream", [theirs, *parts], config) == call_sync(
        target, "ClientStream", [ours, *parts], service_config=config
    )
    assert [len(s) for s in record.streamed[key_of(ours)]] == [
        len(s) for s in record.streamed[key_of(theirs)]
    ]
    assert record.attempts[key_of(ours)] == record.attempts[key_of(theirs)] == [None, "1"]


def test_async_write_calls_are_replayed(backend: tuple[str, Record]) -> None:
    """``write()`` without a request iterator: kept requests go out again on the retry."""
    target, record = backend
    config = service_config({"retryPolicy": RETRY})
    first = script(fail=1)

    async def main() -> Any:
        async with rpc.Channel(target, service_config=config) as channel:
            call = channel.stream_unary("/t.Retry/ClientStream")(timeout=10)
            for part in (first, b"a", b"b"):
                await call.write(part)
            await call.done_writing()
            return await call

    assert run(main()) == b"got:3:1"
    assert record.streamed[key_of(first)] == [[first.decode(), "a", "b"]] * 2


def test_asyncio_is_not_blocked_by_a_backoff() -> None:
    """The backoff is a PAUSE the asyncio driver awaits: the loop goes on meanwhile."""

    async def main() -> None:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.01)
                ticks += 1

        task = asyncio.ensure_future(tick())
        with BACKENDS["h2rpc"]() as (target, _):
            request = script(fail=1)
            policy = {**RETRY, "initialBackoff": "0.3s", "maxBackoff": "0.3s"}
            async with rpc.Channel(
                target, service_config=service_config({"retryPolicy": policy})
            ) as channel:
                assert await channel.unary_unary("/t.Retry/Unary")(request) == b"ok:1"
        task.cancel()
        assert ticks > 5

    run(main())


def test_cancel_during_a_backoff_ends_the_call_at_once() -> None:
    """A 60 s backoff: cancel() (from another task or thread) ends the call without waiting."""
    policy = {**RETRY, "initialBackoff": "60s", "maxBackoff": "60s"}
    config = service_config({"retryPolicy": policy})
    with BACKENDS["h2rpc"]() as (target, record):

        async def main() -> None:
            async with rpc.Channel(target, service_config=config) as channel:
                call = channel.unary_unary("/t.Retry/Unary")(script(fail=1))
                asyncio.get_running_loop().call_later(0.3, call.cancel)
                with pytest.raises(rpc.RpcError) as info:
                    await call
                assert info.value.code() == rpc.StatusCode.CANCELLED

        run(main(), timeout=10)

        with rpc.sync.Channel(target, service_config=config) as channel:
            call = channel.unary_unary("/t.Retry/Unary").future(script(fail=1))
            time.sleep(0.3)
            assert call.cancel()
            with pytest.raises(rpc.sync.FutureCancelledError):
                call.result(timeout=10)

            request = script(fail=1)
            method = channel.unary_unary("/t.Retry/Unary")
            outcome: list[Any] = []
            with_call = threading.Thread(
                target=lambda: outcome.append(code_of(lambda: method.with_call(request)))
            )
            with_call.start()
            wait_until(lambda: len(record.attempts[key_of(request)]) == 1)
            time.sleep(0.1)  # into the backoff
            pending = channel.unary_unary("/t.Retry/Unary").future(script(fail=1))
            time.sleep(0.3)
            channel.close()  # calls backing off end too (CANCELLED: channel closed)
            assert pending.exception(timeout=10).code() == rpc.StatusCode.CANCELLED
            with_call.join(10)
            assert not with_call.is_alive() and outcome == [rpc.StatusCode.CANCELLED]

        async def closed() -> None:
            async with rpc.Channel(target, service_config=config) as channel:
                call = channel.unary_unary("/t.Retry/Unary")(script(fail=1))
                asyncio.get_running_loop().call_later(0.3, asyncio.ensure_future, channel.close())
                assert await call.code() == rpc.StatusCode.CANCELLED

        run(closed(), timeout=10)
