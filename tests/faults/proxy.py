"""A fault-injecting TCP proxy for tests: ``FaultProxy(("127.0.0.1", port))`` between a client
and a server, serving on a port of its own (port 0: the kernel picks it).

Kernel netem is not available on the machines these tests run on, so the network's bad days are
played by this proxy instead. It runs an asyncio loop on a thread of its own, so blocking and
async clients, in-process servers and subprocess peers can all sit on either side. Each
direction, ``proxy.up`` (client to server) and ``proxy.down`` (server to client), has settings
that may change at any time, from any thread:

- ``latency`` and ``jitter`` (seconds): each chunk is delivered that much later (plus a random
  share of the jitter), never before the chunk read before it: TCP keeps order.
- ``bandwidth`` (bytes per second): the pace at which chunks leave.
- ``paused``: nothing moves: stop reading from the sender and delivering what was read. The
  kernel's buffers fill up and the sender's writes stop completing: a peer that stops reading
  (a half-open or stuck peer), or a stall while set.
- ``blackhole``: read and drop everything: the bytes vanish, the connection stays up, nobody
  gets an error (a dead link that TCP has not noticed yet).

and one-shot faults: ``reset_mid_frame(direction)`` forwards the 9-byte header and half the
payload of the next DATA frame in that direction, then closes both sockets with SO_LINGER 0 (a
RST, with a frame cut in two); ``reset_all()`` resets every connection at once; ``refuse``
(True) resets new connections as soon as they are accepted.
"""

from __future__ import annotations

import asyncio
import random
import socket
import struct
import threading
import time
from collections import deque
from typing import Optional

#: Read size of the pumps; with a bandwidth cap the chunks are smaller, so the pace is smooth.
CHUNK = 64 * 1024
PACED_CHUNK = 4 * 1024
#: A pump stops reading while this much waits for delivery (latency, bandwidth cap or a peer
#: that does not read): the proxy passes backpressure on instead of buffering without end.
MAX_QUEUED = 256 * 1024
#: How often a paused pump looks again (the settings are plain attributes, set from any thread).
POLL = 0.01
HTTP2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
DATA = 0x0


class Direction:
    """The settings of one direction of every connection through the proxy."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.latency = 0.0
        self.jitter = 0.0
        self.bandwidth: Optional[float] = None
        self.paused = False
        self.blackhole = False
        self._reset_armed = False
        self.bytes_forwarded = 0

    def clear(self) -> None:
        self.latency = self.jitter = 0.0
        self.bandwidth = None
        self.paused = self.blackhole = self._reset_armed = False


class FrameCutter:
    """Follows the HTTP/2 frames of one direction to find the middle of the next DATA frame.

    ``feed(chunk)`` returns the offset in ``chunk`` to cut at (the next DATA frame's header and
    half its payload before it), or None. The client's direction starts with the connection
    preface, which is not a frame.
    """

    def __init__(self, skip: int) -> None:
        self._skip = skip  # preface bytes still to pass
        self._header = bytearray()
        self._payload_left = 0
        self._cut_in: Optional[int] = None  # bytes until the cut, inside the current frame

    def feed(self, chunk: bytes, armed: bool) -> Optional[int]:
        pos = 0
        end = len(chunk)
        while pos < end:
            if self._skip:
                step = min(self._skip, end - pos)
                self._skip -= step
                pos += step
            elif self._payload_left:
                step = min(self._payload_left, end - pos)
                if armed and self._cut_in is not None and self._cut_in <= step:
                    return pos + self._cut_in
                if self._cut_in is not None:
                    self._cut_in -= step
                self._payload_left -= step
                pos += step
                if not self._payload_left:
                    self._cut_in = None
            else:
                step = min(9 - len(self._header), end - pos)
                self._header += chunk[pos : pos + step]
                pos += step
                if len(self._header) == 9:
                    length = int.from_bytes(self._header[:3], "big")
                    kind = self._header[3]
                    self._header.clear()
                    self._payload_left = length
                    if kind == DATA and length >= 2:
                        self._cut_in = length // 2
        return None


class _Link:
    """One proxied connection: two sockets and a pump each way."""

    def __init__(self, proxy: FaultProxy, client: asyncio.StreamWriter) -> None:
        self.proxy = proxy
        self.writers = [client]
        self.tasks: list[asyncio.Task[None]] = []

    def reset(self) -> None:
        """Close both sockets with SO_LINGER 0: the kernel sends RST, drops what is unsent."""
        for writer in self.writers:
            sock = writer.get_extra_info("socket")
            if sock is not None:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                except OSError:
                    pass
            writer.transport.abort()
        for task in self.tasks:
            if task is not asyncio.current_task():
                task.cancel()

    def close(self) -> None:
        for writer in self.writers:
            writer.transport.close()
        for task in self.tasks:
            if task is not asyncio.current_task():
                task.cancel()

    async def pump(
        self,
        direction: Direction,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        cutter: FrameCutter,
    ) -> None:
        """Read from one side, delay, pace, drop or cut as ``direction`` says, write the other."""
        queue: deque[tuple[float, bytes]] = deque()
        arrived = asyncio.Event()
        last_due = 0.0
        sender = asyncio.ensure_future(self._deliver(direction, queue, arrived, writer, cutter))
        self.tasks.append(sender)
        try:
            while True:
                while direction.paused or sum(len(c) for _, c in queue) > MAX_QUEUED:
                    await asyncio.sleep(POLL)
                chunk = await reader.read(PACED_CHUNK if direction.bandwidth else CHUNK)
                if not chunk:
                    break
                while direction.paused:  # paused while this read waited: hold what it got
                    await asyncio.sleep(POLL)
                if direction.blackhole:
                    continue
                due = time.monotonic() + direction.latency + random.uniform(0, direction.jitter)
                last_due = max(last_due, due)  # never before the chunk before it
                queue.append((last_due, chunk))
                arrived.set()
            while direction.blackhole:  # a FIN is lost in a blackhole too (until it is lifted)
                await asyncio.sleep(POLL)
        except (ConnectionError, OSError):
            self.reset()
            return
        queue.append((0.0, b""))  # EOF, after what is queued
        arrived.set()

    async def _deliver(
        self,
        direction: Direction,
        queue: deque[tuple[float, bytes]],
        arrived: asyncio.Event,
        writer: asyncio.StreamWriter,
        cutter: FrameCutter,
    ) -> None:
        try:
            while True:
                while not queue:
                    arrived.clear()
                    await arrived.wait()
                due, chunk = queue.popleft()
                if not chunk:
                    if writer.can_write_eof():
                        writer.write_eof()  # a half-close passes through as one
                    return
                delay = due - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                while direction.paused:  # a stall stops what is in flight too
                    await asyncio.sleep(POLL)
                cut = cutter.feed(chunk, direction._reset_armed)
                if cut is not None:
                    direction._reset_armed = False
                    writer.write(chunk[:cut])
                    await writer.drain()
                    await asyncio.sleep(0.05)  # let the half frame reach the peer first
                    self.proxy.resets += 1
                    self.reset()
                    return
                writer.write(chunk)
                await writer.drain()
                direction.bytes_forwarded += len(chunk)
                if direction.bandwidth:
                    await asyncio.sleep(len(chunk) / direction.bandwidth)
        except (ConnectionError, OSError):
            self.reset()


class FaultProxy:
    """A TCP proxy to ``target`` with faults to inject (see the module's docstring)."""

    def __init__(self, target: tuple[str, int], host: str = "127.0.0.1") -> None:
        self.target = target
        self.up = Direction("up")
        self.down = Direction("down")
        self.refuse = False
        self.accepted = 0
        self.resets = 0
        self._host = host
        self._links: set[_Link] = set()
        self._loop = asyncio.new_event_loop()
        self._server: Optional[asyncio.AbstractServer] = None
        self._thread = threading.Thread(
            target=self._loop.run_forever, name="fault-proxy", daemon=True
        )
        self.port = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> FaultProxy:
        self._thread.start()
        self._server = self._call(asyncio.start_server(self._accept, self._host, 0))
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    @property
    def address(self) -> str:
        return f"{self._host}:{self.port}"

    def close(self) -> None:
        """Stop listening, close every connection, stop the thread."""
        if not self._thread.is_alive():
            return

        async def shut() -> None:
            assert self._server is not None
            self._server.close()
            await self._server.wait_closed()
            for link in list(self._links):
                link.close()
            await asyncio.sleep(0)
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

        self._call(shut())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
        self._loop.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ------------------------------------------------------------------ faults

    def clear(self) -> None:
        """Lift every fault: a healthy network again (for connections old and new)."""
        self.up.clear()
        self.down.clear()
        self.refuse = False

    def reset_mid_frame(self, direction: Direction) -> None:
        """Cut the next DATA frame sent in ``direction`` in two, then reset the connection."""
        direction._reset_armed = True

    def reset_all(self) -> int:
        """Reset (RST) every open connection; returns how many there were."""

        async def reset() -> int:
            links = list(self._links)
            for link in links:
                link.reset()
            return len(links)

        return self._call(reset())

    def close_all(self) -> int:
        """Close (FIN) every open connection, as a proxy that restarts would."""

        async def close() -> int:
            links = list(self._links)
            for link in links:
                link.close()
            return len(links)

        return self._call(close())

    @property
    def connections(self) -> int:
        return len(self._links)

    # ------------------------------------------------------------------ internals

    def _call(self, coro):  # type: ignore[no-untyped-def]
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        link = _Link(self, writer)
        if self.refuse:
            link.reset()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            link.reset()
            return
        for w in (writer, up_writer):
            sock = w.get_extra_info("socket")
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        link.writers.append(up_writer)
        self._links.add(link)
        up = asyncio.ensure_future(
            link.pump(self.up, reader, up_writer, FrameCutter(len(HTTP2_PREFACE)))
        )
        down = asyncio.ensure_future(link.pump(self.down, up_reader, writer, FrameCutter(0)))
        link.tasks += [up, down]
        try:
            await asyncio.gather(up, down, return_exceptions=True)
            # both pumps saw EOF: wait for the deliveries, then close
            await asyncio.gather(*link.tasks[:], return_exceptions=True)
        except asyncio.CancelledError:
            pass  # close(): end quietly (asyncio's stream server logs a cancelled handler)
        finally:
            self._links.discard(link)
            link.close()
