"""Names in the generated code: modules, import aliases, Python-safe identifiers, ``__all__``."""

from __future__ import annotations

import keyword
import re
from collections.abc import Iterable


def module_path(proto_name: str) -> str:
    """The dotted module path of a proto file, as protoc's Python generator derives it:
    ``a/b-c.proto`` -> ``a.b_c`` (its ``_pb2`` module is ``a.b_c_pb2``)."""
    base = proto_name[: -len(".proto")] if proto_name.endswith(".proto") else proto_name
    return base.replace("-", "_").replace("/", ".")


def output_file(proto_name: str) -> str:
    """The generated file of a proto file: ``a/b-c.proto`` -> ``a/b_c_h2rpc.py``."""
    return module_path(proto_name).replace(".", "/") + "_h2rpc.py"


def module_alias(module: str) -> str:
    """The name a ``_pb2`` module is imported as, as grpcio's generator names it:
    ``google.protobuf.empty_pb2`` -> ``google_dot_protobuf_dot_empty__pb2`` (no clash with a
    message, a service or another module)."""
    return module.replace("_", "__").replace(".", "_dot_")


def python_name(name: str) -> str:
    """A proto name as a Python attribute: a keyword (``import``, ``None``) gets a trailing
    underscore, as in ``stub.import_``."""
    return name + "_" if keyword.iskeyword(name) else name


def sorted_for_all(names: Iterable[str]) -> list[str]:
    """``names`` in the order ruff (RUF022) wants ``__all__`` in: SCREAMING_CASE, then CamelCase,
    then the others, each group in natural order (digit runs compared as numbers)."""

    def key(name: str) -> tuple[int, list[tuple[int, int, str]]]:
        if name.upper() == name and len(name) > 1:
            group = 0
        elif name[:1].isupper():
            group = 1
        else:
            group = 2
        parts = [
            (1, int(part), "") if part.isdigit() else (0, 0, part)
            for part in re.findall(r"\d+|\D+", name)
        ]
        return group, parts

    return sorted(names, key=key)
