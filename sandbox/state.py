"""Everything the sandbox remembers between requests, in memory.

The server answers each request on its own thread, so every store guards its data with a lock and
hands out copies, never its live dicts.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from sandbox.faults import FaultBook
from sandbox.keys import RsaKeyPair
from sandbox.providers.airbyte import AirbyteState
from sandbox.providers.attentive import AttentiveState
from sandbox.providers.clerk import ClerkState
from sandbox.providers.google import GoogleState
from sandbox.providers.klaviyo import KlaviyoState
from sandbox.providers.meta import MetaState
from sandbox.providers.shopify import ShopifyState
from sandbox.smtp import Mailbox


@dataclass(frozen=True)
class CallRecord:
    """One request as the call log keeps it: no headers, no query string, no body.

    Leaving those out keeps provider secrets (bearer keys, Meta's access_token query parameter,
    Google's client_secret form field) out of the log and out of test failure output.
    """

    route: str | None
    method: str
    path: str
    status: int
    time: float
    duration_ms: float
    faulted: bool

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class CallLog:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._records: list[CallRecord] = []

    def append(self, record: CallRecord) -> None:
        with self._lock:
            self._records.append(record)

    def list(self, route: str | None = None) -> list[CallRecord]:
        with self._lock:
            return [r for r in self._records if route is None or r.route == route]

    def clear(self) -> None:
        with self._lock:
            self._records.clear()


class SandboxState:
    """The whole sandbox's memory: one store per provider, plus faults and the call log."""

    def __init__(
        self,
        *,
        clerk_key_pair: RsaKeyPair | None = None,
        clerk_secret_key: str | None = None,
        clerk_seed_users: Iterable[Mapping[str, Any]] = (),
    ) -> None:
        self.faults = FaultBook()
        self.calls = CallLog()
        self.clerk = ClerkState(
            key_pair=clerk_key_pair or RsaKeyPair.generate(),
            secret_key=clerk_secret_key,
            seed_users=clerk_seed_users,
        )
        self.meta = MetaState()
        self.google = GoogleState()
        self.klaviyo = KlaviyoState()
        self.attentive = AttentiveState()
        self.shopify = ShopifyState()
        self.airbyte = AirbyteState()
        self.mail = Mailbox()  # filled by sandbox.smtp.SmtpSink when one runs

    def reset(self) -> None:
        """Back to the startup state; keys and configured secrets survive so tokens stay verifiable."""
        self.faults.clear()
        self.calls.clear()
        self.clerk.reset()
        self.meta.reset()
        self.google.reset()
        self.klaviyo.reset()
        self.attentive.reset()
        self.shopify.reset()
        self.airbyte.reset()
        self.mail.clear()
