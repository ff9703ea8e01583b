"""The gRPC service config (grpc/grpc ``doc/service_config.md``, gRFC A6 for retries).

A service config is JSON a service owner gives its clients (here as the channel option
``service_config=`` or grpcio's ``("grpc.service_config", json)``). It says, per method, a default
timeout, wait-for-ready, message size limits and a retry *or* hedging policy; per channel, retry
throttling, the load-balancing policy and the health-checked service name.

gRPC rejects a config as a whole when any part of it is invalid (a half-applied config would make
calls behave in ways nobody wrote down), so :func:`parse_service_config` raises ``ValueError``
naming the offending field. Fields gRPC does not know are ignored, as proto3 JSON parsing does.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_DOWN, Decimal
from types import MappingProxyType
from typing import Any, Optional, Union

from codec import StatusCode

#: Both policies' ``maxAttempts`` above this are treated as this (gRFC A6, "Limits on Retries").
MAX_ATTEMPTS_LIMIT = 5
#: The load-balancing policies a config may pick when the caller names none.
DEFAULT_LB_POLICIES = ("pick_first", "round_robin")

# proto3 JSON Duration: seconds with up to 9 fractional digits and an "s" suffix.
_DURATION = re.compile(r"-?[0-9]+(\.[0-9]{1,9})?s")
_MAX_DURATION_SECONDS = 315_576_000_000
_UINT32_MAX = 2**32 - 1


@dataclass(frozen=True)
class RetryPolicy:
    """Retry a failed attempt whose status is retryable, after an exponential backoff."""

    max_attempts: int
    initial_backoff: float
    max_backoff: float
    backoff_multiplier: float
    retryable_status_codes: frozenset[StatusCode]


@dataclass(frozen=True)
class HedgingPolicy:
    """Send up to ``max_attempts`` copies, ``hedging_delay`` apart, until one answers."""

    max_attempts: int
    hedging_delay: float
    non_fatal_status_codes: frozenset[StatusCode]


@dataclass(frozen=True)
class MethodConfig:
    """What the config says for one method; ``None`` fields leave the channel's own setting."""

    timeout: Optional[float] = None
    wait_for_ready: Optional[bool] = None
    max_request_message_bytes: Optional[int] = None
    max_response_message_bytes: Optional[int] = None
    retry_policy: Optional[RetryPolicy] = None
    hedging_policy: Optional[HedgingPolicy] = None


@dataclass(frozen=True)
class RetryThrottling:
    """Per-channel tokens: retries and hedges stop while ``tokens <= max_tokens / 2``.

    ``token_ratio`` keeps three decimal places (more are ignored, as gRFC A6 says), so it is also
    given as ``milli_token_ratio``, an integer count of thousandths that accounting can use exactly.
    """

    max_tokens: int
    token_ratio: float

    @property
    def milli_token_ratio(self) -> int:
        return round(self.token_ratio * 1000)


_EMPTY: Mapping[tuple[str, str], MethodConfig] = MappingProxyType({})
_NO_LB_CONFIG: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class ServiceConfig:
    """A parsed, validated service config.

    ``lb_policy`` is the chosen load-balancing policy name (``None``: the config names none, so the
    channel's default, ``pick_first``), ``lb_config`` that policy's own JSON object, and
    ``health_check_service_name`` the service to health-check (``None``: no health checking).
    """

    method_configs: Mapping[tuple[str, str], MethodConfig] = field(default_factory=lambda: _EMPTY)
    retry_throttling: Optional[RetryThrottling] = None
    lb_policy: Optional[str] = None
    lb_config: Mapping[str, Any] = field(default_factory=lambda: _NO_LB_CONFIG)
    health_check_service_name: Optional[str] = None

    def method_config(self, path: str) -> Optional[MethodConfig]:
        """The config for ``/package.Service/Method``: that method's entry, else the service's
        (``{"service": ...}`` alone), else the default (an empty name), else ``None``."""
        configs = self.method_configs
        if not configs:
            return None
        service, _, method = path[1:].partition("/") if path[:1] == "/" else ("", "", "")
        return configs.get((service, method)) or configs.get((service, "")) or configs.get(("", ""))


EMPTY_SERVICE_CONFIG = ServiceConfig()


def parse_service_config(
    config: Union[str, bytes, Mapping[str, Any], None],
    supported_lb_policies: Collection[str] = DEFAULT_LB_POLICIES,
) -> ServiceConfig:
    """Parse and validate a service config given as JSON text or as the decoded object.

    ``supported_lb_policies`` are the policy names this client can run: the first of those in
    ``loadBalancingConfig`` wins, and a list naming none of them is invalid (as in gRPC).
    """
    if config is None:
        return EMPTY_SERVICE_CONFIG
    if isinstance(config, (str, bytes)):
        try:
            config = json.loads(config)
        except ValueError as exc:
            raise ValueError(f"service config: not valid JSON: {exc}") from None
    root = _object(config, "service config")
    method_configs: dict[tuple[str, str], MethodConfig] = {}
    for index, entry in enumerate(_list(root, "methodConfig", "service config")):
        where = f"methodConfig[{index}]"
        parsed = _method_config(_object(entry, where), where)
        for name_index, name in enumerate(_list(entry, "name", where)):
            key = _method_name(name, f"{where}.name[{name_index}]")
            if key in method_configs:
                shown = "the default" if key == ("", "") else "/".join(key).rstrip("/")
                raise ValueError(f"service config: {where}: duplicate name for {shown}")
            method_configs[key] = parsed
    lb_policy, lb_config = _load_balancing(root, supported_lb_policies)
    return ServiceConfig(
        method_configs=MappingProxyType(method_configs) if method_configs else _EMPTY,
        retry_throttling=_retry_throttling(root.get("retryThrottling")),
        lb_policy=lb_policy,
        lb_config=lb_config,
        health_check_service_name=_health_check(root.get("healthCheckConfig")),
    )


# --- the pieces --------------------------------------------------------------------------------


def _method_name(name: object, where: str) -> tuple[str, str]:
    name = _object(name, where)
    service = _optional_str(name, "service", where) or ""
    method = _optional_str(name, "method", where) or ""
    if method and not service:
        raise ValueError(f"service config: {where}: 'method' given without 'service'")
    return service, method


def _method_config(entry: Mapping[str, Any], where: str) -> MethodConfig:
    retry = entry.get("retryPolicy")
    hedging = entry.get("hedgingPolicy")
    if retry is not None and hedging is not None:
        raise ValueError(f"service config: {where}: retryPolicy and hedgingPolicy are exclusive")
    wait_for_ready = entry.get("waitForReady")
    if wait_for_ready is not None and not isinstance(wait_for_ready, bool):
        raise ValueError(f"service config: {where}.waitForReady: must be true or false")
    timeout = entry.get("timeout")
    return MethodConfig(
        timeout=None if timeout is None else _duration(timeout, f"{where}.timeout"),
        wait_for_ready=wait_for_ready,
        max_request_message_bytes=_uint32(entry, "maxRequestMessageBytes", where),
        max_response_message_bytes=_uint32(entry, "maxResponseMessageBytes", where),
        retry_policy=None if retry is None else _retry_policy(retry, f"{where}.retryPolicy"),
        hedging_policy=(
            None if hedging is None else _hedging_policy(hedging, f"{where}.hedgingPolicy")
        ),
    )


def _retry_policy(value: object, where: str) -> RetryPolicy:
    policy = _object(value, where)
    initial = _duration(_required(policy, "initialBackoff", where), f"{where}.initialBackoff")
    maximum = _duration(_required(policy, "maxBackoff", where), f"{where}.maxBackoff")
    if initial <= 0 or maximum <= 0:
        raise ValueError(f"service config: {where}: initialBackoff and maxBackoff must be > 0")
    multiplier = _required(policy, "backoffMultiplier", where)
    if isinstance(multiplier, bool) or not isinstance(multiplier, (int, float)) or multiplier <= 0:
        raise ValueError(f"service config: {where}.backoffMultiplier: must be a number > 0")
    codes = _status_codes(_required(policy, "retryableStatusCodes", where), where, "retryable")
    if not codes:
        raise ValueError(f"service config: {where}.retryableStatusCodes: must not be empty")
    return RetryPolicy(
        max_attempts=_max_attempts(policy, where),
        initial_backoff=initial,
        max_backoff=maximum,
        backoff_multiplier=float(multiplier),
        retryable_status_codes=codes,
    )


def _hedging_policy(value: object, where: str) -> HedgingPolicy:
    policy = _object(value, where)
    delay = policy.get("hedgingDelay")
    codes = policy.get("nonFatalStatusCodes")
    return HedgingPolicy(
        max_attempts=_max_attempts(policy, where),
        hedging_delay=0.0 if delay is None else _duration(delay, f"{where}.hedgingDelay"),
        non_fatal_status_codes=(
            frozenset() if codes is None else _status_codes(codes, where, "nonFatal")
        ),
    )


def _max_attempts(policy: Mapping[str, Any], where: str) -> int:
    value = _integer(_required(policy, "maxAttempts", where), f"{where}.maxAttempts")
    if value <= 1:
        raise ValueError(f"service config: {where}.maxAttempts: must be greater than 1")
    return min(value, MAX_ATTEMPTS_LIMIT)


def _status_codes(value: object, where: str, kind: str) -> frozenset[StatusCode]:
    where = f"{where}.{kind}StatusCodes"
    if not isinstance(value, list):
        raise ValueError(f"service config: {where}: must be a list of status codes")
    codes = set()
    for item in value:
        if isinstance(item, str):
            code = StatusCode.__members__.get(item.upper())
        elif isinstance(item, int) and not isinstance(item, bool):
            code = StatusCode(item) if 0 <= item <= 16 else None
        else:
            code = None
        if code is None:
            raise ValueError(f"service config: {where}: {item!r} is not a gRPC status code")
        codes.add(code)
    return frozenset(codes)


def _retry_throttling(value: object) -> Optional[RetryThrottling]:
    if value is None:
        return None
    where = "retryThrottling"
    throttling = _object(value, where)
    max_tokens = _integer(_required(throttling, "maxTokens", where), f"{where}.maxTokens")
    if not 0 < max_tokens <= 1000:
        raise ValueError(f"service config: {where}.maxTokens: must be in (0, 1000]")
    ratio = _required(throttling, "tokenRatio", where)
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or ratio <= 0:
        raise ValueError(f"service config: {where}.tokenRatio: must be a number > 0")
    # "Decimal places beyond 3 are ignored (0.5466 is treated as 0.546)": cut, don't round, and
    # cut the decimal spelling, not the binary float (0.29 * 1000 is 289.99999999999997).
    kept = Decimal(repr(float(ratio))).quantize(Decimal("0.001"), rounding=ROUND_DOWN)
    if kept <= 0:
        raise ValueError(f"service config: {where}.tokenRatio: {ratio} keeps no 3-decimal value")
    return RetryThrottling(max_tokens=max_tokens, token_ratio=float(kept))


def _load_balancing(
    root: Mapping[str, Any], supported: Collection[str]
) -> tuple[Optional[str], Mapping[str, Any]]:
    configs = root.get("loadBalancingConfig")
    if configs is not None:
        if not isinstance(configs, list):
            raise ValueError("service config: loadBalancingConfig: must be a list")
        names = []
        for index, entry in enumerate(configs):
            where = f"loadBalancingConfig[{index}]"
            entry = _object(entry, where)
            if len(entry) != 1:
                raise ValueError(f"service config: {where}: must have exactly one policy name")
            ((name, policy_config),) = entry.items()
            policy_config = _object(policy_config, f"{where}.{name}")
            names.append(name)
            if name in supported:
                return name, MappingProxyType(dict(policy_config))
        if names:
            raise ValueError(
                f"service config: loadBalancingConfig: no supported policy in {names}"
                f" (supported: {sorted(supported)})"
            )
    policy = root.get("loadBalancingPolicy")
    if policy is None:
        return None, _NO_LB_CONFIG
    if not isinstance(policy, str):
        raise ValueError("service config: loadBalancingPolicy: must be a string")
    name = policy.lower()  # the deprecated field is case-insensitive ("ROUND_ROBIN")
    if name not in supported:
        raise ValueError(
            f"service config: loadBalancingPolicy: unknown policy {policy!r}"
            f" (supported: {sorted(supported)})"
        )
    return name, _NO_LB_CONFIG


def _health_check(value: object) -> Optional[str]:
    if value is None:
        return None
    return _optional_str(_object(value, "healthCheckConfig"), "serviceName", "healthCheckConfig")


# --- JSON helpers ------------------------------------------------------------------------------


def _object(value: object, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"service config: {where}: must be a JSON object")
    return value


def _list(parent: Mapping[str, Any], key: str, where: str) -> list[Any]:
    value = parent.get(key)
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError(f"service config: {where}.{key}: must be a list")
    return value


def _required(parent: Mapping[str, Any], key: str, where: str) -> Any:
    value = parent.get(key)
    if value is None:
        raise ValueError(f"service config: {where}: {key} is required")
    return value


def _optional_str(parent: Mapping[str, Any], key: str, where: str) -> Optional[str]:
    value = parent.get(key)
    if value is not None and not isinstance(value, str):
        raise ValueError(f"service config: {where}.{key}: must be a string")
    return value


def _integer(value: object, where: str) -> int:
    """A JSON integer; proto3 JSON also allows one spelled as a decimal string."""
    if isinstance(value, str) and re.fullmatch(r"-?[0-9]+", value):
        return int(value)
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"service config: {where}: must be an integer, not {value!r}")
    return value


def _uint32(parent: Mapping[str, Any], key: str, where: str) -> Optional[int]:
    value = parent.get(key)
    if value is None:
        return None
    number = _integer(value, f"{where}.{key}")
    if not 0 <= number <= _UINT32_MAX:
        raise ValueError(f"service config: {where}.{key}: must be in [0, {_UINT32_MAX}]")
    return number


def _duration(value: object, where: str) -> float:
    """A proto3 JSON Duration (``"1.5s"``) in seconds; negative durations make no sense here."""
    if not isinstance(value, str) or not _DURATION.fullmatch(value):
        raise ValueError(f"service config: {where}: {value!r} is not a duration like '1.5s'")
    seconds = Decimal(value[:-1])
    if seconds < 0:
        raise ValueError(f"service config: {where}: {value!r} is negative")
    if seconds > _MAX_DURATION_SECONDS:
        raise ValueError(f"service config: {where}: {value!r} is out of range")
    return float(seconds)
