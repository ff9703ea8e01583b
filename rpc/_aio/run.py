"""``rpc.run``: ``asyncio.run`` on uvloop when uvloop is installed, unless asked not to.

uvloop is an optional extra (``pip install 'h2rpc[uvloop]'``; CPython only). Its loop wakes and
writes with less Python per iteration, which is what a call with one message in flight is made
of: with it, ping-pong round trips are faster (the README's "Performance" has the numbers; 1 MiB
streams are slower unless glibc's heap trimming is tuned, see "Tuning" there). The library
never changes the loop of an application that made its own; ``rpc.run`` and ``rpc.serve`` (the
entry points that create a loop) choose it, and the choice can be turned off per call
(``use_uvloop=False``) or for the process (``H2RPC_UVLOOP=0``).
"""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import Coroutine
from typing import Any, Optional, TypeVar

__all__ = ["new_event_loop", "run", "uvloop_wanted"]

T = TypeVar("T")

#: Set to 0 (or "false", "no", "off") to keep asyncio's own loop wherever h2rpc creates one.
UVLOOP_ENV = "H2RPC_UVLOOP"


def uvloop_wanted(use_uvloop: Optional[bool] = None) -> bool:
    """Whether a loop created by h2rpc should be uvloop's: installed, and not opted out of."""
    if use_uvloop is None:
        use_uvloop = os.environ.get(UVLOOP_ENV, "1").strip().lower() not in (
            "0",
            "false",
            "no",
            "off",
        )
    if not use_uvloop:
        return False
    return _uvloop() is not None


def _uvloop() -> Any:
    """The uvloop module, or None (not installed, or not importable here: PyPy, Windows)."""
    try:
        return importlib.import_module("uvloop")
    except ImportError:
        return None


def new_event_loop(use_uvloop: Optional[bool] = None) -> asyncio.AbstractEventLoop:
    """A new event loop: uvloop's when ``uvloop_wanted(use_uvloop)``, asyncio's otherwise."""
    if uvloop_wanted(use_uvloop):
        loop: asyncio.AbstractEventLoop = _uvloop().new_event_loop()
        return loop
    return asyncio.new_event_loop()


def run(
    main: Coroutine[Any, Any, T],
    *,
    use_uvloop: Optional[bool] = None,
    debug: Optional[bool] = None,
) -> T:
    """Run ``main`` to completion on a new loop and close it, as ``asyncio.run`` does.

    The loop is uvloop's when uvloop is installed (``use_uvloop=None``, the default, unless
    ``H2RPC_UVLOOP=0``), asyncio's with ``use_uvloop=False``; ``use_uvloop=True`` uses uvloop
    only if it is installed too, so the same code runs on PyPy, where uvloop is not.
    """
    loop = new_event_loop(use_uvloop)
    if debug is not None:
        loop.set_debug(debug)
    try:
        asyncio.set_event_loop(loop)
        return loop.run_until_complete(main)
    finally:
        try:
            _cancel_remaining(loop)
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.run_until_complete(loop.shutdown_default_executor())
        finally:
            asyncio.set_event_loop(None)
            loop.close()


def _cancel_remaining(loop: asyncio.AbstractEventLoop) -> None:
    """Cancel the tasks ``main`` left running and let them finish (as ``asyncio.run``)."""
    tasks = asyncio.all_tasks(loop)
    if not tasks:
        return
    for task in tasks:
        task.cancel()
    loop.run_until_complete(asyncio.gather(*tasks, return_exceptions=True))
    for task in tasks:
        if task.cancelled():
            continue
        if task.exception() is not None:
            loop.call_exception_handler(
                {
                    "message": "unhandled exception during rpc.run() shutdown",
                    "exception": task.exception(),
                    "task": task,
                }
            )
