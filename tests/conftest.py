"""Session-wide test infrastructure shared by all test folders.

* Compiles tests/protos once per session; tests can import ``h2rpc_test_pb2``
  and ``h2rpc_test_pb2_grpc`` at module level, and subprocess peers find the
  generated code through ``$H2RPC_TEST_PROTO_DIR``. If that variable is already
  set, its directory is used as it is and nothing is compiled (PyPy has no
  grpcio-tools; see tests/protos/compile.py). It may then hold only the
  ``_pb2`` modules: ``_pb2_grpc`` is needed only by tests that use grpcio.
* Tests that need grpcio are skipped on PyPy, where it is not available, and
  only there (peers.GRPCIO_AVAILABLE).
* Per-test time limit without plugins (SIGALRM): 60 s by default, override with
  ``@pytest.mark.time_limit(seconds)`` (0 disables it).
* Interop peer fixtures: ``grpcio_server_target`` and ``h2rpc_server_target``
  yield ``"127.0.0.1:<port>"`` of a peer server running as a subprocess.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

TESTS_DIR = Path(__file__).resolve().parent
sys.path[:0] = [str(TESTS_DIR / "interop"), str(TESTS_DIR / "protos")]
pytest.register_assert_rewrite("grpcio_client_cases")

from compile import PROTO_DIR_ENV, PROTO_FILES, compile_protos  # noqa: E402
from peers import (  # noqa: E402
    GRPCIO_AVAILABLE,
    GRPCIO_UNAVAILABLE_REASON,
    INTEROP_DIR,
    PeerProcess,
    python_peer_argv,
    start_peer,
)

from tests.debian_tools import MISSING_TOOL, REQUIRE_TOOLS_ENV, tools_required  # noqa: E402

DEFAULT_TIME_LIMIT_SECONDS = 60.0

_proto_dir: Path | None = None
_proto_dir_is_ours = False  # compiled by us into a temporary directory (removed at the end)
_previous_proto_dir_env: str | None = None


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "time_limit(seconds): fail the test if its setup, call and teardown take longer "
        f"than this many seconds (default {DEFAULT_TIME_LIMIT_SECONDS:g}; 0 disables it)",
    )
    _compile_test_protos()


def pytest_unconfigure(config: pytest.Config) -> None:
    global _proto_dir, _proto_dir_is_ours
    if _proto_dir is None:
        return
    if sys.path and sys.path[0] == str(_proto_dir):
        del sys.path[0]
    if _previous_proto_dir_env is None:
        os.environ.pop(PROTO_DIR_ENV, None)
    else:
        os.environ[PROTO_DIR_ENV] = _previous_proto_dir_env
    if _proto_dir_is_ours:
        shutil.rmtree(_proto_dir, ignore_errors=True)
    _proto_dir = None
    _proto_dir_is_ours = False


def _compile_test_protos() -> None:
    """Compile the protos into a temporary directory, or use ``$H2RPC_TEST_PROTO_DIR`` if set."""
    global _proto_dir, _proto_dir_is_ours, _previous_proto_dir_env
    if _proto_dir is not None:
        return
    given = _previous_proto_dir_env = os.environ.get(PROTO_DIR_ENV)
    if given:
        given_dir = Path(given).resolve()
        missing = [
            name
            for name in (Path(proto).stem + "_pb2.py" for proto in PROTO_FILES)
            if not (given_dir / name).is_file()
        ]
        if missing:
            raise pytest.UsageError(
                f"${PROTO_DIR_ENV}={given}: no {', '.join(missing)} there; prepare it with "
                f"'python tests/protos/compile.py --no-grpc {given}' or unset it"
            )
        _proto_dir, _proto_dir_is_ours = given_dir, False
        os.environ[PROTO_DIR_ENV] = str(given_dir)  # absolute, for peers started elsewhere
    else:
        out_dir = tempfile.mkdtemp(prefix="h2rpc-test-protos-")
        try:
            _proto_dir = compile_protos(out_dir)
        except RuntimeError as exc:  # e.g. no grpcio-tools: say how to run without it
            shutil.rmtree(out_dir, ignore_errors=True)
            raise pytest.UsageError(str(exc)) from exc
        _proto_dir_is_ours = True
        os.environ[PROTO_DIR_ENV] = str(_proto_dir)
    sys.path.insert(0, str(_proto_dir))


# --- per-test time limit ---------------------------------------------------------------


def _time_limit_seconds(item: pytest.Item) -> float:
    marker = item.get_closest_marker("time_limit")
    if marker is None:
        return DEFAULT_TIME_LIMIT_SECONDS
    if len(marker.args) != 1 or marker.kwargs:
        raise pytest.UsageError(f"{item.nodeid}: use @pytest.mark.time_limit(seconds)")
    return float(marker.args[0])


def _pytest_timeout_in_charge(item: pytest.Item) -> bool:
    """True if the pytest-timeout plugin sets a timeout for this item (then we step aside).

    Both would use SIGALRM, and only one alarm can be pending at a time.
    """
    config = item.config
    if not config.pluginmanager.hasplugin("timeout"):
        return False
    return bool(
        item.get_closest_marker("timeout")
        or config.getoption("timeout", None)
        or os.environ.get("PYTEST_TIMEOUT")
        or config.getini("timeout")
    )


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Iterator[None]:
    """Where the Debian tools are required (CI sets H2RPC_REQUIRE_TOOLS), a test skipped for a
    missing one fails instead: see tests/debian_tools.py."""
    outcome = yield
    report = outcome.get_result()  # type: ignore[attr-defined]
    if not report.skipped or not tools_required():
        return
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    if MISSING_TOOL in reason:
        report.outcome = "failed"
        report.longrepr = f"{reason} (required: {REQUIRE_TOOLS_ENV} is set)"


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_protocol(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    limit = _time_limit_seconds(item)
    if (
        limit <= 0
        or not hasattr(signal, "setitimer")
        or threading.current_thread() is not threading.main_thread()
        or _pytest_timeout_in_charge(item)
    ):
        yield
        return

    def on_alarm(signum: int, frame: object) -> None:
        pytest.fail(
            f"test exceeded its time limit of {limit:g} s "
            "(raise it with @pytest.mark.time_limit(seconds))"
        )

    previous_handler = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, limit)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous_handler)


# --- interop peers --------------------------------------------------------------------


def _run_peer(script: Path, *flags: str) -> Iterator[tuple[PeerProcess, int]]:
    proc, port = start_peer([*python_peer_argv(script), *flags])
    try:
        yield proc, port
    finally:
        died_early = proc.poll() is not None
        stopped_cleanly = proc.stop()
        stderr = proc.stderr_text()
        proc.remove_logs()
    if died_early:
        raise RuntimeError(
            f"peer died before the end of the session (status {proc.returncode}): "
            f"{proc.command}\n{stderr}"
        )
    if not stopped_cleanly:
        print(f"peer had to be killed at teardown: {proc.command}\n{stderr}", file=sys.stderr)


def _peer_target(proc: PeerProcess, port: int) -> Iterator[str]:
    """Yield the target for one test; print the peer's stderr of that test on teardown."""
    proc.new_stderr()  # skip output that belongs to earlier tests
    proc.check_alive()
    try:
        yield f"127.0.0.1:{port}"
    finally:
        output = proc.new_stderr()
        if output:  # shown by pytest only if the test fails
            print(f"--- peer stderr during this test ---\n{output}", file=sys.stderr)
        proc.check_alive()


@pytest.fixture(scope="session")
def grpcio_peer() -> Iterator[tuple[PeerProcess, int]]:
    """The grpcio reference server (tests/interop/grpcio_peer.py): (process, port).

    Skips the test on PyPy (no grpcio there); on CPython a missing grpcio fails it.
    """
    if not GRPCIO_AVAILABLE:
        pytest.skip(GRPCIO_UNAVAILABLE_REASON)
    yield from _run_peer(INTEROP_DIR / "grpcio_peer.py")


@pytest.fixture(scope="session")
def h2rpc_peer() -> Iterator[tuple[PeerProcess, int]]:
    """The h2rpc server under test (tests/interop/h2rpc_peer.py): (process, port)."""
    yield from _run_peer(INTEROP_DIR / "h2rpc_peer.py")


@pytest.fixture(scope="session")
def h2rpc_sync_peer() -> Iterator[tuple[PeerProcess, int]]:
    """The same h2rpc peer serving with the blocking ``rpc.sync.Server``: (process, port)."""
    yield from _run_peer(INTEROP_DIR / "h2rpc_peer.py", "--sync")


@pytest.fixture
def h2rpc_sync_server_target(h2rpc_sync_peer: tuple[PeerProcess, int]) -> Iterator[str]:
    """``"127.0.0.1:<port>"`` of the session's blocking h2rpc server."""
    yield from _peer_target(*h2rpc_sync_peer)


@pytest.fixture
def grpcio_server_target(grpcio_peer: tuple[PeerProcess, int]) -> Iterator[str]:
    """``"127.0.0.1:<port>"`` of the session's grpcio reference server."""
    yield from _peer_target(*grpcio_peer)


@pytest.fixture
def h2rpc_server_target(h2rpc_peer: tuple[PeerProcess, int]) -> Iterator[str]:
    """``"127.0.0.1:<port>"`` of the session's h2rpc server."""
    yield from _peer_target(*h2rpc_peer)
