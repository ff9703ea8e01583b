"""Two connection cores joined by an in-memory link: protocol tests without sockets."""

from __future__ import annotations

from transport import ConnectionCore, ConnectionOptions, Event


class CorePair:
    """A client core and a server core; ``pump()`` moves bytes until both are quiet."""

    def __init__(
        self,
        client_options: ConnectionOptions | None = None,
        server_options: ConnectionOptions | None = None,
    ) -> None:
        self.client = ConnectionCore(client_side=True, options=client_options)
        self.server = ConnectionCore(client_side=False, options=server_options)
        self.client_events: list[Event] = []
        self.server_events: list[Event] = []
        self.client.initiate()
        self.server.initiate()
        self.pump()

    def pump(self) -> None:
        for _ in range(1000):
            to_server = self.client.data_to_send()
            to_client = self.server.data_to_send()
            if not to_server and not to_client:
                return
            if to_server:
                self.server_events += self.server.receive_data(to_server)
            if to_client:
                self.client_events += self.client.receive_data(to_client)
        raise AssertionError("link never went quiet")

    def take_client_events(self) -> list[Event]:
        events, self.client_events = self.client_events, []
        return events

    def take_server_events(self) -> list[Event]:
        events, self.server_events = self.server_events, []
        return events


REQUEST = [
    (b":method", b"POST"),
    (b":scheme", b"http"),
    (b":path", b"/pkg.Svc/Method"),
    (b":authority", b"localhost"),
    (b"te", b"trailers"),
    (b"content-type", b"application/grpc"),
]
RESPONSE = [(b":status", b"200"), (b"content-type", b"application/grpc")]
TRAILERS = [(b"grpc-status", b"0")]
