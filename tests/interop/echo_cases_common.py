"""Constants and helpers shared by the grpcio and the h2rpc interop client cases.

Nothing here imports grpc, so h2rpc-side code (h2rpc_client_cases.py) can use it on interpreters
without grpcio, such as PyPy.
"""

from __future__ import annotations

from collections.abc import Sequence

MiB = 1024 * 1024
MAX_MESSAGE_LENGTH = 64 * MiB
CALL_TIMEOUT_SECONDS = 30.0
ECHO_PREFIX = "x-echo-"

# Sent with every metadata case: an ASCII value, a binary value that is not
# UTF-8, a key repeated three times (order must be kept) and one key that must
# not be echoed.
ECHO_METADATA: tuple[tuple[str, str | bytes], ...] = (
    ("x-echo-ascii", "hello, world ~!"),
    ("x-echo-blob-bin", b"\x00\xff\xfe"),
    ("x-echo-repeated", "first"),
    ("x-echo-repeated", "second"),
    ("x-echo-repeated", "third"),
    ("x-not-echoed", "must not come back"),
)
EXPECTED_ECHO = [(key, value) for key, value in ECHO_METADATA if key.startswith(ECHO_PREFIX)]


def status_details(code_number: int) -> str:
    """A details string that needs percent-encoding: non-ASCII, emoji, control chars."""
    return f"détails ☺ 😈 {code_number}\t\n"


def echoed(metadata: Sequence[tuple[str, str | bytes]] | None) -> list[tuple[str, str | bytes]]:
    """The ``x-echo-*`` entries of received metadata, as plain (key, value) pairs."""
    return [(key, value) for key, value in metadata or () if key.startswith(ECHO_PREFIX)]


def assert_bytes_equal(actual: bytes, expected: bytes, what: str = "payload") -> None:
    """Compare possibly huge byte strings without dumping megabytes into the report."""
    if actual == expected:
        return
    if len(actual) != len(expected):
        raise AssertionError(f"{what}: got {len(actual)} bytes, expected {len(expected)}")
    offset = next(i for i, (a, b) in enumerate(zip(actual, expected)) if a != b)
    raise AssertionError(
        f"{what}: first difference at byte {offset}: "
        f"got {actual[offset : offset + 16]!r}, expected {expected[offset : offset + 16]!r}"
    )


def patterned_bytes(size: int, seed: int = 0) -> bytes:
    """Deterministic non-zero-heavy bytes, so a truncated or shifted echo is detected."""
    block = bytes((seed + i * 7) % 251 for i in range(251))
    return (block * (size // len(block) + 1))[:size]
