"""Server reflection (v1 and v1alpha) against real clients: grpcio-reflection's own
``ProtoReflectionDescriptorDatabase`` (v1alpha) and a grpcio bidi stream speaking v1.

Services are registered the three ways reflection must see: ``add_service(descriptor, ...)``
(the interop TestService, whose file imports two others), grpcio-generated
``add_EchoTestServicer_to_server`` (names only: the descriptor comes from the default pool), and
``rpc.method_handlers_generic_handler(..., descriptor=...)`` with a descriptor from a private pool
(two files, the service's importing the base one, with proto2 extensions).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from google.protobuf import descriptor_pb2, descriptor_pool
from peers import GRPCIO_AVAILABLE, GRPCIO_UNAVAILABLE_REASON

import rpc
from rpc.interop.proto import test_pb2
from rpc.services import reflection
from rpc.services.reflection import reflection_v1_pb2, reflection_v1alpha_pb2
from tests.services.servers import KINDS, serving

if not GRPCIO_AVAILABLE:  # PyPy only: on CPython a missing grpcio is an error, not a skip
    pytest.skip(GRPCIO_UNAVAILABLE_REASON, allow_module_level=True)

import grpc
import h2rpc_test_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)


def custom_pool() -> descriptor_pool.DescriptorPool:
    """``custom/base.proto`` (a message with an extension range) and ``custom/service.proto``
    (imports it; extends it with fields 100 and 150; service ``custom.v1.Custom``), in a pool of
    their own: only the registration knows them."""
    base = descriptor_pb2.FileDescriptorProto(
        name="custom/base.proto", package="custom.v1", syntax="proto2"
    )
    extendable = base.message_type.add(name="Extendable")
    extendable.field.add(name="name", number=1, type=9, label=1)  # optional string
    extendable.extension_range.add(start=100, end=200)

    service = descriptor_pb2.FileDescriptorProto(
        name="custom/service.proto",
        package="custom.v1",
        syntax="proto2",
        dependency=["custom/base.proto"],
    )
    reply = service.message_type.add(name="Reply")
    reply.field.add(name="payload", number=1, type=11, label=1, type_name=".custom.v1.Extendable")
    for name, number in (("tag", 100), ("other", 150)):
        service.extension.add(
            name=name, number=number, type=5, label=1, extendee=".custom.v1.Extendable"
        )
    method = service.service.add(name="Custom").method.add(name="Get")
    method.input_type, method.output_type = ".custom.v1.Extendable", ".custom.v1.Reply"

    pool = descriptor_pool.DescriptorPool()
    pool.Add(base)
    pool.Add(service)
    return pool


CUSTOM_POOL = custom_pool()


class _Echo(h2rpc_test_pb2_grpc.EchoTestServicer):
    pass


def register(server: Any) -> None:
    server.add_service(test_pb2.DESCRIPTOR.services_by_name["TestService"], object())
    h2rpc_test_pb2_grpc.add_EchoTestServicer_to_server(_Echo(), server)
    server.add_generic_rpc_handlers(
        (
            rpc.method_handlers_generic_handler(
                "custom.v1.Custom",
                {"Get": rpc.unary_unary_rpc_method_handler(lambda request, context: b"")},
                descriptor=CUSTOM_POOL.FindServiceByName("custom.v1.Custom"),
            ),
            # No descriptor anywhere: listed, but not described.
            rpc.method_handlers_generic_handler(
                "opaque.Blob", {"Put": rpc.unary_unary_rpc_method_handler(lambda r, c: r)}
            ),
        )
    )
    reflection.enable_reflection(server)


@pytest.fixture(params=KINDS)
def target(request: pytest.FixtureRequest) -> Iterator[str]:
    with serving(request.param, register) as address:
        yield address


LISTED = [
    "custom.v1.Custom",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
    "grpc.testing.TestService",
    "h2rpc.test.EchoTest",
    "opaque.Blob",
]


# ---------------------------------------------------------------- grpcio-reflection (v1alpha)


def test_grpcio_reflection_client_lists_every_registered_service(target: str) -> None:
    with grpc.insecure_channel(target) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        assert sorted(database.get_services()) == LISTED


def test_grpcio_reflection_client_builds_a_service_and_its_imported_messages(
    target: str,
) -> None:
    with grpc.insecure_channel(target) as channel:
        pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
        service = pool.FindServiceByName("grpc.testing.TestService")
        unary = service.methods_by_name["UnaryCall"]
        assert unary.input_type.full_name == "grpc.testing.SimpleRequest"
        assert unary.input_type.file.name == "rpc/interop/proto/messages.proto"
        empty = service.methods_by_name["EmptyCall"].input_type
        assert empty.file.name == "rpc/interop/proto/empty.proto"
        # From grpcio-generated registration (names only) and a private pool's descriptor:
        echo = pool.FindServiceByName("h2rpc.test.EchoTest")
        assert echo.methods_by_name["Bidi"].server_streaming
        get = pool.FindServiceByName("custom.v1.Custom").methods_by_name["Get"]
        assert get.input_type.file.name == "custom/base.proto"


def test_grpcio_reflection_client_extensions(target: str) -> None:
    with grpc.insecure_channel(target) as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        assert sorted(database.FindAllExtensionNumbers("custom.v1.Extendable")) == [100, 150]
        with pytest.raises(KeyError):
            database.FindAllExtensionNumbers("custom.v1.Nope")
        # (Its FindFileContainingExtension never asks the server: it first calls protobuf's
        # DescriptorDatabase.FindFileContainingExtension, which returns None, "TODO: implement
        # this API". The v1 test below asks file_containing_extension itself.)


# ---------------------------------------------------------------- v1, over a grpcio stream


def _ask_v1(target: str, requests: list[Any]) -> list[Any]:
    with grpc.insecure_channel(target) as channel:
        info = channel.stream_stream(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
            request_serializer=reflection_v1_pb2.ServerReflectionRequest.SerializeToString,
            response_deserializer=reflection_v1_pb2.ServerReflectionResponse.FromString,
        )
        return list(info(iter(requests), timeout=10))


def _file_names(response: Any) -> list[str]:
    protos = response.file_descriptor_response.file_descriptor_proto
    return [descriptor_pb2.FileDescriptorProto.FromString(data).name for data in protos]


def test_v1_answers_each_kind_of_request_in_order_on_one_stream(target: str) -> None:
    Request = reflection_v1_pb2.ServerReflectionRequest
    requests = [
        Request(host="h", list_services=""),
        Request(file_containing_symbol="grpc.testing.TestService.UnaryCall"),
        Request(file_by_filename="custom/base.proto"),
        Request(
            file_containing_extension=reflection_v1_pb2.ExtensionRequest(
                containing_type="custom.v1.Extendable", extension_number=100
            )
        ),
        Request(all_extension_numbers_of_type="custom.v1.Extendable"),
        Request(file_containing_symbol="grpc.health.v1.Nope"),
        Request(file_containing_symbol="grpc.testing.TestService.NoSuchMethod"),
        Request(file_by_filename="no/such.proto"),
        Request(all_extension_numbers_of_type="custom.v1.Nope"),
        Request(
            file_containing_extension=reflection_v1_pb2.ExtensionRequest(
                containing_type="custom.v1.Extendable", extension_number=101
            )
        ),
        Request(file_containing_symbol="custom.v1.Reply.payload"),
    ]
    responses = _ask_v1(target, requests)
    assert [r.original_request for r in responses] == requests
    listed, symbol, by_name, extension, numbers, *errors, field = responses
    assert listed.valid_host == "h"
    assert [s.name for s in listed.list_services_response.service] == LISTED
    # The file first, then everything it imports.
    assert _file_names(symbol) == [
        "rpc/interop/proto/test.proto",
        "rpc/interop/proto/empty.proto",
        "rpc/interop/proto/messages.proto",
    ]
    assert _file_names(by_name) == ["custom/base.proto"]
    assert _file_names(extension) == ["custom/service.proto", "custom/base.proto"]
    assert numbers.all_extension_numbers_response.base_type_name == "custom.v1.Extendable"
    assert list(numbers.all_extension_numbers_response.extension_number) == [100, 150]
    for error in errors:
        assert error.WhichOneof("message_response") == "error_response"
        assert error.error_response.error_code == grpc.StatusCode.NOT_FOUND.value[0]
    assert _file_names(field) == ["custom/service.proto", "custom/base.proto"]


def test_v1_request_without_a_question_ends_the_stream_invalid_argument(target: str) -> None:
    with pytest.raises(grpc.RpcError) as info:
        _ask_v1(target, [reflection_v1_pb2.ServerReflectionRequest(host="only a host")])
    assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_reflection_servicer_answers_grpcio_reflection_messages_in_their_version() -> None:
    servicer = reflection.ReflectionServicer({"grpc.testing.TestService": None})
    request = reflection_v1alpha_pb2.ServerReflectionRequest(list_services="*")
    response = servicer.respond(request)
    assert isinstance(response, reflection_v1alpha_pb2.ServerReflectionResponse)
    assert [s.name for s in response.list_services_response.service] == ["grpc.testing.TestService"]
