"""``python -m rpc.interop.server`` and the examples' servers serve health and reflection by
default, and not with ``--no-health --no-reflection``. Real processes, an h2rpc client (no
grpcio: this runs on PyPy too)."""

from __future__ import annotations

import sys

import pytest

import rpc
from rpc.services import health, reflection
from tests.interop.peers import start_peer

SERVERS = {
    "interop": ["-m", "rpc.interop.server", "--port", "0", "--host", "127.0.0.1"],
    "helloworld": ["-m", "examples.helloworld.server", "--address", "127.0.0.1:0"],
    "helloworld_blocking": [
        "-m",
        "examples.helloworld.server_blocking",
        "--address",
        "127.0.0.1:0",
    ],
    "route_guide": ["-m", "examples.route_guide.server", "--address", "127.0.0.1:0"],
}
OWN_SERVICE = {
    "interop": "grpc.testing.TestService",
    "helloworld": "helloworld.Greeter",
    "helloworld_blocking": "helloworld.Greeter",
    "route_guide": "routeguide.RouteGuide",
}


def _ask(port: int) -> tuple[int, list[str]]:
    """The overall health status and the services reflection lists (v1alpha, as grpcurl asks)."""
    with rpc.sync.Channel(f"127.0.0.1:{port}") as channel:
        status = (
            rpc.Stub(channel, health.SERVICE)
            .Check(health.health_pb2.HealthCheckRequest(service=""), timeout=10)
            .status
        )
        pb = reflection.reflection_v1alpha_pb2
        request = pb.ServerReflectionRequest(list_services="")
        [response] = rpc.Stub(channel, reflection.V1ALPHA_SERVICE).ServerReflectionInfo(
            iter([request]), timeout=10
        )
        return status, [s.name for s in response.list_services_response.service]


@pytest.mark.parametrize("name", sorted(SERVERS))
def test_servers_serve_health_and_reflection_by_default(name: str) -> None:
    proc, port = start_peer([sys.executable, *SERVERS[name]])
    try:
        status, listed = _ask(port)
        assert status == health.SERVING
        assert OWN_SERVICE[name] in listed
        assert {health.SERVICE_NAME, *reflection.SERVICE_NAMES} <= set(listed)
    finally:
        proc.stop()
        proc.remove_logs()


@pytest.mark.parametrize("name", sorted(SERVERS))
def test_flags_turn_health_and_reflection_off(name: str) -> None:
    proc, port = start_peer([sys.executable, *SERVERS[name], "--no-health", "--no-reflection"])
    try:
        with pytest.raises(rpc.RpcError) as info:
            _ask(port)
        assert info.value.code() == rpc.StatusCode.UNIMPLEMENTED
    finally:
        proc.stop()
        proc.remove_logs()
