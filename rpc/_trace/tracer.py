"""Study mode: decoded wire tracing of channels and servers (``rpc.Tracer``, ``rpc.trace()``).

A ``Tracer`` records, for each connection it is given, every HTTP/2 frame in and out, each header
block with its HPACK representation (``transport.trace`` does those two) and each gRPC message
with its 5-byte prefix decoded and its protobuf text when the message type is known (this
module). Events go to ``tracer.events`` and to sinks: aligned text lines or JSON lines
(``rpc._trace.format``).

Tracing is off unless asked for, in one of three ways, looked at when a ``Channel`` or ``Server``
is created: its ``trace=`` option (a ``Tracer``, ``True``, a spec such as
``"frames,messages"``, or ``False`` to refuse the other two), an active ``with rpc.trace():``
block, or the ``H2RPC_TRACE`` environment variable (read once). When off, the connection core
holds ``None`` and pays one ``is not None`` test per socket read and write.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import sys
import threading
from collections.abc import Iterable
from typing import IO, Any, Callable, ClassVar, Optional, Union

from google.protobuf import descriptor_pool, message_factory, text_format
from google.protobuf.descriptor import MethodDescriptor, ServiceDescriptor

from codec import CodecError, decompress
from transport import ConnectionOptions
from transport.trace import ConnectionTrace, TraceEvent

from .activation import Activatable, Activations

log = logging.getLogger(__name__)

__all__ = [
    "KINDS",
    "MESSAGE_TYPES",
    "MessageTypes",
    "TraceEvent",
    "Tracer",
    "resolve_tracer",
    "trace",
    "tracer_from_environment",
    "with_tracer",
]

#: What can be traced: ``frames`` (every HTTP/2 frame), ``headers`` (decoded header blocks with
#: their HPACK representation), ``messages`` (gRPC messages).
KINDS = ("frames", "headers", "messages")

ENV_TRACE = "H2RPC_TRACE"
ENV_TRACE_FILE = "H2RPC_TRACE_FILE"

#: Messages up to this size (as sent) are decoded and shown; larger ones only by their prefix.
DEFAULT_MAX_MESSAGE_BYTES = 1024 * 1024
_SHOWN_BYTES = 64

Sink = Callable[[TraceEvent], None]


# ====================================================================== message types


class MessageTypes:
    """``/package.Service/Method`` -> (request class, response class), for showing messages.

    Fed with the services of every ``Stub`` and ``add_service``; anything in protobuf's default
    descriptor pool (every imported ``_pb2`` module) is found without registering.
    """

    def __init__(self) -> None:
        self._classes: dict[str, tuple[Any, Any]] = {}
        self._methods: dict[str, MethodDescriptor] = {}
        self._lock = threading.Lock()

    def register_service(self, descriptor: ServiceDescriptor) -> None:
        """Know the message types of every method of a service descriptor."""
        with self._lock:
            for method in descriptor.methods:
                self._methods[f"/{descriptor.full_name}/{method.name}"] = method

    def register_method(self, path: str, request_class: Any, response_class: Any) -> None:
        """Know one method's message classes (for instance of a hand-made handler)."""
        with self._lock:
            self._classes[path] = (request_class, response_class)

    def lookup(self, path: str) -> Optional[tuple[Any, Any]]:
        classes = self._classes.get(path)
        if classes is not None:
            return classes
        method = self._methods.get(path) or _default_pool_method(path)
        if method is None:
            return None
        classes = (
            message_factory.GetMessageClass(method.input_type),
            message_factory.GetMessageClass(method.output_type),
        )
        with self._lock:
            self._classes[path] = classes
        return classes


def _default_pool_method(path: str) -> Optional[MethodDescriptor]:
    service, _, method = path.lstrip("/").rpartition("/")
    try:
        found = descriptor_pool.Default().FindServiceByName(service)
    except (KeyError, TypeError):
        return None
    result: Optional[MethodDescriptor] = found.methods_by_name.get(method)
    return result


#: The process-wide registry every tracer uses unless given its own.
MESSAGE_TYPES = MessageTypes()


# ====================================================================== gRPC messages


class _Parser:
    """The length-prefixed messages of one direction of one call, parsed as they pass."""

    __slots__ = ("count", "flag", "head", "keep", "length", "parts", "remaining")

    def __init__(self) -> None:
        self.head = b""
        self.remaining = -1  # -1: reading a prefix
        self.flag = 0
        self.length = 0
        self.keep = False
        self.parts: list[bytes] = []
        self.count = 0


class _Call:
    __slots__ = ("classes", "encoding", "parsers", "path")

    def __init__(self, path: Optional[str], classes: Optional[tuple[Any, Any]]) -> None:
        self.path = path
        self.classes = classes
        self.encoding: dict[str, Optional[str]] = {"in": None, "out": None}
        self.parsers = {"in": _Parser(), "out": _Parser()}


class GrpcConnectionTrace(ConnectionTrace):
    """A connection's trace plus its gRPC messages, decoded from the DATA frames of each call."""

    def __init__(
        self,
        *,
        client_side: bool,
        conn: int,
        emit: Callable[[list[TraceEvent]], None],
        kinds: Iterable[str],
        message_types: MessageTypes,
        max_message_bytes: int,
    ) -> None:
        super().__init__(client_side=client_side, conn=conn, emit=emit, kinds=kinds)
        self._show_messages = "messages" in self.kinds
        self._types = message_types
        self._max_message_bytes = max_message_bytes
        self._calls: dict[int, _Call] = {}

    def on_header_block(
        self,
        direction: str,
        stream_id: int,
        block: str,
        headers: list[tuple[bytes, bytes]],
        end_stream: bool,
    ) -> None:
        if not self._show_messages:
            return
        call = self._calls.get(stream_id)
        if block == "request":
            path = _header(headers, b":path")
            classes = self._types.lookup(path) if path else None
            call = self._calls[stream_id] = _Call(path, classes)
        if call is not None and block in ("request", "response"):
            encoding = _header(headers, b"grpc-encoding")
            call.encoding[direction] = None if encoding == "identity" else encoding

    def on_data(self, direction: str, stream_id: int, data: bytes, end_stream: bool) -> None:
        if not self._show_messages:
            return
        call = self._calls.get(stream_id)
        if call is None or not data:
            return
        parser = call.parsers[direction]
        pos = 0
        n = len(data)
        while pos < n:
            if parser.remaining < 0:
                head = parser.head + data[pos : pos + 5 - len(parser.head)]
                pos += len(head) - len(parser.head)
                if len(head) < 5:
                    parser.head = head
                    return
                parser.head = head
                parser.flag = head[0]
                parser.length = parser.remaining = int.from_bytes(head[1:5], "big")
                parser.keep = parser.length <= self._max_message_bytes
                parser.parts = []
            take = min(parser.remaining, n - pos)
            if take:
                if parser.keep:
                    parser.parts.append(data[pos : pos + take])
                pos += take
                parser.remaining -= take
            if parser.remaining == 0:
                self._message(direction, stream_id, call, parser)
                parser.remaining = -1
                parser.head = b""
                parser.parts = []

    def on_stream_closed(self, stream_id: int) -> None:
        self._calls.pop(stream_id, None)

    def _message(self, direction: str, stream_id: int, call: _Call, parser: _Parser) -> None:
        parser.count += 1
        request = self.is_client_sender(direction)
        encoding = call.encoding[direction]
        detail: dict[str, Any] = {
            "role": "request" if request else "response",
            "path": call.path,
            "index": parser.count,
            "flag": parser.flag,
            "compressed": parser.flag == 1,
            "length": parser.length,
            "prefix": parser.head.hex(),
            "encoding": encoding,
            "type": None,
            "text": None,
        }
        if not parser.keep:
            detail["error"] = f"not decoded: larger than {self._max_message_bytes} bytes"
            self.record("message", direction, stream_id, detail)
            return
        payload = b"".join(parser.parts)
        detail["bytes"] = payload[:_SHOWN_BYTES].hex()
        if len(payload) > _SHOWN_BYTES:
            detail["bytes_truncated"] = True
        try:
            if parser.flag == 1:
                if encoding is None:
                    raise CodecError("compressed flag set but no grpc-encoding")
                payload = decompress(encoding, payload, self._max_message_bytes)
                detail["decompressed_length"] = len(payload)
            if call.classes is not None:
                cls = call.classes[0 if request else 1]
                detail["type"] = cls.DESCRIPTOR.full_name
                detail["text"] = text_format.MessageToString(
                    cls.FromString(payload), as_one_line=True
                )
        except Exception as exc:  # shown, never raised: the call itself decides what it means
            detail["error"] = f"{type(exc).__name__}: {exc}"
        self.record("message", direction, stream_id, detail)


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> Optional[str]:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


# ====================================================================== the tracer


def parse_kinds(kinds: Union[str, Iterable[str], None]) -> frozenset[str]:
    """``"frames,headers"``, ``["messages"]``, ``"all"`` or None (all) -> a set of kinds."""
    if kinds is None:
        return frozenset(KINDS)
    names = kinds.split(",") if isinstance(kinds, str) else list(kinds)
    out: set[str] = set()
    for raw in names:
        name = raw.strip().lower()
        if name in ("all", ""):
            out.update(KINDS)
        elif name in KINDS:
            out.add(name)
        else:
            raise ValueError(f"unknown trace kind {raw!r}: use {', '.join(KINDS)} or all")
    return frozenset(out or KINDS)


def parse_spec(spec: str) -> tuple[frozenset[str], str]:
    """A command-line or environment spec (``"frames,messages"``, ``"all,json"``...) -> the kinds
    it asks for and its format (``text`` or ``json``)."""
    tokens = [t.strip().lower() for t in spec.split(",") if t.strip()]
    format = "json" if "json" in tokens else "text"
    kinds = [t for t in tokens if t not in ("json", "text", "1", "on", "true", "yes")]
    return parse_kinds(kinds or None), format


class Tracer(Activatable):
    """Records the wire of the connections it is given; ``events`` holds what it saw.

    ::

        with rpc.trace() as tracer:                      # or rpc.Channel(..., trace=tracer)
            async with rpc.Channel(target) as channel:
                await rpc.Stub(channel, GREETER).SayHello(request)
        for event in tracer.frames(direction="out"):
            print(event["type"], event["flags"], event.stream_id)

    ``kinds``: ``frames``, ``headers``, ``messages`` (default: all three). ``output``: a text
    stream or a file path to write each event to as it happens, in ``format`` ``"text"``
    (aligned lines) or ``"json"`` (JSON lines); ``keep``: also keep the events in ``events``.
    A tracer may be shared by any number of channels and servers, in any threads.
    """

    _activations: ClassVar[Activations[Tracer]] = Activations()

    def __init__(
        self,
        kinds: Union[str, Iterable[str], None] = None,
        *,
        output: Union[IO[str], str, None] = None,
        format: str = "text",
        keep: bool = True,
        message_types: Optional[MessageTypes] = None,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    ) -> None:
        self.kinds = parse_kinds(kinds)
        self.keep = keep
        self.message_types = message_types or MESSAGE_TYPES
        self.max_message_bytes = max_message_bytes
        self.events: list[TraceEvent] = []
        self.recording = True
        self._sinks: list[Sink] = []
        self._lock = threading.Lock()
        self._counts = {"client": 0, "server": 0}
        self._owned: Optional[IO[str]] = None
        if output is not None:
            self.add_output(output, format)

    @classmethod
    def from_spec(cls, spec: str, output: Union[IO[str], str, None] = None) -> Tracer:
        """A tracer from a command-line or environment spec: kinds and an optional ``json``.

        ``"all"``, ``"frames,messages"``, ``"json"``, ``"headers,json"``...; it writes to
        ``output`` (default: standard error) and keeps no events in memory.
        """
        kinds, format = parse_spec(spec)
        tracer = cls(kinds, keep=False)
        tracer.add_output(output, format)
        return tracer

    # ---------------------------------------------------------------- sinks

    def add_output(self, output: Union[IO[str], str, None] = None, format: str = "text") -> None:
        """Write every event to a text stream, a file path (appended to) or, for None, standard
        error (whatever ``sys.stderr`` is at the time), as ``text`` or ``json`` lines."""
        from .format import format_json, format_text

        if format not in ("text", "json"):
            raise ValueError(f"trace format must be 'text' or 'json', not {format!r}")
        formatter = format_json if format == "json" else format_text
        stream: Optional[IO[str]] = None
        if isinstance(output, str):
            stream = self._owned = open(output, "a", encoding="utf-8")  # noqa: SIM115
        elif output is not None:
            stream = output

        def write(event: TraceEvent) -> None:
            target = sys.stderr if stream is None else stream
            target.write(formatter(event) + "\n")
            target.flush()

        self.add_sink(write)

    def add_sink(self, sink: Sink) -> None:
        """Call ``sink(event)`` for every event from now on (from the thread that saw it)."""
        with self._lock:
            self._sinks.append(sink)

    def remove_sink(self, sink: Sink) -> None:
        with self._lock:
            self._sinks.remove(sink)

    # ---------------------------------------------------------------- lifecycle

    def stop(self) -> None:
        """Stop recording (events seen so far stay in ``events``); close an owned file."""
        with self._lock:
            self.recording = False
            owned, self._owned = self._owned, None
        if owned is not None:
            owned.close()

    def clear(self) -> None:
        with self._lock:
            self.events.clear()

    def _end(self) -> None:  # leaving a ``with`` block (activation.py)
        self.stop()

    # ---------------------------------------------------------------- message types

    def register_service(self, descriptor: ServiceDescriptor) -> None:
        """Show the messages of a service's methods as protobuf text (``_pb2`` services are
        found without this; it is for descriptors from other pools)."""
        self.message_types.register_service(descriptor)

    def register_method(self, path: str, request_class: Any, response_class: Any) -> None:
        self.message_types.register_method(path, request_class, response_class)

    # ---------------------------------------------------------------- reading events

    def select(
        self,
        kind: Optional[str] = None,
        *,
        side: Optional[str] = None,
        direction: Optional[str] = None,
        stream_id: Optional[int] = None,
        conn: Optional[int] = None,
    ) -> list[TraceEvent]:
        """The recorded events that match every given field."""
        with self._lock:
            events = list(self.events)
        return [
            e
            for e in events
            if (kind is None or e.kind == kind)
            and (side is None or e.side == side)
            and (direction is None or e.direction == direction)
            and (stream_id is None or e.stream_id == stream_id)
            and (conn is None or e.conn == conn)
        ]

    def frames(self, **match: Any) -> list[TraceEvent]:
        """Frame events (``event["type"]``, ``event["flags"]``, ``event["length"]``...)."""
        return self.select("frame", **match)

    def header_blocks(self, **match: Any) -> list[TraceEvent]:
        """Decoded header blocks (``event["block"]``, ``event["fields"]``...)."""
        return self.select("headers", **match)

    def messages(self, **match: Any) -> list[TraceEvent]:
        """gRPC messages (``event["role"]``, ``event["compressed"]``, ``event["text"]``...)."""
        return self.select("message", **match)

    def text(self, events: Optional[Iterable[TraceEvent]] = None) -> str:
        """The recorded events (or the given ones) as the aligned human-readable lines."""
        from .format import format_text

        chosen = self.select() if events is None else events
        return "".join(format_text(e) + "\n" for e in chosen)

    def write_diagram(
        self,
        path: str,
        *,
        events: Optional[Iterable[TraceEvent]] = None,
        svg: Optional[bool] = None,
        title: Optional[str] = None,
    ) -> None:
        """Draw the recorded events (or the given ones) as a ladder diagram: a self-contained
        HTML page, or SVG if ``svg`` (default: if ``path`` ends in ``.svg``). The tracer must
        keep events (``keep=True``, the default) and trace the ``frames`` kind."""
        from .ladder import write_diagram

        chosen = self.select() if events is None else events
        write_diagram(chosen, path, svg=svg, title=title)

    def json_lines(self, events: Optional[Iterable[TraceEvent]] = None) -> str:
        from .format import format_json

        chosen = self.select() if events is None else events
        return "".join(format_json(e) + "\n" for e in chosen)

    # ---------------------------------------------------------------- for ConnectionOptions

    def open_connection(self, *, client_side: bool) -> ConnectionTrace:
        """Called by the transport core once per new connection (transport.ConnectionTracer)."""
        side = "client" if client_side else "server"
        with self._lock:
            self._counts[side] += 1
            number = self._counts[side]
        return GrpcConnectionTrace(
            client_side=client_side,
            conn=number,
            emit=self._emit,
            kinds=self.kinds,
            message_types=self.message_types,
            max_message_bytes=self.max_message_bytes,
        )

    def _emit(self, batch: list[TraceEvent]) -> None:
        with self._lock:
            if not self.recording:
                return
            if self.keep:
                self.events.extend(batch)
            for sink in list(self._sinks):
                try:
                    for event in batch:
                        sink(event)
                except Exception:  # a broken sink must not break the connection it watches
                    log.exception("trace sink %r failed: removed", sink)
                    self._sinks.remove(sink)


def trace(
    kinds: Union[str, Iterable[str], None] = None,
    *,
    output: Union[IO[str], str, None] = None,
    format: str = "text",
    keep: bool = True,
) -> Tracer:
    """A ``Tracer`` to use as ``with rpc.trace() as tracer:``: the channels and servers created
    inside the block are traced into it (see ``Tracer`` for the arguments)."""
    return Tracer(kinds, output=output, format=format, keep=keep)


_ENV_LOCK = threading.Lock()
_ENV_TRACER: list[Optional[Tracer]] = []  # read once: [] until then


def tracer_from_environment() -> Optional[Tracer]:
    """The tracer ``H2RPC_TRACE`` asks for (read once per process), or None.

    ``H2RPC_TRACE=all`` (or ``1``), ``frames,headers,messages`` or any subset, plus ``json``
    for JSON lines; output to standard error, or appended to ``H2RPC_TRACE_FILE``.
    """
    with _ENV_LOCK:
        if not _ENV_TRACER:
            spec = os.environ.get(ENV_TRACE, "").strip()
            tracer = None
            if spec and spec.lower() not in ("0", "off", "false", "no"):
                path = os.environ.get(ENV_TRACE_FILE) or None
                try:
                    tracer = Tracer.from_spec(_known_kinds(spec), path)
                except (OSError, ValueError) as exc:  # e.g. a file that cannot be opened
                    log.warning("%s=%r: tracing off: %s", ENV_TRACE, spec, exc)
            _ENV_TRACER.append(tracer)
        return _ENV_TRACER[0]


_SPEC_WORDS = (*KINDS, "all", "json", "text", "1", "on", "true", "yes")


def _known_kinds(spec: str) -> str:
    """``spec`` without the words it should not have, each named in a warning: a typo in an
    environment variable must not stop the application (the rest is traced)."""
    words = [w.strip() for w in spec.split(",") if w.strip()]
    unknown = [w for w in words if w.lower() not in _SPEC_WORDS]
    if not unknown:
        return spec
    known = [w for w in words if w.lower() in _SPEC_WORDS]
    kinds = [w.lower() for w in known if w.lower() in KINDS] or list(KINDS)
    log.warning(
        "%s=%r: unknown trace kind%s %s ignored (valid kinds: %s, or all; add json for JSON "
        "lines); tracing %s",
        ENV_TRACE,
        spec,
        "s" if len(unknown) > 1 else "",
        ", ".join(repr(w) for w in unknown),
        ", ".join(KINDS),
        ", ".join(kinds),
    )
    return ",".join(known) or "all"


TraceOption = Union[None, bool, str, Tracer]


def resolve_tracer(trace: TraceOption) -> Optional[Tracer]:
    """The tracer a new channel or server uses: its ``trace=`` option, else an active
    ``with rpc.trace():`` block, else ``H2RPC_TRACE``; ``trace=False`` refuses all three."""
    if trace is None:
        return Tracer._activations.latest() or tracer_from_environment()
    if trace is False:
        return None
    if trace is True:
        return Tracer.from_spec("all")
    if isinstance(trace, str):
        return Tracer.from_spec(trace)
    if isinstance(trace, Tracer):
        return trace
    raise TypeError(f"trace must be a Tracer, a spec string, True, False or None: {trace!r}")


def with_tracer(options: ConnectionOptions, trace: TraceOption) -> ConnectionOptions:
    """``options`` carrying the tracer ``resolve_tracer(trace)`` picks (unchanged if none)."""
    if options.tracer is not None:  # given in connection_options: that one wins, unless refused
        return dataclasses.replace(options, tracer=None) if trace is False else options
    tracer = resolve_tracer(trace)
    return options if tracer is None else dataclasses.replace(options, tracer=tracer)
