"""h2rpc's async client calls an EchoTest server running in a subprocess.

The ``grpcio`` parameter is the interop test of h2rpc's client against real gRPC; the ``h2rpc``
parameter runs the same cases h2rpc to h2rpc.
"""

import h2rpc_client_cases as cases
import pytest
from peers import GRPCIO_AVAILABLE, GRPCIO_UNAVAILABLE_REASON

import rpc

SERVERS = [
    pytest.param(
        "grpcio",
        marks=pytest.mark.skipif(not GRPCIO_AVAILABLE, reason=GRPCIO_UNAVAILABLE_REASON),
    ),
    "h2rpc",
]


@pytest.fixture(params=SERVERS)
def server_target(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(f"{request.param}_server_target")


def test_unary_call_echoes_payload(server_target: str) -> None:
    cases.run(cases.unary_echo(server_target))


def test_server_stream_sends_requested_number_of_indexed_responses(server_target: str) -> None:
    cases.run(cases.server_stream(server_target))


def test_client_stream_counts_requests_and_bytes(server_target: str) -> None:
    cases.run(cases.client_stream(server_target))


def test_bidi_answers_each_request_before_the_next_is_sent(server_target: str) -> None:
    cases.run(cases.bidi(server_target))


def test_unary_echoes_ascii_binary_and_repeated_metadata_in_headers_and_trailers(
    server_target: str,
) -> None:
    cases.run(cases.unary_metadata_echo(server_target))


def test_bidi_echoes_ascii_binary_and_repeated_metadata_in_headers_and_trailers(
    server_target: str,
) -> None:
    cases.run(cases.bidi_metadata_echo(server_target))


@pytest.mark.parametrize("code", cases.NON_OK_STATUS_CODES, ids=lambda code: code.name)
def test_unary_error_status_and_unicode_details_reach_client(
    server_target: str, code: rpc.StatusCode
) -> None:
    cases.run(cases.unary_status(server_target, code))


@pytest.mark.parametrize("code", cases.NON_OK_STATUS_CODES, ids=lambda code: code.name)
def test_server_stream_error_status_after_responses_reaches_client(
    server_target: str, code: rpc.StatusCode
) -> None:
    cases.run(cases.server_stream_status(server_target, code))


@pytest.mark.parametrize("size", [0, 1, 8 * cases.MiB], ids=["0B", "1B", "8MiB"])
def test_unary_message_of_size_round_trips(server_target: str, size: int) -> None:
    cases.run(cases.unary_message_size(server_target, size))


def test_server_stream_of_8mib_messages_crosses_many_frames_and_windows(
    server_target: str,
) -> None:
    cases.run(cases.server_stream_large_messages(server_target))


def test_200_concurrent_unary_calls_share_one_connection(server_target: str) -> None:
    cases.run(cases.concurrent_unary(server_target))


def test_unknown_method_is_unimplemented(server_target: str) -> None:
    cases.run(cases.unknown_method(server_target))


def test_unknown_service_is_unimplemented(server_target: str) -> None:
    cases.run(cases.unknown_service(server_target))
