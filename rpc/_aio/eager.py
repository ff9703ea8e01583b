"""Tasks whose first step runs at once, inside the callback that starts them.

A server call's handler usually answers without ever waiting (a unary handler that computes its
response). Started as a plain task, it costs the receive callback's loop iteration, one more to
run the task's first step, and a third for the done callback that forgets the task: on asyncio's
loop, three ``epoll_wait`` calls and three passes of the loop per call where one does the work.
Started eagerly, the handler runs inside the callback that read its request, its response is
written there, and a handler that never suspends is over before the callback returns.

The task is still a real ``asyncio.Task`` from its first instruction on, so what a handler may
rely on holds: ``asyncio.current_task()`` is its task (``asyncio.timeout()`` needs that), it runs
in a context of its own (the deadline ``contextvars`` of one call never leak into another), and
cancelling it works the usual way. Python 3.12 has this built in (``eager_start=True``, what
``asyncio.eager_task_factory`` uses). On 3.9-3.11 the task is made the usual way, except that its
first step, which ``Task.__init__`` hands to ``loop.call_soon``, is taken and run here instead of
being queued: ``call_soon`` is shadowed on the loop *instance* for the duration of the
constructor only (the loop's class, and every other caller, are untouched), and the step is run
in the task's context exactly as the loop would have run it. A loop that cannot be given an
instance attribute, a loop with a custom task factory, or a task started from inside another
task falls back to an ordinary task.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Coroutine
from typing import Any, Optional

__all__ = ["start_eager_task"]

_BUILT_IN = sys.version_info >= (3, 12)


class _FirstStep:
    """Stands in for ``loop.call_soon`` while a task is constructed: keeps the step it is given."""

    __slots__ = ("callback", "context")

    def __init__(self) -> None:
        self.callback: Any = None
        self.context: Any = None

    def __call__(self, callback: Any, *args: Any, context: Any = None) -> None:
        if args or self.callback is not None:
            raise RuntimeError("unexpected call_soon during task construction")
        self.callback = callback
        self.context = context


def start_eager_task(
    loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, None]
) -> asyncio.Task[None]:
    """A task for ``coro`` whose first step has already run (it may be done already)."""
    if _BUILT_IN:
        return asyncio.Task(coro, loop=loop, eager_start=True)  # type: ignore[call-arg]
    if loop.get_task_factory() is not None or asyncio.current_task(loop) is not None:
        return loop.create_task(coro)
    first = _FirstStep()
    try:
        loop.call_soon = first  # type: ignore[method-assign, assignment]
    except AttributeError:
        return loop.create_task(coro)
    try:
        task: asyncio.Task[None] = asyncio.Task(coro, loop=loop)
    finally:
        del loop.call_soon
    step: Optional[Any] = first.callback
    if step is None:  # not the Task we know: its step is wherever it put it
        return task
    if first.context is not None:
        first.context.run(step)
    else:
        step()
    return task
