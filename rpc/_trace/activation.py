"""Process-wide activation of a tracer or a capture writer: what a command-line ``--trace`` or
``--pcap`` flag does, and ``with rpc.trace():``.

Every channel and server created while one is active uses it (unless its own ``trace=`` or
``pcap=`` option says otherwise); nested activations stack, the latest wins.
"""

from __future__ import annotations

import threading
from typing import Any, ClassVar, Generic, Optional, TypeVar

T = TypeVar("T")
A = TypeVar("A", bound="Activatable")


class Activations(Generic[T]):
    """The active objects of one kind, in activation order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active: list[T] = []

    def add(self, item: T) -> None:
        with self._lock:
            self._active.append(item)

    def remove(self, item: T) -> None:
        with self._lock:
            if item in self._active:
                self._active.remove(item)

    def latest(self) -> Optional[T]:
        with self._lock:
            return self._active[-1] if self._active else None


class Activatable:
    """``activate()``, ``deactivate()`` and the ``with`` block, over the class's ``_activations``;
    leaving the block also ends the object (``_end()``: a tracer stops, a writer closes)."""

    _activations: ClassVar[Activations[Any]]

    def activate(self: A) -> A:
        """Be used by every channel and server created from now on (unless its own option says
        otherwise), until ``deactivate()``."""
        self._activations.add(self)
        return self

    def deactivate(self) -> None:
        self._activations.remove(self)

    def __enter__(self: A) -> A:
        return self.activate()

    def __exit__(self, *exc_info: object) -> None:
        self.deactivate()
        self._end()

    def _end(self) -> None:
        raise NotImplementedError
