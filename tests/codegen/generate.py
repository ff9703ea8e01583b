"""Run protoc-gen-h2rpc the way users do: through protoc (grpcio-tools' or Debian's), as a plugin.

protoc runs a plugin as an executable. ``plugin_executable`` writes one: a shell script that runs
``python -m rpc.protoc_gen`` with this interpreter and this checkout on ``PYTHONPATH`` (the
plugin must be this tree's, whatever h2rpc the interpreter has installed).
"""

from __future__ import annotations

import shlex
import shutil
import stat
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

from tests.interop.peers import REPO_ROOT, peer_environment

PROTOS_DIR = Path(__file__).resolve().parent / "protos"
#: The test protos (relative to PROTOS_DIR); grpcio's generator gets only GRPCIO_PROTOS (it writes
#: RPCs named after Python keywords as they are, a syntax error).
PROTOS = (
    "h2rpc_codegen/common.proto",
    "h2rpc_codegen/services.proto",
    "h2rpc_codegen/keywords.proto",
    "keyword_message.proto",
)
GRPCIO_PROTOS = ("h2rpc_codegen/services.proto",)
#: Edition 2023: grpcio-tools' protoc reads it, Debian's (3.21) does not.
EDITIONS_PROTO = "editions.proto"
PROTOC_TIMEOUT = 60.0


def grpc_tools_available() -> bool:
    try:
        import grpc_tools  # noqa: F401
    except ImportError:
        return False
    return True


def debian_protoc() -> str | None:
    """Debian's protoc (apt package protobuf-compiler), if installed."""
    return shutil.which("protoc")


def plugin_executable(directory: Path) -> Path:
    """Write ``protoc-gen-h2rpc`` into ``directory``: it runs this checkout's plugin."""
    path = directory / "protoc-gen-h2rpc"
    path.write_text(
        "#!/bin/sh\n"
        f"PYTHONPATH={shlex.quote(str(REPO_ROOT))}${{PYTHONPATH:+:$PYTHONPATH}} "
        f'exec {shlex.quote(sys.executable)} -m rpc.protoc_gen "$@"\n',
        encoding="utf-8",
    )
    path.chmod(path.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
    return path


def run_protoc(
    protoc: Sequence[str],
    out_dir: Path,
    protos: Sequence[str],
    *,
    plugin: Path,
    outputs: Sequence[str] = ("python", "pyi", "h2rpc"),
    h2rpc_options: str = "",
    include: Sequence[Path] = (),
) -> subprocess.CompletedProcess[str]:
    """Run ``protoc`` (a command line) on ``protos`` with our plugin; CalledProcessError (with
    protoc's stderr) if it fails."""
    out_dir.mkdir(parents=True, exist_ok=True)
    flags = [f"--{output}_out={out_dir}" for output in outputs]
    if h2rpc_options:
        flags.append(f"--h2rpc_opt={h2rpc_options}")
    command = [
        *protoc,
        f"--proto_path={PROTOS_DIR}",
        *(f"--proto_path={path}" for path in include),
        f"--plugin=protoc-gen-h2rpc={plugin}",
        *flags,
        *protos,
    ]
    result = subprocess.run(
        command,
        cwd=PROTOS_DIR,
        env=peer_environment(),
        capture_output=True,
        text=True,
        timeout=PROTOC_TIMEOUT,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    if result.returncode != 0:
        raise subprocess.CalledProcessError(
            result.returncode, command, result.stdout, result.stderr
        )
    return result


def grpc_tools_protoc() -> list[str]:
    """grpcio-tools' protoc; run as a module it adds the well-known types' include path."""
    return [sys.executable, "-m", "grpc_tools.protoc"]


def generated_files(out_dir: Path) -> dict[str, str]:
    """Every ``_h2rpc.py`` file under ``out_dir``: relative path -> text."""
    return {
        str(path.relative_to(out_dir)): path.read_text(encoding="utf-8")
        for path in sorted(out_dir.rglob("*_h2rpc.py"))
    }
