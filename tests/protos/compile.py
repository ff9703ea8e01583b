"""Compile the test protos with grpc_tools.protoc.

The pytest conftest compiles them once per session into a temporary directory
and publishes that directory in the ``H2RPC_TEST_PROTO_DIR`` environment
variable. Peer scripts started as subprocesses inherit it and call
:func:`ensure_proto_path`; run by hand without it, they compile their own copy.
"""

from __future__ import annotations

import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

PROTO_DIR_ENV = "H2RPC_TEST_PROTO_DIR"
PROTOS_DIR = Path(__file__).resolve().parent
PROTO_FILES = ("h2rpc_test.proto",)


def compile_protos(out_dir: str | os.PathLike[str]) -> Path:
    """Generate ``*_pb2.py`` and ``*_pb2_grpc.py`` for the test protos in ``out_dir``."""
    from grpc_tools import protoc

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    well_known_includes = Path(protoc.__file__).resolve().parent / "_proto"
    for proto in PROTO_FILES:
        status = protoc.main(
            [
                "grpc_tools.protoc",
                f"--proto_path={PROTOS_DIR}",
                f"--proto_path={well_known_includes}",
                f"--python_out={out}",
                f"--grpc_python_out={out}",
                str(PROTOS_DIR / proto),
            ]
        )
        if status != 0:
            raise RuntimeError(f"protoc failed with status {status} on {proto}")
    return out


def ensure_proto_path() -> Path:
    """Put the generated modules on ``sys.path`` and return their directory.

    Uses ``$H2RPC_TEST_PROTO_DIR`` when set; otherwise compiles into a temporary
    directory that is removed when the interpreter exits.
    """
    out_dir = os.environ.get(PROTO_DIR_ENV)
    if out_dir:
        out = Path(out_dir)
    else:
        out = Path(tempfile.mkdtemp(prefix="h2rpc-test-protos-"))
        atexit.register(shutil.rmtree, out, ignore_errors=True)
        compile_protos(out)
    if str(out) not in sys.path:
        sys.path.insert(0, str(out))
    return out
