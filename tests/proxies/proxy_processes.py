"""Real nginx and HAProxy in front of h2rpc servers, as unprivileged processes the tests own.

The configs are the files in ``configs/`` (the README's Deployment section shows the same
``nginx-grpc.conf`` and ``haproxy-grpc.cfg``; tests/proxies/test_readme_configs.py checks they
are equal). ``@NAME@`` placeholders are filled in here: ``@LISTEN@`` with a free port picked by
binding port 0, ``@BACKEND1@``/``@BACKEND2@`` with the servers' addresses, ``@PREFIX@`` with a
fresh temporary directory that holds everything the proxy writes (pid, logs, temp files), so
nothing under /etc or /var is read or written and no root daemon is involved. Each proxy runs in
the foreground in its own process group, and is stopped (and, if it must be, killed) with it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Optional

from tests.debian_tools import find_program

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
START_TIMEOUT = 15.0


_PLACEHOLDER = re.compile(r"@[A-Z0-9_]+@")


def free_port() -> int:
    """A port the kernel picked (bind to port 0), free again for the proxy to listen on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def render(template: str, **values: str) -> str:
    """``template`` with each ``@NAME@`` replaced; a placeholder left unfilled is an error."""
    for name, value in values.items():
        template = template.replace(f"@{name}@", value)
    # Placeholders are upper-case words between two @ (nginx's own @name locations are not).
    if _PLACEHOLDER.search(template):
        leftover = [line for line in template.splitlines() if _PLACEHOLDER.search(line)]
        raise ValueError(f"unfilled placeholders: {leftover}")
    return template


def template(name: str) -> str:
    return (CONFIG_DIR / name).read_text()


class ProxyProcess:
    """One proxy in front of ``backends`` ("host:port"); ``target`` is where clients go."""

    name = ""

    def __init__(self, backends: Sequence[str]) -> None:
        self.program = find_program(self.name)
        if self.program is None:
            raise RuntimeError(f"{self.name} is not installed (.ci/run installs it)")
        self.backends = list(backends)
        self.prefix = Path(tempfile.mkdtemp(prefix=f"h2rpc-{self.name}-"))
        # Started as root, nginx's workers run as an unprivileged user: they must reach their
        # temp directories (which nginx creates in here, for them).
        self.prefix.chmod(0o755)
        self.port = 0
        self.process: Optional[subprocess.Popen[bytes]] = None
        self._output = self.prefix / "output.log"

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"

    def argv(self) -> list[str]:
        raise NotImplementedError

    def write_config(self) -> None:
        raise NotImplementedError

    def start(self) -> ProxyProcess:
        """Start on a free port and wait until it listens (a port taken meanwhile: try again)."""
        for _ in range(5):
            self.port = free_port()
            self.write_config()
            with open(self._output, "ab") as output:
                self.process = subprocess.Popen(
                    self.argv(),
                    stdin=subprocess.DEVNULL,
                    stdout=output,
                    stderr=subprocess.STDOUT,
                    cwd=self.prefix,
                    start_new_session=True,  # its own process group: stopped as one
                )
            if self._wait_listening():
                return self
            self.stop()
        raise RuntimeError(f"{self.name} did not start:\n{self.logs()}")

    def _wait_listening(self) -> bool:
        assert self.process is not None
        end = time.monotonic() + START_TIMEOUT
        while time.monotonic() < end:
            if self.process.poll() is not None:
                return False
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return True
            except OSError:
                time.sleep(0.05)
        return False

    def logs(self) -> str:
        """What the proxy wrote (its output and, for nginx, its error log), for failures."""
        parts = []
        for path in sorted(self.prefix.glob("*.log")):
            parts.append(f"--- {path.name}\n{path.read_text(errors='replace')[-20_000:]}")
        return "\n".join(parts)

    def stop(self) -> None:
        """SIGTERM to its process group (workers included), SIGKILL if it lingers."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            try:
                os.killpg(process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)
        try:  # workers of a master that went first
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.prefix, ignore_errors=True)

    def __enter__(self) -> ProxyProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()


class Nginx(ProxyProcess):
    """nginx with ``nginx-grpc.conf`` (the README's) inside the tests' ``nginx-main.conf``."""

    name = "nginx"

    def write_config(self) -> None:
        prefix = str(self.prefix)
        grpc = render(
            template("nginx-grpc.conf"),
            LISTEN=self.target,
            BACKEND1=self.backends[0],
            BACKEND2=self.backends[1],
        )
        (self.prefix / "grpc.conf").write_text(grpc)
        (self.prefix / "nginx.conf").write_text(render(template("nginx-main.conf"), PREFIX=prefix))

    def argv(self) -> list[str]:
        assert self.program is not None
        prefix = str(self.prefix)
        return [
            self.program,
            "-p",
            prefix + "/",
            "-e",
            f"{prefix}/error.log",
            "-c",
            f"{prefix}/nginx.conf",
        ]


class HAProxy(ProxyProcess):
    """HAProxy with ``haproxy-grpc.cfg`` (the README's) after the tests' global section."""

    name = "haproxy"

    def write_config(self) -> None:
        grpc = render(
            template("haproxy-grpc.cfg"),
            LISTEN=self.target,
            BACKEND1=self.backends[0],
            BACKEND2=self.backends[1],
        )
        (self.prefix / "global.cfg").write_text(template("haproxy-global.cfg"))
        (self.prefix / "grpc.cfg").write_text(grpc)

    def argv(self) -> list[str]:
        assert self.program is not None
        prefix = str(self.prefix)
        # -db: foreground, no daemon; the two files are read in order, as one configuration.
        return [self.program, "-db", "-f", f"{prefix}/global.cfg", "-f", f"{prefix}/grpc.cfg"]


PROXIES = {"nginx": Nginx, "haproxy": HAProxy}
