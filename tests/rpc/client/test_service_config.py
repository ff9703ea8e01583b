"""The service config parser: grpc's JSON schema, gRFC A6's validation rules, lookup by method."""

from __future__ import annotations

import json

import pytest

import rpc
from codec import StatusCode
from rpc.client.service_config import (
    EMPTY_SERVICE_CONFIG,
    HedgingPolicy,
    MethodConfig,
    RetryPolicy,
    parse_service_config,
)

RETRY = {
    "maxAttempts": 4,
    "initialBackoff": "0.1s",
    "maxBackoff": "1s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE", 10, "resource_exhausted"],
}


def _with_method(**fields: object) -> dict[str, object]:
    return {"methodConfig": [{"name": [{"service": "pkg.Svc"}], **fields}]}


def test_full_config_parses_into_frozen_values() -> None:
    config = parse_service_config(
        json.dumps(
            {
                "methodConfig": [
                    {
                        "name": [{"service": "pkg.Svc", "method": "Get"}],
                        "timeout": "1.5s",
                        "waitForReady": True,
                        "maxRequestMessageBytes": 1024,
                        "maxResponseMessageBytes": "2048",
                        "retryPolicy": RETRY,
                    },
                    {
                        "name": [{"service": "pkg.Svc"}],
                        "hedgingPolicy": {
                            "maxAttempts": 9,
                            "hedgingDelay": "0.25s",
                            "nonFatalStatusCodes": ["UNAVAILABLE", 13],
                        },
                    },
                    {"name": [{}], "timeout": "10s"},
                ],
                "retryThrottling": {"maxTokens": 10, "tokenRatio": 0.5466},
                "loadBalancingConfig": [{"weird_policy": {}}, {"round_robin": {}}],
                "healthCheckConfig": {"serviceName": "pkg.Svc"},
                "someFutureField": {"ignored": True},
            }
        )
    )
    get = config.method_config("/pkg.Svc/Get")
    assert get == MethodConfig(
        timeout=1.5,
        wait_for_ready=True,
        max_request_message_bytes=1024,
        max_response_message_bytes=2048,
        retry_policy=RetryPolicy(
            max_attempts=4,
            initial_backoff=0.1,
            max_backoff=1.0,
            backoff_multiplier=2.0,
            retryable_status_codes=frozenset(
                {StatusCode.UNAVAILABLE, StatusCode.ABORTED, StatusCode.RESOURCE_EXHAUSTED}
            ),
        ),
    )
    other = config.method_config("/pkg.Svc/Other")
    assert other is not None
    assert other.hedging_policy == HedgingPolicy(
        max_attempts=5,  # capped
        hedging_delay=0.25,
        non_fatal_status_codes=frozenset({StatusCode.UNAVAILABLE, StatusCode.INTERNAL}),
    )
    default = config.method_config("/other.Svc/X")
    assert default is not None and default.timeout == 10.0
    assert config.retry_throttling is not None
    assert config.retry_throttling.max_tokens == 10
    assert config.retry_throttling.token_ratio == 0.546
    assert config.retry_throttling.milli_token_ratio == 546
    assert config.lb_policy == "round_robin"
    assert dict(config.lb_config) == {}
    assert config.health_check_service_name == "pkg.Svc"
    with pytest.raises(AttributeError):
        config.lb_policy = "pick_first"  # type: ignore[misc]


def test_lookup_without_default_is_none() -> None:
    config = parse_service_config(_with_method(timeout="1s"))
    assert config.method_config("/pkg.Svc/Any") == MethodConfig(timeout=1.0)
    assert config.method_config("/other.Svc/Any") is None
    assert EMPTY_SERVICE_CONFIG.method_config("/pkg.Svc/Any") is None
    assert parse_service_config("{}") == EMPTY_SERVICE_CONFIG
    assert parse_service_config(None) is EMPTY_SERVICE_CONFIG


def test_deprecated_load_balancing_policy_and_precedence() -> None:
    assert parse_service_config({"loadBalancingPolicy": "ROUND_ROBIN"}).lb_policy == "round_robin"
    both = {"loadBalancingPolicy": "round_robin", "loadBalancingConfig": [{"pick_first": {}}]}
    assert parse_service_config(both).lb_policy == "pick_first"
    first = parse_service_config(
        {"loadBalancingConfig": [{"pick_first": {"shuffleAddressList": True}}]}
    )
    assert dict(first.lb_config) == {"shuffleAddressList": True}
    custom = parse_service_config(
        {"loadBalancingConfig": [{"mine": {}}]}, supported_lb_policies=("mine",)
    )
    assert custom.lb_policy == "mine"
    assert parse_service_config({}).lb_policy is None


def test_token_ratio_keeps_three_decimals_exactly() -> None:
    for ratio, milli in ((0.29, 290), (0.1, 100), (1, 1000), (0.0019, 1)):
        config = parse_service_config({"retryThrottling": {"maxTokens": 5, "tokenRatio": ratio}})
        assert config.retry_throttling is not None
        assert config.retry_throttling.milli_token_ratio == milli


def _bad_retry(**changes: object) -> dict[str, object]:
    policy = {**RETRY, **changes}
    return _with_method(retryPolicy={k: v for k, v in policy.items() if v is not None})


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[]", "must be a JSON object"),
        ({"methodConfig": {}}, "methodConfig: must be a list"),
        ({"methodConfig": [{"name": [{"method": "Get"}]}]}, "'method' given without 'service'"),
        ({"methodConfig": [{"name": [{"service": 1}]}]}, "service: must be a string"),
        (
            {"methodConfig": [{"name": [{"service": "a"}]}, {"name": [{"service": "a"}]}]},
            "duplicate name for a",
        ),
        ({"methodConfig": [{"name": [{}]}, {"name": [{}]}]}, "duplicate name for the default"),
        (_with_method(timeout="1.5"), "not a duration"),
        (_with_method(timeout=1.5), "not a duration"),
        (_with_method(timeout="-1s"), "negative"),
        (_with_method(timeout="1.1234567891s"), "not a duration"),
        (_with_method(waitForReady="yes"), "waitForReady: must be true or false"),
        (_with_method(maxRequestMessageBytes=-1), "maxRequestMessageBytes: must be in"),
        (_with_method(maxResponseMessageBytes="x"), "must be an integer"),
        (
            _with_method(retryPolicy=RETRY, hedgingPolicy={"maxAttempts": 2}),
            "retryPolicy and hedgingPolicy are exclusive",
        ),
        (_bad_retry(maxAttempts=1), "maxAttempts: must be greater than 1"),
        (_bad_retry(maxAttempts=None), "maxAttempts is required"),
        (_bad_retry(maxAttempts=2.5), "must be an integer"),
        (_bad_retry(initialBackoff="0s"), "must be > 0"),
        (_bad_retry(maxBackoff=None), "maxBackoff is required"),
        (_bad_retry(backoffMultiplier=0), "backoffMultiplier: must be a number > 0"),
        (_bad_retry(backoffMultiplier="2"), "backoffMultiplier: must be a number > 0"),
        (_bad_retry(retryableStatusCodes=[]), "must not be empty"),
        (_bad_retry(retryableStatusCodes=None), "retryableStatusCodes is required"),
        (_bad_retry(retryableStatusCodes=["NOPE"]), "'NOPE' is not a gRPC status code"),
        (_bad_retry(retryableStatusCodes=[17]), "17 is not a gRPC status code"),
        (_bad_retry(retryableStatusCodes="UNAVAILABLE"), "must be a list of status codes"),
        (_with_method(hedgingPolicy={"hedgingDelay": "1s"}), "maxAttempts is required"),
        (
            _with_method(hedgingPolicy={"maxAttempts": 2, "hedgingDelay": "soon"}),
            "hedgingDelay: 'soon' is not a duration",
        ),
        (
            _with_method(hedgingPolicy={"maxAttempts": 2, "nonFatalStatusCodes": [True]}),
            "True is not a gRPC status code",
        ),
        ({"retryThrottling": {"maxTokens": 0, "tokenRatio": 1}}, "maxTokens: must be in (0, 1000]"),
        ({"retryThrottling": {"maxTokens": 1001, "tokenRatio": 1}}, "must be in (0, 1000]"),
        ({"retryThrottling": {"maxTokens": 10}}, "tokenRatio is required"),
        ({"retryThrottling": {"maxTokens": 10, "tokenRatio": -1}}, "tokenRatio: must be a number"),
        ({"retryThrottling": {"maxTokens": 10, "tokenRatio": 0.0001}}, "keeps no 3-decimal"),
        ({"loadBalancingConfig": [{"grpclb": {}}]}, "no supported policy in ['grpclb']"),
        ({"loadBalancingConfig": [{"a": {}, "b": {}}]}, "exactly one policy name"),
        ({"loadBalancingConfig": [{"round_robin": []}]}, "must be a JSON object"),
        ({"loadBalancingConfig": {}}, "loadBalancingConfig: must be a list"),
        ({"loadBalancingPolicy": "grpclb"}, "unknown policy 'grpclb'"),
        ({"healthCheckConfig": {"serviceName": 3}}, "serviceName: must be a string"),
    ],
)
def test_invalid_config_is_rejected_whole_with_the_reason(config: object, message: str) -> None:
    with pytest.raises(ValueError) as info:
        parse_service_config(config)  # type: ignore[arg-type]
    assert message in str(info.value)
    assert str(info.value).startswith("service config: ")


def test_the_channel_takes_its_balancing_policy_and_health_check_from_the_config() -> None:
    config = {
        "loadBalancingConfig": [{"grpclb": {}}, {"round_robin": {}}],
        "healthCheckConfig": {"serviceName": "pkg.Svc"},
    }
    target = "ipv4:127.0.0.1:1,127.0.0.1:2"
    with rpc.sync.Channel(target, service_config=config, lb_policy_name="pick_first") as channel:
        assert channel.service_config.lb_policy == "round_robin"
        assert channel._balancer.policy == "round_robin"  # the config wins, as in grpcio
        assert channel._balancer.health_service == "pkg.Svc"
    with pytest.raises(ValueError, match="no supported policy"):
        rpc.sync.Channel(target, service_config={"loadBalancingConfig": [{"grpclb": {}}]})
