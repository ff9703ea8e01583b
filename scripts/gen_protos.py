"""Regenerate the committed protobuf modules, or check that they are current (``--check``).

The committed ``_pb2.py`` / ``_pb2.pyi`` files (the examples', ``rpc.interop``'s and
``rpc.services``') are generated with grpcio-tools 1.64.1: its code (protobuf gencode 5.26.1) has
no runtime version check, so it loads on every protobuf we support (>= 5.26.1, down to Python 3.9
and PyPy). Code from a newer protoc insists on a protobuf runtime at least as new as itself.

The examples' ``_h2rpc.py`` modules (typed stubs and servicer bases) come from this checkout's
protoc plugin, ``protoc-gen-h2rpc`` (``rpc.protoc_gen``), in the same protoc run, with
``relative_imports`` (the examples are packages). protoc runs the plugin through a small script
written in a temporary directory, with the interpreter running this script and this checkout on
``PYTHONPATH``: that interpreter needs h2rpc's dependencies (``pip install -e .``), the ``--python``
one only grpcio-tools.

One ``_pb2_grpc.py`` is committed too: grpcio-tools 1.64.1's grpcio code for the test proto
(``tests/protos/grpcio_tools_1_64_1/``), so that the tests run grpcio-generated stubs and servicers
of an older generator on h2rpc next to those of the installed (newest) one, which the tests
generate as they run (tests/interop/test_grpcio_gencode.py).

Usage::

    python scripts/gen_protos.py                 # regenerate in place
    python scripts/gen_protos.py --check         # fail if a committed file differs
    python scripts/gen_protos.py --python PATH   # use PATH's grpcio-tools

The generator is, in order: ``--python PATH`` (an interpreter that has grpcio-tools 1.64.1), the
interpreter running this script if it has that version, or else a throwaway virtualenv where pip
installs it (this needs the package index). This script imports nothing of h2rpc; the plugin runs
in a process of its own.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import shlex
import shutil
import stat
import subprocess
import sys
import tempfile
import venv
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
GRPCIO_TOOLS = "grpcio-tools==1.64.1"
GENCODE_VERSION = "5.26.1"  # what grpcio-tools 1.64.1 writes in "# Protobuf Python Version:"
#: What grpcio-tools 1.64.1 writes in its ``_pb2_grpc`` modules.
GRPC_GENCODE_MARKER = "GRPC_GENERATED_VERSION = '1.64.1'"


@dataclass(frozen=True)
class ProtoSet:
    """Protos compiled together: ``include`` is the proto path, ``protos`` are relative to it.

    The generated modules land under ``out`` (default: ``include``) as protoc lays them out; a
    proto's path relative to ``include`` is also its name in the descriptor pool and, for its
    imports, its Python module path. ``grpc_only``: only the ``_pb2_grpc.py`` module (grpcio's
    stubs and servicers), not the ``_pb2`` ones. ``h2rpc``: the ``_h2rpc.py`` module too
    (protoc-gen-h2rpc, with relative imports).
    """

    include: str
    protos: tuple[str, ...]
    out: str = ""
    grpc_only: bool = False
    h2rpc: bool = False

    @property
    def out_dir(self) -> str:
        return self.out or self.include

    def generated_names(self, proto: str) -> list[str]:
        stem = proto[: -len(".proto")]
        if self.grpc_only:
            return [f"{stem}_pb2_grpc.py"]
        return [f"{stem}_pb2.py", f"{stem}_pb2.pyi", *([f"{stem}_h2rpc.py"] if self.h2rpc else [])]


PROTO_SETS = (
    ProtoSet("examples/helloworld", ("helloworld.proto",), h2rpc=True),
    ProtoSet("examples/route_guide", ("route_guide.proto",), h2rpc=True),
    # Compiled from the repository root, so test.proto's imports become
    # "from rpc.interop.proto import ..." and the descriptor names cannot collide with the
    # gRPC project's own files (src/proto/grpc/testing/...).
    ProtoSet(
        ".",
        (
            "rpc/interop/proto/empty.proto",
            "rpc/interop/proto/messages.proto",
            "rpc/interop/proto/test.proto",
        ),
    ),
    # rpc.services: gRPC's health and reflection protos (grpc/grpc-proto), under the file names
    # grpcio-health-checking and grpcio-reflection give them ("grpc_health/v1/health.proto"...):
    # a file of the same name and content may be added to the default descriptor pool twice,
    # so their modules and ours load side by side.
    ProtoSet(
        "rpc/services/proto",
        (
            "grpc_health/v1/health.proto",
            "grpc_reflection/v1/reflection.proto",
            "grpc_reflection/v1alpha/reflection.proto",
        ),
    ),
    # grpcio-tools 1.64.1's grpcio code for the test proto; it imports "h2rpc_test_pb2", which
    # the tests compile as they run (tests/protos/compile.py).
    ProtoSet(
        "tests/protos",
        ("h2rpc_test.proto",),
        out="tests/protos/grpcio_tools_1_64_1",
        grpc_only=True,
    ),
)


def tools_version(python: str) -> str | None:
    """The grpcio-tools version ``python`` has, or None."""
    probe = (
        "import importlib.metadata as m\n"
        "try:\n    print(m.version('grpcio-tools'))\n"
        "except m.PackageNotFoundError:\n    pass\n"
    )
    result = subprocess.run(
        [python, "-c", probe], capture_output=True, text=True, check=False, cwd=REPO_ROOT
    )
    return result.stdout.strip() or None


def make_generator_venv(directory: Path) -> str:
    print(f"creating a virtualenv with {GRPCIO_TOOLS} in {directory}", file=sys.stderr)
    venv.EnvBuilder(with_pip=True).create(directory)
    python = str(directory / ("Scripts" if os.name == "nt" else "bin") / "python")
    subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--only-binary=:all:", GRPCIO_TOOLS],
        check=True,
    )
    return python


def plugin_executable(directory: Path) -> Path:
    """``protoc-gen-h2rpc`` for protoc: this interpreter runs this checkout's plugin."""
    check = subprocess.run(
        [sys.executable, "-c", "import rpc.protoc_gen"],
        env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        check=False,
    )
    if check.returncode != 0:
        raise SystemExit(
            f"{sys.executable} cannot run protoc-gen-h2rpc (rpc.protoc_gen) from {REPO_ROOT}: "
            "run this script with an interpreter that has h2rpc's dependencies "
            f"(pip install -e .)\n{check.stderr}"
        )
    path = directory / "protoc-gen-h2rpc"
    path.write_text(
        "#!/bin/sh\n"
        f"PYTHONPATH={shlex.quote(str(REPO_ROOT))} "
        f'exec {shlex.quote(sys.executable)} -m rpc.protoc_gen "$@"\n',
        encoding="utf-8",
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def generate(python: str, out_dir: Path, plugin: Path) -> None:
    """Compile every proto set into ``out_dir`` (laid out like the repository)."""
    for proto_set in PROTO_SETS:
        target = out_dir / proto_set.out_dir
        target.mkdir(parents=True, exist_ok=True)
        if proto_set.grpc_only:
            outputs = [f"--grpc_python_out={target}"]
            marker, lines, what = GRPC_GENCODE_MARKER, 15, "grpcio-tools 1.64.1 grpcio code"
        else:
            outputs = [f"--python_out={target}", f"--pyi_out={target}"]
            if proto_set.h2rpc:
                outputs += [
                    f"--plugin=protoc-gen-h2rpc={plugin}",
                    f"--h2rpc_out=relative_imports:{target}",
                ]
            marker = f"# Protobuf Python Version: {GENCODE_VERSION}"
            lines, what = 5, f"protobuf {GENCODE_VERSION} gencode"
        command = [
            python,
            "-m",
            "grpc_tools.protoc",
            f"--proto_path={REPO_ROOT / proto_set.include}",
            *outputs,
            *proto_set.protos,
        ]
        subprocess.run(command, check=True, cwd=REPO_ROOT / proto_set.include)
        for proto in proto_set.protos:
            module = target / proto_set.generated_names(proto)[0]
            header = module.read_text(encoding="utf-8").splitlines()[:lines]
            if marker not in header:
                raise SystemExit(f"{module.name}: not {what}; the generator must be {GRPCIO_TOOLS}")


def compare_or_copy(out_dir: Path, *, check: bool) -> list[str]:
    """Copy the generated files over the committed ones, or list those that differ."""
    stale = []
    for proto_set in PROTO_SETS:
        for proto in proto_set.protos:
            for name in proto_set.generated_names(proto):
                fresh = out_dir / proto_set.out_dir / name
                committed = REPO_ROOT / proto_set.out_dir / name
                relative = str(committed.relative_to(REPO_ROOT))
                if committed.is_file() and filecmp.cmp(fresh, committed, shallow=False):
                    continue
                if check:
                    stale.append(relative)
                else:
                    committed.parent.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(fresh, committed)
                    print(f"wrote {relative}")
    return stale


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="write nothing; exit 1 if a committed generated file is missing or differs",
    )
    parser.add_argument(
        "--python",
        metavar="PATH",
        help=f"a Python interpreter that has {GRPCIO_TOOLS} (default: this one if it has it, "
        "else a throwaway virtualenv)",
    )
    args = parser.parse_args(argv)
    wanted = GRPCIO_TOOLS.split("==")[1]

    with tempfile.TemporaryDirectory(prefix="h2rpc-gen-protos-") as tmp:
        # Absolute: protoc runs in each proto set's directory (a venv's python is a symlink,
        # so it is not resolved).
        python = os.path.abspath(args.python) if args.python else sys.executable
        found = tools_version(python)
        if found != wanted:
            if args.python:
                print(
                    f"{args.python} has grpcio-tools {found or '(none)'}, not {wanted}",
                    file=sys.stderr,
                )
                return 2
            python = make_generator_venv(Path(tmp) / "venv")
        out_dir = Path(tmp) / "out"
        generate(python, out_dir, plugin_executable(Path(tmp)))
        stale = compare_or_copy(out_dir, check=args.check)

    if stale:
        print(
            "generated code is not current (regenerate with 'python scripts/gen_protos.py'):",
            *(f"  {path}" for path in stale),
            sep="\n",
            file=sys.stderr,
        )
        return 1
    if args.check:
        print("generated code is current")
    return 0


if __name__ == "__main__":
    sys.exit(main())
