"""Scripted faults: "the next N calls to route R answer like this".

Faults are kept per route in FIFO order and each call consumes one use of the fault at the head of
its route's queue, so a test can script a sequence (two 503s, then a 429, then success) and know
exactly which call gets what. A fault without a status only adds its delay (and headers) and lets
the real handler answer: that is how timeouts and slow providers are simulated.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

MAX_DELAY_SECONDS = 120.0
MAX_TIMES = 10_000

_FIELDS = {"route", "status", "body", "headers", "delay", "times"}


@dataclass(frozen=True)
class Fault:
    route: str
    status: int | None = None
    body: Any = None
    headers: Mapping[str, str] = field(default_factory=dict)
    delay: float = 0.0
    times: int = 1

    def to_dict(self) -> dict[str, Any]:
        return {
            "route": self.route,
            "status": self.status,
            "body": self.body,
            "headers": dict(self.headers),
            "delay": self.delay,
            "times": self.times,
        }


def fault_from_payload(payload: Mapping[str, Any], faultable_routes: Collection[str]) -> Fault:
    """Validate a control-API fault; raises ValueError with a message meant for the test author."""
    unknown = set(payload) - _FIELDS
    if unknown:
        raise ValueError(f"unknown fault fields: {sorted(unknown)}")
    route = payload.get("route")
    if route not in faultable_routes:
        raise ValueError(f"unknown route {route!r}; GET /_control/routes lists the route names")

    status = payload.get("status")
    if status is not None and (isinstance(status, bool) or not isinstance(status, int) or not 100 <= status <= 599):
        raise ValueError("status must be an HTTP status code (100-599) or null")

    body = payload.get("body")
    if body is not None and status is None:
        raise ValueError("body needs a status: a fault without a status passes through to the handler")

    headers = payload.get("headers") or {}
    if not isinstance(headers, Mapping) or not all(isinstance(k, str) for k in headers):
        raise ValueError("headers must be an object of header name to value")
    if any(isinstance(v, (dict, list, bool)) or v is None for v in headers.values()):
        raise ValueError("header values must be strings or numbers")

    delay = payload.get("delay", 0.0) or 0.0
    if isinstance(delay, bool) or not isinstance(delay, (int, float)) or not 0 <= delay <= MAX_DELAY_SECONDS:
        raise ValueError(f"delay must be a number of seconds between 0 and {MAX_DELAY_SECONDS:g}")

    times = payload.get("times", 1)
    if isinstance(times, bool) or not isinstance(times, int) or not 1 <= times <= MAX_TIMES:
        raise ValueError(f"times must be an integer between 1 and {MAX_TIMES}")

    if status is None and not delay and not headers:
        raise ValueError("a fault needs a status, a delay or headers")
    return Fault(
        route=route,
        status=status,
        body=body,
        headers={name: str(value) for name, value in headers.items()},
        delay=float(delay),
        times=times,
    )


class FaultBook:
    """Pending faults per route, safe to use from the server's request threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queues: dict[str, deque[Fault]] = {}

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._queues.setdefault(fault.route, deque()).append(fault)

    def take(self, route: str) -> Fault | None:
        """Consume one use of the oldest pending fault for `route`, if any."""
        with self._lock:
            queue = self._queues.get(route)
            if not queue:
                return None
            head = queue[0]
            if head.times <= 1:
                queue.popleft()
            else:
                queue[0] = replace(head, times=head.times - 1)
            return replace(head, times=1)

    def pending(self) -> list[Fault]:
        with self._lock:
            return [fault for queue in self._queues.values() for fault in queue]

    def clear(self) -> None:
        with self._lock:
            self._queues.clear()
