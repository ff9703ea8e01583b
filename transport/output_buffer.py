"""h2's output buffer, replaced by a list of the pieces h2 appends.

h2 collects the serialized frames it has yet to hand out in one ``bytearray``, appending each
frame as it is made, and copies the whole buffer out in ``data_to_send()``. On PyPy appending
to a large bytearray copies it, so an iteration that queues a few MiB of DATA frames costs time
quadratic in its bytes (streaming large messages makes such iterations routine). This stand-in
keeps the pieces (``bytes``, or views of the message bytes a DATA frame carries: never copied on
append) and joins them once when the core takes them; a single ``bytes`` piece is handed out as
it is.
"""

from __future__ import annotations

from typing import Union

__all__ = ["OutputPieces"]


class OutputPieces:
    """What h2 does with its ``_data_to_send``: ``+=``, ``len``, ``bytes``, slicing."""

    __slots__ = ("_pieces", "_size")

    def __init__(self) -> None:
        self._pieces: list[Union[bytes, memoryview]] = []
        self._size = 0

    def __iadd__(self, data: Union[bytes, bytearray, memoryview]) -> OutputPieces:
        if data:
            # A view (a DATA payload sliced from a message) is kept as it is, not copied: the
            # join in take() is the one copy. A bytearray could change under us: copied.
            piece = bytes(data) if isinstance(data, bytearray) else data
            self._pieces.append(piece)
            self._size += len(piece)
        return self

    def __len__(self) -> int:
        return self._size

    def __bytes__(self) -> bytes:
        pieces = self._pieces
        if len(pieces) == 1:
            piece = pieces[0]
            return piece if type(piece) is bytes else bytes(piece)
        return b"".join(pieces)

    def __getitem__(self, key: slice) -> bytes:
        # h2's data_to_send(amount) slices (the core never asks for an amount).
        return bytes(self)[key]

    def take(self) -> bytes:
        """Everything queued, in order; the buffer is left empty."""
        data = bytes(self)
        self._pieces = []
        self._size = 0
        return data
