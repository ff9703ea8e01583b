"""Transport errors, split by blame.

The rpc layer maps these to gRPC statuses; the transport itself knows nothing of gRPC.
"""

from __future__ import annotations


class TransportError(Exception):
    """Base class of every error raised by the transport layer."""

    def fresh(self) -> TransportError:
        """A copy of this error to raise (same class, message and fields; no traceback).

        A stream's error and a connection's sticky error are kept and raised again on every
        later operation. Raising one instance again and again grows its ``__traceback__`` with
        each raise, and a traceback keeps its frames, and their locals, alive (a handler's
        response generator, the message being sent) for as long as the stream or connection
        holds the error. Raising a copy leaves the kept instance without a traceback.
        """
        clone = type(self).__new__(type(self))
        clone.args = self.args
        clone.__dict__.update(self.__dict__)
        return clone


class ConnectionClosedError(TransportError):
    """The connection is gone (socket closed, GOAWAY, or a protocol error).

    Kept as the connection's *sticky* error: once set, every pending and future stream operation on
    that connection raises it, so one broken socket fails all calls at once instead of hanging them.
    """

    def __init__(
        self, message: str, *, error_code: int | None = None, refused: bool = False
    ) -> None:
        super().__init__(message)
        self.error_code = error_code
        #: True for a stream the peer never processed (above its GOAWAY's last-stream-id):
        #: safe to send again on another connection.
        self.refused = refused


class StreamResetError(TransportError):
    """The stream was reset (RST_STREAM) by the peer or by us, with an HTTP/2 error code."""

    def __init__(self, error_code: int, *, remote: bool = True) -> None:
        who = "peer" if remote else "us"
        super().__init__(f"stream reset by {who} with HTTP/2 error code {error_code}")
        self.error_code = error_code
        self.remote = remote


class RemoteProtocolError(TransportError):
    """The peer broke the HTTP/2 protocol; the connection is being closed with GOAWAY."""


class LocalProtocolError(TransportError):
    """We were asked to do something HTTP/2 does not allow (e.g. send on a closed stream)."""
