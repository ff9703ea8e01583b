"""Deadline propagation: the handler's deadline follows every call it makes.

A server sets the deadline it received (absolute, on the monotonic clock) in a context variable
for the handler's task; a client call made in that context, or in a task spawned from it, takes the
tighter of its own timeout and the inherited deadline. Peers make users pass deadlines by hand;
here it is the default, and ``no_deadline_propagation()`` opts out, ``deadline_scope()`` tightens.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Optional

_current: ContextVar[Optional[float]] = ContextVar("h2rpc_deadline", default=None)


def current_deadline() -> Optional[float]:
    """The inherited absolute deadline (``time.monotonic()`` based), or None."""
    return _current.get()


def effective_deadline(timeout: Optional[float]) -> Optional[float]:
    """The tighter of ``timeout`` from now and the inherited deadline."""
    inherited = _current.get()
    if timeout is None:
        return inherited
    try:
        own = time.monotonic() + timeout
    except TypeError:
        raise TypeError(
            f"timeout must be a number of seconds, not {type(timeout).__name__} {timeout!r}"
        ) from None
    return own if inherited is None else min(own, inherited)


def set_deadline(deadline: Optional[float]) -> None:
    """Make ``deadline`` current for the running task (the server does this for handlers)."""
    _current.set(deadline)


@contextmanager
def deadline_scope(timeout: Optional[float]) -> Iterator[Optional[float]]:
    """Calls inside run under a deadline at most ``timeout`` seconds from now (never looser)."""
    token = _current.set(effective_deadline(timeout))
    try:
        yield _current.get()
    finally:
        _current.reset(token)


@contextmanager
def no_deadline_propagation() -> Iterator[None]:
    """Calls inside do not inherit the handler's deadline (only their own timeout applies)."""
    token = _current.set(None)
    try:
        yield
    finally:
        _current.reset(token)
