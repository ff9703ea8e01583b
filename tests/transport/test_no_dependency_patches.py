"""h2rpc changes nothing in h2, hpack or hyperframe for the other users of the same process.

The transport subclasses and configures its own connection objects (frame classes of its own in
its connections' dispatch tables, its own configuration and logger, its own output buffer and
HPACK coder instances); it never assigns an attribute of those libraries' modules or classes.
This runs in a fresh interpreter: every attribute of every module of the three libraries, and of
every class they define, is recorded before ``transport`` and ``rpc`` are imported, then
compared after they are imported and real calls (asyncio and blocking) have run.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

PROGRAM = textwrap.dedent(
    """
    import importlib, pkgutil, sys

    def snapshot():
        seen = {}
        names = []
        for package in ("h2", "hpack", "hyperframe"):
            root = importlib.import_module(package)
            names += [package] + [
                f"{package}.{info.name}" for info in pkgutil.iter_modules(root.__path__)
            ]
        for name in names:
            importlib.import_module(name)
        for name in names:
            for attr, value in vars(sys.modules[name]).items():
                seen[(name, attr)] = id(value)
                if isinstance(value, type) and value.__module__ == name:
                    for cattr, cvalue in vars(value).items():
                        if not cattr.startswith("_abc_"):  # abc's caches (pure-Python abc)
                            seen[(name, attr, cattr)] = id(cvalue)
        return seen

    before = snapshot()

    import asyncio
    import rpc

    async def echo(request, context):
        return request

    def echo_sync(request, context):
        return request

    async def async_call():
        server = rpc.Server(
            [rpc.method_handlers_generic_handler(
                "t.T", {"E": rpc.unary_unary_rpc_method_handler(echo)})]
        )
        port = server.add_insecure_port("127.0.0.1:0")
        await server.start()
        async with rpc.Channel(f"127.0.0.1:{port}") as channel:
            assert await channel.unary_unary("/t.T/E")(b"x", timeout=10) == b"x"
        await server.stop(0)

    asyncio.run(async_call())
    server = rpc.sync.Server(
        [rpc.method_handlers_generic_handler(
            "t.T", {"E": rpc.unary_unary_rpc_method_handler(echo_sync)})]
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    with rpc.sync.Channel(f"127.0.0.1:{port}") as channel:
        assert channel.unary_unary("/t.T/E")(b"y", timeout=10) == b"y"
    server.stop(0)

    after = snapshot()
    changed = sorted(str(k) for k in before if after.get(k) != before[k])
    added = sorted(str(k) for k in after if k not in before)
    print("CHANGED", changed)
    print("ADDED", added)
    """
)


def test_no_attribute_of_h2_hpack_or_hyperframe_is_assigned() -> None:
    env = dict(
        os.environ, PYTHONPATH=os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])
    )
    result = subprocess.run(
        [sys.executable, "-c", PROGRAM],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
        env=env,
    )
    assert result.returncode == 0, result.stderr
    lines = dict(line.split(" ", 1) for line in result.stdout.splitlines() if " " in line)
    assert lines["CHANGED"] == "[]"
    assert lines["ADDED"] == "[]"
