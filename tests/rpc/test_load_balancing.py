"""Targets, resolvers and load balancing against real backends: h2rpc servers and grpcio
servers, with both client APIs (``rpc.Channel`` driven on a loop of the test's, and
``rpc.sync.Channel``)."""

from __future__ import annotations

import asyncio
import collections
import itertools
import os
import socket
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from concurrent import futures
from typing import Any, Callable, Optional

import pytest

import rpc
from rpc.services import health

from .helpers import wait_until

IDLE = rpc.ChannelConnectivity.IDLE
CONNECTING = rpc.ChannelConnectivity.CONNECTING
READY = rpc.ChannelConnectivity.READY
TRANSIENT_FAILURE = rpc.ChannelConnectivity.TRANSIENT_FAILURE

WHO = "/lb.Test/Who"
SLOW = "/lb.Test/Slow"  # answers after 0.5 s

try:
    import grpc
    from grpc_health.v1 import health as grpc_health
    from grpc_health.v1 import health_pb2 as grpc_health_pb2
    from grpc_health.v1 import health_pb2_grpc as grpc_health_pb2_grpc
except ImportError:  # PyPy: no grpcio
    grpc = None

KINDS = ["h2rpc", pytest.param("grpcio", marks=pytest.mark.skipif(grpc is None, reason="grpcio"))]
APIS = ["aio", "sync"]


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


class Backend:
    """A server that answers ``/lb.Test/Who`` with its name, with a health service."""

    def __init__(self, kind: str, name: str, address: str = "127.0.0.1:0") -> None:
        self.kind = kind
        self.name = name
        if kind == "h2rpc":
            who = rpc.unary_unary_rpc_method_handler(lambda request, context: name.encode())
            slow = rpc.unary_unary_rpc_method_handler(_slow(name))
            self.server: Any = rpc.sync.Server(
                [rpc.method_handlers_generic_handler("lb.Test", {"Who": who, "Slow": slow})],
                max_workers=8,
            )
            self.health: Any = health.enable_health(self.server)
        else:
            assert grpc is not None

            class Handler(grpc.GenericRpcHandler):
                def service(self, details: Any) -> Any:
                    if details.method == WHO:
                        return grpc.unary_unary_rpc_method_handler(
                            lambda request, context: name.encode()
                        )
                    if details.method == SLOW:
                        return grpc.unary_unary_rpc_method_handler(_slow(name))
                    return None

            self.server = grpc.server(futures.ThreadPoolExecutor(8))
            self.server.add_generic_rpc_handlers([Handler()])
            self.health = grpc_health.HealthServicer()
            grpc_health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        self.port = self.server.add_insecure_port(address)
        self.address = address if address.startswith("unix") else f"127.0.0.1:{self.port}"
        self.server.start()

    def set_serving(self, serving: bool) -> None:
        if self.kind == "h2rpc":
            self.health.set("", health.SERVING if serving else health.NOT_SERVING)
        else:
            status = grpc_health_pb2.HealthCheckResponse
            self.health.set("", status.SERVING if serving else status.NOT_SERVING)

    def stop(self, grace: Optional[float] = 0) -> None:
        if self.kind == "h2rpc":
            self.server.stop(grace)
        else:
            self.server.stop(grace).wait(5)


def _slow(name: str) -> Callable[[bytes, Any], bytes]:
    def handler(request: bytes, context: Any) -> bytes:
        time.sleep(0.5)
        return name.encode()

    return handler


@pytest.fixture
def backends(request: Any) -> Iterator[Callable[..., Backend]]:
    made: list[Backend] = []

    def make(kind: str, name: str, address: str = "127.0.0.1:0") -> Backend:
        backend = Backend(kind, name, address)
        made.append(backend)
        return backend

    yield make
    for backend in made:
        backend.stop()


class Client:
    """One face for both APIs: the async channel runs on a loop of the test's."""

    def __init__(self, api: str, target: str, **options: Any) -> None:
        self.api = api
        if api == "aio":
            self.loop = asyncio.new_event_loop()

            async def make() -> rpc.Channel:
                return rpc.Channel(target, **options)

            self.channel: Any = self.loop.run_until_complete(make())
        else:
            self.channel = rpc.sync.Channel(target, **options)
        self.who = self.channel.unary_unary(WHO)

    def call(self, timeout: float = 5.0, **kwargs: Any) -> str:
        if self.api == "aio":

            async def call() -> bytes:
                return await self.who(b"", timeout=timeout, **kwargs)  # type: ignore[no-any-return]

            return self.loop.run_until_complete(call()).decode()
        return self.who(b"", timeout=timeout, **kwargs).decode()  # type: ignore[no-any-return]

    def calls(self, n: int) -> collections.Counter[str]:
        return collections.Counter(self.call() for _ in range(n))

    def state(self, try_to_connect: bool = False) -> rpc.ChannelConnectivity:
        if self.api == "aio":

            async def look() -> rpc.ChannelConnectivity:
                await asyncio.sleep(0.01)  # let its tasks run
                return self.channel.get_state(try_to_connect)  # type: ignore[no-any-return]

            return self.loop.run_until_complete(look())
        return self.channel.get_state(try_to_connect)  # type: ignore[no-any-return]

    def wait_state(self, wanted: rpc.ChannelConnectivity, timeout: float = 10.0) -> None:
        end = time.monotonic() + timeout
        while self.state() is not wanted:
            assert time.monotonic() < end, f"still {self.state()}, not {wanted}"
            time.sleep(0.01)

    def until_all_seen(self, names: set[str], limit: int = 2000) -> None:
        """Call until every backend in ``names`` answered (each connects at its own pace)."""
        seen: set[str] = set()
        for _ in range(limit):
            seen.add(self.call())
            if seen >= names:
                return
            if self.api == "sync":
                time.sleep(0.001)
        raise AssertionError(f"only {seen} answered")

    def close(self) -> None:
        if self.api == "aio":
            self.loop.run_until_complete(self.channel.close())
            self.loop.close()
        else:
            self.channel.close()


@pytest.fixture
def clients() -> Iterator[Callable[..., Client]]:
    made: list[Client] = []

    def make(api: str, target: str, **options: Any) -> Client:
        client = Client(api, target, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()


def dead_port() -> int:
    """A loopback port nobody listens on (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def ipv4(*ports: int) -> str:
    return "ipv4:" + ",".join(f"127.0.0.1:{port}" for port in ports)


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("kind", KINDS)
def test_round_robin_spreads_calls_evenly_over_three_backends(
    api: str, kind: str, backends: Any, clients: Any
) -> None:
    servers = [backends(kind, f"b{i}") for i in range(3)]
    client = clients(api, ipv4(*(s.port for s in servers)), lb_policy_name="round_robin")
    client.until_all_seen({"b0", "b1", "b2"})
    # Every backend READY: the picker takes them in turn, so the spread is exact.
    assert client.calls(300) == {"b0": 100, "b1": 100, "b2": 100}
    assert client.state() is READY


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("kind", KINDS)
def test_pick_first_uses_the_first_address_and_falls_over_when_it_is_down(
    api: str, kind: str, backends: Any, clients: Any
) -> None:
    one, two = backends(kind, "one"), backends(kind, "two")
    client = clients(api, ipv4(dead_port(), one.port, two.port))  # pick_first: the default
    assert client.calls(20) == {"one": 20}
    one.stop()  # the connection is lost: IDLE, then the next call starts a new pass
    client.wait_state(IDLE)
    assert client.call(wait_for_ready=True) == "two"
    assert client.calls(20) == {"two": 20}


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("kind", KINDS)
def test_round_robin_moves_new_calls_off_a_backend_killed_mid_run(
    api: str, kind: str, backends: Any, clients: Any
) -> None:
    servers = [backends(kind, f"b{i}") for i in range(3)]
    client = clients(
        api, ipv4(*(s.port for s in servers)), lb_policy_name="round_robin", **FAST_BACKOFF
    )
    client.until_all_seen({"b0", "b1", "b2"})
    servers[1].stop()
    # Calls go on (a call picked onto the dying connection before its GOAWAY is retried
    # transparently: the server never saw it), and only to the two left.
    after = client.calls(120)
    assert set(after) <= {"b0", "b2"} and sum(after.values()) == 120
    # While b1 is down its subchannel is retried with backoff, the channel stays READY.
    assert client.state() is READY


FAST_BACKOFF = {"initial_reconnect_backoff": 0.05, "max_reconnect_backoff": 0.2}


@pytest.mark.parametrize("kind", KINDS)
def test_states_async_wait_for_state_change_through_failure_and_recovery(kind: str) -> None:
    port = dead_port()

    async def main() -> None:
        channel = rpc.Channel(f"127.0.0.1:{port}", **FAST_BACKOFF)
        seen = [channel.get_state()]
        assert seen == [IDLE]
        assert channel.get_state(try_to_connect=True) is CONNECTING
        seen.append(CONNECTING)
        while seen[-1] is not TRANSIENT_FAILURE:
            await asyncio.wait_for(channel.wait_for_state_change(seen[-1]), 10)
            seen.append(channel.get_state())
        with pytest.raises(rpc.RpcError) as info:  # fail-fast: UNAVAILABLE at once
            await channel.unary_unary(WHO)(b"", timeout=5)
        assert info.value.code() == rpc.StatusCode.UNAVAILABLE
        backend = await asyncio.get_running_loop().run_in_executor(
            None, Backend, kind, "late", f"127.0.0.1:{port}"
        )
        try:
            while seen[-1] is not READY:  # the backoff's next attempt connects
                await asyncio.wait_for(channel.wait_for_state_change(seen[-1]), 10)
                seen.append(channel.get_state())
            assert await channel.unary_unary(WHO)(b"", timeout=5) == b"late"
        finally:
            await channel.close()
            backend.stop()
        assert channel.get_state() is rpc.ChannelConnectivity.SHUTDOWN
        # Sticky TRANSIENT_FAILURE: from the first failure on, no CONNECTING until READY.
        first_failure = seen.index(TRANSIENT_FAILURE)
        assert seen[:first_failure] == [IDLE, CONNECTING]
        assert set(seen[first_failure:-1]) == {TRANSIENT_FAILURE}

    asyncio.run(main())


@pytest.mark.parametrize("kind", KINDS)
def test_states_sync_subscribe_through_failure_and_recovery(kind: str) -> None:
    port = dead_port()
    channel = rpc.sync.Channel(f"127.0.0.1:{port}", **FAST_BACKOFF)
    seen: list[rpc.ChannelConnectivity] = []
    lock = threading.Lock()

    def record(state: rpc.ChannelConnectivity) -> None:
        with lock:
            seen.append(state)

    channel.subscribe(record, try_to_connect=True)
    backend = None
    try:
        wait_until(lambda: TRANSIENT_FAILURE in seen, timeout=10)
        with pytest.raises(rpc.RpcError) as info:
            channel.unary_unary(WHO)(b"", timeout=5)
        assert info.value.code() == rpc.StatusCode.UNAVAILABLE
        backend = Backend(kind, "late", f"127.0.0.1:{port}")
        wait_until(lambda: READY in seen, timeout=10)
        assert channel.unary_unary(WHO)(b"", timeout=5) == b"late"
        channel.unsubscribe(record)
    finally:
        channel.close()
        if backend is not None:
            backend.stop()
    assert seen[0] in (CONNECTING, IDLE) and seen[-1] is READY
    assert seen.index(TRANSIENT_FAILURE) < seen.index(READY)


@pytest.mark.parametrize("api", APIS)
def test_wait_for_ready_waits_through_transient_failure(api: str, clients: Any) -> None:
    port = dead_port()
    client = clients(api, f"127.0.0.1:{port}", **FAST_BACKOFF)
    client.state(try_to_connect=True)
    client.wait_state(TRANSIENT_FAILURE)
    with pytest.raises(rpc.RpcError) as info:
        client.call(timeout=0.3, wait_for_ready=True)
    assert info.value.code() == rpc.StatusCode.DEADLINE_EXCEEDED


class ListResolver(rpc.Resolver):
    """A resolver whose answer the test changes; counts how often it was asked."""

    def __init__(self, addresses: Sequence[str]) -> None:
        self.addresses = list(addresses)
        self.asked = 0

    def resolve(self, target: rpc.Target) -> list[str]:
        self.asked += 1
        return list(self.addresses)


_schemes = itertools.count()


@pytest.fixture
def scheme() -> Iterator[str]:
    name = f"test-{os.getpid()}-{next(_schemes)}"
    yield name
    rpc.unregister_resolver(name)


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("kind", KINDS)
def test_a_registered_resolver_is_asked_again_when_a_connection_is_lost(
    api: str, kind: str, backends: Any, clients: Any, scheme: str
) -> None:
    old, new = backends(kind, "old"), backends(kind, "new")
    resolver = ListResolver([old.address])
    rpc.register_resolver(scheme, resolver)
    client = clients(api, f"{scheme}:///my-service", dns_min_time_between_resolutions=0.0)
    assert client.calls(5) == {"old": 5}
    assert resolver.asked == 1
    resolver.addresses = [new.address]
    old.stop()  # lost: the channel asks the resolver again, and moves to the new list
    assert client.call(wait_for_ready=True) == "new"
    assert resolver.asked >= 2
    assert client.calls(5) == {"new": 5}


@pytest.mark.parametrize("api", APIS)
def test_a_resolver_that_fails_or_answers_nothing_fails_calls_saying_why(
    api: str, clients: Any, scheme: str
) -> None:
    resolver = ListResolver([])
    rpc.register_resolver(scheme, resolver)
    client = clients(api, f"{scheme}:///nothing")
    with pytest.raises(rpc.RpcError) as info:
        client.call()
    assert info.value.code() == rpc.StatusCode.UNAVAILABLE
    assert f"name resolution failed for {scheme}:///nothing" in info.value.details()
    assert "empty address list" in info.value.details()


@pytest.mark.parametrize("api", APIS)
def test_a_name_that_does_not_resolve_is_unavailable(api: str, clients: Any) -> None:
    client = clients(api, "dns:///no-such-host.invalid:50051")
    with pytest.raises(rpc.RpcError) as info:
        client.call()
    assert info.value.code() == rpc.StatusCode.UNAVAILABLE
    assert "name resolution failed for dns:///no-such-host.invalid:50051" in info.value.details()


def _target_forms() -> list[Any]:
    forms = ["ipv4", "dns-localhost", "unix", "unix-absolute", "unix-abstract", "registered"]
    if _ipv6_loopback():
        forms.append("ipv6")
    return forms


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("form", _target_forms())
def test_every_target_form_reaches_its_backends(
    form: str, api: str, kind: str, backends: Any, clients: Any, scheme: str
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        if form in ("unix", "unix-absolute"):
            path = os.path.join(tmp, "s.sock")
            backends(kind, "u", f"unix:{path}")
            target = f"unix:{path}" if form == "unix" else f"unix://{path}"
            expected = {"u"}
        elif form == "unix-abstract":
            name = f"h2rpc-test-{os.getpid()}-{next(_schemes)}"
            backends(kind, "u", f"unix-abstract:{name}")
            target, expected = f"unix-abstract:{name}", {"u"}
        elif form == "ipv6":
            a = backends(kind, "a", "[::1]:0")
            b = backends(kind, "b", "[::1]:0")
            target, expected = f"ipv6:[::1]:{a.port},[::1]:{b.port}", {"a", "b"}
        elif form == "dns-localhost":
            a = backends(kind, "a")
            target, expected = f"dns:///localhost:{a.port}", {"a"}
        elif form == "registered":
            a, b = backends(kind, "a"), backends(kind, "b")
            rpc.register_resolver(scheme, ListResolver([a.address, b.address]))
            target, expected = f"{scheme}:///svc", {"a", "b"}
        else:
            a, b = backends(kind, "a"), backends(kind, "b")
            target, expected = ipv4(a.port, b.port), {"a", "b"}
        client = clients(api, target, lb_policy_name="round_robin")
        client.until_all_seen(expected)
        assert set(client.calls(10)) == expected


def test_dns_gives_every_address_of_a_name() -> None:
    # localhost here: 127.0.0.1, and ::1 where /etc/hosts says so.
    infos = socket.getaddrinfo("localhost", 1, type=socket.SOCK_STREAM)
    hosts = list(dict.fromkeys(str(info[4][0]) for info in infos))
    channel = rpc.sync.Channel("localhost:1")
    try:
        assert [a.host for a in channel._resolver.resolve(channel._target)] == hosts
    finally:
        channel.close()

    async def main() -> None:
        async with rpc.Channel("localhost:1", **FAST_BACKOFF) as achannel:
            achannel.get_state(try_to_connect=True)
            await asyncio.sleep(0.2)
            assert [sc.address.host for sc in achannel._balancer.subchannels] == hosts

    asyncio.run(main())


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("kind", KINDS)
def test_health_aware_round_robin_stops_calling_a_not_serving_backend(
    api: str, kind: str, backends: Any, clients: Any
) -> None:
    servers = [backends(kind, f"b{i}") for i in range(3)]
    client = clients(
        api,
        ipv4(*(s.port for s in servers)),
        lb_policy_name="round_robin",
        _health_check_service_name="",
    )
    client.until_all_seen({"b0", "b1", "b2"})
    servers[1].set_serving(False)
    deadline = time.monotonic() + 10
    while True:  # the Watch stream brings NOT_SERVING
        if "b1" not in client.calls(6):
            break
        assert time.monotonic() < deadline, "b1 still gets calls"
    assert client.calls(60) == {"b0": 30, "b2": 30}
    servers[1].set_serving(True)
    client.until_all_seen({"b0", "b1", "b2"})
    assert client.calls(30) == {"b0": 10, "b1": 10, "b2": 10}


@pytest.mark.parametrize("api", APIS)
def test_health_checking_against_a_server_without_the_health_service_counts_it_healthy(
    api: str, clients: Any
) -> None:
    who = rpc.unary_unary_rpc_method_handler(lambda request, context: b"plain")
    server = rpc.sync.Server([rpc.method_handlers_generic_handler("lb.Test", {"Who": who})])
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        client = clients(
            api, ipv4(port), lb_policy_name="round_robin", _health_check_service_name="x"
        )
        assert client.call(wait_for_ready=True) == "plain"  # Watch was UNIMPLEMENTED
    finally:
        server.stop(0)


def test_grpcio_option_names() -> None:
    async def main() -> None:
        channel = rpc.Channel(
            "127.0.0.1:1",
            options=[
                ("grpc.lb_policy_name", "round_robin"),
                ("grpc.dns_min_time_between_resolutions_ms", 1500),
            ],
        )
        assert channel._balancer.policy == "round_robin"
        assert channel._balancer._min_resolution_interval == 1.5
        await channel.close()

    asyncio.run(main())


def _aged_backend(name: str) -> tuple[rpc.sync.Server, int]:
    """An h2rpc backend that ends each connection with GOAWAY after 0.3 s (max_connection_age)."""
    who = rpc.unary_unary_rpc_method_handler(lambda request, context: name.encode())
    server = rpc.sync.Server(
        [rpc.method_handlers_generic_handler("lb.Test", {"Who": who})],
        max_connection_age=0.3,
        max_connection_age_grace=1.0,
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, port


@pytest.mark.parametrize("api", APIS)
def test_pick_first_goes_idle_after_a_goaway_and_the_next_call_reconnects(
    api: str, clients: Any
) -> None:
    server, port = _aged_backend("aged")
    try:
        client = clients(api, f"127.0.0.1:{port}")
        assert client.call() == "aged"
        first = client.channel._conn
        client.wait_state(IDLE)  # GOAWAY, then the connection closed: no reconnection by itself
        assert client.channel._conn is None
        assert client.call() == "aged"
        assert client.channel._conn is not first
    finally:
        server.stop(0)


@pytest.mark.parametrize("api", APIS)
def test_round_robin_reconnects_after_a_goaway_without_waiting_for_a_call(
    api: str, clients: Any
) -> None:
    server, port = _aged_backend("aged")
    try:
        client = clients(api, ipv4(port), lb_policy_name="round_robin")
        assert client.call() == "aged"
        (subchannel,) = client.channel._balancer.subchannels
        first = subchannel.conn
        end = time.monotonic() + 10
        while subchannel.conn is first or subchannel.conn is None:  # a new one, by itself
            assert time.monotonic() < end, "no new connection after the GOAWAY"
            client.state()
            time.sleep(0.01)
        assert client.state() is READY
        assert client.call() == "aged"
    finally:
        server.stop(0)


class AuthorityRecorder:
    """A bare HTTP/2 server that records each request's ``:authority`` and answers UNIMPLEMENTED
    (so that grpcio's client and ours can be compared on the wire)."""

    def __init__(self, family: int, address: Any) -> None:
        import h2.config
        import h2.connection
        import h2.events

        self._h2 = (h2.config, h2.connection, h2.events)
        self.seen: list[bytes] = []
        self.sock = socket.socket(family, socket.SOCK_STREAM)
        self.sock.bind(address)
        self.sock.listen(8)
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, sock: socket.socket) -> None:
        config, connection, events = self._h2
        h2conn = connection.H2Connection(config.H2Configuration(client_side=False))
        h2conn.initiate_connection()
        with sock:
            sock.sendall(h2conn.data_to_send())
            while True:
                try:
                    data = sock.recv(65535)
                except OSError:
                    return
                if not data:
                    return
                for event in h2conn.receive_data(data):
                    if isinstance(event, events.RequestReceived):
                        self.seen.append(dict(event.headers)[b":authority"])
                        h2conn.send_headers(
                            event.stream_id,
                            [
                                (":status", "200"),
                                ("content-type", "application/grpc"),
                                ("grpc-status", "12"),
                            ],
                            end_stream=True,
                        )
                sock.sendall(h2conn.data_to_send())

    def close(self) -> None:
        self.sock.close()


@pytest.mark.skipif(grpc is None, reason="grpcio")
@pytest.mark.parametrize("form", ["ip", "dns", "dns-no-scheme", "ipv4-list", "unix", "abstract"])
def test_authority_is_what_grpcio_sends_for_each_target_form(form: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        if form in ("unix", "abstract"):
            name = f"h2rpc-authority-{os.getpid()}"
            path = os.path.join(tmp, "a.sock") if form == "unix" else "\0" + name
            recorder = AuthorityRecorder(socket.AF_UNIX, path)
            target = f"unix:{path}" if form == "unix" else f"unix-abstract:{name}"
        else:
            recorder = AuthorityRecorder(socket.AF_INET, ("127.0.0.1", 0))
            port = recorder.sock.getsockname()[1]
            target = {
                "ip": f"127.0.0.1:{port}",
                "dns": f"dns:///localhost:{port}",
                "dns-no-scheme": f"localhost:{port}",
                "ipv4-list": f"ipv4:127.0.0.1:{port},127.0.0.1:{port}",
            }[form]
        try:
            with grpc.insecure_channel(target) as gchannel:
                with pytest.raises(grpc.RpcError):
                    gchannel.unary_unary(WHO)(b"", timeout=5)
            with rpc.sync.Channel(target) as channel:
                with pytest.raises(rpc.RpcError):
                    channel.unary_unary(WHO)(b"", timeout=5)
        finally:
            recorder.close()
        grpcio_sent, ours = recorder.seen
        assert ours == grpcio_sent


@pytest.mark.parametrize("api", APIS)
@pytest.mark.parametrize("kind", KINDS)
def test_a_call_in_flight_stays_on_its_backend_while_new_calls_move(
    api: str, kind: str, backends: Any
) -> None:
    one, two = backends(kind, "one"), backends(kind, "two")
    target = ipv4(one.port, two.port)  # pick_first: every call to "one" while it serves

    def stop_one() -> None:
        time.sleep(0.1)  # the slow call is at "one"
        one.stop(grace=5)  # GOAWAY: no new call; the one in flight finishes

    if api == "sync":
        with rpc.sync.Channel(target) as channel:
            assert channel.unary_unary(WHO)(b"", timeout=5) == b"one"
            slow = channel.unary_unary(SLOW).future(b"", timeout=5)
            stopper = threading.Thread(target=stop_one)
            stopper.start()
            wait_until(lambda: channel.get_state() is not READY, timeout=10)  # the GOAWAY came
            after = [channel.unary_unary(WHO)(b"", timeout=5, wait_for_ready=True)]
            assert slow.result() == b"one"
            stopper.join(10)
            after.append(channel.unary_unary(WHO)(b"", timeout=5))
    else:

        async def main() -> tuple[bytes, list[bytes]]:
            async with rpc.Channel(target) as channel:
                assert await channel.unary_unary(WHO)(b"", timeout=5) == b"one"
                slow = asyncio.ensure_future(channel.unary_unary(SLOW)(b"", timeout=5))
                stopper = asyncio.get_running_loop().run_in_executor(None, stop_one)
                end = time.monotonic() + 10
                while channel.get_state() is READY:  # until the GOAWAY came
                    assert time.monotonic() < end
                    await asyncio.sleep(0.01)
                first = await channel.unary_unary(WHO)(b"", timeout=5, wait_for_ready=True)
                result = await slow
                await stopper
                return result, [first, await channel.unary_unary(WHO)(b"", timeout=5)]

        result, after = asyncio.run(main())
        assert result == b"one"
    assert after == [b"two", b"two"]
