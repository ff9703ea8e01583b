"""h2rpc's blocking client against grpcio's server and both h2rpc servers (real processes)."""

from __future__ import annotations

import pytest
import sync_client_cases as cases

import rpc


@pytest.fixture(params=["grpcio", "h2rpc", "h2rpc_sync"])
def server_target(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(f"{request.param}_server_target")


def test_unary(server_target: str) -> None:
    cases.unary_echo(server_target)


def test_server_stream(server_target: str) -> None:
    cases.server_stream(server_target)


def test_client_stream(server_target: str) -> None:
    cases.client_stream(server_target)


def test_bidi_ping_pong(server_target: str) -> None:
    cases.bidi_ping_pong(server_target)


def test_metadata_ascii_binary_repeated_both_ways(server_target: str) -> None:
    cases.metadata_echo(server_target)


@pytest.mark.parametrize("code", cases.NON_OK_STATUS_CODES, ids=lambda code: code.name)
def test_status_codes_with_unicode_details(server_target: str, code: rpc.StatusCode) -> None:
    cases.status(server_target, code)


def test_messages_of_0_1_and_8mib(server_target: str) -> None:
    cases.large_messages(server_target)


def test_deadline_on_a_sleeping_server(server_target: str) -> None:
    cases.deadline(server_target)


def test_cancel_from_another_thread(server_target: str) -> None:
    cases.cancellation(server_target)


def test_compression_both_ways_and_per_message(server_target: str) -> None:
    cases.compression(server_target)


def test_unknown_method_and_service(server_target: str) -> None:
    cases.unimplemented(server_target)


def test_32_threads_share_one_blocking_channel(server_target: str) -> None:
    cases.threads_share_one_channel(server_target)
