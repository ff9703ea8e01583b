"""The code protoc-gen-h2rpc writes for tests/codegen/protos, generated through protoc (see
conftest.py): what it imports, ruff and mypy --strict on it and on typed programs using it, and
the generated stubs and servicer bases at work, h2rpc against h2rpc (grpcio peers:
test_grpcio_interop.py).
"""

from __future__ import annotations

import ast
import contextlib
import re
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

import rpc
from tests.codegen.conftest import Generated
from tests.codegen.generate import EDITIONS_PROTO, grpc_tools_protoc, run_protoc
from tests.interop.peers import REPO_ROOT, peer_environment
from tests.rpc.helpers import run
from tests.rpc.server_thread import ServerThread

CODEGEN_DIR = Path(__file__).resolve().parent
ON_PYPY = sys.implementation.name == "pypy"
#: ruff and mypy check the generated text, the same on every interpreter: once, on CPython.
checkers_on_cpython = pytest.mark.skipif(
    ON_PYPY, reason="ruff and mypy check the generated text once, on CPython"
)
GENERATED = (
    "h2rpc_codegen/common_h2rpc.py",
    "h2rpc_codegen/keywords_h2rpc.py",
    "h2rpc_codegen/services_h2rpc.py",
    "keyword_message_h2rpc.py",
)


def generated_paths(generated: Generated) -> list[str]:
    return [str(generated.out_dir / name) for name in GENERATED]


def test_one_module_per_proto_file(generated: Generated) -> None:
    found = sorted(
        str(path.relative_to(generated.out_dir)) for path in generated.out_dir.rglob("*_h2rpc.py")
    )
    assert found == sorted(GENERATED)


def test_generated_modules_import_only_rpc_the_standard_library_and_pb2(
    generated: Generated,
) -> None:
    allowed = {"__future__", "typing", "collections.abc", "rpc"}
    for path in generated_paths(generated):
        tree = ast.parse(Path(path).read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [
                    f"{node.module}.{alias.name}" if node.module else alias.name
                    for alias in node.names
                ]
                if node.module in allowed:
                    continue
            else:
                continue
            for module in modules:
                assert module in allowed or module.endswith("_pb2"), (path, module)


def test_docstrings_carry_the_protos_comments(generated: Generated) -> None:
    services = generated.servicers.services_h2rpc
    assert services.EchoStub.__doc__ == (
        "The async client of ``h2rpc.codegen.v1.Echo``, on an ``rpc.Channel``.\n\n"
        "    Echoes, in the four call kinds.\n\n"
        "    Comments become docstrings;\n"
        "        an indented line stays indented.\n    "
    )
    keywords = generated.servicers.keywords_h2rpc.KeywordsServicer.__doc__
    assert 'Docstrings keep "quotes", \\backslashes\\ and """triple quotes"""' in keywords
    assert services.EchoServicer.Unary.__doc__ == "One request, one reply."
    assert services.EchoBlockingServicer.Bidi.__doc__ == "One reply per request, at once."
    assert "Messages of other files: nested, imported, well-known." in (
        services.ShapesBlockingStub.__doc__
    )
    source = (generated.out_dir / "h2rpc_codegen/services_h2rpc.py").read_text(encoding="utf-8")
    assert '    ]\n    """One request, `count` replies."""\n' in source  # attribute docstrings


# ---------------------------------------------------------------------- ruff and mypy


def _run_tool(argv: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *argv],
        cwd=cwd,
        env={**peer_environment(), **env},
        capture_output=True,
        text=True,
        timeout=240,
        stdin=subprocess.DEVNULL,
        check=False,
    )


@checkers_on_cpython
@pytest.mark.parametrize(
    "rules",
    [
        [],  # ruff's defaults
        ["--select", "E,F,W,I,B,UP,SIM,RUF"],  # this project's rules
    ],
    ids=["defaults", "project-rules"],
)
@pytest.mark.parametrize("line_length", [88, 100])
def test_ruff_finds_nothing_and_the_formatter_changes_nothing(
    generated: Generated, rules: list[str], line_length: int
) -> None:
    paths = generated_paths(generated)
    length = ["--line-length", str(line_length)]
    check = _run_tool(["ruff", "check", "--isolated", *length, *rules, *paths], generated.out_dir)
    assert check.returncode == 0, check.stdout + check.stderr
    formatted = _run_tool(
        ["ruff", "format", "--isolated", "--check", "--diff", *length, *paths], generated.out_dir
    )
    assert formatted.returncode == 0, formatted.stdout + formatted.stderr


MYPY_CONFIG = """\
[mypy]
strict = True
cache_dir = {cache}
# protoc's own output (_pb2 modules and their .pyi): not written for --strict.
[mypy-h2rpc_codegen.common_pb2,h2rpc_codegen.services_pb2]
ignore_errors = True
# protoc's .pyi for this file is not Python ("class class(...)", removed by conftest.py): the
# module stays untyped.
[mypy-keyword_message_pb2]
follow_imports = skip
"""


def _mypy(generated: Generated, *targets: str) -> subprocess.CompletedProcess[str]:
    config = generated.out_dir.parent / "mypy.ini"
    if not config.exists():
        cache = generated.out_dir.parent / "mypy-cache"
        config.write_text(MYPY_CONFIG.format(cache=cache), encoding="utf-8")
    return _run_tool(
        ["mypy", "--config-file", str(config), "--no-color-output", *targets],
        REPO_ROOT,
        MYPYPATH=str(generated.out_dir),
    )


@checkers_on_cpython
@pytest.mark.time_limit(300)
def test_mypy_strict_accepts_the_generated_code_and_a_typed_program_using_it(
    generated: Generated,
) -> None:
    """tests/codegen/servicers.py: servicers on the generated bases, calls through the
    generated stubs, with ``assert_type`` on what the calls return."""
    result = _mypy(generated, *generated_paths(generated), str(CODEGEN_DIR / "servicers.py"))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Success: no issues found in 5 source files" in result.stdout


@checkers_on_cpython
@pytest.mark.time_limit(300)
def test_mypy_strict_rejects_wrong_message_types_naming_them(generated: Generated) -> None:
    """tests/codegen/wrong_types.py: each line after an ``# error: ...`` comment must get an
    error with that text, and no other line any."""
    program = CODEGEN_DIR / "wrong_types.py"
    expected: dict[int, list[str]] = {}
    pending: list[str] = []
    for number, line in enumerate(program.read_text(encoding="utf-8").splitlines(), 1):
        marker = re.match(r"\s*# error: (.*)", line)
        if marker:
            pending.append(marker.group(1))
        elif pending:
            expected[number], pending = pending, []
    result = _mypy(generated, str(program))
    assert result.returncode == 1, result.stdout + result.stderr
    errors: dict[int, list[str]] = {}
    for match in re.finditer(r"wrong_types\.py:(\d+): error: (.*)", result.stdout):
        errors.setdefault(int(match.group(1)), []).append(match.group(2))
    assert sorted(errors) == sorted(expected), result.stdout
    for number, fragments in expected.items():
        for fragment in fragments:
            assert any(fragment in error for error in errors[number]), (fragment, errors[number])


# ---------------------------------------------------------------------- at work, h2rpc to h2rpc


@contextlib.contextmanager
def async_server(add: Callable[[rpc.Server], None]) -> Iterator[str]:
    def make() -> rpc.Server:
        server = rpc.Server()
        add(server)
        return server

    with ServerThread(make) as target:
        yield target


@contextlib.contextmanager
def blocking_server(add: Callable[[rpc.sync.Server], None]) -> Iterator[str]:
    server = rpc.sync.Server(max_workers=16)
    add(server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        server.stop(0.5).wait(5)


#: server kind -> (how to run it, add every test servicer, add the bare Echo bases)
SERVERS: dict[str, tuple[Any, str, bool]] = {
    "async-servicers-on-rpc.Server": (async_server, "add_async_servicers", False),
    "blocking-servicers-on-rpc.Server": (async_server, "add_blocking_servicers", True),
    "blocking-servicers-on-rpc.sync.Server": (blocking_server, "add_blocking_servicers", True),
}


@pytest.fixture(scope="module", params=list(SERVERS))
def server_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def served(generated: Generated, server_kind: str) -> Iterator[str]:
    run_server, add, _ = SERVERS[server_kind]
    with run_server(getattr(generated.servicers, add)) as target:
        yield target


@pytest.fixture(scope="module")
def bare(generated: Generated, server_kind: str) -> Iterator[str]:
    run_server, _, blocking = SERVERS[server_kind]

    def add(server: Any) -> None:
        generated.servicers.add_unimplemented_servicers(server, blocking)

    with run_server(add) as target:
        yield target


def test_async_stubs_call_servicers_built_on_the_generated_bases(
    generated: Generated, served: str, server_kind: str
) -> None:
    servicers = generated.servicers

    async def main() -> None:
        async with rpc.Channel(served) as channel:
            await servicers.echo_async(channel)
            await servicers.shapes_async(channel)
            if server_kind == "async-servicers-on-rpc.Server":
                await servicers.keywords_async(channel)  # the blocking ones: import_ only

    run(main())


def test_blocking_stubs_call_servicers_built_on_the_generated_bases(
    generated: Generated, served: str
) -> None:
    servicers = generated.servicers
    with rpc.sync.Channel(served) as channel:
        servicers.echo_blocking(channel)
        servicers.shapes_blocking(channel)
        servicers.keywords_blocking(channel)


def test_methods_left_to_the_generated_bases_answer_unimplemented(
    generated: Generated, bare: str
) -> None:
    async def main() -> Any:
        async with rpc.Channel(bare) as channel:
            return await generated.servicers.echo_unimplemented_async(channel)

    unimplemented = (rpc.StatusCode.UNIMPLEMENTED, "Method not implemented!")
    assert run(main()) == [unimplemented] * 4


def test_keyword_methods_use_the_proto_names_on_the_wire(generated: Generated) -> None:
    """``stub.import_`` calls ``/h2rpc.codegen.v1.Keywords/import``, as any gRPC peer names it."""
    calls = []

    def add(server: rpc.Server) -> None:
        async def handler(request: Any, context: Any) -> Any:
            calls.append(context.method())
            return generated.servicers.Reply(message="raw")

        server.add_method(
            "/h2rpc.codegen.v1.Keywords/import",
            rpc.unary_unary_rpc_method_handler(
                handler,
                generated.servicers.Request.FromString,
                generated.servicers.Reply.SerializeToString,
            ),
        )

    async def main() -> None:
        with async_server(add) as target:
            async with rpc.Channel(target) as channel:
                stub = generated.servicers.keywords_h2rpc.KeywordsStub(channel)
                reply = await stub.import_(generated.servicers.Request(), timeout=10)
                assert reply.message == "raw"

    run(main())
    assert calls == ["/h2rpc.codegen.v1.Keywords/import"]


def test_a_file_in_edition_2023_is_accepted(generated: Generated, tmp_path: Path) -> None:
    """The plugin declares FEATURE_SUPPORTS_EDITIONS (grpcio-tools' protoc knows edition 2023;
    Debian's 3.21 does not)."""
    if generated.protoc != "grpcio-tools":
        pytest.skip("Debian's protoc (3.21) reads no editions")
    run_protoc(grpc_tools_protoc(), tmp_path, [EDITIONS_PROTO], plugin=generated.plugin)
    content = (tmp_path / "editions_h2rpc.py").read_text(encoding="utf-8")
    assert "Ping: rpc.UnaryUnaryMultiCallable[editions_pb2.Beat, editions_pb2.Beat]" in content
