"""What one soak call does and which outcomes are right for it, shared by every soak client
(h2rpc async, h2rpc blocking, grpcio) so the three judge calls by the same rule.

A plan is drawn at random: most calls should end OK (and their answers are checked); some ask the
server for an error status, some get a deadline the server cannot meet, some are cancelled by the
client part way. Any other outcome (UNAVAILABLE, INTERNAL, UNKNOWN, a wrong answer...) is a bug.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any, Optional

KINDS = ("Unary", "ServerStream", "ClientStream", "Bidi")

#: Status codes a plan may ask the server to end with (by name, so grpcio's enum maps too).
REQUESTED_ERRORS = (
    "NOT_FOUND",
    "INVALID_ARGUMENT",
    "FAILED_PRECONDITION",
    "ABORTED",
    "OUT_OF_RANGE",
)
_NUMBERS = {
    "NOT_FOUND": 5,
    "INVALID_ARGUMENT": 3,
    "FAILED_PRECONDITION": 9,
    "ABORTED": 10,
    "OUT_OF_RANGE": 11,
}

#: A deadline for calls that should succeed: generous, so only a real stall misses it.
RELAXED_TIMEOUT = 20.0
#: What a "tight" call sleeps on the server, against a deadline a quarter of that.
TIGHT_SLEEP_MS = 400
TIGHT_TIMEOUT = 0.1
#: The marker for a call whose response did not match its request.
WRONG_ANSWER = "WRONG_ANSWER"


@dataclass
class Plan:
    kind: str
    requests: list[dict[str, Any]]  # EchoRequest fields, one dict per request
    timeout: float
    #: Cancel after this many seconds (Unary, ClientStream) or this many responses (streams).
    cancel_after: Optional[float] = None
    expected: frozenset[str] = field(default_factory=lambda: frozenset({"OK"}))
    #: What an OK call must answer: payload sizes of the responses (streams), or for
    #: ClientStream the number of requests and their total bytes.
    response_sizes: list[int] = field(default_factory=list)


def draw(rng: random.Random) -> Plan:
    kind = rng.choice(KINDS)
    roll = rng.random()
    count = rng.randint(1, 12)
    sizes = [_size(rng) for _ in range(count)]
    if kind == "Unary":
        requests = [{"payload": bytes(sizes[0])}]
        response_sizes = [sizes[0]]
    elif kind == "ServerStream":
        requests = [{"response_size": sizes[0], "response_count": count}]
        response_sizes = [sizes[0]] * count
    else:  # ClientStream / Bidi: one payload per request, echoed one by one (Bidi)
        requests = [{"payload": bytes(size)} for size in sizes]
        response_sizes = list(sizes)
    plan = Plan(kind, requests, RELAXED_TIMEOUT, response_sizes=response_sizes)
    if roll < 0.10:  # the server ends the call with an error status we asked for
        name = rng.choice(REQUESTED_ERRORS)
        # ServerStream/Bidi/Unary: in the first request; ClientStream: in the last one.
        target = requests[-1] if kind == "ClientStream" else requests[0]
        target["status_code"] = _NUMBERS[name]
        target["status_message"] = "soak asked for " + name
        plan.expected = frozenset({name})
    elif roll < 0.18:  # a deadline the server cannot meet
        requests[0]["sleep_ms"] = TIGHT_SLEEP_MS
        plan.timeout = TIGHT_TIMEOUT
        plan.expected = frozenset({"DEADLINE_EXCEEDED"})
    elif roll < 0.28:  # the client gives up part way; it may be too late to (then OK)
        if kind in ("Unary", "ClientStream"):
            requests[0]["sleep_ms"] = rng.choice((0, 20, 100))
            plan.cancel_after = rng.uniform(0.0, 0.12)
        else:
            for request in requests:
                request["sleep_ms"] = 5
            plan.cancel_after = rng.randint(0, count)
        plan.expected = frozenset({"CANCELLED", "OK"})
    return plan


def _size(rng: random.Random) -> int:
    roll = rng.random()
    if roll < 0.6:
        return rng.randint(0, 200)
    if roll < 0.95:
        return rng.randint(200, 32 * 1024)
    return rng.randint(256 * 1024, 1024 * 1024)


def check_responses(plan: Plan, responses: list[Any]) -> Optional[str]:
    """None if an OK call's responses are what the plan asked for, else what is wrong."""
    if plan.kind == "ClientStream":
        (response,) = responses
        want = (len(plan.requests), sum(len(r["payload"]) for r in plan.requests))
        got = (response.received_count, response.received_bytes)
        return None if got == want else f"ClientStream counted {got}, sent {want}"
    sizes = [len(response.payload) for response in responses]
    if sizes != plan.response_sizes:
        return f"{plan.kind} answered sizes {sizes[:5]}..., asked {plan.response_sizes[:5]}..."
    if any(r.payload.count(0) != len(r.payload) for r in responses):
        return f"{plan.kind} answered non-zero bytes"
    return None


class Tally:
    """Outcomes by status name, and the unexpected ones with a few examples."""

    def __init__(self) -> None:
        self.by_status: dict[str, int] = {}
        self.unexpected: dict[str, int] = {}
        self.examples: list[str] = []
        self._lock = threading.Lock()  # blocking clients add from their threads

    def add(self, plan: Plan, status: str, detail: str = "") -> None:
        with self._lock:
            self._add(plan, status, detail)

    def _add(self, plan: Plan, status: str, detail: str) -> None:
        self.by_status[status] = self.by_status.get(status, 0) + 1
        if status not in plan.expected:
            key = f"{plan.kind}:{status}"
            self.unexpected[key] = self.unexpected.get(key, 0) + 1
            if len(self.examples) < 20:
                self.examples.append(f"{key} (expected {sorted(plan.expected)}): {detail[:300]}")

    def merge(self, other: dict[str, Any]) -> None:
        for name in ("by_status", "unexpected"):
            mine = getattr(self, name)
            for key, value in other.get(name, {}).items():
                mine[key] = mine.get(key, 0) + value
        self.examples.extend(other.get("examples", [])[: max(0, 20 - len(self.examples))])

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "by_status": dict(self.by_status),
                "unexpected": dict(self.unexpected),
                "examples": list(self.examples),
            }

    @property
    def total(self) -> int:
        return sum(self.by_status.values())
