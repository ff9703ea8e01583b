"""Where the command line's message types come from: server reflection, or files.

* ``ReflectionSchema``: asks the server over ``grpc.reflection.v1`` (or ``v1alpha``, which
  grpcurl 1.8 and older servers speak) on h2rpc's own blocking channel, one bidi call for the
  whole conversation, and builds a ``DescriptorPool`` from the ``FileDescriptorProto``s it sends;
* ``FileSchema``: the same pool, offline, from ``--protoset`` files (``FileDescriptorSet``s, as
  ``protoc --include_imports --descriptor_set_out`` writes them) or from ``--proto`` files
  compiled at run time (with grpcio-tools' protoc when importable, else ``protoc`` on PATH).
"""

from __future__ import annotations

import os
import queue
import shutil
import subprocess
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from typing import Any, Optional

from google.protobuf import descriptor_pb2, descriptor_pool
from google.protobuf.descriptor import (
    Descriptor,
    EnumDescriptor,
    MethodDescriptor,
    ServiceDescriptor,
)

import rpc
from rpc.services.proto.grpc_reflection.v1 import reflection_pb2 as v1
from rpc.services.proto.grpc_reflection.v1alpha import reflection_pb2 as v1alpha

__all__ = ["FileSchema", "ReflectionSchema", "Schema", "SchemaError", "Symbol"]

#: A symbol found in a schema: a service, method, message, enum or field descriptor.
Symbol = Any


class SchemaError(Exception):
    """A schema that cannot be had: a symbol nobody knows (``code``: NOT_FOUND), or files that
    do not compile or load (a usage error)."""

    def __init__(self, message: str, code: Optional[rpc.StatusCode] = None) -> None:
        super().__init__(message)
        self.code = code


class Schema:
    """A descriptor pool and the services it was asked about."""

    def __init__(self) -> None:
        self.pool = descriptor_pool.DescriptorPool()
        self._protos: dict[str, descriptor_pb2.FileDescriptorProto] = {}
        self._added: set[str] = set()

    # ------------------------------------------------------------------ to implement

    def services(self) -> list[str]:
        """Every service's full name, sorted."""
        raise NotImplementedError

    def _load_symbol(self, symbol: str) -> None:
        """Make the file that defines ``symbol`` known (KeyError: nobody knows it)."""

    def _load_file(self, name: str) -> None:
        """Make the file ``name`` known (KeyError: nobody knows it)."""
        raise KeyError(name)

    def close(self) -> None:
        pass

    # ------------------------------------------------------------------ shared

    def _add_protos(self, protos: Iterable[descriptor_pb2.FileDescriptorProto]) -> None:
        for proto in protos:
            self._protos.setdefault(proto.name, proto)

    def _add_to_pool(self, name: str, chain: tuple[str, ...] = ()) -> None:
        """File ``name`` into the pool, after its dependencies."""
        if name in self._added:
            return
        if name in chain:
            raise SchemaError(f"import cycle: {' -> '.join((*chain, name))}")
        if name not in self._protos:
            try:
                self._load_file(name)
            except KeyError:
                raise SchemaError(f"file {name!r} (imported) not found") from None
        proto = self._protos[name]
        for dependency in proto.dependency:
            self._add_to_pool(dependency, (*chain, name))
        try:
            self.pool.Add(proto)
        except TypeError as exc:  # conflicting definitions
            raise SchemaError(f"cannot load {name!r}: {exc}") from None
        self._added.add(name)

    def _pool_all(self) -> None:
        for name in list(self._protos):
            self._add_to_pool(name)

    def find(self, symbol: str) -> Symbol:
        """The descriptor of a service, method (``pkg.Svc.Method`` or ``pkg.Svc/Method``),
        message, enum, field or enum value; SchemaError(NOT_FOUND) if there is none."""
        symbol = symbol.lstrip(".").replace("/", ".")
        found = self._lookup(symbol)
        if found is None:
            try:
                self._load_symbol(symbol)
            except KeyError:
                # Servers may not know methods or fields as symbols: ask for the parent.
                parent = symbol.rpartition(".")[0]
                try:
                    if not parent:
                        raise KeyError(symbol) from None
                    self._load_symbol(parent)
                except KeyError:
                    raise SchemaError(
                        f"symbol {symbol!r} not found", rpc.StatusCode.NOT_FOUND
                    ) from None
            self._pool_all()
            found = self._lookup(symbol)
        if found is None:
            raise SchemaError(f"symbol {symbol!r} not found", rpc.StatusCode.NOT_FOUND)
        return found

    def _lookup(self, symbol: str) -> Optional[Symbol]:
        pool = self.pool
        finders = (
            pool.FindServiceByName,
            pool.FindMessageTypeByName,
            pool.FindEnumTypeByName,
            pool.FindExtensionByName,
        )
        for find in finders:
            try:
                return find(symbol)
            except KeyError:
                pass
        parent_name, _, leaf = symbol.rpartition(".")
        if not parent_name:
            return None
        parent = self._lookup(parent_name)
        if isinstance(parent, ServiceDescriptor):
            return parent.methods_by_name.get(leaf)
        if isinstance(parent, Descriptor):
            return parent.fields_by_name.get(leaf)
        if isinstance(parent, EnumDescriptor):
            return parent.values_by_name.get(leaf)
        return None

    def service(self, name: str) -> ServiceDescriptor:
        found = self.find(name)
        if not isinstance(found, ServiceDescriptor):
            raise SchemaError(f"{name!r} is not a service", rpc.StatusCode.NOT_FOUND)
        return found

    def method(self, name: str) -> MethodDescriptor:
        """A method by ``pkg.Svc/Method`` or ``pkg.Svc.Method``."""
        found = self.find(name)
        if not isinstance(found, MethodDescriptor):
            raise SchemaError(f"{name!r} is not a method", rpc.StatusCode.NOT_FOUND)
        return found

    def __enter__(self) -> Schema:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


# ====================================================================== reflection


class _Conversation:
    """One ``ServerReflectionInfo`` call: a request queue feeding the call, a response each."""

    def __init__(self, channel: rpc.sync.Channel, pb: Any, metadata: Any, timeout: Any) -> None:
        self.pb = pb
        self._requests: queue.Queue[Any] = queue.Queue()
        method = channel.stream_stream(
            f"/{pb.DESCRIPTOR.services_by_name['ServerReflection'].full_name}/ServerReflectionInfo",
            request_serializer=pb.ServerReflectionRequest.SerializeToString,
            response_deserializer=pb.ServerReflectionResponse.FromString,
        )
        self._call = method(self._request_iterator(), timeout=timeout, metadata=metadata)

    def _request_iterator(self) -> Iterator[Any]:
        while True:
            request = self._requests.get()
            if request is None:
                return
            yield request

    def ask(self, **fields: Any) -> Any:
        self._requests.put(self.pb.ServerReflectionRequest(**fields))
        try:
            return next(self._call)
        except StopIteration:
            raise rpc.RpcError(
                rpc.StatusCode.INTERNAL, "the reflection stream ended without an answer"
            ) from None

    def close(self) -> None:
        self._requests.put(None)
        self._call.cancel()


class ReflectionSchema(Schema):
    """The server's schema, fetched over server reflection (v1, else v1alpha)."""

    def __init__(
        self,
        channel: rpc.sync.Channel,
        *,
        metadata: Any = None,
        timeout: Optional[float] = None,
    ) -> None:
        super().__init__()
        self._channel = channel
        self._metadata = metadata
        self._timeout = timeout
        self._conversation: Optional[_Conversation] = None

    def _ask(self, **fields: Any) -> Any:
        if self._conversation is None:
            for pb in (v1, v1alpha):
                conversation = _Conversation(self._channel, pb, self._metadata, self._timeout)
                try:
                    response = conversation.ask(**fields)
                except rpc.RpcError as exc:
                    conversation.close()
                    if exc.code() == rpc.StatusCode.UNIMPLEMENTED and pb is v1:
                        continue  # an older server: v1alpha
                    if exc.code() == rpc.StatusCode.UNIMPLEMENTED:
                        raise rpc.RpcError(
                            exc.code(), "the server does not support the reflection API"
                        ) from None
                    raise
                self._conversation = conversation
                return response
        assert self._conversation is not None
        return self._conversation.ask(**fields)

    def _files(self, **fields: Any) -> None:
        response = self._ask(**fields)
        kind = response.WhichOneof("message_response")
        if kind == "error_response":
            raise KeyError(response.error_response.error_message)
        if kind != "file_descriptor_response":
            raise rpc.RpcError(rpc.StatusCode.INTERNAL, f"unexpected reflection answer {kind}")
        self._add_protos(
            descriptor_pb2.FileDescriptorProto.FromString(data)
            for data in response.file_descriptor_response.file_descriptor_proto
        )

    def services(self) -> list[str]:
        response = self._ask(list_services="")
        if response.WhichOneof("message_response") == "error_response":
            error = response.error_response
            raise rpc.RpcError(rpc.StatusCode(error.error_code), error.error_message)
        return sorted(service.name for service in response.list_services_response.service)

    def _load_symbol(self, symbol: str) -> None:
        self._files(file_containing_symbol=symbol)

    def _load_file(self, name: str) -> None:
        self._files(file_by_filename=name)

    def close(self) -> None:
        if self._conversation is not None:
            self._conversation.close()
            self._conversation = None


# ====================================================================== files


class FileSchema(Schema):
    """A schema from ``FileDescriptorSet`` files and ``.proto`` files, without a server."""

    def __init__(
        self,
        protosets: Sequence[str] = (),
        protos: Sequence[str] = (),
        import_paths: Sequence[str] = (),
    ) -> None:
        super().__init__()
        for path in protosets:
            self._add_protos(_read_protoset(path))
        if protos:
            self._add_protos(compile_protos(protos, import_paths))
        self._pool_all()

    def services(self) -> list[str]:
        names = []
        for proto in self._protos.values():
            package = f"{proto.package}." if proto.package else ""
            names += [package + service.name for service in proto.service]
        return sorted(set(names))


def _read_protoset(path: str) -> list[descriptor_pb2.FileDescriptorProto]:
    try:
        with open(path, "rb") as file:
            data = file.read()
    except OSError as exc:
        raise SchemaError(f"cannot read {path}: {exc.strerror}") from None
    files = descriptor_pb2.FileDescriptorSet()
    try:
        files.ParseFromString(data)
    except Exception:
        raise SchemaError(f"{path} is not a FileDescriptorSet") from None
    return list(files.file)


def compile_protos(
    protos: Sequence[str], import_paths: Sequence[str]
) -> list[descriptor_pb2.FileDescriptorProto]:
    """``.proto`` files (found on ``import_paths``, or where they are) compiled to descriptors."""
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "files.protoset")
        includes = list(import_paths) or ["."]
        args = [f"-I{path}" for path in includes]
        args += ["--include_imports", f"--descriptor_set_out={out}", *protos]
        try:
            from grpc_tools import protoc  # type: ignore[import-untyped,import-not-found,unused-ignore]
        except ImportError:
            compiler = shutil.which("protoc")
            if compiler is None:
                raise SchemaError(
                    "--proto needs a protobuf compiler: pip install grpcio-tools, or put protoc "
                    "on PATH (or pass a compiled --protoset)"
                ) from None
            result = subprocess.run([compiler, *args], capture_output=True, text=True, check=False)
            if result.returncode != 0:
                raise SchemaError(f"protoc failed:\n{result.stderr.strip()}") from None
        else:
            from importlib import resources

            well_known = str(resources.files("grpc_tools") / "_proto")
            status = protoc.main(["protoc", *args, f"-I{well_known}"])
            if status != 0:
                raise SchemaError(f"protoc failed on {' '.join(protos)} (see above)") from None
        return _read_protoset(out)
