"""gRPC targets (doc/naming.md in the gRPC repository) and the resolvers that turn them into
addresses.

A target is ``scheme:[//authority/]endpoint``; the scheme names the resolver. Built in: ``dns``
(the default: ``host:port`` is ``dns:///host:port``), ``ipv4``, ``ipv6``, ``unix`` and
``unix-abstract``. ``register_resolver()`` adds a scheme. A target that cannot work is a
``ValueError`` that says why, when the channel is made; a name that does not resolve is an
UNAVAILABLE status for the calls that need it, as in gRPC.
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Optional, Union
from urllib.parse import quote

from transport import Address, parse_address

#: gRPC's default port for a ``dns`` target without one (naming.md: "443").
DEFAULT_DNS_PORT = 443

_SCHEME = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*):(.*)\Z", re.S)


@dataclass(frozen=True)
class Target:
    """A parsed target: ``dns://8.8.8.8/example.com:443`` has scheme ``dns``, authority
    ``8.8.8.8`` and endpoint ``example.com:443``; ``ipv4:10.0.0.1:5,10.0.0.2:5`` has an empty
    authority and endpoint ``10.0.0.1:5,10.0.0.2:5``."""

    text: str
    scheme: str
    authority: str
    endpoint: str


class Resolver:
    """Turns a target of one scheme into the addresses a channel balances over.

    Subclass it and ``register_resolver("myscheme", MyResolver())``; then
    ``rpc.Channel("myscheme:///whatever")`` calls ``resolve(target)`` when it first needs a
    connection, again when a connection is lost or every address failed (at most once per
    ``dns_min_time_between_resolutions``), and uses the new list for new calls. ``resolve`` may
    block (the asyncio channel runs it on a worker thread) and returns addresses as
    ``"host:port"``, ``"[v6addr]:port"`` or ``"unix:/path"`` strings, or ``transport.Address``;
    an exception or an empty list fails the calls that wait for it with UNAVAILABLE, saying why.
    """

    #: A static resolver's addresses never change: no re-resolution.
    static = False

    def check(self, target: Target) -> None:
        """Raise ``ValueError`` (with the reason) if ``target`` can never work; called once,
        when the channel is made."""

    def resolve(self, target: Target) -> Sequence[Union[str, Address]]:
        raise NotImplementedError

    def default_authority(self, target: Target) -> str:
        """The ``:authority`` of the channel's calls (gRPC: the endpoint, as written)."""
        return target.endpoint


def addresses_of(results: Sequence[Union[str, Address]], target: Target) -> list[Address]:
    """A resolver's answer as addresses (duplicates dropped); ValueError if it is unusable."""
    if isinstance(results, (str, bytes)):
        raise ValueError(f"resolver for {target.text!r} returned a string, not a list of addresses")
    out: list[Address] = []
    for item in results:
        address = item if isinstance(item, Address) else parse_address(str(item), default_port=None)
        if address not in out:
            out.append(address)
    if not out:
        raise ValueError(f"resolver returned an empty address list for {target.text!r}")
    return out


def _port(text: str, where: str) -> int:
    if not text.isdigit() or not 0 < int(text) <= 65535:
        raise ValueError(f"bad port {text!r} in {where!r}: need 1-65535")
    return int(text)


def split_host_port(hostport: str, default_port: Optional[int], where: str) -> tuple[str, int]:
    """``host:port``, ``[v6addr]:port``, or (with a default port) ``host`` / bare ``v6addr``."""
    if hostport.startswith("["):
        end = hostport.find("]")
        if end < 0:
            raise ValueError(f"unterminated '[' in {where!r}")
        host, rest = hostport[1:end], hostport[end + 1 :]
        if rest and not rest.startswith(":"):
            raise ValueError(f"junk after ']' in {where!r}")
        port_text = rest[1:]
    elif hostport.count(":") == 1:
        host, port_text = hostport.split(":")
    else:  # no port, or a bare IPv6 address
        host, port_text = hostport, ""
    if not host:
        raise ValueError(f"empty host name in {where!r}")
    if not port_text:
        if default_port is None:
            raise ValueError(f"no port in {where!r}")
        return host, default_port
    return host, _port(port_text, where)


def ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class DnsResolver(Resolver):
    """``dns:[//authority/]host[:port]``: every A and AAAA record, in getaddrinfo's order.

    The blocking channel calls ``resolve``; the asyncio one asks ``loop.getaddrinfo`` for
    ``lookup(target)`` and passes the answer to ``addresses_from``. An IP literal needs no
    lookup (``literal``) and is never re-resolved.
    """

    def check(self, target: Target) -> None:
        if target.authority:
            raise ValueError(
                f"dns target {target.text!r} names a DNS server ({target.authority!r}): "
                "not supported, use dns:///host:port (the system resolver)"
            )
        self.lookup(target)

    def lookup(self, target: Target) -> tuple[str, int]:
        return split_host_port(target.endpoint, DEFAULT_DNS_PORT, target.text)

    def literal(self, target: Target) -> Optional[list[Address]]:
        host, port = self.lookup(target)
        return [Address(host=host, port=port)] if ip_literal(host) else None

    def addresses_from(self, infos: Sequence[tuple[Any, ...]], port: int) -> list[Address]:
        out: list[Address] = []
        for family, _, _, _, sockaddr in infos:
            if family not in (socket.AF_INET, socket.AF_INET6):
                continue
            address = Address(host=str(sockaddr[0]), port=port)
            if address not in out:
                out.append(address)
        return out

    def resolve(self, target: Target) -> list[Address]:
        host, port = self.lookup(target)
        return self.addresses_from(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM), port)


class _StaticResolver(Resolver):
    static = True

    def check(self, target: Target) -> None:
        self.resolve(target)

    def resolve(self, target: Target) -> list[Address]:
        if target.authority:
            raise ValueError(f"{target.scheme} target {target.text!r} takes no authority")
        parts = target.endpoint.split(",") if target.endpoint else []
        if not parts:
            raise ValueError(f"empty address list in target {target.text!r}")
        return [self.address(part, target.text) for part in parts]

    def address(self, part: str, where: str) -> Address:
        raise NotImplementedError


class Ipv4Resolver(_StaticResolver):
    """``ipv4:10.0.0.1:50051,10.0.0.2:50051`` (a port on each, as gRPC requires)."""

    def address(self, part: str, where: str) -> Address:
        host, port = split_host_port(part, None, where)
        try:
            ipaddress.IPv4Address(host)
        except ValueError:
            raise ValueError(f"{host!r} in {where!r} is not an IPv4 address") from None
        return Address(host=host, port=port)


class Ipv6Resolver(_StaticResolver):
    """``ipv6:[::1]:50051,[fe80::1]:50051``."""

    def address(self, part: str, where: str) -> Address:
        if not part.startswith("["):
            raise ValueError(f"{part!r} in {where!r}: write IPv6 addresses as [addr]:port")
        host, port = split_host_port(part, None, where)
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{host!r} in {where!r} is not an IPv6 address") from None
        return Address(host=host, port=port)


class UnixResolver(_StaticResolver):
    """``unix:path`` (relative or absolute) and ``unix:///absolute/path``; ``:authority`` is the
    path, percent-encoded, as grpcio sends it."""

    def resolve(self, target: Target) -> list[Address]:
        return [Address(path=self.path(target))]

    def path(self, target: Target) -> str:
        if target.text.startswith("unix://"):
            if target.authority:
                raise ValueError(
                    f"unix target {target.text!r} names a host ({target.authority!r}): "
                    "use unix:///absolute/path or unix:relative/path"
                )
            return "/" + target.endpoint
        if not target.endpoint:
            raise ValueError(f"empty unix socket path in {target.text!r}")
        return target.endpoint

    def default_authority(self, target: Target) -> str:
        return quote(self.path(target).lstrip("/"), safe="")


class UnixAbstractResolver(UnixResolver):
    """``unix-abstract:name``: Linux's abstract socket namespace (no file)."""

    def path(self, target: Target) -> str:
        return "\0" + target.endpoint

    def default_authority(self, target: Target) -> str:
        return quote(target.endpoint, safe="")


_lock = threading.Lock()
_resolvers: dict[str, Resolver] = {
    "dns": DnsResolver(),
    "ipv4": Ipv4Resolver(),
    "ipv6": Ipv6Resolver(),
    "unix": UnixResolver(),
    "unix-abstract": UnixAbstractResolver(),
}


def register_resolver(scheme: str, resolver: Resolver) -> None:
    """Make targets ``scheme:...`` resolve with ``resolver`` (for channels made from now on)."""
    if not _SCHEME.match(scheme + ":"):
        raise ValueError(f"bad scheme name {scheme!r}")
    if not isinstance(resolver, Resolver):
        raise TypeError(f"register_resolver() needs an rpc.Resolver, not {type(resolver).__name__}")
    with _lock:
        _resolvers[scheme.lower()] = resolver


def unregister_resolver(scheme: str) -> None:
    with _lock:
        _resolvers.pop(scheme.lower(), None)


def parse_target(text: str) -> tuple[Target, Resolver]:
    """The target and its resolver; ValueError (saying why) if it can never work.

    As in gRPC, a target whose prefix is no known scheme is a DNS name: ``localhost:50051``
    is ``dns:///localhost:50051``; but ``foo://...`` with an unknown ``foo`` is an error
    rather than a host name lookup bound to fail.
    """
    if not isinstance(text, str):
        raise TypeError(f"target must be a str, not {type(text).__name__}")
    if not text:
        raise ValueError("empty target")
    match = _SCHEME.match(text)
    resolver = None
    if match is not None:
        scheme, rest = match.group(1).lower(), match.group(2)
        with _lock:
            resolver = _resolvers.get(scheme)
        if resolver is None and rest.startswith("//"):
            with _lock:
                known = ", ".join(sorted(_resolvers))
            raise ValueError(
                f"unknown scheme {scheme!r} in target {text!r} (known: {known}; "
                "rpc.register_resolver() adds one)"
            )
    if resolver is None:
        scheme, rest = "dns", text
        resolver = _resolvers["dns"]
    authority, endpoint = "", rest
    if scheme != "unix-abstract" and rest.startswith("//"):
        authority, _, endpoint = rest[2:].partition("/")
    target = Target(text=text, scheme=scheme, authority=authority, endpoint=endpoint)
    resolver.check(target)
    return target, resolver


def host_of(authority: str) -> str:
    """The host of an authority (``[v6]:port``, ``host:port`` or ``host``), for TLS."""
    if authority.startswith("["):
        return authority[1 : authority.find("]")] if "]" in authority else authority[1:]
    if authority.count(":") == 1:
        return authority.split(":")[0]
    return authority
