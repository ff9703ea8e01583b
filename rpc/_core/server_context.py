"""The handler's ``context``: one surface over a ``ServerCallCore``, for every way of waiting.

``ServicerContextBase`` is grpcio's context API that does not wait, once: each method is the
call core's. The names that wait (``read``, ``write``, ``send_initial_metadata``, ``abort``,
``abort_with_status``) exist once per way of waiting, each a thin drive of the core's program:
``rpc.ServicerContext`` (asyncio, ``rpc._aio.server_call``) awaits them;
``ThreadServicerContext`` below gives grpcio's synchronous form to plain ``def`` handlers, with
``_drive`` (run a program to its end from this thread) and ``_owned`` (run a step where the
call's state is changed) left to its two drivers: the blocking server's (in the handler's own
thread, under the call's lock: ``rpc.sync.ServicerContext``) and the asyncio server's for ``def``
handlers in its thread pool (on the event loop).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from typing import Any, Callable, NoReturn, Optional

from codec import Metadata, StatusCode

from .messages import EOF
from .server_call import Program, ServerCallCore


class ServicerContextBase:
    """grpcio's server context API, the part every shell shares (no waiting)."""

    def __init__(self, call: ServerCallCore) -> None:
        self._call = call

    def _owned(self, function: Callable[..., Any], *args: Any) -> Any:
        """Run ``function(*args)`` where the call's state may be changed (here: at once)."""
        return function(*args)

    # ------------------------------------------------------------------ the call's request

    def invocation_metadata(self) -> Metadata:
        """The metadata the client sent with the call."""
        return self._call.invocation_metadata()

    def method(self) -> str:
        """The call's ``/package.Service/Method`` path."""
        return self._call.method()

    def peer(self) -> str:
        """The client's address, e.g. ``ipv4:127.0.0.1:53712``."""
        return self._call.peer()

    def auth_context(self) -> dict[str, list[bytes]]:
        """grpcio's authentication properties: TLS, and the client certificate under mTLS."""
        return self._call.auth_context()

    def peer_identities(self) -> Optional[list[bytes]]:
        """The client's certificate identities (SANs, else common name); None without one."""
        return self._call.peer_identities()

    def peer_identity_key(self) -> Optional[str]:
        """The ``auth_context()`` key that ``peer_identities()`` come from, or None."""
        return self._call.peer_identity_key()

    # ------------------------------------------------------------------ the call's state

    def time_remaining(self) -> Optional[float]:
        """Seconds left before the client's deadline, or None when it set none."""
        return self._call.time_remaining()

    def cancelled(self) -> bool:
        """True once the client cancelled the call or its deadline passed."""
        return self._call.cancelled()

    def is_active(self) -> bool:
        """grpcio's name: the call is still going (not finished, not cancelled)."""
        return self._call.is_active()

    def done(self) -> bool:
        """True once the call has ended."""
        return self._call.done()

    # ------------------------------------------------------------------ the status to send

    def set_code(self, code: StatusCode) -> None:
        """The status code to end with (grpcio's ``grpc.StatusCode`` values are taken too)."""
        self._call.set_code(code)

    def set_details(self, details: str) -> None:
        self._call.set_details(details)

    def code(self) -> Optional[StatusCode]:
        return self._call.code()

    def details(self) -> str:
        return self._call.details()

    def set_trailing_metadata(self, metadata: Any) -> None:
        self._call.set_trailing_metadata(metadata)

    def trailing_metadata(self) -> Any:
        return self._call.trailing_metadata()

    def set_compression(self, compression: Optional[str]) -> None:
        """Compress this call's responses with ``compression`` (if the client accepts it)."""
        self._call.set_compression(compression)

    def disable_next_message_compression(self) -> None:
        """Send the next response message uncompressed, even in a compressed call."""
        self._call.disable_next_message_compression()

    # ------------------------------------------------------------------ the end of the call

    def add_callback(self, callback: Callable[[], Any]) -> bool:
        """Call ``callback()`` when the call ends (grpcio's synchronous form: no argument).

        False, and the callback is never called, if the call has already ended.
        """
        return bool(self._owned(self._call.add_callback, callback))

    def add_done_callback(self, callback: Callable[[Any], Any]) -> None:
        """Call ``callback(context)`` when the call ends, however it ends (grpc.aio's form).

        Called at once if the call has already ended.
        """
        if not self._owned(self._call.add_callback, functools.partial(callback, self)):
            callback(self)


class ThreadServicerContext(ServicerContextBase):
    """The context of plain ``def`` handlers (grpcio's synchronous names); the driver decides
    how a program waits (``_drive``) and where the call's state is changed (``_owned``)."""

    def _drive(self, program: Program) -> Any:
        """Run ``program`` to its end, waiting in this thread; its value."""
        raise NotImplementedError

    def read(self) -> Any:
        """The next request message, or ``rpc.EOF`` once the client half-closed."""
        return self._drive(self._call.read_request())

    def write(self, message: Any) -> None:
        """Send one response message."""
        self._drive(self._call.send_message(message))

    def send_initial_metadata(self, metadata: Any) -> None:
        """Send the response headers now, with ``metadata``."""
        self._owned(self._call.send_initial_metadata, metadata)

    def abort(self, code: StatusCode, details: str = "", trailing_metadata: Any = None) -> NoReturn:
        """End the call now with ``code`` (not OK) and ``details``."""
        self._call.abort(code, details, trailing_metadata)

    def abort_with_status(self, status: Any) -> NoReturn:
        """End the call with a grpcio-style status object (rich error details included)."""
        self._call.abort_with_status(status)


def request_iterator(context: ThreadServicerContext) -> Iterator[Any]:
    """The requests, as the iterator a request-streaming ``def`` handler gets: ``read()`` until
    ``EOF``, through whichever driver ``context`` has."""
    while True:
        request = context.read()
        if request is EOF:
            return
        yield request
