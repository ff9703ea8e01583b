"""The gRPC interop test client on grpcio: the reference h2rpc's interop server is checked against.

Usage (from the repository root), the same flags as ``python -m rpc.interop.client``::

    python -m tests.interop_official.grpcio_client --server_host 127.0.0.1 --server_port P \\
        --test_case all [--use_tls --use_test_ca --ca_file ca.pem --server_host_override NAME] \\
        [--report_json PATH]

Written independently of h2rpc's client (only the generated ``grpc.testing`` modules are shared),
on grpcio's blocking API, each case on a new channel. Compressed flags of responses are checked
(see ``_grpcio_common``). One limit of grpcio's Python API: it cannot send a single request
uncompressed in a compressed call, so client_compressed_streaming sends its second message
(``expect_compressed: false``) compressed too. The descriptions require servers to check only
``expect_compressed: true``, which h2rpc's server does.
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
import time
import traceback
from collections.abc import Iterator, Sequence
from typing import Any, Callable, Optional

import grpc

from rpc.interop.proto import empty_pb2, messages_pb2
from tests.interop_official._grpcio_common import (
    KEEP_COMPRESSED_OPTION,
    add_bool_flag,
    host_port,
    receiving,
    serialize,
)

SERVICE = "/grpc.testing.TestService/"
ECHO_INITIAL = ("x-grpc-test-echo-initial", "test_initial_metadata_value")
ECHO_TRAILING = ("x-grpc-test-echo-trailing-bin", b"\xab\xab\xab")
SPECIAL_MESSAGE = "\t\ntest with whitespace\r\nand Unicode BMP \u263a and non-BMP \U0001f608\t\n"


class CaseFailed(Exception):
    pass


def check(condition: bool, reason: str) -> None:
    if not condition:
        raise CaseFailed(reason)


def check_payload(payload: Any, size: int, what: str) -> None:
    check(payload.type == messages_pb2.COMPRESSABLE, f"{what}: payload type {payload.type}")
    check(len(payload.body) == size, f"{what}: payload of {len(payload.body)} bytes, not {size}")
    check(payload.body == b"\0" * size, f"{what}: payload is not all zeros")


def expect_error(call: Callable[[], Any], code: grpc.StatusCode, what: str) -> grpc.RpcError:
    try:
        result = call()
    except grpc.RpcError as exc:
        got = exc.code()
        check(got == code, f"{what}: status {got.name} ({exc.details()!r}), expected {code.name}")
        return exc
    raise CaseFailed(f"{what}: succeeded ({result!r:.60}), expected {code.name}")


class Requests:
    """A request iterator fed one message at a time (``put``), ended by ``close``."""

    _END = object()

    def __init__(self) -> None:
        self._queue: queue.Queue[Any] = queue.Queue()
        #: grpcio began to consume the requests: the call has begun.
        self.started = threading.Event()

    def put(self, message: Any) -> None:
        self._queue.put(message)

    def close(self) -> None:
        self._queue.put(self._END)

    def __iter__(self) -> Iterator[Any]:
        self.started.set()
        while True:
            item = self._queue.get()
            if item is self._END:
                return
            yield item


class Stubs:
    """The TestService methods on one channel, deserializing to :class:`Received`."""

    def __init__(self, channel: grpc.Channel, timeout: float) -> None:
        self.channel = channel
        self.timeout = timeout
        simple = receiving(messages_pb2.SimpleResponse)
        output = receiving(messages_pb2.StreamingOutputCallResponse)
        self.EmptyCall = channel.unary_unary(
            SERVICE + "EmptyCall", serialize, receiving(empty_pb2.Empty)
        )
        self.UnaryCall = channel.unary_unary(SERVICE + "UnaryCall", serialize, simple)
        self.StreamingOutputCall = channel.unary_stream(
            SERVICE + "StreamingOutputCall", serialize, output
        )
        self.StreamingInputCall = channel.stream_unary(
            SERVICE + "StreamingInputCall",
            serialize,
            receiving(messages_pb2.StreamingInputCallResponse),
        )
        self.FullDuplexCall = channel.stream_stream(SERVICE + "FullDuplexCall", serialize, output)


def _large(**fields: Any) -> Any:
    return messages_pb2.SimpleRequest(
        response_type=messages_pb2.COMPRESSABLE,
        response_size=314159,
        payload=messages_pb2.Payload(body=b"\0" * 271828),
        **fields,
    )


def _output(response_size: int, request_size: int) -> Any:
    return messages_pb2.StreamingOutputCallRequest(
        response_type=messages_pb2.COMPRESSABLE,
        response_parameters=[messages_pb2.ResponseParameters(size=response_size)],
        payload=messages_pb2.Payload(body=b"\0" * request_size),
    )


def _input(size: int, expect_compressed: Optional[bool] = None) -> Any:
    request = messages_pb2.StreamingInputCallRequest(
        payload=messages_pb2.Payload(body=b"\0" * size)
    )
    if expect_compressed is not None:
        request.expect_compressed.value = expect_compressed
    return request


# --- cases ---------------------------------------------------------------------------------


def empty_unary(s: Stubs) -> None:
    received = s.EmptyCall(empty_pb2.Empty(), timeout=s.timeout)
    check(isinstance(received.message, empty_pb2.Empty), "response is not an Empty")
    check(received.wire_size == 0, f"response was {received.wire_size} bytes, not 0")


def large_unary(s: Stubs) -> None:
    check_payload(s.UnaryCall(_large(), timeout=s.timeout).message.payload, 314159, "response")


def client_compressed_unary(s: Stubs) -> None:
    probe = _large(expect_compressed=messages_pb2.BoolValue(value=True))
    expect_error(
        lambda: s.UnaryCall(probe, timeout=s.timeout),
        grpc.StatusCode.INVALID_ARGUMENT,
        "feature probe",
    )
    received = s.UnaryCall(probe, timeout=s.timeout, compression=grpc.Compression.Gzip)
    check_payload(received.message.payload, 314159, "compressed request")
    plain = _large(expect_compressed=messages_pb2.BoolValue(value=False))
    received = s.UnaryCall(plain, timeout=s.timeout, compression=grpc.Compression.NoCompression)
    check_payload(received.message.payload, 314159, "uncompressed request")


def server_compressed_unary(s: Stubs) -> None:
    for compressed in (True, False):
        request = _large(response_compressed=messages_pb2.BoolValue(value=compressed))
        received = s.UnaryCall(request, timeout=s.timeout)
        check(received.compressed == compressed, f"response_compressed={compressed}: flag wrong")
        check_payload(received.message.payload, 314159, f"response_compressed={compressed}")


def client_streaming(s: Stubs) -> None:
    requests = [_input(size) for size in (27182, 8, 1828, 45904)]
    received = s.StreamingInputCall(iter(requests), timeout=s.timeout)
    size = received.message.aggregated_payload_size
    check(size == 74922, f"aggregated_payload_size {size}, expected 74922")


def client_compressed_streaming(s: Stubs) -> None:
    expect_error(
        lambda: s.StreamingInputCall(iter([_input(27182, True)]), timeout=s.timeout),
        grpc.StatusCode.INVALID_ARGUMENT,
        "feature probe",
    )
    # grpcio compresses every message of a compressed call (see the module docstring).
    requests = [_input(27182, True), _input(45904, False)]
    received = s.StreamingInputCall(
        iter(requests), timeout=s.timeout, compression=grpc.Compression.Gzip
    )
    size = received.message.aggregated_payload_size
    check(size == 73086, f"aggregated_payload_size {size}, expected 73086")


def server_streaming(s: Stubs) -> None:
    sizes = (31415, 9, 2653, 58979)
    request = messages_pb2.StreamingOutputCallRequest(
        response_type=messages_pb2.COMPRESSABLE,
        response_parameters=[messages_pb2.ResponseParameters(size=n) for n in sizes],
    )
    responses = list(s.StreamingOutputCall(request, timeout=s.timeout))
    check(len(responses) == 4, f"{len(responses)} responses, expected 4")
    for i, (received, size) in enumerate(zip(responses, sizes)):
        check_payload(received.message.payload, size, f"response {i + 1}")


def server_compressed_streaming(s: Stubs) -> None:
    wanted = ((True, 31415), (False, 92653))
    request = messages_pb2.StreamingOutputCallRequest(
        response_type=messages_pb2.COMPRESSABLE,
        response_parameters=[
            messages_pb2.ResponseParameters(size=n, compressed=messages_pb2.BoolValue(value=c))
            for c, n in wanted
        ],
    )
    responses = list(s.StreamingOutputCall(request, timeout=s.timeout))
    check(len(responses) == 2, f"{len(responses)} responses, expected 2")
    for i, (received, (compressed, size)) in enumerate(zip(responses, wanted)):
        check(received.compressed == compressed, f"response {i + 1}: compressed flag wrong")
        check_payload(received.message.payload, size, f"response {i + 1}")


def ping_pong(s: Stubs) -> None:
    requests = Requests()
    call = s.FullDuplexCall(iter(requests), timeout=s.timeout)
    try:
        for i, (request_size, response_size) in enumerate(
            zip((27182, 8, 1828, 45904), (31415, 9, 2653, 58979))
        ):
            requests.put(_output(response_size, request_size))
            received = next(call, None)
            check(received is not None, f"the stream ended before response {i + 1}")
            check_payload(received.message.payload, response_size, f"response {i + 1}")
        requests.close()
        check(next(call, None) is None, "more than 4 responses")
        check(call.code() == grpc.StatusCode.OK, f"call ended {call.code()}")
    finally:
        requests.close()
        call.cancel()


def empty_stream(s: Stubs) -> None:
    responses = list(s.FullDuplexCall(iter([]), timeout=s.timeout))
    check(not responses, f"{len(responses)} responses, expected none")


def _check_echo(initial: Any, trailing: Any, what: str) -> None:
    check(ECHO_INITIAL in list(initial or ()), f"{what}: initial metadata {initial}")
    check(ECHO_TRAILING in list(trailing or ()), f"{what}: trailing metadata {trailing}")


def custom_metadata(s: Stubs) -> None:
    metadata = (ECHO_INITIAL, ECHO_TRAILING)
    received, call = s.UnaryCall.with_call(_large(), metadata=metadata, timeout=s.timeout)
    check_payload(received.message.payload, 314159, "UnaryCall response")
    _check_echo(call.initial_metadata(), call.trailing_metadata(), "UnaryCall")
    stream = s.FullDuplexCall(iter([_output(314159, 271828)]), metadata=metadata, timeout=s.timeout)
    responses = list(stream)
    check(len(responses) == 1, f"FullDuplexCall: {len(responses)} responses, expected 1")
    check_payload(responses[0].message.payload, 314159, "FullDuplexCall response")
    _check_echo(stream.initial_metadata(), stream.trailing_metadata(), "FullDuplexCall")


def _echo_status(s: Stubs, message: str, duplex: bool) -> None:
    status = messages_pb2.EchoStatus(code=2, message=message)
    error = expect_error(
        lambda: s.UnaryCall(messages_pb2.SimpleRequest(response_status=status), timeout=s.timeout),
        grpc.StatusCode.UNKNOWN,
        "UnaryCall",
    )
    check(error.details() == message, f"UnaryCall: message {error.details()!r}")
    if duplex:
        request = messages_pb2.StreamingOutputCallRequest(response_status=status)
        stream = s.FullDuplexCall(iter([request]), timeout=s.timeout)
        error = expect_error(lambda: list(stream), grpc.StatusCode.UNKNOWN, "FullDuplexCall")
        check(error.details() == message, f"FullDuplexCall: message {error.details()!r}")


def status_code_and_message(s: Stubs) -> None:
    _echo_status(s, "test status message", duplex=True)


def special_status_message(s: Stubs) -> None:
    _echo_status(s, SPECIAL_MESSAGE, duplex=False)


def unimplemented_method(s: Stubs) -> None:
    method = s.channel.unary_unary(
        SERVICE + "UnimplementedCall", serialize, empty_pb2.Empty.FromString
    )
    expect_error(
        lambda: method(empty_pb2.Empty(), timeout=s.timeout),
        grpc.StatusCode.UNIMPLEMENTED,
        "TestService/UnimplementedCall",
    )


def unimplemented_service(s: Stubs) -> None:
    method = s.channel.unary_unary(
        "/grpc.testing.UnimplementedService/UnimplementedCall",
        serialize,
        empty_pb2.Empty.FromString,
    )
    expect_error(
        lambda: method(empty_pb2.Empty(), timeout=s.timeout),
        grpc.StatusCode.UNIMPLEMENTED,
        "UnimplementedService/UnimplementedCall",
    )


def cancel_after_begin(s: Stubs) -> None:
    grpc.channel_ready_future(s.channel).result(timeout=s.timeout)
    requests = Requests()
    future = s.StreamingInputCall.future(iter(requests), timeout=s.timeout)
    try:
        check(requests.started.wait(s.timeout), "the call never began")
        check(not future.done(), "the call ended before it was cancelled")
        check(future.cancel(), "cancel() had no effect")
        check(future.cancelled(), "the call is not cancelled")
        check(future.code() == grpc.StatusCode.CANCELLED, f"call ended {future.code()}")
    finally:
        requests.close()


def cancel_after_first_response(s: Stubs) -> None:
    requests = Requests()
    call = s.FullDuplexCall(iter(requests), timeout=s.timeout)
    try:
        requests.put(_output(31415, 27182))
        received = next(call, None)
        check(received is not None, "the stream ended before the first response")
        check_payload(received.message.payload, 31415, "first response")
        check(call.cancel(), "cancel() had no effect")
        expect_error(lambda: next(call), grpc.StatusCode.CANCELLED, "read after cancel")
        check(call.code() == grpc.StatusCode.CANCELLED, f"call ended {call.code()}")
    finally:
        requests.close()


def timeout_on_sleeping_server(s: Stubs) -> None:
    requests = Requests()
    call = s.FullDuplexCall(iter(requests), timeout=0.001)
    try:
        requests.put(
            messages_pb2.StreamingOutputCallRequest(
                payload=messages_pb2.Payload(body=b"\0" * 27182)
            )
        )
        expect_error(lambda: next(call), grpc.StatusCode.DEADLINE_EXCEEDED, "1 ms deadline")
        check(call.code() == grpc.StatusCode.DEADLINE_EXCEEDED, f"call ended {call.code()}")
    finally:
        requests.close()


CASES: dict[str, Callable[[Stubs], None]] = {
    case.__name__: case
    for case in (
        empty_unary,
        large_unary,
        client_compressed_unary,
        server_compressed_unary,
        client_streaming,
        client_compressed_streaming,
        server_streaming,
        server_compressed_streaming,
        ping_pong,
        empty_stream,
        custom_metadata,
        status_code_and_message,
        special_status_message,
        unimplemented_method,
        unimplemented_service,
        cancel_after_begin,
        cancel_after_first_response,
        timeout_on_sleeping_server,
    )
}


def make_channel(args: argparse.Namespace) -> grpc.Channel:
    target = host_port(args.server_host, args.server_port)
    options: list[tuple[str, Any]] = [KEEP_COMPRESSED_OPTION]
    if args.server_host_override:
        options.append(
            ("grpc.default_authority", host_port(args.server_host_override, args.server_port))
        )
    if not args.use_tls:
        return grpc.insecure_channel(target, options=options)
    roots = None
    if args.ca_file:
        with open(args.ca_file, "rb") as f:
            roots = f.read()
    if args.server_host_override:
        options.append(("grpc.ssl_target_name_override", args.server_host_override))
    return grpc.secure_channel(target, grpc.ssl_channel_credentials(roots), options=options)


def run_case(name: str, args: argparse.Namespace) -> dict[str, Any]:
    started = time.monotonic()
    reason = ""
    with make_channel(args) as channel:
        try:
            CASES[name](Stubs(channel, args.case_timeout))
        except CaseFailed as exc:
            reason = str(exc)
        except grpc.RpcError as exc:
            reason = f"unexpected status {exc.code().name}: {exc.details()}"
        except Exception as exc:
            traceback.print_exc()
            reason = f"unexpected {type(exc).__name__}: {exc}"
    seconds = time.monotonic() - started
    if reason:
        print(f"FAIL {name}: {reason}", file=sys.stderr, flush=True)
    else:
        print(f"PASS {name} ({seconds:.2f} s)", flush=True)
    return {"passed": not reason, "seconds": round(seconds, 3), "reason": reason}


def parse_args(argv: Optional[Sequence[str]] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server_host", default="localhost")
    parser.add_argument("--server_host_override")
    parser.add_argument("--server_port", type=int, required=True)
    parser.add_argument("--test_case", default="large_unary")
    add_bool_flag(parser, "--use_tls", "connect with TLS")
    add_bool_flag(parser, "--use_test_ca", "verify the server with --ca_file")
    parser.add_argument("--ca_file")
    parser.add_argument("--case_timeout", type=float, default=30.0)
    parser.add_argument("--report_json")
    args = parser.parse_args(argv)
    if args.test_case != "all" and args.test_case not in CASES:
        parser.error(f"unknown --test_case {args.test_case!r}")
    if args.use_test_ca and not args.ca_file:
        parser.error("--use_test_ca needs --ca_file")
    return args


def main(argv: Optional[Sequence[str]] = None) -> int:
    args = parse_args(argv)
    names = list(CASES) if args.test_case == "all" else [args.test_case]
    results = {name: run_case(name, args) for name in names}
    if args.report_json:
        with open(args.report_json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)
    if args.test_case == "all":
        for name, result in results.items():
            print(f"{name:<28} {'pass' if result['passed'] else 'FAIL'}  {result['reason']}")
    return 0 if all(r["passed"] for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
