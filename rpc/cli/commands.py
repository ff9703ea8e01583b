"""The commands of ``h2rpc``: ``list``, ``describe``, ``call`` and ``health``.

Each takes the parsed command line and an ``Output`` and returns the process's exit status: 0,
or the gRPC status code of the call that failed (``main`` turns ``RpcError`` and usage errors
into that status as well).
"""

from __future__ import annotations

import base64
import json
import sys
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import IO, Any, Optional

from google.protobuf import descriptor_pb2, json_format, message_factory
from google.protobuf.descriptor import (
    Descriptor,
    EnumDescriptor,
    MethodDescriptor,
    ServiceDescriptor,
)

import rpc
from rpc.services.proto.grpc_health.v1 import health_pb2

from .describe import copy_to_proto, describe
from .jsonio import RequestError, format_message, read_requests
from .schema import FileSchema, ReflectionSchema, Schema

__all__ = ["Connection", "Output", "call", "describe_command", "health", "list_command"]

#: Go's names of the status codes, which grpcurl prints (``NotFound``, ``Canceled``...).
GO_CODE_NAMES = {
    rpc.StatusCode.OK: "OK",
    rpc.StatusCode.CANCELLED: "Canceled",
    rpc.StatusCode.UNKNOWN: "Unknown",
    rpc.StatusCode.INVALID_ARGUMENT: "InvalidArgument",
    rpc.StatusCode.DEADLINE_EXCEEDED: "DeadlineExceeded",
    rpc.StatusCode.NOT_FOUND: "NotFound",
    rpc.StatusCode.ALREADY_EXISTS: "AlreadyExists",
    rpc.StatusCode.PERMISSION_DENIED: "PermissionDenied",
    rpc.StatusCode.RESOURCE_EXHAUSTED: "ResourceExhausted",
    rpc.StatusCode.FAILED_PRECONDITION: "FailedPrecondition",
    rpc.StatusCode.ABORTED: "Aborted",
    rpc.StatusCode.OUT_OF_RANGE: "OutOfRange",
    rpc.StatusCode.UNIMPLEMENTED: "Unimplemented",
    rpc.StatusCode.INTERNAL: "Internal",
    rpc.StatusCode.UNAVAILABLE: "Unavailable",
    rpc.StatusCode.DATA_LOSS: "DataLoss",
    rpc.StatusCode.UNAUTHENTICATED: "Unauthenticated",
}


class UsageError(Exception):
    """A command line that asks for something impossible: exit status 1."""


@dataclass
class Output:
    """Where results go, and how they are written."""

    format: str = "json"
    emit_defaults: bool = False
    stdout: IO[str] = field(default_factory=lambda: sys.stdout)
    stderr: IO[str] = field(default_factory=lambda: sys.stderr)
    stdin: IO[str] = field(default_factory=lambda: sys.stdin)

    def line(self, text: str) -> None:
        self.stdout.write(text + "\n")
        self.stdout.flush()

    def message(self, message: Any, pool: Any = None) -> None:
        text = format_message(message, self.format, emit_defaults=self.emit_defaults, pool=pool)
        if self.format == "text":
            text += "\n"  # a blank line between messages of a stream
        self.line(text)

    def error(self, error: rpc.RpcError, pool: Any = None) -> None:
        """``ERROR:``, the status code's name, its message and any rich details, as grpcurl
        prints them."""
        lines = [
            "ERROR:",
            f"  Code: {GO_CODE_NAMES.get(error.code(), error.code().name)}",
            f"  Message: {error.details()}",
        ]
        details = error.rich_details()
        if details:
            lines.append("  Details:")
            for number, detail in enumerate(details, 1):
                prefix = f"  {number})"
                body = _detail_json(detail, pool).split("\n")
                lines.append(f"{prefix}\t{body[0]}")
                lines += [" " * len(prefix) + "\t" + line for line in body[1:]]
        self.stderr.write("\n".join(lines) + "\n")
        self.stderr.flush()


def _detail_json(detail: Any, pool: Any) -> str:
    """A ``google.protobuf.Any`` of a rich status as indented JSON (``@type`` and its fields,
    when its type is known; else ``@type`` and the bytes in base64)."""
    try:  # google.rpc's standard details (googleapis-common-protos), when installed
        from google.rpc import error_details_pb2  # type: ignore[import-untyped,import-not-found,unused-ignore]  # noqa: F401
    except ImportError:
        pass
    for candidate in (pool, None):
        try:
            return json_format.MessageToJson(detail, indent=2, descriptor_pool=candidate)
        except (TypeError, KeyError, json_format.Error):
            continue
    value = {"@type": detail.type_url, "value": base64.b64encode(detail.value).decode("ascii")}
    return json.dumps(value, indent=2)


@dataclass
class Connection:
    """How to reach the server: the channel's options and the calls' metadata and deadline."""

    target: str
    channel_options: dict[str, Any]
    metadata: list[tuple[str, Any]]
    timeout: Optional[float]
    tracer: Optional[rpc.Tracer]
    started: float = field(default_factory=time.monotonic)
    #: ``--pcap FILE``: the studied connection (like ``--trace``'s), for Wireshark.
    pcap: Optional[rpc.PcapWriter] = None

    def channel(self, *, traced: bool = True) -> rpc.sync.Channel:
        trace: Any = self.tracer if (traced and self.tracer is not None) else None
        pcap = self.pcap if traced else None
        return rpc.sync.Channel(self.target, trace=trace, pcap=pcap, **self.channel_options)

    def time_left(self) -> Optional[float]:
        """What is left of ``--timeout`` (the whole command's deadline)."""
        if self.timeout is None:
            return None
        return max(0.001, self.timeout - (time.monotonic() - self.started))


def open_schema(
    connection: Optional[Connection],
    offline: Optional[FileSchema],
    channel: Optional[rpc.sync.Channel],
) -> Schema:
    if offline is not None:
        return offline
    assert connection is not None and channel is not None
    return ReflectionSchema(
        channel, metadata=connection.metadata or None, timeout=connection.time_left()
    )


# ====================================================================== list, describe


def list_command(schema: Schema, service: Optional[str], output: Output) -> int:
    if service is None:
        for name in schema.services():
            output.line(name)
        return 0
    descriptor = schema.service(service)
    for method in sorted(descriptor.methods, key=lambda m: m.name):
        output.line(method.full_name)
    return 0


def describe_command(schema: Schema, symbol: Optional[str], output: Output) -> int:
    symbols: list[Any]
    if symbol is None:
        symbols = [schema.service(name) for name in schema.services()]
    else:
        symbols = [schema.find(symbol)]
    for found in symbols:
        if output.format == "json" and isinstance(
            found, (ServiceDescriptor, MethodDescriptor, Descriptor, EnumDescriptor)
        ):
            proto = _proto_of(found)
            copy_to_proto(found, proto)
            output.line(json.dumps(json_format.MessageToDict(proto), ensure_ascii=False))
        else:
            output.line(describe(found))
    return 0


def _proto_of(symbol: Any) -> Any:
    if isinstance(symbol, ServiceDescriptor):
        return descriptor_pb2.ServiceDescriptorProto()
    if isinstance(symbol, MethodDescriptor):
        return descriptor_pb2.MethodDescriptorProto()
    if isinstance(symbol, Descriptor):
        return descriptor_pb2.DescriptorProto()
    return descriptor_pb2.EnumDescriptorProto()


# ====================================================================== call


class _LazyRequests:
    """Requests parsed as they are read (standard input, for a streaming call): a bad one
    cancels the call and is kept, to be reported as a usage error."""

    def __init__(self, requests: Iterator[Any]) -> None:
        self._requests = requests
        self.error: Optional[RequestError] = None
        self.call: Any = None

    def __iter__(self) -> Iterator[Any]:
        try:
            yield from self._requests
        except RequestError as exc:
            self.error = exc
            if self.call is not None:
                self.call.cancel()


def call(
    connection: Connection,
    schema: Schema,
    method_name: str,
    data: Optional[str],
    output: Output,
) -> int:
    method = schema.method(method_name)
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    path = f"/{method.containing_service.full_name}/{method.name}"
    if connection.tracer is not None:
        connection.tracer.register_method(path, request_class, response_class)
    pool = schema.pool
    client_streaming = method.client_streaming
    server_streaming = method.server_streaming

    lazy: Optional[_LazyRequests] = None
    requests: Iterable[Any]
    parsed = read_requests(data, output.stdin, request_class, pool)
    if client_streaming and data in ("@", "@-"):
        requests = lazy = _LazyRequests(parsed)
    else:
        try:
            listed = list(parsed)
        except RequestError as exc:
            raise UsageError(str(exc)) from None
        if not client_streaming and len(listed) > 1:
            raise UsageError(
                f"{method.full_name} takes one request, and the data holds {len(listed)}"
            )
        requests = listed if client_streaming else (listed or [request_class()])

    channel = connection.channel()
    try:
        kind = (
            ("stream" if client_streaming else "unary")
            + "_"
            + ("stream" if server_streaming else "unary")
        )
        multi_callable = getattr(channel, kind)(
            path,
            request_serializer=lambda message: message.SerializeToString(),
            response_deserializer=response_class.FromString,
        )
        first = requests if client_streaming else next(iter(requests))
        options: dict[str, Any] = {
            "timeout": connection.time_left(),
            "metadata": connection.metadata or None,
        }
        try:
            if server_streaming:
                the_call = multi_callable(first, **options)
                if lazy is not None:
                    lazy.call = the_call
                for response in the_call:
                    output.message(response, pool)
            else:
                if lazy is not None:
                    future = multi_callable.future(first, **options)
                    lazy.call = future
                    response = future.result()
                else:
                    response = multi_callable(first, **options)
                output.message(response, pool)
        except rpc.RpcError as exc:
            if lazy is not None and lazy.error is not None:
                raise UsageError(str(lazy.error)) from None
            output.error(exc, pool)
            return exc.code().value
    finally:
        channel.close()
    return 0


# ====================================================================== health

_SERVING = health_pb2.HealthCheckResponse.SERVING


def health(connection: Connection, service: Optional[str], watch: bool, output: Output) -> int:
    """Check (or ``watch``) a service's health (the server's as a whole without one): the
    status printed; exit 0 when SERVING, else 14 (UNAVAILABLE), or the call's failure code."""
    request = health_pb2.HealthCheckRequest(service=service or "")
    channel = connection.channel()
    path = "/grpc.health.v1.Health/" + ("Watch" if watch else "Check")
    options: dict[str, Any] = {
        "timeout": connection.time_left(),
        "metadata": connection.metadata or None,
    }
    try:
        last = None
        if watch:
            watcher = channel.unary_stream(
                path,
                request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                response_deserializer=health_pb2.HealthCheckResponse.FromString,
            )
            for response in watcher(request, **options):
                output.message(response)
                last = response
        else:
            check = channel.unary_unary(
                path,
                request_serializer=health_pb2.HealthCheckRequest.SerializeToString,
                response_deserializer=health_pb2.HealthCheckResponse.FromString,
            )
            last = check(request, **options)
            output.message(last)
    except rpc.RpcError as exc:
        output.error(exc)
        return exc.code().value
    finally:
        channel.close()
    if last is not None and last.status == _SERVING:
        return 0
    return rpc.StatusCode.UNAVAILABLE.value
