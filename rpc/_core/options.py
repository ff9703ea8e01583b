"""grpcio-style option handling shared by Channel and Server.

Options are keyword arguments with grpcio's names, in seconds and bytes; grpcio's own form, a
sequence of ``("grpc.xxx", value)`` pairs (milliseconds where grpcio says ``_ms``), is accepted
too and mapped onto the same keywords. Unknown ``grpc.*`` keys are an error, not silently ignored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Callable, Optional

from codec import is_supported_encoding
from transport import ConnectionOptions

from .._errors import UsageError

DEFAULT_MAX_RECEIVE_MESSAGE_LENGTH = 4 * 1024 * 1024  # grpcio's default

_INT_MAX = 2**31 - 1


def _ms(value: Any) -> Optional[float]:
    """grpcio milliseconds to seconds; INT_MAX (grpcio's "never") becomes None."""
    if value is None or int(value) >= _INT_MAX:
        return None
    return int(value) / 1000.0


Table = Mapping[str, tuple[str, Callable[[Any], Any]]]

#: grpcio option keys understood by both Channel and Server.
COMMON_GRPC_OPTIONS: Table = {
    "grpc.max_receive_message_length": ("max_receive_message_length", int),
    "grpc.max_send_message_length": ("max_send_message_length", int),
    "grpc.max_metadata_size": ("max_metadata_size", int),
    "grpc.keepalive_time_ms": ("keepalive_time", _ms),
    "grpc.keepalive_timeout_ms": ("keepalive_timeout", _ms),
    "grpc.keepalive_permit_without_calls": ("keepalive_permit_without_calls", bool),
    "grpc.http2.max_frame_size": ("max_frame_size", int),
}

CHANNEL_GRPC_OPTIONS: Table = {
    **COMMON_GRPC_OPTIONS,
    "grpc.primary_user_agent": ("user_agent", str),
    "grpc.default_authority": ("authority", str),
    "grpc.ssl_target_name_override": ("server_hostname", str),
    "grpc.initial_reconnect_backoff_ms": ("initial_reconnect_backoff", _ms),
    "grpc.max_reconnect_backoff_ms": ("max_reconnect_backoff", _ms),
    "grpc.min_reconnect_backoff_ms": ("min_connect_timeout", _ms),
    "grpc.service_config": ("service_config", str),
    "grpc.service_config_disable_resolution": ("service_config_disable_resolution", bool),
    "grpc.enable_retries": ("enable_retries", bool),
    "grpc.per_rpc_retry_buffer_size": ("per_rpc_retry_buffer_size", int),
    "grpc.retry_buffer_size": ("retry_buffer_size", int),
    "grpc.lb_policy_name": ("lb_policy_name", str),
    "grpc.dns_min_time_between_resolutions_ms": ("dns_min_time_between_resolutions", _ms),
}

SERVER_GRPC_OPTIONS: Table = {
    **COMMON_GRPC_OPTIONS,
    "grpc.max_concurrent_streams": ("max_concurrent_streams", int),
    "grpc.http2.min_recv_ping_interval_without_data_ms": ("min_ping_interval", _ms),
    "grpc.http2.min_ping_interval_without_data_ms": ("min_ping_interval", _ms),
    "grpc.http2.max_ping_strikes": ("max_ping_strikes", int),
    "grpc.max_connection_idle_ms": ("max_connection_idle", _ms),
    "grpc.max_connection_age_ms": ("max_connection_age", _ms),
    "grpc.max_connection_age_grace_ms": ("max_connection_age_grace", _ms),
}


def merge_grpc_options(
    settings: dict[str, Any], options: Sequence[tuple[str, Any]], table: Table, owner: str
) -> dict[str, Any]:
    """Apply grpcio-form ``options`` onto keyword ``settings``; unknown keys are an error."""
    for key, value in options:
        entry = table.get(key)
        if entry is None:
            raise ValueError(f"unsupported {owner} option {key!r}")
        name, convert = entry
        settings[name] = convert(value)
    return settings


def size_limit(value: Optional[int]) -> Optional[int]:
    """A message size limit: ``None`` or a negative value (grpcio's -1) means unlimited."""
    if value is None or value < 0:
        return None
    return int(value)


_CONNECTION_FIELDS = {
    "max_metadata_size": "max_header_list_size",
    "max_concurrent_streams": "max_concurrent_streams",
    "max_frame_size": "max_frame_size",
    "keepalive_time": "keepalive_time",
    "keepalive_timeout": "keepalive_timeout",
    "keepalive_permit_without_calls": "keepalive_permit_without_calls",
    "min_ping_interval": "min_ping_interval",
    "max_ping_strikes": "max_ping_strikes",
    "max_connection_idle": "max_connection_idle",
    "max_connection_age": "max_connection_age",
    "max_connection_age_grace": "max_connection_age_grace",
}


def connection_options(
    base: Optional[ConnectionOptions], settings: Mapping[str, Any]
) -> ConnectionOptions:
    """``base`` (or the defaults) with each HTTP/2 setting given (not None) in ``settings``."""
    changes = {
        field: settings[name]
        for name, field in _CONNECTION_FIELDS.items()
        if settings.get(name) is not None
    }
    base = base or ConnectionOptions()
    return dataclasses.replace(base, **changes) if changes else base


def normalize_compression(compression: Optional[str]) -> Optional[str]:
    """``identity`` and None mean no compression; anything else must be supported."""
    if compression == "identity":
        return None
    if not is_supported_encoding(compression):
        raise UsageError(f"unsupported compression {compression!r}: use gzip or deflate")
    return compression
