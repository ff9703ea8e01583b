"""Custom metadata: the application's key/value pairs carried as HTTP/2 headers.

Keys are lowercase ASCII; a key ending in ``-bin`` carries arbitrary bytes, sent base64-encoded
(gRPC emits it unpadded and accepts both forms); other values are printable ASCII text. Keys
starting with ``grpc-`` and the headers gRPC itself sets are reserved. Repeated keys are allowed
and their order is kept.
"""

from __future__ import annotations

import binascii
import re
from collections.abc import Iterable, Iterator, Mapping
from functools import partial
from typing import Any, Callable, NamedTuple, Union, cast, overload

from .errors import InvalidMetadataError, MetadataTypeError

__all__ = [
    "Headers",
    "InboundHeaders",
    "Metadata",
    "MetadataLike",
    "MetadataValue",
    "Metadatum",
    "decode_metadata",
    "encode_metadata",
    "validate_metadata",
]

MetadataValue = Union[str, bytes]
#: What h2 takes and gives with ``header_encoding=None``.
Headers = list[tuple[bytes, bytes]]
InboundHeaders = Iterable[tuple[bytes, bytes]]


class Metadatum(NamedTuple):
    """One ``(key, value)`` pair that also has ``.key`` and ``.value`` (grpcio's ``_Metadatum``)."""

    key: str
    value: MetadataValue


#: ``(key, value)`` tuple -> Metadatum, in C: no Python-level ``__new__`` call per pair, unlike
#: ``Metadatum(key, value)``.
_as_metadatum = cast(
    "Callable[[tuple[str, MetadataValue]], Metadatum]", partial(tuple.__new__, Metadatum)
)


class Metadata:
    """An ordered multimap of ``(key, value)`` pairs, like ``grpc.aio.Metadata``, that also reads
    like the metadata tuple of grpcio's blocking API.

    Values of ``-bin`` keys are bytes, others str. ``md["key"]`` is the first value of a key;
    ``md[0]`` is the first pair, and iterating gives the pairs, as ``Metadatum`` tuples with
    ``.key`` and ``.value``; ``md == (("key", "value"),)`` compares the pairs. Nothing is
    validated here: received metadata is stored as the peer sent it, and outgoing metadata is
    validated once, when it is encoded.
    """

    # Pairs are stored as plain tuples (what decoders build per call, cheaply) until someone looks
    # at them as items: then they are turned into Metadatum, once (``_plain`` says they may not be).
    __slots__ = ("_pairs", "_plain")

    def __init__(self, *pairs: tuple[str, MetadataValue]) -> None:
        self._pairs: list[tuple[str, MetadataValue]] = [(key, value) for key, value in pairs]
        self._plain = True

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, MetadataValue]]) -> Metadata:
        """Build from any iterable of ``(key, value)`` pairs (e.g. a tuple of tuples)."""
        self = cls.__new__(cls)
        self._pairs = [(key, value) for key, value in pairs]
        self._plain = True
        return self

    from_tuple = from_pairs  # grpcio's name

    @classmethod
    def _wrap(cls, pairs: list[tuple[str, MetadataValue]]) -> Metadata:
        """Adopt a freshly built list of tuples without copying it (decoders use this)."""
        self = cls.__new__(cls)
        self._pairs = pairs
        self._plain = True
        return self

    def _items(self) -> list[Metadatum]:
        """The pairs, as Metadatum (converted in place the first time)."""
        if self._plain:
            self._pairs = list(map(_as_metadatum, self._pairs))
            self._plain = False
        return cast("list[Metadatum]", self._pairs)

    def add(self, key: str, value: MetadataValue) -> None:
        """Append a pair; earlier values of the same key are kept."""
        self._pairs.append((key, value))
        self._plain = True

    def __len__(self) -> int:
        return len(self._pairs)

    def __iter__(self) -> Iterator[Metadatum]:
        return iter(self._items())

    def __bool__(self) -> bool:
        return bool(self._pairs)

    def __contains__(self, key: object) -> bool:
        """``"key" in md``: is there a pair with this key; ``("key", "value") in md``: this pair."""
        if isinstance(key, tuple):
            return key in self._pairs
        return any(k == key for k, _ in self._pairs)

    @overload
    def __getitem__(self, key: str) -> MetadataValue: ...
    @overload
    def __getitem__(self, key: int) -> Metadatum: ...
    @overload
    def __getitem__(self, key: slice) -> Metadata: ...

    def __getitem__(self, key: Union[str, int, slice]) -> Any:
        """``md["key"]``: the first value of ``key`` (KeyError if absent); ``md[i]``: the i-th
        pair (IndexError), ``md[i:j]``: those pairs, as grpcio's metadata tuple gives them."""
        for k, value in self._pairs:
            if k == key:
                return value
        if isinstance(key, int):
            return self._items()[key]
        if isinstance(key, slice):
            return Metadata._wrap(self._pairs[key])
        raise KeyError(key)

    def __setitem__(self, key: str, value: MetadataValue) -> None:
        """Replace the first value of ``key`` (keeping its position), or append the pair."""
        pairs = self._pairs
        self._plain = True
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
        self._plain = True

    def keys(self) -> list[str]:
        return [k for k, _ in self._pairs]

    def values(self) -> list[MetadataValue]:
        return [v for _, v in self._pairs]

    def items(self) -> list[Metadatum]:
        return list(self._items())

    def copy(self) -> Metadata:
        return Metadata._wrap(list(self._pairs))

    def __add__(self, other: object) -> Metadata:
        if isinstance(other, Metadata):
            return Metadata._wrap(self._pairs + other._pairs)
        if isinstance(other, (tuple, list)):
            return Metadata._wrap(self._pairs + [(k, v) for k, v in other])
        return NotImplemented

    def __radd__(self, other: object) -> Metadata:
        """``(("key", "value"),) + md``, as with grpcio's metadata tuples."""
        if isinstance(other, (tuple, list)):
            return Metadata._wrap([(k, v) for k, v in other] + self._pairs)
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
        pairs = ", ".join(repr((key, value)) for key, value in self._pairs)
        return f"{type(self).__name__}({pairs})"


MetadataLike = Union[Metadata, Iterable[tuple[str, MetadataValue]]]

# --- outgoing ------------------------------------------------------------------------------------

_VALID_KEY = re.compile(r"[0-9a-z_.\-]+")
# Headers gRPC or HTTP/2 own: sending them as metadata would clash with the protocol's own
# (content-type, te) or be refused by HTTP/2 (connection-specific headers, RFC 9113 8.2.2).
#: The ``grpc-`` keys an application may send: a server's retry pushback (gRFC A6), as grpcio's
#: servers allow in trailing metadata.
_SETTABLE_GRPC_KEYS = frozenset(["grpc-retry-pushback-ms"])
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
    if (key.startswith("grpc-") and key not in _SETTABLE_GRPC_KEYS) or key in _RESERVED_KEYS:
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


def _not_pairs(pairs: object) -> MetadataTypeError:
    """Why ``pairs`` is not a sequence of ``(key, value)`` pairs (the common mistake: a dict)."""
    if isinstance(pairs, Mapping):
        return MetadataTypeError(
            f"metadata must be a sequence of (key, value) pairs, not a {type(pairs).__name__}: "
            "pass list(d.items()), e.g. metadata=[('key', 'value')]"
        )
    if isinstance(pairs, (str, bytes, bytearray)) or not isinstance(pairs, Iterable):
        return MetadataTypeError(
            "metadata must be a sequence of (key, value) pairs, e.g. metadata=[('key', 'value')],"
            f" not {type(pairs).__name__} {pairs!r}"
        )
    for pair in pairs:
        if not isinstance(pair, (tuple, list)) or len(pair) != 2:
            return MetadataTypeError(
                f"metadata must be a sequence of (key, value) pairs, but holds {pair!r}"
            )
    return MetadataTypeError("metadata must be a sequence of (key, value) pairs")


def validate_metadata(pairs: MetadataLike) -> None:
    """Raise InvalidMetadataError unless ``pairs`` may be sent as application metadata
    (MetadataTypeError, also a TypeError, if it is not a sequence of pairs at all)."""
    encode_metadata(pairs)


def encode_metadata(pairs: MetadataLike) -> Headers:
    """Validate outgoing metadata and turn it into header tuples (``-bin`` values base64'd).

    Raises InvalidMetadataError for a pair that may not be sent, and MetadataTypeError (an
    InvalidMetadataError and a TypeError) if ``pairs`` is not a sequence of pairs: a dict, say.
    """
    if pairs.__class__ is not list and pairs.__class__ is not tuple:
        if isinstance(pairs, Metadata):
            pairs = pairs._pairs  # plain tuples: no need to make Metadatum of them
        elif isinstance(pairs, (Mapping, str, bytes, bytearray)):
            raise _not_pairs(pairs)
    try:
        return [_encode_pair(key, value) for key, value in pairs]
    except (TypeError, ValueError):  # not iterable, or an item that is not a pair
        raise _not_pairs(pairs) from None


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
