"""Connectivity states of a channel and of each of its subchannels (gRPC's
doc/connectivity-semantics-and-api.md), with grpcio's ``grpc.ChannelConnectivity`` values."""

from __future__ import annotations

import enum


class ChannelConnectivity(enum.Enum):
    """A channel's (or subchannel's) state, as ``grpc.ChannelConnectivity`` names them.

    IDLE: no connection and none wanted yet (a new channel, or pick_first after its connection
    was lost); the next call or ``get_state(try_to_connect=True)`` starts connecting.
    CONNECTING: resolving or connecting; calls wait. READY: calls go out. TRANSIENT_FAILURE:
    attempts failed and are retried with backoff; fail-fast calls fail UNAVAILABLE at once,
    wait-for-ready calls wait. SHUTDOWN: the channel is closed.
    """

    IDLE = (0, "idle")
    CONNECTING = (1, "connecting")
    READY = (2, "ready")
    TRANSIENT_FAILURE = (3, "transient failure")
    SHUTDOWN = (4, "shutdown")
