"""The README's "Generated code (protoc-gen-h2rpc)" section works as written: its protoc commands
(the plugin found on PATH, as the console script is), then its program, then mypy --strict on it.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.codegen.generate import debian_protoc, grpc_tools_available, plugin_executable
from tests.interop.peers import REPO_ROOT, peer_environment

HELLOWORLD_PROTO = REPO_ROOT / "examples" / "helloworld" / "helloworld.proto"


def section_blocks() -> tuple[list[str], str]:
    """(the shell commands, the Python program) of the section."""
    readme = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = readme.split("## Generated code (protoc-gen-h2rpc)", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```(\w*)\n(.*?)```", section, re.S)
    [commands] = [body.strip().splitlines() for lang, body in blocks if lang == ""]
    [program] = [body for lang, body in blocks if lang == "python"]
    return commands, program


def _environment(tmp_path: Path, out_dir: Path) -> dict[str, str]:
    """PATH finds protoc-gen-h2rpc (this checkout's plugin); PYTHONPATH the generated code."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    plugin_executable(bin_dir)
    env = peer_environment()
    env["PATH"] = f"{bin_dir}{os.pathsep}{env.get('PATH', '')}"
    env["PYTHONPATH"] = f"{out_dir}{os.pathsep}{env['PYTHONPATH']}"
    return env


def _run_command(command: str, out_dir: Path, env: dict[str, str]) -> None:
    out_dir.mkdir()
    shutil.copy(HELLOWORLD_PROTO, out_dir)
    argv = shlex.split(command)
    if argv[0] == "python":
        argv[0] = sys.executable
        subprocess.run(argv, cwd=out_dir, env=env, check=True, timeout=60)
    else:  # "$(which protoc-gen-h2rpc)": a shell's
        subprocess.run(["sh", "-c", command], cwd=out_dir, env=env, check=True, timeout=60)
    assert (out_dir / "helloworld_h2rpc.py").is_file()


@pytest.mark.time_limit(240)
def test_the_readme_commands_and_program_work_as_written(tmp_path: Path) -> None:
    commands, program = section_blocks()
    [with_grpc_tools] = [c for c in commands if c.startswith("python -m grpc_tools.protoc ")]
    [with_protoc] = [c for c in commands if c.startswith("protoc ")]
    runs = []
    if grpc_tools_available():
        out = tmp_path / "grpc_tools"
        env = _environment(tmp_path, out)
        _run_command(with_grpc_tools, out, env)
        runs.append((out, env))
    if debian_protoc():
        out = tmp_path / "debian"
        env = _environment(tmp_path, out)
        _run_command(with_protoc, out, env)
        runs.append((out, env))
    if not runs:
        pytest.skip("no protoc: neither grpcio-tools nor Debian's protobuf-compiler")
    if len(runs) == 2:
        assert (runs[0][0] / "helloworld_h2rpc.py").read_bytes() == (
            runs[1][0] / "helloworld_h2rpc.py"
        ).read_bytes()

    out, env = runs[0]
    (out / "program.py").write_text(program, encoding="utf-8")
    result = subprocess.run(
        [sys.executable, "program.py"],
        cwd=out,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == "Hello, you!\n"

    if sys.implementation.name == "pypy":
        return  # mypy checks the same text on CPython
    (out / "mypy.ini").write_text(
        "[mypy]\nstrict = True\n[mypy-helloworld_pb2]\nignore_errors = True\n", encoding="utf-8"
    )
    checked = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "mypy.ini", "program.py"],
        cwd=out,
        env={**env, "MYPYPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=200,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
