"""Targets and listen addresses, in gRPC's naming scheme.

``host:port``, ``[v6addr]:port``, ``dns:///host:port`` (the authority part is ignored, as in gRPC),
``unix:path``, ``unix:///abs/path`` and ``unix-abstract:name``.
"""

from __future__ import annotations

import os
import socket
import stat
from dataclasses import dataclass
from typing import Optional

DEFAULT_PORT = 443


@dataclass(frozen=True)
class Address:
    """A resolved endpoint: TCP ``host``/``port`` or a Unix socket ``path``."""

    host: str = ""
    port: int = 0
    path: Optional[str] = None

    @property
    def is_unix(self) -> bool:
        return self.path is not None

    @property
    def authority(self) -> str:
        """The value gRPC clients put in ``:authority`` for this address."""
        if self.path is not None:
            return "localhost"
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def __str__(self) -> str:
        if self.path is not None:
            return f"unix:{self.path}"
        return self.authority


def parse_address(target: str, *, default_port: Optional[int] = DEFAULT_PORT) -> Address:
    """Parse a gRPC target or listen address; raises ``ValueError`` with the reason."""
    if target.startswith("unix-abstract:"):
        return Address(path="\0" + target[len("unix-abstract:") :])
    if target.startswith("unix://"):
        path = target[len("unix://") :]
        if not path.startswith("/"):
            raise ValueError(f"unix:// target needs an absolute path: {target!r}")
        return Address(path=path)
    if target.startswith("unix:"):
        path = target[len("unix:") :]
        if not path:
            raise ValueError(f"empty unix socket path in {target!r}")
        return Address(path=path)
    if target.startswith("dns:"):
        rest = target[len("dns:") :]
        if rest.startswith("//"):
            rest = rest[2:]
            rest = rest[rest.index("/") + 1 :] if "/" in rest else rest
        target = rest
    for prefix in ("ipv4:", "ipv6:"):
        if target.startswith(prefix):
            target = target[len(prefix) :]
    host, port = _split_host_port(target, default_port)
    return Address(host=host, port=port)


def _split_host_port(hostport: str, default_port: Optional[int]) -> tuple[str, int]:
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise ValueError(f"unterminated [ in address {hostport!r}")
        host, rest = hostport[1:end], hostport[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(f"junk after ] in address {hostport!r}")
        port_text = rest[1:] if rest else ""
    elif hostport.count(":") == 1:
        host, port_text = hostport.split(":")
    elif ":" in hostport:  # a bare IPv6 address
        host, port_text = hostport, ""
    else:
        host, port_text = hostport, ""
    if not port_text:
        if default_port is None:
            raise ValueError(f"address {hostport!r} has no port")
        return host, default_port
    if not port_text.isdigit() or int(port_text) > 65535:
        raise ValueError(f"bad port in address {hostport!r}")
    return host, int(port_text)


def bind_listening_socket(
    address: Address, *, backlog: int = 1024, reuse_port: bool = False
) -> socket.socket:
    """Bind and listen synchronously, so the caller learns the real port (for port 0) at once.

    ``""``, ``[::]`` and ``0.0.0.0`` hosts listen on every interface; ``[::]`` accepts IPv4 too
    (dual stack), as grpcio does.
    """
    if address.path is not None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            if not address.path.startswith("\0"):
                _remove_stale_unix_socket(address.path)
            sock.bind(address.path)
            sock.listen(backlog)
        except BaseException:
            sock.close()
            raise
        sock.setblocking(False)
        return sock
    host = address.host or "::"
    infos = socket.getaddrinfo(host, address.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    family, socktype, proto, _, sockaddr = infos[0]
    sock = socket.socket(family, socktype, proto)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        if reuse_port:
            # Several processes listen on one port; the kernel spreads connections among them.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        if family == socket.AF_INET6 and host == "::":
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 0)
        sock.bind(sockaddr)
        sock.listen(backlog)
    except BaseException:
        sock.close()
        raise
    sock.setblocking(False)
    return sock


@dataclass(frozen=True)
class SocketFile:
    """The file a Unix socket made when it was bound, known by its device and inode: removing
    it later removes only that file, not another server's socket bound there since."""

    path: str
    device: int
    inode: int

    @classmethod
    def of(cls, address: Address) -> Optional[SocketFile]:
        """The socket file just bound at ``address`` (None: TCP, or an abstract socket)."""
        path = address.path
        if path is None or path.startswith("\0"):
            return None
        try:
            info = os.stat(path)
        except OSError:
            return None
        return cls(path, info.st_dev, info.st_ino)

    def remove(self) -> None:
        """Unlink the file if it is still this socket's (a stopped server leaves no file).

        Call it while the socket is still open: a bound socket keeps its inode in use, so no
        file made since (after ours was unlinked) can have the same device and inode.
        """
        try:
            info = os.stat(self.path)
            if (
                stat.S_ISSOCK(info.st_mode)
                and info.st_dev == self.device
                and info.st_ino == self.inode
            ):
                os.unlink(self.path)
        except OSError:  # gone already, or not ours to remove
            pass


def _remove_stale_unix_socket(path: str) -> None:
    try:
        if stat.S_ISSOCK(os.stat(path).st_mode):
            os.unlink(path)
    except FileNotFoundError:
        pass
