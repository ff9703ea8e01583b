"""The test protos (tests/codegen/protos), generated once per session with protoc-gen-h2rpc.

``generated`` runs grpcio-tools' protoc with the plugin (``--python_out``, ``--pyi_out``,
``--h2rpc_out``, and grpcio's ``--grpc_python_out`` for the proto the grpcio peers use); where
grpcio-tools is missing (PyPy) it runs Debian's protoc instead, and skips without either. The
output directory goes on ``sys.path`` (its ``h2rpc_codegen`` package gets an ``__init__.py``, as
a user's package would have), so tests import the generated modules, and
``tests.codegen.servicers`` with them.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

import pytest

from tests.codegen.generate import (
    GRPCIO_PROTOS,
    PROTOS,
    debian_protoc,
    grpc_tools_available,
    grpc_tools_protoc,
    plugin_executable,
    run_protoc,
)

pytest.register_assert_rewrite("tests.codegen.servicers")


@dataclass(frozen=True)
class Generated:
    out_dir: Path
    plugin: Path
    protoc: str  # "grpcio-tools" or "debian"
    servicers: ModuleType  # tests.codegen.servicers


@pytest.fixture(scope="session")
def generated(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Generated]:
    root = tmp_path_factory.mktemp("codegen")
    plugin = plugin_executable(root)
    out_dir = root / "out"
    if grpc_tools_available():
        protoc, name = grpc_tools_protoc(), "grpcio-tools"
        run_protoc(protoc, out_dir, PROTOS, plugin=plugin)
        run_protoc(protoc, out_dir, GRPCIO_PROTOS, plugin=plugin, outputs=("grpc_python",))
    elif debian_protoc():
        protoc, name = [str(debian_protoc())], "debian"
        run_protoc(protoc, out_dir, PROTOS, plugin=plugin)
    else:
        pytest.skip("no protoc: neither grpcio-tools nor Debian's protobuf-compiler")
    (out_dir / "h2rpc_codegen" / "__init__.py").write_text("", encoding="utf-8")
    # protoc's .pyi for a message named "class" is not Python ("class class(...)"): without it,
    # type checkers take the module as untyped.
    (out_dir / "keyword_message_pb2.pyi").unlink()
    sys.path.insert(0, str(out_dir))
    try:
        import tests.codegen.servicers as servicers

        yield Generated(out_dir, plugin, name, servicers)
    finally:
        sys.path.remove(str(out_dir))
