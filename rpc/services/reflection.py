"""gRPC server reflection: ``grpc.reflection.v1.ServerReflection`` and its ``v1alpha`` twin.

::

    from rpc.services import reflection

    reflection.enable_reflection(server)     # rpc.Server or rpc.sync.Server

Tools such as grpcurl (which speaks only v1alpha up to 1.8), grpcui, Postman and
grpcio-reflection's ``ProtoReflectionDescriptorDatabase`` then list the server's services and
fetch their ``.proto`` descriptors: ``list_services``, ``file_by_filename``,
``file_containing_symbol``, ``file_containing_extension`` and
``all_extension_numbers_of_type``. A file is always sent with all of its transitive dependencies
(the file asked for first, as grpcio sends them); a name nobody knows gets an ``error_response``
with NOT_FOUND, and the stream goes on.

The services listed are the server's, as registered when the request arrives
(``server.services()``, the reflection services included). Their descriptors come from
registration (``add_service(descriptor, ...)``, ``rpc.method_handlers_generic_handler(...,
descriptor=...)``) or, for grpcio-generated ``add_XServicer_to_server`` (which registers names
only), from protobuf's default descriptor pool, which importing the ``_pb2`` module filled. Symbols
and files are looked up in those descriptors' pools and the default pool (as grpcio does).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator, Mapping
from types import ModuleType
from typing import Any, Callable, Optional, Union

from google.protobuf import descriptor_pool
from google.protobuf.descriptor import FileDescriptor, ServiceDescriptor

import rpc
from codec import StatusCode

from .proto.grpc_reflection.v1 import reflection_pb2 as reflection_v1_pb2
from .proto.grpc_reflection.v1alpha import reflection_pb2 as reflection_v1alpha_pb2

__all__ = [
    "SERVICE_NAMES",
    "V1ALPHA_SERVICE",
    "V1_SERVICE",
    "ReflectionServicer",
    "enable_reflection",
    "reflection_v1_pb2",
    "reflection_v1alpha_pb2",
]

V1_SERVICE = reflection_v1_pb2.DESCRIPTOR.services_by_name["ServerReflection"]
V1ALPHA_SERVICE = reflection_v1alpha_pb2.DESCRIPTOR.services_by_name["ServerReflection"]
#: ``grpc.reflection.v1.ServerReflection`` and ``grpc.reflection.v1alpha.ServerReflection``.
SERVICE_NAMES = (V1_SERVICE.full_name, V1ALPHA_SERVICE.full_name)

#: What the services to describe are: a server (its ``services()``), or a mapping of service
#: names to their descriptors (or None: looked up in the default pool by name).
Services = Union[Any, Mapping[str, Optional[ServiceDescriptor]]]


class _NotFound(Exception):
    pass


class ReflectionServicer:
    """Answers reflection requests about ``services``: a server (``rpc.Server``,
    ``rpc.sync.Server``: what it serves when asked), or a mapping of service names to their
    descriptors or None. ``pool``: one more descriptor pool to look symbols up in.

    ``respond(request)`` answers one ``ServerReflectionRequest`` of either version with a
    ``ServerReflectionResponse`` of the same version; ``enable_reflection`` serves it.
    """

    def __init__(
        self, services: Services, *, pool: Optional[descriptor_pool.DescriptorPool] = None
    ) -> None:
        self._services = services
        self._extra_pool = pool

    # ------------------------------------------------------------------ what is described

    def service_descriptors(self) -> dict[str, Optional[ServiceDescriptor]]:
        """Every service to list, by name, with its descriptor where one is known."""
        services = self._services
        known: Mapping[str, Optional[ServiceDescriptor]]
        known = services if isinstance(services, Mapping) else services.services()
        default = descriptor_pool.Default()
        found: dict[str, Optional[ServiceDescriptor]] = {}
        for name, descriptor in known.items():
            if descriptor is None:
                try:
                    descriptor = default.FindServiceByName(name)
                except KeyError:
                    descriptor = None
            found[name] = descriptor
        return found

    def _pools(self) -> list[Any]:
        """The pools to search: the services' own (in order), the extra one, the default one."""
        pools: list[Any] = []
        candidates: list[Any] = [
            d.file.pool for d in self.service_descriptors().values() if d is not None
        ]
        candidates += [self._extra_pool, descriptor_pool.Default()]
        for pool in candidates:
            if pool is not None and all(pool is not seen for seen in pools):
                pools.append(pool)
        return pools

    def _search(self, find: Callable[[Any], Any]) -> Any:
        for pool in self._pools():
            try:
                return find(pool)
            except KeyError:
                continue
        raise _NotFound

    # ------------------------------------------------------------------ answers

    def respond(self, request: Any) -> Any:
        """The response to one request (either version's message types)."""
        pb = _version_of(request)
        response = pb.ServerReflectionResponse(valid_host=request.host, original_request=request)
        kind = request.WhichOneof("message_request")
        try:
            if kind == "list_services":
                names = sorted(self.service_descriptors())
                response.list_services_response.service.extend(
                    pb.ServiceResponse(name=name) for name in names
                )
            elif kind == "file_by_filename":
                name = request.file_by_filename
                self._add_files(response, self._search(lambda pool: pool.FindFileByName(name)))
            elif kind == "file_containing_symbol":
                symbol = request.file_containing_symbol
                file = self._search(lambda pool: _file_containing_symbol(pool, symbol))
                self._add_files(response, file)
            elif kind == "file_containing_extension":
                ask = request.file_containing_extension
                extension = self._search(
                    lambda pool: pool.FindExtensionByNumber(
                        pool.FindMessageTypeByName(ask.containing_type), ask.extension_number
                    )
                )
                self._add_files(response, extension.file)
            elif kind == "all_extension_numbers_of_type":
                type_name = request.all_extension_numbers_of_type
                message, extensions = self._search(
                    lambda pool: _with_extensions(pool, pool.FindMessageTypeByName(type_name))
                )
                numbers = response.all_extension_numbers_response
                numbers.base_type_name = message.full_name
                numbers.extension_number.extend(sorted({e.number for e in extensions}))
            else:
                raise rpc.RpcError(
                    StatusCode.INVALID_ARGUMENT, "the reflection request asks for nothing"
                )
        except _NotFound:
            response.ClearField("message_response")
            response.error_response.error_code = StatusCode.NOT_FOUND.value
            response.error_response.error_message = f"{_asked(request, kind)} not found"
        return response

    def _add_files(self, response: Any, file: FileDescriptor) -> None:
        """``file`` and every file it depends on, transitively, each once, ``file`` first."""
        files: list[FileDescriptor] = []
        seen: set[str] = set()
        stack = [file]
        while stack:
            current = stack.pop()
            if current.name in seen:
                continue
            seen.add(current.name)
            files.append(current)
            stack.extend(reversed(list(current.dependencies)))
        response.file_descriptor_response.file_descriptor_proto.extend(
            f.serialized_pb for f in files
        )


def _file_containing_symbol(pool: Any, symbol: str) -> Any:
    """The file that defines ``symbol``: a message, field, enum, value, extension, service, or
    method (which protobuf's pools do not look up: through its service)."""
    try:
        return pool.FindFileContainingSymbol(symbol)
    except KeyError:
        service_name, _, method = symbol.rpartition(".")
        service = pool.FindServiceByName(service_name)  # KeyError: not a method either
        if method not in service.methods_by_name:
            raise
        return service.file


def _with_extensions(pool: Any, message: Any) -> tuple[Any, list[Any]]:
    return message, list(pool.FindAllExtensions(message))


def _version_of(request: Any) -> ModuleType:
    if isinstance(request, reflection_v1_pb2.ServerReflectionRequest):
        return reflection_v1_pb2
    if isinstance(request, reflection_v1alpha_pb2.ServerReflectionRequest):
        return reflection_v1alpha_pb2
    # The same message from another module (grpcio-reflection's own): by its full name.
    full_name = request.DESCRIPTOR.full_name
    return reflection_v1alpha_pb2 if ".v1alpha." in full_name else reflection_v1_pb2


def _asked(request: Any, kind: str) -> str:
    if kind == "file_containing_extension":
        ask = request.file_containing_extension
        return f"extension {ask.extension_number} of {ask.containing_type}"
    what = {
        "file_by_filename": "file",
        "file_containing_symbol": "symbol",
        "all_extension_numbers_of_type": "message type",
    }[kind]
    return f"{what} {getattr(request, kind)!r}"


class _Servicer:
    """``ServerReflectionInfo`` as a plain ``def`` (``rpc.sync.Server``)."""

    def __init__(self, reflection: ReflectionServicer) -> None:
        self._reflection = reflection

    def ServerReflectionInfo(self, request_iterator: Iterable[Any], context: Any) -> Iterator[Any]:
        for request in request_iterator:
            yield self._reflection.respond(request)


class _AsyncServicer(_Servicer):
    """``ServerReflectionInfo`` as an ``async def`` (``rpc.Server``)."""

    async def ServerReflectionInfo(  # type: ignore[override]
        self, request_iterator: AsyncIterator[Any], context: Any
    ) -> AsyncIterator[Any]:
        async for request in request_iterator:
            yield self._reflection.respond(request)


def enable_reflection(
    server: Any, *, pool: Optional[descriptor_pool.DescriptorPool] = None
) -> ReflectionServicer:
    """Serve ``grpc.reflection.v1.ServerReflection`` and ``grpc.reflection.v1alpha.
    ServerReflection`` on ``server`` (``rpc.Server`` or ``rpc.sync.Server``), describing every
    service it serves (including those added later); ``pool``: one more descriptor pool to look
    symbols up in."""
    reflection = ReflectionServicer(server, pool=pool)
    servicer = _Servicer(reflection) if isinstance(server, rpc.sync.Server) else None
    servicer = servicer or _AsyncServicer(reflection)
    server.add_service(V1_SERVICE, servicer)
    server.add_service(V1ALPHA_SERVICE, servicer)
    return reflection
