"""Retry and hedging decisions (gRFC A6), for the call programs of ``rpc._core.client_call``.

Pure decisions, no waiting: a call asks :class:`CallRetry` whether a failed attempt may be
tried again and after how long; a channel keeps one :class:`RetryThrottle` (the token bucket
that stops retries when most calls fail) and one :class:`RetryBuffer` (the bytes every call
keeps for replay). The call program does the rest: it pauses, opens a new stream, replays.

A call is *committed* (never retried again) once it gets response headers, or once its
requests no longer fit in the retry buffer: the server may have acted on it, and we could not
send it again anyway.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterable
from typing import Any, Callable, Optional

from codec import StatusCode

from .service_config import HedgingPolicy, RetryPolicy, RetryThrottling

#: Trailing metadata a server sets to ask for a retry after this many milliseconds (or, with a
#: negative or unreadable value, for no retry at all).
PUSHBACK_KEY = "grpc-retry-pushback-ms"
#: Request metadata telling the server how many attempts of this call came before this one.
PREVIOUS_ATTEMPTS_KEY = b"grpc-previous-rpc-attempts"
#: ``pushback_of()``'s answer when the server says "do not retry".
STOP = -1.0

#: grpcio's defaults: ``grpc.per_rpc_retry_buffer_size`` and ``grpc.retry_buffer_size``.
DEFAULT_PER_RPC_BUFFER = 256 * 1024
DEFAULT_CHANNEL_BUFFER = 16 * 1024 * 1024

#: Jitter of the retry backoff: each delay is the current backoff times random(0.8, 1.2), as
#: gRFC A6 says (and grpcio's C core does).
JITTER = 0.2


def pushback_of(metadata: Iterable[tuple[str, Any]]) -> Optional[float]:
    """The server's pushback in seconds, ``STOP`` for "don't retry", None if it gave none.

    The value is a non-negative 32-bit integer of milliseconds with no needless leading zero;
    anything else (negative, not a number) means the server asks us not to retry.
    """
    for key, value in metadata:
        if key == PUSHBACK_KEY:
            text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
            if text.isdigit() and (text == "0" or text[0] != "0") and int(text) < 2**31:
                return int(text) / 1000.0
            return STOP
    return None


class RetryThrottle:
    """One channel's retry tokens (gRFC A6 "Throttling Retry Attempts and Hedged RPCs").

    Tokens start at ``maxTokens``; each failed attempt (a retryable or non-fatal status, or a
    pushback saying stop) takes one, each success gives back ``tokenRatio``. While the tokens are
    at or below half of ``maxTokens`` no retry and no further hedge is sent. Kept in thousandths,
    as A6 asks for three decimal places, so that the sums are exact.
    """

    def __init__(self, config: RetryThrottling) -> None:
        self._max = config.max_tokens * 1000
        self._ratio = config.milli_token_ratio
        self._tokens = self._max
        self._lock = threading.Lock()  # calls of a blocking channel end on many threads

    @property
    def tokens(self) -> float:
        return self._tokens / 1000

    def allows_retry(self) -> bool:
        return self._tokens * 2 > self._max

    def record_failure(self) -> None:
        with self._lock:
            self._tokens = max(0, self._tokens - 1000)

    def record_success(self) -> None:
        with self._lock:
            self._tokens = min(self._max, self._tokens + self._ratio)


class RetryBuffer:
    """The bytes a channel keeps for replay, over all its calls (``grpc.retry_buffer_size``)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self._lock = threading.Lock()

    def reserve(self, size: int) -> bool:
        with self._lock:
            if self.used + size > self.limit:
                return False
            self.used += size
            return True

    def release(self, size: int) -> None:
        with self._lock:
            self.used -= size


class CallRetry:
    """One call's retry state: attempts, backoff, the buffered requests, commitment.

    ``policy`` (a retry policy) or ``hedging`` may be None: a call without either still keeps
    its streamed requests here until it commits, so that a stream the server never saw can be
    sent again (a transparent retry, which gRPC does whatever the policy).
    """

    def __init__(
        self,
        policy: Optional[RetryPolicy],
        hedging: Optional[HedgingPolicy],
        throttle: Optional[RetryThrottle],
        buffer: RetryBuffer,
        per_call_limit: int,
        rand: Callable[[float, float], float] = random.uniform,
    ) -> None:
        self.policy = policy
        self.hedging = hedging
        self.throttle = throttle
        self._buffer = buffer
        self._limit = per_call_limit
        self._rand = rand
        #: Attempts started that count toward ``maxAttempts`` (transparent retries do not).
        self.attempts = 1
        self.committed = False
        #: Framed requests kept for replay, in order (request-streaming calls).
        self.messages: list[bytes] = []
        self._size = 0
        #: When the next attempt may start (monotonic; 0: at once).
        self.resume_at = 0.0
        self._backoff = policy.initial_backoff if policy is not None else 0.0
        #: Hedging: a pushback said no more attempts.
        self.stopped = False
        #: The failure of the attempt that may end the call is counted for throttling already.
        self.recorded = False

    # ---------------------------------------------------------------- buffering

    def keep(self, data: bytes) -> bool:
        """Keep one framed request for replay; False (and the call commits) if it does not fit
        the per-call or the channel's limit: the request goes out once, and is not retried."""
        if self.committed:
            return False
        size = len(data)
        if self._size + size > self._limit or not self._buffer.reserve(size):
            self.commit()
            return False
        self._size += size
        self.messages.append(data)
        return True

    def commit(self) -> None:
        """No more attempts: give the buffer back (the current attempt still has what it sent)."""
        if self.committed:
            return
        self.committed = True
        if self._size:
            self._buffer.release(self._size)
            self._size = 0
        self.messages = []

    # ---------------------------------------------------------------- retry policy

    def retry_delay(self, code: StatusCode, pushback: Optional[float]) -> Optional[float]:
        """After a failed, uncommitted attempt: how long to wait before the next one, or None
        (no retry: the call ends with this attempt's status). Counts the attempt for throttling.
        """
        policy = self.policy
        if policy is None or self.committed or code not in policy.retryable_status_codes:
            return None
        throttle = self.throttle
        if throttle is not None:
            throttle.record_failure()
        self.recorded = True
        if pushback == STOP:
            return None
        if throttle is not None and not throttle.allows_retry():
            return None
        if self.attempts >= policy.max_attempts:
            return None
        self.attempts += 1
        self.recorded = False
        if pushback is not None:
            # The server's delay, exactly; the backoff starts over after it.
            delay = pushback
            self._backoff = policy.initial_backoff
        else:
            delay = self._backoff * self._rand(1 - JITTER, 1 + JITTER)
            self._backoff = min(self._backoff * policy.backoff_multiplier, policy.max_backoff)
        self.resume_at = time.monotonic() + delay
        return delay

    def call_ended(self, code: StatusCode) -> None:
        """The committed call ended with ``code``: throttling counts it, the buffer is freed."""
        throttle = self.throttle
        if throttle is not None:
            if code == StatusCode.OK:
                throttle.record_success()
            elif self._counts_as_failure(code) and not self.recorded:
                throttle.record_failure()
        self.commit()

    def _counts_as_failure(self, code: StatusCode) -> bool:
        if self.policy is not None:
            return code in self.policy.retryable_status_codes
        if self.hedging is not None:
            return code in self.hedging.non_fatal_status_codes
        return False

    # ---------------------------------------------------------------- hedging

    def may_hedge(self) -> bool:
        """Another hedged attempt may start now (the first one always may)."""
        hedging = self.hedging
        if hedging is None or self.committed or self.stopped:
            return False
        if self.attempts >= hedging.max_attempts:
            return False
        throttle = self.throttle
        return throttle is None or throttle.allows_retry()

    def hedge_failed(self, code: StatusCode, pushback: Optional[float]) -> bool:
        """A hedged attempt failed with ``code``: True if it was non-fatal (others go on; the
        next hedge is due now, or after the pushback), False if fatal (the call ends)."""
        hedging = self.hedging
        assert hedging is not None
        if code not in hedging.non_fatal_status_codes:
            return False
        if self.throttle is not None:
            self.throttle.record_failure()
        self.recorded = True
        if pushback == STOP:
            self.stopped = True
        else:
            self.resume_at = time.monotonic() + (pushback or 0.0)
        return True

    def hedge_started(self, delay: float) -> None:
        """A hedged attempt went out; the next one is due ``delay`` later."""
        self.resume_at = time.monotonic() + delay


class ChannelRetry:
    """What one channel keeps for its calls' retries: its throttle, its buffer, the per-call
    buffer limit. A channel made with retries disabled (``grpc.enable_retries=0``) has none."""

    __slots__ = ("buffer", "per_call_limit", "throttle")

    def __init__(
        self,
        throttling: Optional[RetryThrottling],
        per_call_limit: int = DEFAULT_PER_RPC_BUFFER,
        channel_limit: int = DEFAULT_CHANNEL_BUFFER,
    ) -> None:
        if per_call_limit < 0 or channel_limit < 0:
            raise ValueError("retry buffer sizes must be >= 0")
        self.throttle = None if throttling is None else RetryThrottle(throttling)
        self.buffer = RetryBuffer(channel_limit)
        self.per_call_limit = per_call_limit

    def call_retry(
        self, policy: Optional[RetryPolicy], hedging: Optional[HedgingPolicy]
    ) -> CallRetry:
        return CallRetry(policy, hedging, self.throttle, self.buffer, self.per_call_limit)
