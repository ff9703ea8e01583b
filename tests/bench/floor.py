"""The h2 floor: the server-side CPU of one unary gRPC call when nothing but HTTP/2 is done.

``python -m tests.bench.floor [--calls N] [--json] [--profile LEVEL]``

Drives unary calls (request HEADERS + DATA in, response HEADERS + DATA + trailers out, with
realistic gRPC headers and a 16-byte message) between two in-memory connections, no sockets, no
event loop, and measures the CPU time (``time.process_time``) spent on the server's side only:
receiving the request bytes, handing flow-control credit back, sending the response, producing
its bytes, and taking in the client's WINDOW_UPDATEs. Levels:

* ``h2``: two bare ``h2.connection.H2Connection`` objects, h2's default header validation and
  normalisation on (the floor any h2-based server pays);
* ``h2-novalidate``: the same with h2's inbound and outbound header validation and normalisation
  off (as grpclib runs it);
* ``core``: h2rpc's sans-I/O ``transport.ConnectionCore`` pair (h2 plus our flow-control queues,
  event translation, header validation and guards);
* ``codec``: the core plus what the rpc layer does per call without an event loop: parse the
  request head (``codec.headers``), decode the message (``codec.framing``), protobuf parse and
  serialize, frame the reply, build the response headers and trailers.

The difference between a level and ``h2`` is our overhead above the floor; the runner
(``tests.bench.run``) sets it beside the server CPU per call of the real server. ``--profile
LEVEL`` runs one level under cProfile and prints where the time goes. Python 3.9+ and PyPy.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import platform
import pstats
import struct
import sys
import time
from typing import Any, Callable, Optional

REQUEST_HEADERS = [
    (b":method", b"POST"),
    (b":scheme", b"http"),
    (b":path", b"/bench.Bench/Unary"),
    (b":authority", b"127.0.0.1:50051"),
    (b"te", b"trailers"),
    (b"content-type", b"application/grpc"),
    (b"grpc-accept-encoding", b"identity,deflate,gzip"),
    (b"user-agent", b"grpc-python/1.0 grpc-c/40.0.0 (linux; chttp2)"),
    (b"grpc-timeout", b"9999m"),
]
RESPONSE_HEADERS = [
    (b":status", b"200"),
    (b"content-type", b"application/grpc"),
    (b"grpc-accept-encoding", b"identity,deflate,gzip"),
]
TRAILERS = [(b"grpc-status", b"0"), (b"grpc-message", b"")]
#: The 16-byte Payload.body of bench.proto, serialized (field 1, length 16), gRPC-framed.
MESSAGE = b"\x0a\x10" + b"0123456789abcdef"
FRAMED = struct.pack(">BI", 0, len(MESSAGE)) + MESSAGE

LEVELS = ("h2", "h2-novalidate", "core", "codec")
DEFAULT_CALLS = 10_000
WARMUP_CALLS = 1_000  # at least; half the measured calls otherwise (PyPy's JIT)

_clock = time.process_time


def _clock_overhead() -> float:
    """What one ``_clock() - _clock()`` bracket adds, so it can be taken out of the total."""
    best = float("inf")
    for _ in range(5):
        n = 20_000
        start = _clock()
        for _ in range(n):
            t = _clock()
            _ = _clock() - t
        best = min(best, (_clock() - start) / n)
    return best


class _H2Pair:
    """Two bare h2 connections."""

    def __init__(self, validate: bool) -> None:
        from h2.config import H2Configuration
        from h2.connection import H2Connection
        from h2.events import DataReceived

        self._data_event = DataReceived
        self.client = H2Connection(H2Configuration(client_side=True, header_encoding=None))
        self.server = H2Connection(
            H2Configuration(
                client_side=False,
                header_encoding=None,
                validate_inbound_headers=validate,
                normalize_inbound_headers=validate,
                validate_outbound_headers=validate,
                normalize_outbound_headers=validate,
            )
        )
        self.client.initiate_connection()
        self.server.initiate_connection()
        self._pump()

    def _pump(self) -> None:
        for _ in range(10):
            a, b = self.client.data_to_send(), self.server.data_to_send()
            if not a and not b:
                return
            if a:
                self.server.receive_data(a)
            if b:
                self.client.receive_data(b)

    def request(self) -> bytes:
        client = self.client
        sid = client.get_next_available_stream_id()
        client.send_headers(sid, REQUEST_HEADERS)
        client.send_data(sid, FRAMED, end_stream=True)
        return client.data_to_send()

    def serve(self, wire: bytes) -> bytes:
        server = self.server
        body = b""
        sid = 0
        for event in server.receive_data(wire):
            if isinstance(event, self._data_event):
                sid = event.stream_id
                body = event.data
                server.acknowledge_received_data(event.flow_controlled_length, sid)
        server.send_headers(sid, RESPONSE_HEADERS)
        server.send_data(sid, body)
        server.send_headers(sid, TRAILERS, end_stream=True)
        return server.data_to_send()

    def respond(self, wire: bytes) -> bytes:
        client = self.client
        for event in client.receive_data(wire):
            if isinstance(event, self._data_event):
                client.acknowledge_received_data(event.flow_controlled_length, event.stream_id)
        return client.data_to_send()

    def server_takes(self, wire: bytes) -> None:
        self.server.receive_data(wire)
        self.server.data_to_send()


class _CorePair:
    """h2rpc's two ConnectionCores; with ``codec``, also the rpc layer's per-call codec work."""

    def __init__(self, codec: bool) -> None:
        from transport import ConnectionCore, DataReceived, RequestReceived

        self._data_event = DataReceived
        self._request_event = RequestReceived
        self.client = ConnectionCore(client_side=True)
        self.server = ConnectionCore(client_side=False)
        self.client.initiate()
        self.server.initiate()
        self._codec: Optional[Callable[[Any, bytes], tuple[Any, bytes, Any]]] = None
        if codec:
            self._codec = _codec_steps()
        for _ in range(10):
            a, b = self.client.data_to_send(), self.server.data_to_send()
            if not a and not b:
                break
            if a:
                self.server.receive_data(a)
            if b:
                self.client.receive_data(b)

    def request(self) -> bytes:
        client = self.client
        sid = client.next_stream_id()
        client.send_headers(sid, REQUEST_HEADERS)
        client.send_data(sid, FRAMED, end_stream=True)
        return client.data_to_send()

    def serve(self, wire: bytes) -> bytes:
        server = self.server
        body = b""
        sid = 0
        headers: Any = None
        for event in server.receive_data(wire):
            if isinstance(event, self._data_event):
                sid = event.stream_id
                body = event.data
                server.acknowledge_received_data(sid, event.flow_controlled_length)
            elif isinstance(event, self._request_event):
                headers = event.headers
        if self._codec is not None:
            response_headers, body, trailers = self._codec(headers, body)
        else:
            response_headers, trailers = RESPONSE_HEADERS, TRAILERS
        server.send_headers(sid, response_headers)
        server.send_data(sid, body)
        server.send_trailers(sid, trailers)
        return server.data_to_send()

    def respond(self, wire: bytes) -> bytes:
        client = self.client
        for event in client.receive_data(wire):
            if isinstance(event, self._data_event):
                client.acknowledge_received_data(event.stream_id, event.flow_controlled_length)
        return client.data_to_send()

    def server_takes(self, wire: bytes) -> None:
        self.server.receive_data(wire)
        self.server.data_to_send()


def _codec_steps() -> Callable[[Any, bytes], tuple[Any, bytes, Any]]:
    """The rpc layer's codec work for one unary call, as plain function calls."""
    from codec import StatusCode
    from codec.framing import MessageDecoder, encode_message
    from codec.headers import build_response_headers, build_trailers, parse_request_headers

    from .service import messages

    payload = messages().Payload

    def steps(headers: Any, body: bytes) -> tuple[Any, bytes, Any]:
        parse_request_headers(headers)
        decoder = MessageDecoder()
        ((_compressed, data),) = decoder.feed(body)
        decoder.finish()
        request = payload.FromString(data)
        reply = encode_message(request.SerializeToString())
        return build_response_headers(), reply, build_trailers(StatusCode.OK)

    return steps


def make_pair(level: str) -> Any:
    if level == "h2":
        return _H2Pair(validate=True)
    if level == "h2-novalidate":
        return _H2Pair(validate=False)
    if level == "core":
        return _CorePair(codec=False)
    if level == "codec":
        return _CorePair(codec=True)
    raise ValueError(f"unknown level {level!r}")


def measure(level: str, calls: int = DEFAULT_CALLS, overhead: float = 0.0) -> dict[str, Any]:
    """Server-side CPU per call (µs) over ``calls`` calls, after a warm-up."""
    pair = make_pair(level)
    clock = _clock
    for _ in range(max(WARMUP_CALLS, calls // 2)):
        back = pair.respond(pair.serve(pair.request()))
        if back:
            pair.server_takes(back)
    server = 0.0
    brackets = 0
    total_start = clock()
    for _ in range(calls):
        wire = pair.request()
        t0 = clock()
        out = pair.serve(wire)
        server += clock() - t0
        brackets += 1
        back = pair.respond(out)
        if back:
            t0 = clock()
            pair.server_takes(back)
            server += clock() - t0
            brackets += 1
    total = clock() - total_start
    server -= brackets * overhead
    return {
        "level": level,
        "calls": calls,
        "server_us_per_call": server / calls * 1e6,
        "both_sides_us_per_call": total / calls * 1e6,
    }


def environment() -> dict[str, str]:
    import h2

    return {
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "h2": h2.__version__,
    }


def run(levels: tuple[str, ...], calls: int) -> dict[str, Any]:
    overhead = _clock_overhead()
    results = {}
    for level in levels:
        try:
            results[level] = measure(level, calls, overhead)
        except Exception as exc:  # e.g. a codec API in flux: report it, measure the rest
            results[level] = {"level": level, "error": f"{type(exc).__name__}: {exc}"}
    return {"environment": environment(), "clock_overhead_us": overhead * 1e6, "levels": results}


def report(data: dict[str, Any]) -> str:
    env = data["environment"]
    levels = data["levels"]
    floor = levels.get("h2", {}).get("server_us_per_call")
    lines = [
        f"h2 floor: one unary call through in-memory connections ({env['python']}, h2 "
        f"{env['h2']}), server-side CPU per call:",
    ]
    for level, result in levels.items():
        if "error" in result:
            lines.append(f"  {level:14} skipped: {result['error']}")
            continue
        us = result["server_us_per_call"]
        extra = f"  ({us - floor:+7.1f} µs vs h2)" if floor and level != "h2" else ""
        both = result["both_sides_us_per_call"]
        lines.append(f"  {level:14} {us:7.1f} µs{extra}   both sides {both:.1f} µs")
    return "\n".join(lines)


def profile(level: str, calls: int, top: int) -> None:
    pair = make_pair(level)
    for _ in range(max(WARMUP_CALLS, calls // 2)):
        back = pair.respond(pair.serve(pair.request()))
        if back:
            pair.server_takes(back)
    profiler = cProfile.Profile()
    for _ in range(calls):
        wire = pair.request()
        profiler.enable()
        out = pair.serve(wire)
        profiler.disable()
        back = pair.respond(out)
        if back:
            profiler.enable()
            pair.server_takes(back)
            profiler.disable()
    print(f"server side of {calls} calls, level {level}, by own time:")
    pstats.Stats(profiler).sort_stats("tottime").print_stats(top)


def main(argv: Optional[list[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=DEFAULT_CALLS)
    parser.add_argument("--levels", nargs="+", choices=LEVELS, default=list(LEVELS))
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--profile", choices=LEVELS, help="profile one level with cProfile")
    parser.add_argument("--top", type=int, default=30, help="functions shown by --profile")
    args = parser.parse_args(argv)
    from .service import prepare_process

    prepare_process()
    if args.profile:
        profile(args.profile, args.calls, args.top)
        return 0
    data = run(tuple(args.levels), args.calls)
    print(json.dumps(data) if args.json else report(data))
    return 0


if __name__ == "__main__":
    sys.exit(main())
