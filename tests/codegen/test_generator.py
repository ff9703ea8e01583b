"""protoc-gen-h2rpc without protoc: requests built by hand, the response and its files checked.

These run everywhere (PyPy too); tests that run the plugin through a real protoc are in
test_generated_code.py, test_grpcio_interop.py and test_debian_protoc.py.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Sequence

from google.protobuf import descriptor_pb2
from google.protobuf.compiler import plugin_pb2

from rpc.protoc_gen import generate
from rpc.protoc_gen.generator import _comment_lines, _docstring
from rpc.protoc_gen.names import (
    module_alias,
    module_path,
    output_file,
    python_name,
    sorted_for_all,
)
from tests.interop.peers import REPO_ROOT, peer_environment

Method = tuple[str, str, str, bool, bool]  # name, input type, output type, streaming in, out


def proto_file(
    name: str,
    package: str,
    messages: Sequence[str] = (),
    services: Sequence[tuple[str, Sequence[Method]]] = (),
    dependencies: Sequence[str] = (),
) -> descriptor_pb2.FileDescriptorProto:
    proto = descriptor_pb2.FileDescriptorProto(
        name=name, package=package, dependency=list(dependencies), syntax="proto3"
    )
    for message in messages:
        proto.message_type.add(name=message)
    for service_name, methods in services:
        service = proto.service.add(name=service_name)
        for method, input_type, output_type, client_streaming, server_streaming in methods:
            service.method.add(
                name=method,
                input_type=input_type,
                output_type=output_type,
                client_streaming=client_streaming,
                server_streaming=server_streaming,
            )
    return proto


def request(
    files: Sequence[descriptor_pb2.FileDescriptorProto],
    to_generate: Sequence[str],
    parameter: str = "",
) -> plugin_pb2.CodeGeneratorRequest:
    return plugin_pb2.CodeGeneratorRequest(
        file_to_generate=list(to_generate), parameter=parameter, proto_file=list(files)
    )


def import_lines(content: str) -> list[str]:
    return [line for line in content.splitlines() if line.startswith(("import ", "from "))]


EMPTY = proto_file("google/protobuf/empty.proto", "google.protobuf", ["Empty"])


def test_names_follow_protocs_python_generator_and_grpcios_aliases() -> None:
    assert module_path("a/b-c.proto") == "a.b_c"
    assert output_file("a/b-c.proto") == "a/b_c_h2rpc.py"
    assert output_file("helloworld.proto") == "helloworld_h2rpc.py"
    assert module_alias("google.protobuf.empty_pb2") == "google_dot_protobuf_dot_empty__pb2"
    assert python_name("import") == "import_"
    assert python_name("None") == "None_"
    assert python_name("SayHello") == "SayHello"
    assert python_name("match") == "match"  # a soft keyword is a valid name


def test_all_is_sorted_as_ruff_wants_it() -> None:
    names = ["add_BServicer_to_server", "B2Stub", "B10Stub", "AStub", "add_AServicer_to_server"]
    assert sorted_for_all(names) == [
        "AStub",
        "B2Stub",
        "B10Stub",
        "add_AServicer_to_server",
        "add_BServicer_to_server",
    ]


def test_response_declares_proto3_optional_and_editions() -> None:
    response = generate(request([EMPTY], ["google/protobuf/empty.proto"]))
    assert not response.error
    features = plugin_pb2.CodeGeneratorResponse
    assert response.supported_features == (
        features.FEATURE_PROTO3_OPTIONAL | features.FEATURE_SUPPORTS_EDITIONS
    )
    assert response.minimum_edition == descriptor_pb2.EDITION_PROTO2
    assert response.maximum_edition == descriptor_pb2.EDITION_2023
    [file] = response.file
    assert file.name == "google/protobuf/empty_h2rpc.py"
    assert "defines no services" in file.content
    assert "__all__: list[str] = []" in file.content


def test_unknown_option_is_an_error_protoc_reports() -> None:
    response = generate(request([EMPTY], ["google/protobuf/empty.proto"], "no_such_option"))
    assert "unknown option 'no_such_option'" in response.error
    assert not response.file


def test_services_whose_generated_names_collide_are_an_error() -> None:
    unary: Method = ("M", ".p.Msg", ".p.Msg", False, False)
    proto = proto_file("x.proto", "p", ["Msg"], [("Foo", [unary]), ("FooBlocking", [unary])])
    response = generate(request([proto], ["x.proto"]))
    assert "p.Foo and p.FooBlocking would both generate FooBlockingStub" in response.error


def _three_files(parameter: str) -> dict[str, str]:
    """a/b/x.proto uses messages of a/c/y.proto, a/b/z.proto, a/x2/m.proto, b/m.proto and
    google/protobuf/empty.proto; all but the last two are generated in the same run."""
    y = proto_file("a/c/y.proto", "q", ["Y"])
    z = proto_file("a/b/z.proto", "p", ["Z"])
    m1 = proto_file("a/x2/m.proto", "m1", ["M"])
    m2 = proto_file("b/m.proto", "m2", ["M"])
    x = proto_file(
        "a/b/x.proto",
        "p",
        services=[
            (
                "S",
                [
                    ("One", ".q.Y", ".p.Z", False, False),
                    ("Two", ".google.protobuf.Empty", ".m1.M", False, True),
                    ("Three", ".m2.M", ".q.Y", True, False),
                ],
            )
        ],
        dependencies=["a/c/y.proto", "a/b/z.proto", "a/x2/m.proto", "b/m.proto"],
    )
    files = [EMPTY, y, z, m1, m2, x]
    response = generate(
        request(files, ["a/c/y.proto", "a/b/z.proto", "a/x2/m.proto", "a/b/x.proto"], parameter)
    )
    assert not response.error
    return {file.name: file.content for file in response.file}


def test_pb2_modules_are_imported_by_their_names_and_grpcio_aliases_where_two_share_one() -> None:
    content = _three_files("")["a/b/x_h2rpc.py"]
    assert import_lines(content) == [
        "from __future__ import annotations",
        "import typing",
        "from collections.abc import AsyncIterator, Iterable, Iterator",
        "import rpc",
        "from google.protobuf import empty_pb2",
        "from a.b import z_pb2",
        "from a.c import y_pb2",
        "from a.x2 import m_pb2 as a_dot_x2_dot_m__pb2",
        "from b import m_pb2 as b_dot_m__pb2",
    ]
    assert "One: rpc.UnaryUnaryMultiCallable[y_pb2.Y, z_pb2.Z]" in content
    assert "request_iterator: Iterator[b_dot_m__pb2.M]" in content


def test_relative_imports_reach_the_files_of_the_same_run() -> None:
    content = _three_files("relative_imports")["a/b/x_h2rpc.py"]
    assert import_lines(content)[4:] == [
        "from google.protobuf import empty_pb2",  # not generated in this run: absolute
        "from b import m_pb2 as b_dot_m__pb2",  # neither
        "from ..c import y_pb2",
        "from ..x2 import m_pb2 as a_dot_x2_dot_m__pb2",
        "from . import z_pb2",
    ]


def test_names_that_are_python_keywords() -> None:
    proto = proto_file(
        "k.proto",
        "",
        ["class", "Plain"],
        [("import", [("None", ".class", ".Plain", False, False)])],
    )
    content = generate(request([proto], ["k.proto"])).file[0].content
    assert '_class = getattr(k_pb2, "class")' in content
    assert "None_: rpc.UnaryUnaryMultiCallable[typing.Any, k_pb2.Plain]" in content
    assert 'self.None_ = channel.unary_unary(\n            "/import/None",' in content
    assert "async def None_(" in content
    assert '"None": rpc.unary_unary_rpc_method_handler(\n                servicer.None_,' in content
    assert "class importStub:" in content


def test_comments_are_trimmed_as_docstrings_are() -> None:
    comment = " First line.  \n\n\n   indented\n more\t\n\n"
    assert _comment_lines(comment) == ["First line.", "", "  indented", "more"]
    assert _docstring("    ", "", ['a "quote"']) == ['    """a "quote" """']
    assert _docstring("", "", ['"leading', "back\\slash", '"""triple"""']) == [
        '"""\\"leading',
        "back\\\\slash",
        '\\"\\"\\"triple\\"\\"\\" ',
        '"""',
    ]


def test_python_m_rpc_protoc_gen_is_a_protoc_plugin() -> None:
    proto = proto_file(
        "h.proto", "h", ["Q", "A"], [("Svc", [("Ask", ".h.Q", ".h.A", False, False)])]
    )
    result = subprocess.run(
        [sys.executable, "-m", "rpc.protoc_gen"],
        input=request([proto], ["h.proto"]).SerializeToString(),
        capture_output=True,
        cwd=REPO_ROOT,
        env=peer_environment(),
        timeout=60,
        check=True,
    )
    response = plugin_pb2.CodeGeneratorResponse.FromString(result.stdout)
    assert [file.name for file in response.file] == ["h_h2rpc.py"]
    assert "class SvcStub:" in response.file[0].content

    usage = subprocess.run(
        [sys.executable, "-m", "rpc.protoc_gen", "--help"],
        capture_output=True,
        text=True,
        cwd=REPO_ROOT,
        env=peer_environment(),
        timeout=60,
        check=True,
    )
    assert "--h2rpc_out" in usage.stderr
