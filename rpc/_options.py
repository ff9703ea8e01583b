"""grpcio-style option handling shared by Channel and Server.

Options are keyword arguments with grpcio's names and units; grpcio's own form, a sequence of
``("grpc.xxx", value)`` pairs, is accepted too and mapped onto the same keywords.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Optional

DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH = 4 * 1024 * 1024  # grpcio's default


def merge_grpc_options(
    settings: dict[str, Any],
    options: Sequence[tuple[str, Any]],
    names: Mapping[str, str],
    owner: str,
) -> dict[str, Any]:
    """Apply grpcio-form ``options`` onto keyword ``settings``; unknown keys are an error."""
    for key, value in options:
        name = names.get(key)
        if name is None:
            raise ValueError(f"unsupported {owner} option {key!r}")
        settings[name] = value
    return settings


def size_limit(value: Optional[int]) -> Optional[int]:
    """A message size limit: ``None`` or a negative value (grpcio's -1) means unlimited."""
    if value is None or value < 0:
        return None
    return int(value)
