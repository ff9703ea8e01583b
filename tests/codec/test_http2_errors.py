"""The HTTP/2 error codes h2rpc spells once, in ``codec.http2_errors``."""

from __future__ import annotations

import h2.errors

import codec
from codec import http2_errors


def test_every_rfc9113_error_code_is_defined_with_h2s_value() -> None:
    # h2's ErrorCodes is an independent spelling of RFC 9113 §7: the two must agree, code by code.
    ours = {name: getattr(http2_errors, name) for name in http2_errors.__all__}
    assert ours == {code.name: int(code) for code in h2.errors.ErrorCodes}


def test_error_codes_are_plain_ints_exported_from_codec() -> None:
    for name in http2_errors.__all__:
        value = getattr(http2_errors, name)
        assert type(value) is int
        assert getattr(codec, name) is value
        assert name in codec.__all__
