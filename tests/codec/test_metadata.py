from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from codec import (
    InvalidMetadataError,
    Metadata,
    MetadataTypeError,
    Metadatum,
    decode_metadata,
    encode_metadata,
    validate_metadata,
)

# --- the Metadata multimap ------------------------------------------------------------------


def test_repeated_keys_keep_their_order() -> None:
    md = Metadata(("a", "1"), ("b", "2"), ("a", "3"))
    md.add("a", "4")
    assert list(md) == [("a", "1"), ("b", "2"), ("a", "3"), ("a", "4")]
    assert md.get_all("a") == ["1", "3", "4"]
    assert md["a"] == "1"
    assert md.keys() == ["a", "b", "a", "a"]
    assert len(md) == 4


def test_lookup_of_absent_key() -> None:
    md = Metadata(("a", "1"))
    with pytest.raises(KeyError):
        md["b"]
    assert md.get("b") is None
    assert md.get("b", "x") == "x"
    assert md.get_all("b") == []
    assert "a" in md
    assert "b" not in md


def test_from_pairs_and_equality_with_pair_sequences() -> None:
    pairs = (("k", "v"), ("k-bin", b"\x00"))
    md = Metadata.from_pairs(pairs)
    assert md == Metadata(*pairs)
    assert md == pairs
    assert md == [list(p) for p in pairs]
    assert md != (("k", "v"),)
    assert md != Metadata()
    assert md != "kv"
    assert Metadata() == ()


def test_metadata_stores_keys_as_given() -> None:
    assert list(Metadata(("X-Mixed", "v"))) == [("X-Mixed", "v")]


def test_repr_shows_the_pairs() -> None:
    assert repr(Metadata(("a", "1"), ("b-bin", b"2"))) == "Metadata(('a', '1'), ('b-bin', b'2'))"


def test_setitem_delitem_and_friends() -> None:
    md = Metadata(("a", "1"), ("b", "2"), ("a", "3"))
    md["a"] = "x"
    md["c"] = "y"
    assert md == (("a", "x"), ("b", "2"), ("a", "3"), ("c", "y"))
    del md["a"]
    assert md == (("b", "2"), ("a", "3"), ("c", "y"))
    md.set_all("b", ["p", "q"])
    assert md == (("a", "3"), ("c", "y"), ("b", "p"), ("b", "q"))
    md.delete_all("b")
    combined = md + (("z", "1"),)  # noqa: RUF005 - Metadata.__add__ is what is tested
    assert isinstance(combined, Metadata)
    assert combined == (("a", "3"), ("c", "y"), ("z", "1"))
    assert md + Metadata(("z", "1")) == combined
    with pytest.raises(KeyError):
        del md["nope"]


def test_metadata_is_unhashable_because_it_is_mutable() -> None:
    with pytest.raises(TypeError):
        hash(Metadata())


# --- read like grpcio's metadata tuple (a tuple of _Metadatum namedtuples) ------------------


def test_items_are_key_value_tuples_with_key_and_value_attributes() -> None:
    md = Metadata(("a", "1"), ("b-bin", b"\x02"))
    items = list(md)
    assert items == [("a", "1"), ("b-bin", b"\x02")]
    assert all(isinstance(item, tuple) and isinstance(item, Metadatum) for item in items)
    assert [(item.key, item.value) for item in md] == [("a", "1"), ("b-bin", b"\x02")]
    assert [item.key for item in md.items()] == ["a", "b-bin"]
    assert dict(md) == {"a": "1", "b-bin": b"\x02"}
    key, value = md[1]
    assert (key, value) == ("b-bin", b"\x02")


def test_integer_index_and_slice_give_items_and_string_key_gives_the_value() -> None:
    md = Metadata(("a", "1"), ("b", "2"), ("a", "3"))
    assert md[0] == ("a", "1") and md[0].value == "1"
    assert md[-1].key == "a" and md[-1].value == "3"
    assert md["a"] == "1"  # the first value of a key, as before
    assert md[1:] == (("b", "2"), ("a", "3"))
    assert isinstance(md[1:], Metadata)
    with pytest.raises(IndexError):
        md[3]
    with pytest.raises(KeyError):
        md["c"]


def test_decoded_metadata_items_are_metadatum_too() -> None:
    md = decode_metadata([(b"k", b"v"), (b"k-bin", b"AAE")])
    assert md[0].key == "k" and md[1].value == b"\x00\x01"
    md.add("later", "x")  # added after the items were made
    assert [item.key for item in md] == ["k", "k-bin", "later"]
    assert all(isinstance(item, Metadatum) for item in md)


def test_compares_and_concatenates_with_tuples_of_pairs_as_grpcio_users_do() -> None:
    md = Metadata(("a", "1"))
    pairs = (("a", "1"),)
    assert md == pairs and pairs.__eq__(md) is NotImplemented  # then Python asks md: equal
    assert (pairs == md) is True
    assert md == [("a", "1")]
    assert ("a", "1") in md and ("a", "2") not in md and "a" in md
    assert (("z", "0"),) + md == (("z", "0"), ("a", "1"))  # noqa: RUF005 - __radd__ is tested
    assert [("z", "0")] + md == (("z", "0"), ("a", "1"))  # noqa: RUF005
    assert md + (("z", "0"),) == (("a", "1"), ("z", "0"))  # noqa: RUF005 - __add__ is tested


# --- validation of outgoing metadata --------------------------------------------------------


@pytest.mark.parametrize(
    "key",
    ["", "UPPER", "Mixed-case", "sp ace", "col:on", ":path", "ünï", "a/b", "tab\t", "new\nline"],
)
def test_bad_keys_are_rejected(key: str) -> None:
    with pytest.raises(InvalidMetadataError):
        validate_metadata([(key, "v")])


@pytest.mark.parametrize("key", ["grpc-status", "grpc-foo", "grpc-trace-bin", "content-type", "te"])
def test_reserved_keys_are_rejected(key: str) -> None:
    value: Any = b"x" if key.endswith("-bin") else "x"
    with pytest.raises(InvalidMetadataError, match="reserved"):
        validate_metadata([(key, value)])


def test_key_charset_is_digits_lowercase_dash_underscore_dot() -> None:
    validate_metadata([("0123456789abcdefghijklmnopqrstuvwxyz-_.", "v")])


@pytest.mark.parametrize(
    "value", ["tab\there", "new\nline", "del\x7f", "nul\x00", "caf\u00e9", " lead", "trail "]
)
def test_bad_text_values_are_rejected(value: str) -> None:
    with pytest.raises(InvalidMetadataError):
        validate_metadata([("k", value)])


def test_printable_ascii_text_values_are_accepted() -> None:
    validate_metadata([("k", ""), ("k", "a b ~!@#$%^&*()"), ("k", "x")])


def test_bin_key_requires_bytes_and_text_key_requires_str() -> None:
    with pytest.raises(InvalidMetadataError):
        validate_metadata([("k-bin", "text")])
    with pytest.raises(InvalidMetadataError):
        validate_metadata([("k", b"bytes")])
    with pytest.raises(InvalidMetadataError):
        validate_metadata([(b"k", "v")])  # type: ignore[list-item]


def test_bin_values_may_hold_any_bytes() -> None:
    validate_metadata([("k-bin", bytes(range(256)))])


def test_encode_converts_to_header_bytes_and_bin_values_to_unpadded_base64() -> None:
    md = Metadata(("a", "1"), ("x-bin", b"\x00\x01"), ("a", "2"), ("y-bin", b"abc"))
    assert encode_metadata(md) == [
        (b"a", b"1"),
        (b"x-bin", b"AAE"),
        (b"a", b"2"),
        (b"y-bin", b"YWJj"),
    ]


def test_encode_validates() -> None:
    with pytest.raises(InvalidMetadataError):
        encode_metadata([("grpc-timeout", "1S")])


@pytest.mark.parametrize(
    ("metadata", "words"),
    [
        ({"ab": "c"}, "not a dict: pass list(d.items())"),
        ("ab", "not str 'ab'"),
        (b"ab", "not bytes"),
        (5, "not int 5"),
        (["abc"], "holds 'abc'"),
        ([("k", "v", "extra")], "holds ('k', 'v', 'extra')"),
        ((pair for pair in [("k",)]), "sequence of (key, value) pairs"),
    ],
)
def test_metadata_that_is_not_a_sequence_of_pairs_is_a_type_error(
    metadata: Any, words: str
) -> None:
    with pytest.raises(TypeError, match="metadata must be a sequence of") as info:
        encode_metadata(metadata)
    assert words in str(info.value)
    # Also an InvalidMetadataError, for code that catches that (the servers do).
    assert isinstance(info.value, MetadataTypeError)
    assert isinstance(info.value, InvalidMetadataError)


# --- decoding received metadata -------------------------------------------------------------


def test_decode_skips_pseudo_reserved_and_protocol_headers_and_keeps_user_agent() -> None:
    headers = [
        (b":status", b"200"),
        (b"content-type", b"application/grpc"),
        (b"te", b"trailers"),
        (b"grpc-encoding", b"gzip"),
        (b"grpc-status", b"0"),
        (b"user-agent", b"grpc-python/1.0"),
        (b"k", b"v"),
        (b"k", b"w"),
    ]
    assert decode_metadata(headers) == (("user-agent", "grpc-python/1.0"), ("k", "v"), ("k", "w"))


@pytest.mark.parametrize("encoded", [b"AAE", b"AAE=", b"YWJj", b"", b"/+8"])
def test_decode_bin_accepts_padded_and_unpadded(encoded: bytes) -> None:
    expected = base64.b64decode(encoded + b"=" * (-len(encoded) % 4))
    assert decode_metadata([(b"x-bin", encoded)]) == (("x-bin", expected),)


@pytest.mark.parametrize("encoded", [b"A", b"AAAAA", b"A*==", b"AA=A", b"QQ=", b"AA===", b"-_8"])
def test_decode_invalid_base64_raises(encoded: bytes) -> None:
    with pytest.raises(InvalidMetadataError):
        decode_metadata([(b"x-bin", encoded)])


def test_decode_non_ascii_text_value_never_fails() -> None:
    assert decode_metadata([(b"k", b"caf\xc3\xa9")]) == (("k", "caf\xc3\xa9"),)


@given(
    st.lists(
        st.one_of(
            st.tuples(
                st.from_regex(r"[0-9a-z_.\-]{1,10}", fullmatch=True).filter(
                    lambda k: (
                        not k.endswith("-bin")
                        and not k.startswith("grpc-")
                        and k
                        not in (
                            "te",
                            "content-type",
                            "connection",
                            "keep-alive",
                            "proxy-connection",
                            "transfer-encoding",
                            "upgrade",
                            "host",
                        )
                    )
                ),
                st.from_regex(r"([!-~]([ -~]*[!-~])?)?", fullmatch=True),
            ),
            st.tuples(st.from_regex(r"[0-9a-z_.\-]{1,10}-bin", fullmatch=True), st.binary()).filter(
                lambda kv: not kv[0].startswith("grpc-")
            ),
        ),
        max_size=8,
    )
)
def test_encode_then_decode_round_trips(pairs: list[tuple[str, Any]]) -> None:
    assert decode_metadata(encode_metadata(pairs)) == pairs
