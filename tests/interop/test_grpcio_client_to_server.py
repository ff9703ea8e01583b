"""A real grpcio client calls an EchoTest server running in a subprocess.

The ``grpcio`` parameter runs the cases against grpcio's own server, which
proves the cases and the reference peer; the ``h2rpc`` parameter is the
interop test of h2rpc's server.
"""

import pytest
from peers import GRPCIO_AVAILABLE, GRPCIO_UNAVAILABLE_REASON

if not GRPCIO_AVAILABLE:  # PyPy only: on CPython a missing grpcio is an error, not a skip
    pytest.skip(GRPCIO_UNAVAILABLE_REASON, allow_module_level=True)

import grpc
import grpcio_client_cases as cases


@pytest.fixture(params=["grpcio", "h2rpc", "h2rpc_sync"])
def server_target(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(f"{request.param}_server_target")


def test_unary_call_echoes_payload(server_target: str) -> None:
    cases.unary_echo(server_target)


def test_server_stream_sends_requested_number_of_indexed_responses(server_target: str) -> None:
    cases.server_stream(server_target)


def test_client_stream_counts_requests_and_bytes(server_target: str) -> None:
    cases.client_stream(server_target)


def test_bidi_answers_each_request_before_the_next_is_sent(server_target: str) -> None:
    cases.bidi(server_target)


def test_unary_echoes_ascii_binary_and_repeated_metadata_in_headers_and_trailers(
    server_target: str,
) -> None:
    cases.unary_metadata_echo(server_target)


def test_bidi_echoes_ascii_binary_and_repeated_metadata_in_headers_and_trailers(
    server_target: str,
) -> None:
    cases.bidi_metadata_echo(server_target)


@pytest.mark.parametrize("code", cases.NON_OK_STATUS_CODES, ids=lambda code: code.name)
def test_unary_error_status_and_unicode_details_reach_client(
    server_target: str, code: grpc.StatusCode
) -> None:
    cases.unary_status(server_target, code)


@pytest.mark.parametrize("code", cases.NON_OK_STATUS_CODES, ids=lambda code: code.name)
def test_server_stream_error_status_after_responses_reaches_client(
    server_target: str, code: grpc.StatusCode
) -> None:
    cases.server_stream_status(server_target, code)


@pytest.mark.parametrize("size", [0, 1, 8 * cases.MiB], ids=["0B", "1B", "8MiB"])
def test_unary_messages_of_size_travel_both_ways(server_target: str, size: int) -> None:
    cases.unary_message_size(server_target, size)


def test_server_stream_delivers_three_8mib_messages(server_target: str) -> None:
    cases.server_stream_large_messages(server_target, count=3, size=8 * cases.MiB)


def test_200_concurrent_unary_calls_on_one_channel_all_succeed(server_target: str) -> None:
    cases.concurrent_unary(server_target, calls=200)


def test_unknown_method_is_unimplemented(server_target: str) -> None:
    cases.unknown_method(server_target)


def test_unknown_service_is_unimplemented(server_target: str) -> None:
    cases.unknown_service(server_target)
