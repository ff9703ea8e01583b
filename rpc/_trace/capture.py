"""Wireshark captures of channels and servers: ``pcap=``, ``H2RPC_PCAP``, ``rpc.PcapWriter``.

A ``PcapWriter`` owns one pcapng file and records into it every connection it is given (through
``ConnectionOptions.capture``: the transport hands each connection's bytes to its tap). Each
connection is its own TCP conversation, with the socket's real addresses and ports, made into
packets by ``rpc._trace.pcapng``; Wireshark and tshark decode them as HTTP/2 and gRPC.

The bytes are what the HTTP/2 connection sent and received: for a TLS connection, the plaintext
inside TLS, under the real port (so tell Wireshark to decode that port as HTTP/2). For the
encrypted bytes themselves, capture the interface with tcpdump and decrypt with the TLS key log
(``SSLKEYLOGFILE``, see ``rpc._tls``).

On, in the way tracing is: the ``pcap=`` option of ``Channel`` and ``Server`` (a file path or a
``PcapWriter``; ``False`` refuses the other two), an active writer (``writer.activate()`` or
``with rpc.PcapWriter(path):``, what ``--pcap FILE`` does), or ``H2RPC_PCAP=FILE`` (read once per
process). ``{pid}`` in a path is replaced by the process id: a process started with the same
environment then writes its own file instead of overwriting ours. A path names one writer per
process: channels and servers given the same path share one file.

When a process holds both ends of one connection (a client and a server on loopback, both
captured into the same file), the second end to open records nothing: the first already records
both directions of those bytes, and the same conversation twice would look like retransmissions.
"""

from __future__ import annotations

import atexit
import dataclasses
import logging
import os
import threading
import time
from typing import IO, Any, ClassVar, Optional, Union

from transport import ConnectionOptions

from .._version import __version__
from .activation import Activatable, Activations
from .pcapng import (
    INBOUND,
    OUTBOUND,
    Endpoint,
    TcpConversation,
    enhanced_packet,
    interface_description,
    section_header,
)

log = logging.getLogger(__name__)

__all__ = ["ENV_PCAP", "PcapOption", "PcapWriter", "resolve_capture", "with_capture"]

ENV_PCAP = "H2RPC_PCAP"

#: The addresses a connection gets in the capture when its socket has none (a Unix socket):
#: loopback, the server on gRPC's customary port, each client on a port of its own.
_SYNTHETIC_SERVER_PORT = 80
_SYNTHETIC_CLIENT_PORTS = 40000

_COMMENT = (
    "h2rpc capture: the bytes each HTTP/2 connection sent and received, in synthetic TCP/IP "
    "packets (plaintext even for TLS connections). Decode the server port as HTTP/2 if "
    "Wireshark does not: -d tcp.port==PORT,http2"
)


def _now_us() -> int:
    return time.time_ns() // 1000


class PcapWriter(Activatable):
    """Writes the connections of the channels and servers it is given into one pcapng file.

    ::

        writer = rpc.PcapWriter("calls.pcapng")
        async with rpc.Channel(target, pcap=writer) as channel:    # or pcap="calls.pcapng"
            ...
        writer.close()                     # or at exit; the file is flushed after every write

    ``file``: a path (``{pid}`` is replaced by the process id; the file is truncated; one
    writer per path at a time: ``ValueError`` for a second) or a binary stream (left open).
    Usable from any number of threads and connections.
    """

    _activations: ClassVar[Activations[PcapWriter]] = Activations()

    def __init__(self, file: Union[str, os.PathLike[str], IO[bytes]]) -> None:
        self._lock = threading.Lock()
        self._owned = False
        self.path: Optional[str] = None
        if isinstance(file, (str, os.PathLike)):
            self.path = _expand(file)
            with _LOCK:
                other = _BY_PATH.get(self.path)
                if other is not None and not other.closed:
                    # Two writers would each truncate the file and interleave their sections.
                    raise ValueError(f"{self.path} is already being written by {other!r}")
                self._file: Optional[IO[bytes]] = open(self.path, "wb")  # noqa: SIM115
                _BY_PATH[self.path] = self
            self._owned = True
            atexit.register(self.close)
        else:
            self._file = file
        self._connections = {"client": 0, "server": 0}
        #: The conversations being recorded, as (client, server) endpoints.
        self._open: set[tuple[Endpoint, Endpoint]] = set()
        self._write(
            section_header(comment=_COMMENT, application=f"h2rpc {__version__}")
            + interface_description(
                name="h2rpc", description="HTTP/2 bytes of h2rpc connections, in synthetic TCP/IP"
            )
        )

    def __repr__(self) -> str:
        return f"<PcapWriter {self.path or self._file!r}>"

    # ---------------------------------------------------------------- lifecycle

    def close(self) -> None:
        """Stop writing; close the file if the writer opened it. Idempotent."""
        with self._lock:
            file, self._file = self._file, None
        if file is not None and self._owned:
            file.close()
            atexit.unregister(self.close)
        elif file is not None:
            file.flush()

    @property
    def closed(self) -> bool:
        return self._file is None

    def _end(self) -> None:  # leaving a ``with`` block (activation.py)
        self.close()

    # ---------------------------------------------------------------- for ConnectionOptions

    def open_connection(self, *, client_side: bool) -> ConnectionCapture:
        """Called by the transport core once per new connection (``transport.WireTapMaker``)."""
        side = "client" if client_side else "server"
        with self._lock:
            self._connections[side] += 1
            number = self._connections[side]
        return ConnectionCapture(self, client_side=client_side, label=f"{side}#{number}")

    # ---------------------------------------------------------------- for ConnectionCapture

    def _claim(self, conversation: tuple[Endpoint, Endpoint]) -> bool:
        """Start recording a conversation; False if another connection here records it."""
        with self._lock:
            if conversation in self._open:
                return False
            self._open.add(conversation)
            return True

    def _release(self, conversation: tuple[Endpoint, Endpoint]) -> None:
        with self._lock:
            self._open.discard(conversation)

    def _write(self, data: bytes) -> None:
        with self._lock:
            file = self._file
            if file is None:
                return
            try:
                file.write(data)
                file.flush()  # a capture is read while the process runs, or after it is killed
            except (OSError, ValueError) as exc:  # never break the connection it records
                log.warning("pcap %s: writing failed, capture stopped: %s", self, exc)
                self._file = None


def _endpoint(address: object) -> Optional[Endpoint]:
    if isinstance(address, tuple) and len(address) >= 2 and isinstance(address[0], str):
        try:
            return Endpoint.of(address[0], int(address[1]))
        except ValueError:
            return None
    return None


class ConnectionCapture:
    """One connection's tap (``transport.WireTap``): its bytes become packets in the file.

    Each entry point builds the packets and hands them to the writer in one write, so the
    packets of connections running in several threads never interleave inside a block.
    """

    def __init__(self, writer: PcapWriter, *, client_side: bool, label: str) -> None:
        self._writer = writer
        self.client_side = client_side
        self.label = label
        self._tcp: Optional[TcpConversation] = None
        self._conversation: Optional[tuple[Endpoint, Endpoint]] = None
        #: False: another connection of this process records these bytes (or the socket's
        #: addresses did not make a TCP conversation), so this one stays silent.
        self._recording = True

    def socket_opened(self, local: object, peer: object) -> None:
        if self._tcp is not None or not self._recording:
            return
        ours, theirs = _endpoint(local), _endpoint(peer)
        comment = f"h2rpc {self.label} connection"
        if ours is None or theirs is None or ours.address.version != theirs.address.version:
            ours, theirs = self._synthetic_endpoints()
            comment += f" (socket {peer or local or 'without address'}: addresses made up)"
        client, server = (ours, theirs) if self.client_side else (theirs, ours)
        conversation = (client, server)
        if not self._writer._claim(conversation):
            self._recording = False
            return
        self._conversation = conversation
        self._tcp = tcp = TcpConversation(client, server)
        now = _now_us()
        packets = tcp.open()
        self._writer._write(
            b"".join(
                enhanced_packet(
                    packet,
                    now,
                    direction=self._direction(i != 1),
                    comment=comment if i == 0 else None,
                )
                for i, packet in enumerate(packets)
            )
        )

    def _synthetic_endpoints(self) -> tuple[Endpoint, Endpoint]:
        number = int(self.label.rpartition("#")[2])
        loopback = "127.0.0.1"
        server = Endpoint.of(loopback, _SYNTHETIC_SERVER_PORT)
        client = Endpoint.of(loopback, _SYNTHETIC_CLIENT_PORTS + number % 20000)
        return (client, server) if self.client_side else (server, client)

    def _direction(self, from_client: bool) -> int:
        return OUTBOUND if from_client == self.client_side else INBOUND

    def bytes_out(self, data: Any) -> None:
        self._record(self.client_side, data)

    def bytes_in(self, data: Any) -> None:
        self._record(not self.client_side, data)

    def _record(self, from_client: bool, data: Any) -> None:
        if not data or not self._recording:
            return
        tcp = self._tcp
        if tcp is None:  # bytes before (or without) a socket: a conversation of made-up ends
            self.socket_opened(None, None)
            tcp = self._tcp
            if tcp is None:
                return
        if tcp.closed:
            return
        now = _now_us()
        direction = self._direction(from_client)
        self._writer._write(
            b"".join(
                enhanced_packet(packet, now, direction=direction)
                for packet in tcp.send(from_client, bytes(data))
            )
        )

    def socket_closed(self) -> None:
        tcp = self._tcp
        if tcp is None or tcp.closed:
            return
        now = _now_us()
        packets = tcp.close(client_first=self.client_side)
        first = self.client_side
        self._writer._write(
            b"".join(
                enhanced_packet(
                    packet, now, direction=self._direction(first if i != 1 else not first)
                )
                for i, packet in enumerate(packets)
            )
        )
        if self._conversation is not None:
            self._writer._release(self._conversation)


# ---------------------------------------------------------------------- choosing a writer

_LOCK = threading.Lock()  # for the two below
_BY_PATH: dict[str, PcapWriter] = {}
_ENV_WRITER: list[Optional[PcapWriter]] = []  # read once: [] until then


def _expand(path: Union[str, os.PathLike[str]]) -> str:
    """The absolute path, ``{pid}`` replaced by the process id."""
    return os.path.abspath(os.fspath(path).replace("{pid}", str(os.getpid())))


def writer_for_path(path: Union[str, os.PathLike[str]]) -> PcapWriter:
    """The process's writer of ``path`` (made on first use; a closed one is made anew)."""
    key = _expand(path)
    with _LOCK:
        writer = _BY_PATH.get(key)
        if writer is not None and not writer.closed:
            return writer
    try:
        return PcapWriter(key)
    except ValueError:  # made by another thread meanwhile
        with _LOCK:
            return _BY_PATH[key]


def writer_from_environment() -> Optional[PcapWriter]:
    """The writer ``H2RPC_PCAP=FILE`` asks for (read once per process), or None."""
    with _LOCK:
        if _ENV_WRITER:
            return _ENV_WRITER[0]
    path = os.environ.get(ENV_PCAP, "").strip()
    writer = None
    if path:
        try:
            writer = writer_for_path(path)
        except OSError as exc:  # a capture that cannot be written must not stop the application
            log.warning("%s=%r: no capture: %s", ENV_PCAP, path, exc)
    with _LOCK:
        if not _ENV_WRITER:
            _ENV_WRITER.append(writer)
        return _ENV_WRITER[0]


PcapOption = Union[None, bool, str, "os.PathLike[str]", PcapWriter]


def resolve_capture(pcap: PcapOption) -> Optional[PcapWriter]:
    """The writer a new channel or server uses: its ``pcap=`` option (a path or a writer), else
    an active writer, else ``H2RPC_PCAP``; ``pcap=False`` refuses all three."""
    if pcap is None:
        return PcapWriter._activations.latest() or writer_from_environment()
    if pcap is False:
        return None
    if isinstance(pcap, PcapWriter):
        return pcap
    if isinstance(pcap, (str, os.PathLike)):
        return writer_for_path(pcap)
    raise TypeError(f"pcap must be a file path, a PcapWriter, False or None: {pcap!r}")


def with_capture(options: ConnectionOptions, pcap: PcapOption) -> ConnectionOptions:
    """``options`` carrying the writer ``resolve_capture(pcap)`` picks (unchanged if none)."""
    if options.capture is not None:  # given in connection_options: that one wins, unless refused
        return dataclasses.replace(options, capture=None) if pcap is False else options
    writer = resolve_capture(pcap)
    return options if writer is None else dataclasses.replace(options, capture=writer)
