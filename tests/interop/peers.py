"""Start and stop interop peer servers running as subprocesses.

Peer protocol: a peer is started with ``--port 0`` (and optionally
``--host H``), binds an ephemeral port, prints one line ``PORT <n>`` on stdout
once it accepts connections, and serves until SIGTERM or EOF on its stdin.
Its stdin is a pipe owned by the test process, so a peer also goes away when
the test process dies without cleaning up.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import queue
import re
import subprocess
import sys
import tempfile
import threading
import weakref
from collections.abc import Mapping, Sequence
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
INTEROP_DIR = Path(__file__).resolve().parent
DEFAULT_START_TIMEOUT = 20.0
DEFAULT_STOP_TIMEOUT = 5.0

#: grpcio and grpcio-tools do not build on PyPy: there (and only there) tests that need them skip.
GRPCIO_AVAILABLE = sys.implementation.name != "pypy"
GRPCIO_UNAVAILABLE_REASON = "grpcio is not available on PyPy"

_PORT_LINE = re.compile(r"PORT (\d+)")
_STDERR_TAIL_CHARS = 20_000
_live_peers: weakref.WeakSet[PeerProcess] = weakref.WeakSet()


class PeerError(RuntimeError):
    """A peer failed to start or died while it was in use."""


class PeerProcess(subprocess.Popen):
    """A peer subprocess whose stderr goes to a log file and whose stdout is drained."""

    def __init__(self, argv: Sequence[str], *, env: Mapping[str, str] | None, cwd: Path) -> None:
        fd, stderr_path = tempfile.mkstemp(prefix="h2rpc-peer-", suffix=".stderr")
        self.stderr_path = Path(stderr_path)
        self.stdout_lines: list[str] = []
        self._stderr_read_offset = 0
        self._port_lines: queue.Queue[str | None] = queue.Queue()
        try:
            super().__init__(
                list(argv),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=fd,
                cwd=cwd,
                env=None if env is None else dict(env),
                text=True,
                encoding="utf-8",
                errors="replace",
            )
        except BaseException:
            self.stderr_path.unlink(missing_ok=True)
            raise
        finally:
            os.close(fd)
        _live_peers.add(self)
        drain = threading.Thread(
            target=self._drain_stdout, name=f"peer-{self.pid}-stdout", daemon=True
        )
        drain.start()

    @property
    def command(self) -> str:
        return subprocess.list2cmdline(self.args)

    def _drain_stdout(self) -> None:
        # Reads for the whole life of the peer so it can never block on a full pipe.
        assert self.stdout is not None
        for line in self.stdout:
            self.stdout_lines.append(line)
            if _PORT_LINE.fullmatch(line.strip()):
                self._port_lines.put(line.strip())
        self._port_lines.put(None)  # EOF: the peer closed stdout or exited.

    def wait_for_port(self, timeout: float) -> int:
        try:
            line = self._port_lines.get(timeout=timeout)
        except queue.Empty:
            raise PeerError(
                f"peer did not print PORT within {timeout:g} s: {self.command}\n"
                f"{self.stderr_text()}"
            ) from None
        if line is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.wait(DEFAULT_STOP_TIMEOUT)
            raise PeerError(
                f"peer exited (status {self.returncode}) before printing PORT: {self.command}\n"
                f"{self.stderr_text()}"
            )
        match = _PORT_LINE.fullmatch(line)
        assert match is not None
        return int(match.group(1))

    def stderr_text(self) -> str:
        """The peer's whole stderr so far (its tail if very long)."""
        text = self.stderr_path.read_text(encoding="utf-8", errors="replace")
        if len(text) > _STDERR_TAIL_CHARS:
            text = "[...]\n" + text[-_STDERR_TAIL_CHARS:]
        return f"--- peer stderr ---\n{text}--- end of peer stderr ---"

    def new_stderr(self) -> str:
        """Stderr written since the previous call (used to attribute output to one test)."""
        with self.stderr_path.open("rb") as log:
            log.seek(self._stderr_read_offset)
            data = log.read()
        self._stderr_read_offset += len(data)
        return data.decode("utf-8", errors="replace")

    def check_alive(self) -> None:
        if self.poll() is not None:
            raise PeerError(
                f"peer died unexpectedly (status {self.returncode}): {self.command}\n"
                f"{self.stderr_text()}"
            )

    def stop(self, timeout: float = DEFAULT_STOP_TIMEOUT) -> bool:
        """Stop the peer: close its stdin, SIGTERM, SIGKILL after ``timeout``.

        Returns True if it stopped on its own within ``timeout``, False if it
        had to be killed. Safe to call more than once.
        """
        stopped_cleanly = True
        try:
            if self.poll() is None:
                try:
                    if self.stdin is not None:
                        self.stdin.close()
                except OSError:
                    pass
                self.terminate()
                try:
                    self.wait(timeout)
                except subprocess.TimeoutExpired:
                    stopped_cleanly = False
        finally:
            if self.poll() is None:
                self.kill()
                self.wait()
            _live_peers.discard(self)
        return stopped_cleanly

    def remove_logs(self) -> None:
        self.stderr_path.unlink(missing_ok=True)


def peer_environment() -> dict[str, str]:
    """Environment for Python peers: ours, unbuffered, with the repo root importable."""
    env = dict(os.environ)
    env["PYTHONUNBUFFERED"] = "1"
    python_path = [str(REPO_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
    env["PYTHONPATH"] = os.pathsep.join(python_path)
    return env


def python_peer_argv(script: str | Path, host: str = "127.0.0.1") -> list[str]:
    """Command line of a Python peer script that binds an ephemeral port on ``host``."""
    return [sys.executable, str(script), "--port", "0", "--host", host]


def start_peer(
    argv: list[str],
    timeout: float = DEFAULT_START_TIMEOUT,
    *,
    env: Mapping[str, str] | None = None,
    cwd: Path = REPO_ROOT,
) -> tuple[PeerProcess, int]:
    """Start a peer and wait until it prints ``PORT <n>``; return the process and n.

    Raises PeerError (after killing the process) if the peer exits first or does
    not print its port within ``timeout`` seconds. ``env`` defaults to
    :func:`peer_environment`.
    """
    proc = PeerProcess(argv, env=peer_environment() if env is None else env, cwd=cwd)
    try:
        port = proc.wait_for_port(timeout)
    except BaseException:
        proc.stop(timeout=1.0)
        proc.remove_logs()
        raise
    return proc, port


@atexit.register
def _kill_leftover_peers() -> None:
    # Safety net for paths where fixture teardown never ran (e.g. interpreter exit).
    for proc in list(_live_peers):
        proc.stop(timeout=1.0)
        proc.remove_logs()
