"""``h2rpc`` (``python -m rpc``, run as a subprocess) against an h2rpc server and a grpcio server
with grpcio-reflection and grpcio-health-checking: list, describe, calls of the four kinds (JSON
lines in from ``-d`` and standard input, JSON lines out), health, errors and their exit status,
offline schemas (``--protoset``), ``--trace``, TLS; and its JSON output beside grpcurl's for the
same calls (parsed, compared as values).

The grpcio server's half and grpcurl's skip where they are missing (PyPy).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any, Optional

import pytest
from peers import GRPCIO_AVAILABLE, GRPCIO_UNAVAILABLE_REASON, peer_environment

import rpc
from rpc.cli.jsonio import json_objects
from rpc.services import health, reflection
from tests.cli import kinds
from tests.services.grpcurl_binary import GRPCURL

ITEM = {
    "name": "widget",
    "bigNumber": "9007199254740993",
    "color": "GREEN",
    "blob": "AAEC/w==",
    "numbers": [3, 1, 2],
    "counts": {"a": 1, "b": 2},
    "when": "2024-01-02T03:04:05Z",
    "ratio": 0.5,
    "inner": {"id": "18446744073709551615"},
}


try:
    from google.rpc import error_details_pb2  # noqa: F401

    _HAVE_ERROR_DETAILS = True
except ImportError:
    _HAVE_ERROR_DETAILS = False


class H2rpcKinds(kinds.Kinds):
    def Fail(self, request: Any, context: Any) -> Any:
        details: list[Any] = []
        try:
            from google.rpc import error_details_pb2
        except ImportError:
            pass
        else:
            violation = error_details_pb2.BadRequest.FieldViolation(
                field="name", description="no such item"
            )
            details.append(error_details_pb2.BadRequest(field_violations=[violation]))
        raise rpc.rich_error(rpc.StatusCode.NOT_FOUND, f"no item {request.name!r}", details)


def _h2rpc_server() -> tuple[Any, str]:
    server = rpc.sync.Server(max_workers=16)
    server.add_service(kinds.SERVICE, H2rpcKinds())
    health.enable_health(server).set("clitest.Kinds", health.SERVING)
    reflection.enable_reflection(server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


def _grpcio_server() -> tuple[Any, str]:
    import grpc
    from grpc_health.v1 import health as grpc_health
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection as grpc_reflection

    class GrpcioKinds(kinds.Kinds):
        def Fail(self, request: Any, context: Any) -> Any:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no item {request.name!r}")

    servicer = GrpcioKinds()
    item, items = kinds.Item, kinds.Items

    def handler(kind: str, name: str, response: Any) -> Any:
        make = getattr(grpc, f"{kind}_rpc_method_handler")
        return make(
            getattr(servicer, name),
            request_deserializer=item.FromString,
            response_serializer=response.SerializeToString,
        )

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=16))
    generic = grpc.method_handlers_generic_handler(
        "clitest.Kinds",
        {
            "Echo": handler("unary_unary", "Echo", item),
            "Repeat": handler("unary_stream", "Repeat", item),
            "Collect": handler("stream_unary", "Collect", items),
            "Chat": handler("stream_stream", "Chat", item),
            "Fail": handler("unary_unary", "Fail", item),
        },
    )
    server.add_generic_rpc_handlers((generic,))
    health_servicer = grpc_health.HealthServicer()
    health_servicer.set("clitest.Kinds", health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = ("clitest.Kinds", "grpc.health.v1.Health", grpc_reflection.SERVICE_NAME)
    grpc_reflection.enable_server_reflection(names, server, pool=kinds.POOL)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"


@pytest.fixture(scope="module", params=["h2rpc", "grpcio"])
def server(request: pytest.FixtureRequest) -> Iterator[tuple[str, str]]:
    """(which server, its target)."""
    if request.param == "grpcio" and not GRPCIO_AVAILABLE:
        pytest.skip(GRPCIO_UNAVAILABLE_REASON)
    make = _h2rpc_server if request.param == "h2rpc" else _grpcio_server
    running, target = make()
    try:
        yield request.param, target
    finally:
        running.stop(None)


@pytest.fixture()
def target(server: tuple[str, str]) -> str:
    return server[1]


def h2rpc(*args: str, stdin: Optional[str] = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "rpc", *args],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        env=peer_environment(),
    )


def json_lines(text: str) -> list[Any]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


# ====================================================================== list, describe


def test_list_services_and_methods(target: str) -> None:
    result = h2rpc("list", target)
    assert result.returncode == 0, result.stderr
    services = result.stdout.split()
    assert "clitest.Kinds" in services and "grpc.health.v1.Health" in services
    assert services == sorted(services)
    methods = h2rpc("list", target, "clitest.Kinds")
    assert methods.stdout.split() == [
        f"clitest.Kinds.{name}" for name in ("Chat", "Collect", "Echo", "Fail", "Repeat")
    ]


def test_describe_service_method_message_and_enum(target: str) -> None:
    service = h2rpc("describe", target, "clitest.Kinds")
    assert service.returncode == 0, service.stderr
    assert service.stdout.splitlines() == [
        "clitest.Kinds is a service:",
        "service Kinds {",
        "  rpc Chat ( stream .clitest.Item ) returns ( stream .clitest.Item );",
        "  rpc Collect ( stream .clitest.Item ) returns ( .clitest.Items );",
        "  rpc Echo ( .clitest.Item ) returns ( .clitest.Item );",
        "  rpc Fail ( .clitest.Item ) returns ( .clitest.Item );",
        "  rpc Repeat ( .clitest.Item ) returns ( stream .clitest.Item );",
        "}",
    ]
    method = h2rpc("describe", target, "clitest.Kinds.Repeat")
    assert method.stdout.splitlines() == [
        "clitest.Kinds.Repeat is a method:",
        "rpc Repeat ( .clitest.Item ) returns ( stream .clitest.Item );",
    ]
    message = h2rpc("describe", target, "clitest.Item")
    assert message.stdout.splitlines() == [
        "clitest.Item is a message:",
        "message Item {",
        "  string name = 1;",
        "  int64 big_number = 2;",
        "  .clitest.Color color = 3;",
        "  bytes blob = 4;",
        "  repeated int32 numbers = 5;",
        "  map<string, int32> counts = 6;",
        "  .google.protobuf.Timestamp when = 7;",
        "  double ratio = 8;",
        "  .clitest.Item.Inner inner = 9;",
        "  message Inner {",
        "    uint64 id = 1;",
        "  }",
        "}",
    ]
    enum = h2rpc("describe", target, "clitest.Color")
    assert enum.stdout.splitlines()[:2] == ["clitest.Color is an enum:", "enum Color {"]


def test_describe_of_an_unknown_symbol_is_not_found(target: str) -> None:
    result = h2rpc("describe", target, "no.such.Thing")
    assert result.returncode == rpc.StatusCode.NOT_FOUND.value
    assert "Code: NotFound" in result.stderr


# ====================================================================== calls


def test_unary_call_prints_the_response_as_one_json_line(target: str) -> None:
    result = h2rpc("call", target, "clitest.Kinds/Echo", "-d", json.dumps(ITEM))
    assert result.returncode == 0, result.stderr
    assert json_lines(result.stdout) == [ITEM]
    assert len(result.stdout.splitlines()) == 1


def test_server_streaming_call_prints_a_line_per_response(target: str) -> None:
    result = h2rpc(
        "call", target, "clitest.Kinds.Repeat", "-d", '{"name": "n", "numbers": [5, 6, 7]}'
    )
    assert result.returncode == 0, result.stderr
    assert json_lines(result.stdout) == [{"name": "n", "bigNumber": str(n)} for n in (5, 6, 7)]


def test_client_streaming_call_reads_json_lines_from_stdin(target: str) -> None:
    lines = "".join(json.dumps({"name": f"item{i}"}) + "\n" for i in range(3))
    result = h2rpc("call", target, "clitest.Kinds/Collect", "-d", "@-", stdin=lines)
    assert result.returncode == 0, result.stderr
    assert json_lines(result.stdout) == [
        {"items": [{"name": f"item{i}"} for i in range(3)], "count": 3}
    ]


def test_bidi_call_from_a_file(target: str, tmp_path: Path) -> None:
    data = tmp_path / "requests.json"
    data.write_text('{"name": "a", "bigNumber": 1}\n{"name": "b", "bigNumber": 2}\n')
    result = h2rpc("call", target, "clitest.Kinds/Chat", "-d", f"@{data}")
    assert result.returncode == 0, result.stderr
    assert json_lines(result.stdout) == [
        {"name": "A", "bigNumber": "2"},
        {"name": "B", "bigNumber": "4"},
    ]


def test_text_format_and_emit_defaults(target: str) -> None:
    text = h2rpc("call", target, "clitest.Kinds/Echo", "-d", '{"name": "x"}', "--format", "text")
    assert text.stdout.strip() == 'name: "x"'
    defaults = h2rpc("call", target, "clitest.Kinds/Echo", "-d", "{}", "--emit-defaults")
    [echoed] = json_lines(defaults.stdout)
    assert echoed["bigNumber"] == "0" and echoed["color"] == "COLOR_UNSPECIFIED"


def test_metadata_timeout_and_compression_flags_are_accepted(target: str) -> None:
    result = h2rpc(
        "call", target, "clitest.Kinds/Echo", "-d", '{"name": "m"}',
        "-H", "x-test: yes", "-H", "x-raw-bin: AAEC", "--timeout", "10", "--compression", "gzip",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert json_lines(result.stdout) == [{"name": "m"}]


def test_a_failed_call_prints_the_status_and_exits_with_its_code(
    server: tuple[str, str],
) -> None:
    which, target = server
    result = h2rpc("call", target, "clitest.Kinds/Fail", "-d", '{"name": "gone"}')
    assert result.returncode == rpc.StatusCode.NOT_FOUND.value
    assert result.stdout == ""
    assert result.stderr.startswith("ERROR:\n  Code: NotFound\n  Message: no item 'gone'\n")
    if which == "h2rpc" and _HAVE_ERROR_DETAILS:  # googleapis-common-protos installed
        assert "  Details:\n  1)\t{\n" in result.stderr
        assert '"@type": "type.googleapis.com/google.rpc.BadRequest"' in result.stderr
        assert '"description": "no such item"' in result.stderr


def test_usage_errors_exit_1(target: str) -> None:
    bad_json = h2rpc("call", target, "clitest.Kinds/Echo", "-d", '{"nope": 1}')
    assert bad_json.returncode == 1
    assert "nope" in bad_json.stderr
    two = h2rpc("call", target, "clitest.Kinds/Echo", "-d", "{} {}")
    assert two.returncode == 1
    assert h2rpc("call").returncode == 1
    assert h2rpc("frobnicate", target).returncode == 1


def test_unknown_method_is_not_found_and_no_server_is_unavailable(target: str) -> None:
    assert h2rpc("call", target, "clitest.Kinds/Nope").returncode == 5
    result = h2rpc("call", "127.0.0.1:1", "clitest.Kinds/Echo", "--timeout", "10")
    assert result.returncode == rpc.StatusCode.UNAVAILABLE.value
    assert "Code: Unavailable" in result.stderr


# ====================================================================== health


def test_health(target: str) -> None:
    overall = h2rpc("health", target)
    assert overall.returncode == 0, overall.stderr
    assert json_lines(overall.stdout) == [{"status": "SERVING"}]
    one = h2rpc("health", target, "clitest.Kinds", "--format", "text")
    assert one.stdout.strip() == "status: SERVING"
    unknown = h2rpc("health", target, "nope")
    assert unknown.returncode == rpc.StatusCode.NOT_FOUND.value
    assert "Code: NotFound" in unknown.stderr


def test_health_watch_prints_the_status_until_the_deadline(target: str) -> None:
    result = h2rpc("health", target, "clitest.Kinds", "--watch", "--timeout", "1")
    assert json_lines(result.stdout) == [{"status": "SERVING"}]
    assert result.returncode == rpc.StatusCode.DEADLINE_EXCEEDED.value


def test_health_of_a_service_not_serving_exits_unavailable() -> None:
    server = rpc.sync.Server(max_workers=4)
    health.enable_health(server).set("down", health.NOT_SERVING)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        result = h2rpc("health", f"127.0.0.1:{port}", "down")
    finally:
        server.stop(None)
    assert json_lines(result.stdout) == [{"status": "NOT_SERVING"}]
    assert result.returncode == rpc.StatusCode.UNAVAILABLE.value


# ====================================================================== schemas, trace, TLS


def test_protoset_offline_and_against_a_server_without_reflection(tmp_path: Path) -> None:
    protoset = tmp_path / "kinds.protoset"
    kinds.write_protoset(str(protoset))
    listed = h2rpc("list", "--protoset", str(protoset))
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.split() == ["clitest.Kinds"]
    described = h2rpc("describe", "--protoset", str(protoset), "clitest.Items")
    assert "repeated .clitest.Item items = 1;" in described.stdout
    server = rpc.sync.Server(max_workers=4)  # no reflection
    server.add_service(kinds.SERVICE, H2rpcKinds())
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        target = f"127.0.0.1:{port}"
        assert h2rpc("list", target).returncode == rpc.StatusCode.UNIMPLEMENTED.value
        result = h2rpc(
            "call", target, "clitest.Kinds/Echo", "--protoset", str(protoset), "-d", '{"ratio": 2}'
        )
    finally:
        server.stop(None)
    assert result.returncode == 0, result.stderr
    assert json_lines(result.stdout) == [{"ratio": 2.0}]


@pytest.mark.skipif(not GRPCIO_AVAILABLE, reason="grpcio-tools: " + GRPCIO_UNAVAILABLE_REASON)
def test_proto_files_are_compiled_at_run_time() -> None:
    result = h2rpc(
        "describe",
        "--proto",
        "route_guide.proto",
        "--import-path",
        str(Path(__file__).resolve().parents[2] / "examples" / "route_guide"),
        "routeguide.Rectangle",
    )
    assert result.returncode == 0, result.stderr
    assert ".routeguide.Point lo = 1;" in result.stdout


def test_trace_prints_the_decoded_call_on_stderr(target: str) -> None:
    result = h2rpc("call", target, "clitest.Kinds/Echo", "-d", '{"name": "traced"}', "--trace")
    assert result.returncode == 0, result.stderr
    assert json_lines(result.stdout) == [{"name": "traced"}]
    assert "request message #1 of /clitest.Kinds/Echo" in result.stderr
    assert 'clitest.Item { name: "traced" }' in result.stderr
    assert "grpc-status: 0" in result.stderr
    assert "ServerReflection" not in result.stderr  # only the call is traced


def test_tls_with_cacert_and_authority(tmp_path: Path) -> None:
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    cert = ca.issue_cert("cli.example")
    chain, key, roots = tmp_path / "chain.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    chain.write_bytes(b"".join(p.bytes() for p in cert.cert_chain_pems))
    cert.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(roots))
    server = rpc.sync.Server(max_workers=4)
    server.add_service(kinds.SERVICE, H2rpcKinds())
    reflection.enable_reflection(server)
    port = server.add_secure_port("127.0.0.1:0", rpc.ssl_server_context(chain, key))
    server.start()
    try:
        target = f"127.0.0.1:{port}"
        ok = h2rpc(
            "call", target, "clitest.Kinds/Echo", "-d", '{"name": "tls"}',
            "--cacert", str(roots), "--authority", "cli.example",
        )  # fmt: skip
        wrong_name = h2rpc("list", target, "--cacert", str(roots), "--timeout", "10")
    finally:
        server.stop(None)
    assert ok.returncode == 0, ok.stderr
    assert json_lines(ok.stdout) == [{"name": "tls"}]
    assert wrong_name.returncode == rpc.StatusCode.UNAVAILABLE.value


def test_tls_flags_insecure_servername_and_mutual_tls(tmp_path: Path) -> None:
    # One server that requires a client certificate (mutual TLS), its own under a name the
    # target does not say: --servername names it, --insecure skips the check of it, --cert and
    # --key present the client's; each missing piece fails the handshake (UNAVAILABLE).
    trustme = pytest.importorskip("trustme")
    ca = trustme.CA()
    server_cert = ca.issue_cert("cli.example")
    client_cert = ca.issue_cert("client.example")
    files = {}
    for name, pem in {
        "chain": b"".join(p.bytes() for p in server_cert.cert_chain_pems),
        "key": server_cert.private_key_pem.bytes(),
        "client_chain": b"".join(p.bytes() for p in client_cert.cert_chain_pems),
        "client_key": client_cert.private_key_pem.bytes(),
        "ca": ca.cert_pem.bytes(),
    }.items():
        files[name] = tmp_path / f"{name}.pem"
        files[name].write_bytes(pem)
    server = rpc.sync.Server(max_workers=4)
    server.add_service(kinds.SERVICE, H2rpcKinds())
    reflection.enable_reflection(server)
    context = rpc.ssl_server_context(
        files["chain"], files["key"], root_certificates=files["ca"], require_client_auth=True
    )
    port = server.add_secure_port("127.0.0.1:0", context)
    server.start()
    target = f"127.0.0.1:{port}"
    call = ("call", target, "clitest.Kinds/Echo", "-d", '{"name": "mtls"}', "--timeout", "10")
    client = ("--cert", str(files["client_chain"]), "--key", str(files["client_key"]))
    try:
        by_name = h2rpc(*call, "--cacert", str(files["ca"]), "--servername", "cli.example", *client)
        insecure = h2rpc(*call, "--insecure", *client)
        no_client_cert = h2rpc(*call, "--cacert", str(files["ca"]), "--servername", "cli.example")
        wrong_name = h2rpc(*call, "--cacert", str(files["ca"]), "--servername", "other", *client)
        half_a_pair = h2rpc(*call, "--insecure", "--cert", str(files["client_chain"]))
    finally:
        server.stop(None)
    for ok in (by_name, insecure):
        assert ok.returncode == 0, ok.stderr
        assert json_lines(ok.stdout) == [{"name": "mtls"}]
    for refused in (no_client_cert, wrong_name):
        assert refused.returncode == rpc.StatusCode.UNAVAILABLE.value, refused.stderr
    assert half_a_pair.returncode == 1  # a usage error, said before any connection
    assert "TLS" in half_a_pair.stderr and "private_key" in half_a_pair.stderr


# ====================================================================== beside grpcurl


def grpcurl_json(*args: str) -> list[Any]:
    assert GRPCURL is not None
    result = subprocess.run(
        [GRPCURL, "-plaintext", "-max-time", "20", *args],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return list(json_objects([result.stdout]))


@pytest.mark.skipif(GRPCURL is None, reason="grpcurl is not installed")
@pytest.mark.parametrize(
    ("method", "data"),
    [
        ("clitest.Kinds/Echo", [ITEM]),
        ("clitest.Kinds/Echo", [{}]),
        ("clitest.Kinds/Repeat", [{"name": "r", "numbers": [1, -2, 3]}]),
        ("clitest.Kinds/Collect", [ITEM, {"name": "second", "color": "RED"}]),
        ("clitest.Kinds/Chat", [{"name": "a", "bigNumber": "-5"}, {"name": "b"}]),
    ],
)
def test_json_output_is_grpcurls(target: str, method: str, data: list[Any]) -> None:
    text = "\n".join(json.dumps(value) for value in data)
    ours = h2rpc("call", target, method, "-d", text)
    assert ours.returncode == 0, ours.stderr
    assert json_lines(ours.stdout) == grpcurl_json("-d", text, target, method)


@pytest.mark.skipif(GRPCURL is None, reason="grpcurl is not installed")
def test_list_and_describe_are_grpcurls(target: str) -> None:
    assert GRPCURL is not None
    for args in (["list"], ["list", "clitest.Kinds"], ["describe", "clitest.Kinds"],
                 ["describe", "clitest.Item"], ["describe", "clitest.Kinds.Chat"]):  # fmt: skip
        theirs = subprocess.run(
            [GRPCURL, "-plaintext", "-max-time", "20", target, *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        ours = h2rpc(args[0], target, *args[1:])
        assert ours.returncode == 0, ours.stderr
        if theirs.returncode == 0:  # (grpcurl cannot describe methods on grpcio: h2rpc can)
            assert ours.stdout == theirs.stdout, args
