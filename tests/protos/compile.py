"""Compile the test protos with grpc_tools.protoc.

The pytest conftest compiles them once per session into a temporary directory
and publishes that directory in the ``H2RPC_TEST_PROTO_DIR`` environment
variable. Peer scripts started as subprocesses inherit it and call
:func:`ensure_proto_path`; run by hand without it, they compile their own copy.

If ``H2RPC_TEST_PROTO_DIR`` is already set when pytest starts, the conftest uses
that directory as it is and compiles nothing: this is how the suite runs where
grpcio-tools cannot be installed (PyPy). Prepare such a directory with any
Python that has grpcio-tools::

    python tests/protos/compile.py --no-grpc DIR

``--no-grpc`` writes only the ``_pb2`` modules (``_pb2_grpc`` imports grpc).
Pick a grpcio-tools whose generated code the target's protobuf accepts: code
from recent protoc checks that the protobuf runtime is at least as new as
protoc itself; grpcio-tools 1.64.1 (protobuf 5.26.1 code) has no such check.
"""

from __future__ import annotations

import argparse
import atexit
import os
import shutil
import sys
import tempfile
from pathlib import Path

PROTO_DIR_ENV = "H2RPC_TEST_PROTO_DIR"
PROTOS_DIR = Path(__file__).resolve().parent
PROTO_FILES = ("h2rpc_test.proto",)


def compile_protos(
    out_dir: str | os.PathLike[str], *, grpc: bool = True, messages: bool = True
) -> Path:
    """Generate the ``_pb2`` (if ``messages``) and ``_pb2_grpc`` (if ``grpc``) modules of the
    test protos."""
    try:
        from grpc_tools import protoc
    except ImportError as exc:
        raise RuntimeError(
            f"cannot compile the test protos: {exc}. Install grpcio-tools, or set "
            f"${PROTO_DIR_ENV} to a directory prepared by "
            f"'python {Path(__file__).resolve()} --no-grpc DIR' (run by a Python with grpcio-tools)"
        ) from exc

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    well_known_includes = Path(protoc.__file__).resolve().parent / "_proto"
    for proto in PROTO_FILES:
        status = protoc.main(
            [
                "grpc_tools.protoc",
                f"--proto_path={PROTOS_DIR}",
                f"--proto_path={well_known_includes}",
                *([f"--python_out={out}"] if messages else []),
                *([f"--grpc_python_out={out}"] if grpc else []),
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Compile the test protos into a directory.")
    parser.add_argument("out_dir", help="output directory (created if missing)")
    parser.add_argument(
        "--no-grpc",
        action="store_true",
        help="write only the _pb2 modules, not the _pb2_grpc ones (which import grpc)",
    )
    args = parser.parse_args(argv)
    out = compile_protos(args.out_dir, grpc=not args.no_grpc)
    print(f"test protos compiled into {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
