"""protoc-gen-h2rpc with Debian's protoc (apt package protobuf-compiler, 3.21 on Debian 12), as
``protoc --plugin=protoc-gen-h2rpc=... --h2rpc_out=...``: the same files as through grpcio-tools'
protoc, and code that runs (in a fresh interpreter: PyPy too, where there is no grpcio).

Skipped only where Debian's protoc is not installed (.ci/run installs it).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.codegen.conftest import Generated
from tests.codegen.generate import (
    PROTOS,
    debian_protoc,
    generated_files,
    plugin_executable,
    run_protoc,
)
from tests.interop.peers import REPO_ROOT, peer_environment

PROTOC = debian_protoc()
pytestmark = pytest.mark.skipif(
    PROTOC is None, reason="Debian's protoc is not installed (apt-get install protobuf-compiler)"
)

#: Every call of tests/codegen/servicers.py, on both servers, in a fresh interpreter.
SCRIPT = """\
import asyncio
import sys

import rpc
from tests.codegen import servicers


async def main():
    server = rpc.Server()
    servicers.add_async_servicers(server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    try:
        async with rpc.Channel(f"127.0.0.1:{port}") as channel:
            await servicers.echo_async(channel)
            await servicers.shapes_async(channel)
            await servicers.keywords_async(channel)
    finally:
        await server.stop(0.5)


asyncio.run(asyncio.wait_for(main(), 60))
server = rpc.sync.Server(max_workers=8)
servicers.add_blocking_servicers(server)
port = server.add_insecure_port("127.0.0.1:0")
server.start()
try:
    with rpc.sync.Channel(f"127.0.0.1:{port}") as channel:
        servicers.echo_blocking(channel)
        servicers.shapes_blocking(channel)
        servicers.keywords_blocking(channel)
finally:
    server.stop(0.5).wait(5)
print("all calls succeeded on", sys.implementation.name)
"""


@pytest.fixture(scope="module")
def debian_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("debian-protoc")
    out = root / "out"
    assert PROTOC is not None
    run_protoc([PROTOC], out, PROTOS, plugin=plugin_executable(root))
    return out


def test_debian_protoc_runs_the_plugin(debian_out: Path) -> None:
    assert sorted(generated_files(debian_out)) == [
        "h2rpc_codegen/common_h2rpc.py",
        "h2rpc_codegen/keywords_h2rpc.py",
        "h2rpc_codegen/services_h2rpc.py",
        "keyword_message_h2rpc.py",
    ]


def test_same_files_as_through_grpcio_tools_protoc(debian_out: Path, generated: Generated) -> None:
    if generated.protoc != "grpcio-tools":
        pytest.skip("no grpcio-tools to compare with")
    assert generated_files(debian_out) == generated_files(generated.out_dir)


@pytest.mark.time_limit(120)
def test_code_from_debian_protoc_serves_and_calls(debian_out: Path) -> None:
    env = peer_environment()
    env["PYTHONPATH"] = f"{debian_out}:{env['PYTHONPATH']}"
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=100,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert f"all calls succeeded on {sys.implementation.name}" in result.stdout
