"""rpc.run: asyncio.run on uvloop when installed, opt-out per call or by H2RPC_UVLOOP=0."""

from __future__ import annotations

import asyncio
import os
import sys
import threading
from typing import Any

import pytest

import rpc
from rpc._aio.run import uvloop_wanted
from tests.rpc.helpers import generic_server, serving

try:
    import uvloop  # noqa: F401

    HAVE_UVLOOP = True
except ImportError:
    HAVE_UVLOOP = False


async def loop_module() -> str:
    return type(asyncio.get_running_loop()).__module__.split(".")[0]


async def echo(request: bytes, context: rpc.ServicerContext) -> bytes:
    return request + (await loop_module()).encode()


async def call_itself() -> bytes:
    server = generic_server({"Echo": rpc.unary_unary_rpc_method_handler(echo)}, "e.E")
    async with serving(server) as target, rpc.Channel(target) as channel:
        return await channel.unary_unary("/e.E/Echo")(b"on ", timeout=5)  # type: ignore[no-any-return]


@pytest.mark.skipif(not HAVE_UVLOOP, reason="uvloop is not installed (PyPy)")
def test_uvloop_by_default_when_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("H2RPC_UVLOOP", raising=False)
    assert rpc.run(loop_module()) == "uvloop"
    assert rpc.run(loop_module(), use_uvloop=True) == "uvloop"


def test_opting_out_keeps_asyncios_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("H2RPC_UVLOOP", raising=False)
    assert rpc.run(loop_module(), use_uvloop=False) == "asyncio"
    monkeypatch.setenv("H2RPC_UVLOOP", "0")
    assert rpc.run(loop_module()) == "asyncio"
    assert not uvloop_wanted()


def test_without_uvloop_installed_asyncio_is_used(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop now fails
    assert rpc.run(loop_module(), use_uvloop=True) == "asyncio"


@pytest.mark.parametrize("use_uvloop", [None, False])
def test_a_call_round_trip_on_the_loop_it_picks(use_uvloop: Any) -> None:
    reply = rpc.run(call_itself(), use_uvloop=use_uvloop)
    expected = "uvloop" if HAVE_UVLOOP and use_uvloop is None else "asyncio"
    if os.environ.get("H2RPC_UVLOOP") == "0":
        expected = "asyncio"
    assert reply == b"on " + expected.encode()


def test_left_over_tasks_are_cancelled_and_the_loop_closed() -> None:
    cancelled = threading.Event()
    seen: dict[str, Any] = {}

    async def forever(started: asyncio.Event) -> None:
        try:
            started.set()
            await asyncio.sleep(3600)  # left over: only rpc.run's cleanup ends it
        except asyncio.CancelledError:
            cancelled.set()
            raise

    async def main() -> int:
        started = asyncio.Event()
        asyncio.get_running_loop().create_task(forever(started))
        await started.wait()  # it runs, so that cancelling it raises inside it
        seen["loop"] = asyncio.get_running_loop()
        return 7

    assert rpc.run(main()) == 7
    assert cancelled.is_set()
    assert seen["loop"].is_closed()


def test_exceptions_of_main_propagate() -> None:
    async def main() -> None:
        raise KeyError("boom")

    with pytest.raises(KeyError):
        rpc.run(main())
