"""``h2rpc describe``: services, methods, messages, enums and fields in ``.proto`` syntax, as
grpcurl shows them (type names fully qualified, methods sorted by name, fields by number)."""

from __future__ import annotations

from typing import Any

from google.protobuf import descriptor_pb2
from google.protobuf.descriptor import (
    Descriptor,
    EnumDescriptor,
    EnumValueDescriptor,
    FieldDescriptor,
    MethodDescriptor,
    ServiceDescriptor,
)
from google.protobuf.descriptor import Error as DescriptorError

__all__ = ["copy_to_proto", "describe"]

_INDENT = "  "

#: FieldDescriptorProto types to their .proto names (messages and enums print their type name).
_SCALARS = {
    value: name[len("TYPE_") :].lower()
    for name, value in descriptor_pb2.FieldDescriptorProto.Type.items()
}


def copy_to_proto(symbol: Any, proto: Any) -> None:
    """``symbol.CopyToProto(proto)``, on every protobuf backend.

    The pure-Python backend (PyPy's) keeps no serialized form of its own for a service, method,
    message or enum that a descriptor pool built from a ``FileDescriptorProto`` (reflection,
    ``--protoset``): only its file has one. There the proto is looked up in the file's.
    """
    try:
        symbol.CopyToProto(proto)
        return
    except DescriptorError:
        pass
    file = descriptor_pb2.FileDescriptorProto()
    symbol.file.CopyToProto(file)
    proto.CopyFrom(_in_file(file, symbol))


def _in_file(file: descriptor_pb2.FileDescriptorProto, symbol: Any) -> Any:
    if isinstance(symbol, ServiceDescriptor):
        return next(s for s in file.service if s.name == symbol.name)
    if isinstance(symbol, MethodDescriptor):
        service = _in_file(file, symbol.containing_service)
        return next(m for m in service.method if m.name == symbol.name)
    owner = symbol.containing_type
    if isinstance(symbol, EnumDescriptor):
        enums = file.enum_type if owner is None else _in_file(file, owner).enum_type
        return next(e for e in enums if e.name == symbol.name)
    messages = file.message_type if owner is None else _in_file(file, owner).nested_type
    return next(m for m in messages if m.name == symbol.name)


def describe(symbol: Any) -> str:
    """``NAME is a KIND:`` and the symbol's definition, as grpcurl's ``describe`` prints it."""
    if isinstance(symbol, ServiceDescriptor):
        return f"{symbol.full_name} is a service:\n" + "\n".join(_service(symbol))
    if isinstance(symbol, MethodDescriptor):
        return f"{symbol.full_name} is a method:\n" + _method(symbol)
    if isinstance(symbol, Descriptor):
        return f"{symbol.full_name} is a message:\n" + "\n".join(_message(symbol))
    if isinstance(symbol, EnumDescriptor):
        return f"{symbol.full_name} is an enum:\n" + "\n".join(_enum(symbol))
    if isinstance(symbol, FieldDescriptor):
        kind = "an extension" if symbol.is_extension else "a field"
        return f"{symbol.full_name} is {kind}:\n" + _field_of(symbol)
    if isinstance(symbol, EnumValueDescriptor):
        return (
            f"{symbol.type.full_name}.{symbol.name} is an enum value:\n"
            f"{symbol.name} = {symbol.number};"
        )
    raise TypeError(f"cannot describe {symbol!r}")


def _service(service: ServiceDescriptor) -> list[str]:
    methods = sorted(service.methods, key=lambda m: m.name)
    return [
        f"service {service.name} {{",
        *(_INDENT + _method(method) for method in methods),
        "}",
    ]


def _method(method: MethodDescriptor) -> str:
    proto = descriptor_pb2.MethodDescriptorProto()
    copy_to_proto(method, proto)
    request = ("stream " if proto.client_streaming else "") + f".{method.input_type.full_name}"
    response = ("stream " if proto.server_streaming else "") + f".{method.output_type.full_name}"
    return f"rpc {method.name} ( {request} ) returns ( {response} );"


def _message(message: Descriptor) -> list[str]:
    proto = descriptor_pb2.DescriptorProto()
    copy_to_proto(message, proto)
    syntax = _syntax(message)
    maps = {
        f".{message.full_name}.{nested.name}": nested
        for nested in proto.nested_type
        if nested.options.map_entry
    }
    lines = [f"message {message.name} {{"]
    # Fields by number, a oneof where its first field is (synthetic oneofs are proto3 optional).
    fields = sorted(proto.field, key=lambda f: f.number)
    printed_oneofs: set[int] = set()
    for field in fields:
        if field.HasField("oneof_index") and not field.proto3_optional:
            index = field.oneof_index
            if index in printed_oneofs:
                continue
            printed_oneofs.add(index)
            lines.append(f"{_INDENT}oneof {proto.oneof_decl[index].name} {{")
            members = [f for f in fields if f.HasField("oneof_index") and f.oneof_index == index]
            lines += [2 * _INDENT + _field(f, syntax, maps, in_oneof=True) for f in members]
            lines.append(f"{_INDENT}}}")
        else:
            lines.append(_INDENT + _field(field, syntax, maps))
    for nested in message.nested_types:
        if nested.GetOptions().map_entry:
            continue
        lines += [_INDENT + line for line in _message(nested)]
    for enum in message.enum_types:
        lines += [_INDENT + line for line in _enum(enum)]
    lines.append("}")
    return lines


def _syntax(message: Descriptor) -> str:
    file = descriptor_pb2.FileDescriptorProto()
    message.file.CopyToProto(file)
    return file.syntax or "proto2"


def _type_name(field: descriptor_pb2.FieldDescriptorProto) -> str:
    if field.type_name:
        return field.type_name
    return _SCALARS[field.type]


def _field(
    field: descriptor_pb2.FieldDescriptorProto,
    syntax: str,
    maps: dict[str, descriptor_pb2.DescriptorProto],
    *,
    in_oneof: bool = False,
) -> str:
    label = ""
    entry = maps.get(field.type_name)
    Label = descriptor_pb2.FieldDescriptorProto.Label
    if entry is not None:
        key, value = sorted(entry.field, key=lambda f: f.number)
        type_name = f"map<{_type_name(key)}, {_type_name(value)}>"
    else:
        type_name = _type_name(field)
        if field.label == Label.LABEL_REPEATED:
            label = "repeated "
        elif field.label == Label.LABEL_REQUIRED:
            label = "required "
        elif field.proto3_optional or (syntax == "proto2" and not in_oneof):
            label = "optional "
    options = []
    if field.options.deprecated:
        options.append("deprecated = true")
    if field.options.HasField("packed"):
        options.append(f"packed = {str(field.options.packed).lower()}")
    if field.HasField("json_name") and field.json_name != _camel(field.name):
        options.append(f'json_name = "{field.json_name}"')
    suffix = f" [{', '.join(options)}]" if options else ""
    return f"{label}{type_name} {field.name} = {field.number}{suffix};"


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part[:1].upper() + part[1:] for part in rest)


def _field_of(field: FieldDescriptor) -> str:
    proto = descriptor_pb2.FieldDescriptorProto()
    # (FieldDescriptor has no CopyToProto: take it from its message's proto.)
    owner = field.extension_scope if field.is_extension else field.containing_type
    if owner is None:  # a top-level extension
        file = descriptor_pb2.FileDescriptorProto()
        field.file.CopyToProto(file)  # type: ignore[attr-defined]
        candidates = list(file.extension)
        syntax = file.syntax or "proto2"
        maps: dict[str, descriptor_pb2.DescriptorProto] = {}
    else:
        message = descriptor_pb2.DescriptorProto()
        copy_to_proto(owner, message)
        candidates = list(message.extension if field.is_extension else message.field)
        syntax = _syntax(owner)
        maps = {
            f".{owner.full_name}.{n.name}": n for n in message.nested_type if n.options.map_entry
        }
    for candidate in candidates:
        if candidate.name == field.name:
            proto = candidate
            break
    in_oneof = proto.HasField("oneof_index") and not proto.proto3_optional
    return _field(proto, syntax, maps, in_oneof=in_oneof)


def _enum(enum: EnumDescriptor) -> list[str]:
    return [
        f"enum {enum.name} {{",
        *(f"{_INDENT}{value.name} = {value.number};" for value in enum.values),
        "}",
    ]
