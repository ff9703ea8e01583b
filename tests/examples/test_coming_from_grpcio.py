"""The README's "Coming from grpcio" section runs as written: its protoc command, then its program.

The program is a grpcio program with only the server and channel lines (and the exception class)
changed; it runs on grpcio's generated ``_pb2_grpc`` code from the installed grpcio-tools.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from peers import GRPCIO_AVAILABLE, GRPCIO_UNAVAILABLE_REASON

if not GRPCIO_AVAILABLE:  # PyPy only: on CPython a missing grpcio is an error, not a skip
    pytest.skip(GRPCIO_UNAVAILABLE_REASON, allow_module_level=True)

REPO = Path(__file__).resolve().parents[2]


def section_blocks() -> tuple[str, str]:
    """(the shell command, the Python program) of the section, as the README has them."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Coming from grpcio", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(\w*)\n(.*?)```", section, re.S)
    [command] = [body.strip() for lang, body in blocks if lang == ""]
    [program] = [body for lang, body in blocks if lang == "python"]
    return command, program


def test_the_readme_grpcio_program_runs_on_h2rpc_as_written(tmp_path: Path) -> None:
    command, program = section_blocks()
    argv = shlex.split(command)
    assert argv[:3] == ["python", "-m", "grpc_tools.protoc"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(REPO)])}
    # The command is written for the repository root (-I examples/helloworld ...) and writes
    # into the current directory: run it from the root, writing into the test's directory.
    argv = [sys.executable, *argv[1:]]
    argv = [arg.replace("--python_out=.", f"--python_out={tmp_path}") for arg in argv]
    argv = [arg.replace("--grpc_python_out=.", f"--grpc_python_out={tmp_path}") for arg in argv]
    subprocess.run(argv, cwd=REPO, env=env, check=True, timeout=60)
    (tmp_path / "program.py").write_text(program, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "program.py"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "Hello, you! {'served-by': 'h2rpc'}",
        "Hello, future!",
        "INVALID_ARGUMENT name is empty",
    ]
