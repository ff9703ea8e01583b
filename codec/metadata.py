"""Custom metadata: the application's key/value pairs carried as HTTP/2 headers.

Keys are lowercase ASCII; a key ending in ``-bin`` carries arbitrary bytes, sent base64-encoded
(gRPC emits it unpadded and accepts both forms); other values are printable ASCII text. Keys
starting with ``grpc-`` and the headers gRPC itself sets are reserved. Repeated keys are allowed
and their order is kept.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterable, Iterator
from typing import Any, Union, overload

from .errors import InvalidMetadataError

__all__ = [
    "Headers",
    "InboundHeaders",
    "Metadata",
    "MetadataLike",
    "MetadataValue",
    "decode_metadata",
    "encode_metadata",
    "validate_metadata",
]

MetadataValue = Union[str, bytes]
#: What h2 takes and gives with ``header_encoding=None``.
Headers = list[tuple[bytes, bytes]]
InboundHeaders = Iterable[tuple[bytes, bytes]]


class Metadata:
    """An ordered multimap of ``(key, value)`` pairs, like ``grpc.aio.Metadata``.

    Values of ``-bin`` keys are bytes, others str. Nothing is validated here: received metadata is
    stored as the peer sent it, and outgoing metadata is validated once, when it is encoded.
    """

    __slots__ = ("_pairs",)

    def __init__(self, *pairs: tuple[str, MetadataValue]) -> None:
        self._pairs: list[tuple[str, MetadataValue]] = [(key, value) for key, value in pairs]

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, MetadataValue]]) -> Metadata:
        """Build from any iterable of ``(key, value)`` pairs (e.g. a tuple of tuples)."""
        self = cls.__new__(cls)
        self._pairs = [(key, value) for key, value in pairs]
        return self

    from_tuple = from_pairs  # grpcio's name

    @classmethod
    def _wrap(cls, pairs: list[tuple[str, MetadataValue]]) -> Metadata:
        """Adopt a freshly built list without copying it (decoders use this)."""
        self = cls.__new__(cls)
        self._pairs = pairs
        return self

    def add(self, key: str, value: MetadataValue) -> None:
        """Append a pair; earlier values of the same key are kept."""
        self._pairs.append((key, value))

    def __len__(self) -> int:
        return len(self._pairs)

    def __iter__(self) -> Iterator[tuple[str, MetadataValue]]:
        return iter(self._pairs)

    def __bool__(self) -> bool:
        return bool(self._pairs)

    def __contains__(self, key: object) -> bool:
        return any(k == key for k, _ in self._pairs)

    def __getitem__(self, key: str) -> MetadataValue:
        """The first value of ``key``; KeyError if it is absent."""
        for k, value in self._pairs:
            if k == key:
                return value
        raise KeyError(key)

    def __setitem__(self, key: str, value: MetadataValue) -> None:
        """Replace the first value of ``key`` (keeping its position), or append the pair."""
        pairs = self._pairs
        for i, (k, _) in enumerate(pairs):
            if k == key:
                pairs[i] = (key, value)
                return
        pairs.append((key, value))

    def __delitem__(self, key: str) -> None:
        """Remove the first pair with ``key``; KeyError if it is absent."""
        pairs = self._pairs
        for i, (k, _) in enumerate(pairs):
            if k == key:
                del pairs[i]
                return
        raise KeyError(key)

    def delete_all(self, key: str) -> None:
        self._pairs = [pair for pair in self._pairs if pair[0] != key]

    @overload
    def get(self, key: str) -> MetadataValue | None: ...
    @overload
    def get(self, key: str, default: Any) -> Any: ...

    def get(self, key: str, default: Any = None) -> Any:
        for k, value in self._pairs:
            if k == key:
                return value
        return default

    def get_all(self, key: str) -> list[MetadataValue]:
        """Every value of ``key``, in the order received."""
        return [value for k, value in self._pairs if k == key]

    def set_all(self, key: str, values: Iterable[MetadataValue]) -> None:
        """Replace all values of ``key`` by ``values`` (appended at the end)."""
        self.delete_all(key)
        self._pairs.extend((key, value) for value in values)

    def keys(self) -> list[str]:
        return [k for k, _ in self._pairs]

    def values(self) -> list[MetadataValue]:
        return [v for _, v in self._pairs]

    def items(self) -> list[tuple[str, MetadataValue]]:
        return list(self._pairs)

    def copy(self) -> Metadata:
        return Metadata._wrap(list(self._pairs))

    def __add__(self, other: object) -> Metadata:
        if isinstance(other, Metadata):
            return Metadata._wrap(self._pairs + other._pairs)
        if isinstance(other, (tuple, list)):
            return Metadata._wrap(self._pairs + [(k, v) for k, v in other])
        return NotImplemented

    def __eq__(self, other: object) -> bool:
        """Equal to another Metadata, or to a tuple/list of pairs, with the same pair sequence."""
        if isinstance(other, Metadata):
            return self._pairs == other._pairs
        if isinstance(other, (tuple, list)):
            try:
                return self._pairs == [tuple(pair) for pair in other]
            except TypeError:
                return False
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(repr(pair) for pair in self._pairs)})"


MetadataLike = Union[Metadata, Iterable[tuple[str, MetadataValue]]]

# --- outgoing ------------------------------------------------------------------------------------

_VALID_KEY = re.compile(r"[0-9a-z_.\-]+")
# Headers gRPC or HTTP/2 own: sending them as metadata would clash with the protocol's own
# (content-type, te) or be refused by HTTP/2 (connection-specific headers, RFC 9113 8.2.2).
_RESERVED_KEYS = frozenset(
    [
        "content-type",
        "te",
        "connection",
        "keep-alive",
        "proxy-connection",
        "transfer-encoding",
        "upgrade",
        "host",
    ]
)


def _encode_pair(key: object, value: object) -> tuple[bytes, bytes]:
    """Check one outgoing pair and return it as header bytes."""
    if not isinstance(key, str) or _VALID_KEY.fullmatch(key) is None:
        raise InvalidMetadataError(
            f"metadata key {key!r} is invalid: keys are non-empty and use only 0-9 a-z _ - ."
        )
    if key.startswith("grpc-") or key in _RESERVED_KEYS:
        raise InvalidMetadataError(f"metadata key {key!r} is reserved")
    if key.endswith("-bin"):
        if not isinstance(value, (bytes, bytearray, memoryview)):
            raise InvalidMetadataError(f"value of binary metadata key {key!r} must be bytes")
        # Unpadded standard base64, as grpc sends it.
        return key.encode("ascii"), binascii.b2a_base64(value, newline=False).rstrip(b"=")
    if not isinstance(value, str):
        raise InvalidMetadataError(
            f"value of metadata key {key!r} must be str (use a '-bin' key for bytes)"
        )
    if value and not (
        value.isascii() and value.isprintable() and value[0] != " " and value[-1] != " "
    ):
        # HTTP/2 field values may not hold control characters nor start or end with whitespace.
        raise InvalidMetadataError(
            f"value of metadata key {key!r} must be printable ASCII without surrounding spaces: "
            f"{value!r}"
        )
    return key.encode("ascii"), value.encode("ascii")


def validate_metadata(pairs: MetadataLike) -> None:
    """Raise InvalidMetadataError unless ``pairs`` may be sent as application metadata."""
    for key, value in pairs:
        _encode_pair(key, value)


def encode_metadata(pairs: MetadataLike) -> Headers:
    """Validate outgoing metadata and turn it into header tuples (``-bin`` values base64'd)."""
    return [_encode_pair(key, value) for key, value in pairs]


# --- incoming ------------------------------------------------------------------------------------

# Headers of the gRPC protocol itself, never shown as metadata (besides ':'-prefixed and 'grpc-*').
_SKIPPED_HEADERS = frozenset([b"content-type", b"te"])
_BASE64_PADDING = (b"", b"", b"==", b"=")  # by len % 4; len % 4 == 1 is never valid base64
_BASE64_CHARS = re.compile(rb"[A-Za-z0-9+/]*={0,2}")


def decode_binary_value(value: bytes) -> bytes:
    """Decode a received ``-bin`` value, padded or not; InvalidMetadataError if not base64."""
    if _BASE64_CHARS.fullmatch(value) is None:
        raise InvalidMetadataError(f"invalid base64 in binary metadata value: {value!r}")
    if not value.endswith(b"="):
        value += _BASE64_PADDING[len(value) & 3]
    try:
        return binascii.a2b_base64(value)
    except binascii.Error as exc:
        raise InvalidMetadataError(
            f"invalid base64 in binary metadata value: {value!r} ({exc})"
        ) from None


def decode_metadata(headers: InboundHeaders) -> Metadata:
    """The application metadata in a received header list.

    Skips pseudo-headers, reserved ``grpc-*`` headers, ``content-type`` and ``te``; keeps the rest
    (``user-agent`` included, as grpcio does) in order. Raises InvalidMetadataError for a ``-bin``
    value that is not base64.
    """
    pairs: list[tuple[str, MetadataValue]] = []
    append = pairs.append
    skipped = _SKIPPED_HEADERS
    for key, value in headers:
        if key[:1] == b":" or key.startswith(b"grpc-") or key in skipped:
            continue
        if key.endswith(b"-bin"):
            append((key.decode("latin-1"), decode_binary_value(value)))
        else:
            append((key.decode("latin-1"), value.decode("latin-1")))
    return Metadata._wrap(pairs)
