"""pcapng bytes for HTTP/2 connections, with synthetic Ethernet, IP and TCP headers (sans-I/O).

Wireshark and tshark read what a socket carried only when it comes as link-layer packets. A
gRPC connection's recorder sees a byte stream (after TLS, when there is TLS), not packets; so
the packets are made up here, consistently enough for Wireshark's TCP layer to reassemble the
stream and hand it to its HTTP/2 and gRPC dissectors:

* a three-way handshake (SYN, SYN-ACK, ACK) first, so that the conversation has a start, its
  initial sequence numbers and a window scale (the window is never what limits us here);
* each chunk of bytes as segments of at most 64 KiB minus the headers (the IP length fields are
  16 bits), sequence numbers running on from the previous segment of that direction, and each
  segment acknowledging everything the other direction has sent so far;
* FIN from each side and a last ACK at the end, so that tshark sees the conversation closed.

The IP and TCP checksums are real (Wireshark can be told to check them). Addresses are the
socket's own when known; this module only builds bytes: writing them to a file is
``rpc._trace.capture``'s job. File format: pcapng (draft-ietf-opsawg-pcapng), little-endian,
one Ethernet interface, microsecond timestamps.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass
from typing import Optional, Union

__all__ = [
    "Endpoint",
    "TcpConversation",
    "enhanced_packet",
    "interface_description",
    "section_header",
]

LINKTYPE_ETHERNET = 1

# ---------------------------------------------------------------------- pcapng blocks

_SHB = 0x0A0D0D0A
_IDB = 0x00000001
_EPB = 0x00000006
_BYTE_ORDER_MAGIC = 0x1A2B3C4D

_OPT_COMMENT = 1
_SHB_USERAPPL = 4
_IF_NAME = 2
_IF_DESCRIPTION = 3
_IF_TSRESOL = 9
_EPB_FLAGS = 2

#: epb_flags direction bits: as the recording end saw the packet.
INBOUND = 1
OUTBOUND = 2


def _pad4(data: bytes) -> bytes:
    return data + b"\0" * (-len(data) % 4)


def _options(options: list[tuple[int, bytes]]) -> bytes:
    if not options:
        return b""
    out = b"".join(struct.pack("<HH", code, len(value)) + _pad4(value) for code, value in options)
    return out + b"\0\0\0\0"  # opt_endofopt


def _block(block_type: int, body: bytes) -> bytes:
    body = _pad4(body)
    total = len(body) + 12
    return struct.pack("<II", block_type, total) + body + struct.pack("<I", total)


def section_header(*, comment: Optional[str] = None, application: Optional[str] = None) -> bytes:
    """The Section Header Block that starts a file (section length unknown: -1)."""
    options = []
    if comment:
        options.append((_OPT_COMMENT, comment.encode()))
    if application:
        options.append((_SHB_USERAPPL, application.encode()))
    body = struct.pack("<IHHq", _BYTE_ORDER_MAGIC, 1, 0, -1) + _options(options)
    return _block(_SHB, body)


def interface_description(
    *, name: str = "", description: str = "", linktype: int = LINKTYPE_ETHERNET
) -> bytes:
    """An Interface Description Block (snap length 0: no limit; microsecond timestamps)."""
    options = []
    if name:
        options.append((_IF_NAME, name.encode()))
    if description:
        options.append((_IF_DESCRIPTION, description.encode()))
    options.append((_IF_TSRESOL, b"\x06"))
    body = struct.pack("<HHI", linktype, 0, 0) + _options(options)
    return _block(_IDB, body)


def enhanced_packet(
    packet: bytes,
    timestamp_us: int,
    *,
    interface: int = 0,
    direction: Optional[int] = None,
    comment: Optional[str] = None,
) -> bytes:
    """An Enhanced Packet Block: one whole packet, its time (microseconds since the epoch) and,
    optionally, its direction (``INBOUND``/``OUTBOUND``) and a comment Wireshark shows."""
    options = []
    if comment:
        options.append((_OPT_COMMENT, comment.encode()))
    if direction is not None:
        options.append((_EPB_FLAGS, struct.pack("<I", direction)))
    head = struct.pack(
        "<IIIII",
        interface,
        (timestamp_us >> 32) & 0xFFFFFFFF,
        timestamp_us & 0xFFFFFFFF,
        len(packet),
        len(packet),
    )
    return _block(_EPB, head + _pad4(packet) + _options(options))


# ---------------------------------------------------------------------- TCP/IP


IPAddress = Union[ipaddress.IPv4Address, ipaddress.IPv6Address]


@dataclass(frozen=True)
class Endpoint:
    """One end of a TCP conversation: an IP address and a port."""

    address: IPAddress
    port: int

    @classmethod
    def of(cls, host: str, port: int) -> Endpoint:
        """From a socket address's host and port; an IPv4-mapped IPv6 address (a dual-stack
        socket's view of an IPv4 peer) becomes the IPv4 address it maps."""
        address = ipaddress.ip_address(host.split("%", 1)[0])  # no IPv6 zone in a packet
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return cls(address, port)

    def __str__(self) -> str:
        if self.address.version == 6:
            return f"[{self.address}]:{self.port}"
        return f"{self.address}:{self.port}"


_FIN = 0x01
_SYN = 0x02
_PSH = 0x08
_ACK = 0x10

_ETH_IPV4 = 0x0800
_ETH_IPV6 = 0x86DD
_TTL = 64
_PROTO_TCP = 6
#: Window scale offered in the SYNs: with it, the (fixed) advertised window is about 1 GiB, so
#: Wireshark never reports a window full however much one side sends without a reply.
_WINDOW_SCALE = 14
_WINDOW = 0xFFFF
#: Locally administered MAC addresses: the client is ...:01, the server ...:02.
_CLIENT_MAC = bytes.fromhex("020000000001")
_SERVER_MAC = bytes.fromhex("020000000002")


def _ones_complement_sum(data: bytes) -> int:
    """The 16-bit ones' complement sum of ``data`` (RFC 1071), all at once: since
    2**16 = 1 (mod 0xFFFF), the big integer ``data`` spells is congruent to the sum of its
    16-bit words; a nonzero multiple of 0xFFFF is the sum 0xFFFF (negative zero)."""
    if len(data) & 1:
        data += b"\0"
    total = int.from_bytes(data, "big") % 0xFFFF
    return total if total or not any(data) else 0xFFFF


def _checksum(*parts: bytes) -> int:
    return 0xFFFF - _ones_complement_sum(b"".join(parts))


class TcpConversation:
    """The packets of one TCP connection between ``client`` and ``server``, made up from the
    bytes each side sent.

    ``open()``, ``send(from_client, data)`` and ``close()`` return whole Ethernet frames, in
    the order they are to be written. Both endpoints must be of the same IP version.
    """

    def __init__(
        self,
        client: Endpoint,
        server: Endpoint,
        *,
        client_isn: int = 0x10000000,
        server_isn: int = 0x20000000,
    ) -> None:
        if client.address.version != server.address.version:
            raise ValueError(f"endpoints of different IP versions: {client} and {server}")
        self.client = client
        self.server = server
        self._v6 = client.address.version == 6
        #: The next sequence number each side sends, client first.
        self._next = [client_isn & 0xFFFFFFFF, server_isn & 0xFFFFFFFF]
        self._ip_id = [0, 0]
        self.max_segment = 65535 - 20 - (0 if self._v6 else 20)
        self.opened = False
        self.closed = False

    def open(self) -> list[bytes]:
        """SYN, SYN-ACK, ACK (the SYNs offer a window scale and our largest segment)."""
        self.opened = True
        options = struct.pack("!BBH", 2, 4, self.max_segment) + bytes((3, 3, _WINDOW_SCALE, 1))
        syn = self._segment(True, _SYN, b"", options=options, ack=False)
        self._next[0] = (self._next[0] + 1) & 0xFFFFFFFF
        syn_ack = self._segment(False, _SYN | _ACK, b"", options=options)
        self._next[1] = (self._next[1] + 1) & 0xFFFFFFFF
        return [syn, syn_ack, self._segment(True, _ACK, b"")]

    def send(self, from_client: bool, data: bytes) -> list[bytes]:
        """``data`` sent by one side, as segments of at most ``max_segment`` bytes."""
        step = self.max_segment
        return [
            self._segment(from_client, _PSH | _ACK, data[pos : pos + step])
            for pos in range(0, len(data), step)
        ]

    def close(self, client_first: bool = True) -> list[bytes]:
        """FIN from one side, FIN from the other, and the last ACK."""
        self.closed = True
        first = self._segment(client_first, _FIN | _ACK, b"")
        self._advance(client_first, 1)
        second = self._segment(not client_first, _FIN | _ACK, b"")
        self._advance(not client_first, 1)
        return [first, second, self._segment(client_first, _ACK, b"")]

    def _advance(self, from_client: bool, count: int) -> None:
        side = 0 if from_client else 1
        self._next[side] = (self._next[side] + count) & 0xFFFFFFFF

    def _segment(
        self,
        from_client: bool,
        flags: int,
        payload: bytes,
        *,
        options: bytes = b"",
        ack: bool = True,
    ) -> bytes:
        side = 0 if from_client else 1
        src, dst = (self.client, self.server) if from_client else (self.server, self.client)
        seq = self._next[side]
        ack_number = self._next[1 - side] if ack else 0
        tcp_length = 20 + len(options) + len(payload)
        header = struct.pack(
            "!HHIIBBHHH",
            src.port,
            dst.port,
            seq,
            ack_number,
            (5 + len(options) // 4) << 4,
            flags,
            _WINDOW,
            0,
            0,
        )
        source = src.address.packed
        destination = dst.address.packed
        if self._v6:
            pseudo = source + destination + struct.pack("!IxxxB", tcp_length, _PROTO_TCP)
        else:
            pseudo = source + destination + struct.pack("!xBH", _PROTO_TCP, tcp_length)
        checksum = _checksum(pseudo, header, options, payload)
        tcp = header[:16] + struct.pack("!H", checksum) + header[18:] + options + payload
        if self._v6:
            ip = struct.pack("!IHBB", 6 << 28, tcp_length, _PROTO_TCP, _TTL) + source + destination
            ethertype = _ETH_IPV6
        else:
            self._ip_id[side] = ip_id = (self._ip_id[side] + 1) & 0xFFFF
            head = struct.pack(
                "!BBHHHBBH", 0x45, 0, 20 + tcp_length, ip_id, 0x4000, _TTL, _PROTO_TCP, 0
            )
            ip_checksum = _checksum(head, source, destination)
            ip = head[:10] + struct.pack("!H", ip_checksum) + source + destination
            ethertype = _ETH_IPV4
        macs = _SERVER_MAC + _CLIENT_MAC if from_client else _CLIENT_MAC + _SERVER_MAC
        self._next[side] = (seq + len(payload)) & 0xFFFFFFFF
        return macs + struct.pack("!H", ethertype) + ip + tcp
