"""The test service of the command line's tests, ``clitest.Kinds``: one method of each call kind
and one that fails, over a message with the JSON mapping's corner cases (64-bit integers, an
enum, bytes, a map, a repeated field, a well-known type, a nested message). Its file is built
here from a ``FileDescriptorProto`` in text form, into a pool of its own, so that no protoc is
needed (PyPy) and the CLI can know it only by reflection or from a protoset."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from google.protobuf import (
    descriptor_pb2,
    descriptor_pool,
    message_factory,
    text_format,
    timestamp_pb2,
)

KINDS_FILE = """
name: "clitest/kinds.proto"
package: "clitest"
dependency: "google/protobuf/timestamp.proto"
syntax: "proto3"
enum_type { name: "Color" value { name: "COLOR_UNSPECIFIED" number: 0 }
            value { name: "RED" number: 1 } value { name: "GREEN" number: 2 } }
message_type {
  name: "Item"
  field { name: "name" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING json_name: "name" }
  field { name: "big_number" number: 2 label: LABEL_OPTIONAL type: TYPE_INT64
          json_name: "bigNumber" }
  field { name: "color" number: 3 label: LABEL_OPTIONAL type: TYPE_ENUM
          type_name: ".clitest.Color" json_name: "color" }
  field { name: "blob" number: 4 label: LABEL_OPTIONAL type: TYPE_BYTES json_name: "blob" }
  field { name: "numbers" number: 5 label: LABEL_REPEATED type: TYPE_INT32 json_name: "numbers" }
  field { name: "counts" number: 6 label: LABEL_REPEATED type: TYPE_MESSAGE
          type_name: ".clitest.Item.CountsEntry" json_name: "counts" }
  field { name: "when" number: 7 label: LABEL_OPTIONAL type: TYPE_MESSAGE
          type_name: ".google.protobuf.Timestamp" json_name: "when" }
  field { name: "ratio" number: 8 label: LABEL_OPTIONAL type: TYPE_DOUBLE json_name: "ratio" }
  field { name: "inner" number: 9 label: LABEL_OPTIONAL type: TYPE_MESSAGE
          type_name: ".clitest.Item.Inner" json_name: "inner" }
  nested_type {
    name: "CountsEntry"
    field { name: "key" number: 1 label: LABEL_OPTIONAL type: TYPE_STRING json_name: "key" }
    field { name: "value" number: 2 label: LABEL_OPTIONAL type: TYPE_INT32 json_name: "value" }
    options { map_entry: true }
  }
  nested_type {
    name: "Inner"
    field { name: "id" number: 1 label: LABEL_OPTIONAL type: TYPE_UINT64 json_name: "id" }
  }
}
message_type {
  name: "Items"
  field { name: "items" number: 1 label: LABEL_REPEATED type: TYPE_MESSAGE
          type_name: ".clitest.Item" json_name: "items" }
  field { name: "count" number: 2 label: LABEL_OPTIONAL type: TYPE_INT32 json_name: "count" }
}
service {
  name: "Kinds"
  method { name: "Echo" input_type: ".clitest.Item" output_type: ".clitest.Item" }
  method { name: "Repeat" input_type: ".clitest.Item" output_type: ".clitest.Item"
           server_streaming: true }
  method { name: "Collect" input_type: ".clitest.Item" output_type: ".clitest.Items"
           client_streaming: true }
  method { name: "Chat" input_type: ".clitest.Item" output_type: ".clitest.Item"
           client_streaming: true server_streaming: true }
  method { name: "Fail" input_type: ".clitest.Item" output_type: ".clitest.Item" }
}
"""


def file_protos() -> list[descriptor_pb2.FileDescriptorProto]:
    """The file and its dependency, dependency first."""
    timestamp = descriptor_pb2.FileDescriptorProto()
    timestamp_pb2.DESCRIPTOR.CopyToProto(timestamp)
    kinds = text_format.Parse(KINDS_FILE, descriptor_pb2.FileDescriptorProto())
    return [timestamp, kinds]


POOL = descriptor_pool.DescriptorPool()
for _proto in file_protos():
    POOL.Add(_proto)
SERVICE = POOL.FindServiceByName("clitest.Kinds")
Item: Any = message_factory.GetMessageClass(POOL.FindMessageTypeByName("clitest.Item"))
Items: Any = message_factory.GetMessageClass(POOL.FindMessageTypeByName("clitest.Items"))


def write_protoset(path: str) -> None:
    files = descriptor_pb2.FileDescriptorSet(file=file_protos())
    with open(path, "wb") as f:
        f.write(files.SerializeToString())


class Kinds:
    """Plain ``def`` methods: served by ``rpc.sync.Server`` and (with ``Fail`` overridden) by a
    grpcio server."""

    def Echo(self, request: Any, context: Any) -> Any:
        return request

    def Repeat(self, request: Any, context: Any) -> Iterator[Any]:
        for number in request.numbers:
            yield Item(name=request.name, big_number=number)

    def Collect(self, request_iterator: Iterable[Any], context: Any) -> Any:
        items = list(request_iterator)
        return Items(items=items, count=len(items))

    def Chat(self, request_iterator: Iterable[Any], context: Any) -> Iterator[Any]:
        for item in request_iterator:
            yield Item(name=item.name.upper(), big_number=item.big_number * 2)

    def Fail(self, request: Any, context: Any) -> Any:
        raise NotImplementedError
