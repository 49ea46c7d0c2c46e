"""Fixed-window counters for the collector's limits: batches per client IP, events per write key.

With REDIS_URL (production) the counts are Redis keys shared by every process: one INCRBY + EXPIRE pipeline per
check. Without it (local development) each process counts on its own, so the deployment's limit is the setting
times the number of processes. Either way a limiter that cannot count lets the batch through (logged): losing a
shopper's events because Redis blinked would be worse than an unthrottled minute.

Django's cache (what the API's DRF throttles use) is not used here: without Redis it is the database cache, two
more statements per batch on the hot path.
"""

from __future__ import annotations

import logging
import math
import threading
import time

from django.conf import settings

logger = logging.getLogger(__name__)

PREFIX = "collector:rl:"


class Limiter:
    def __init__(self, *, window: int, redis_url: str = "") -> None:
        self.window = max(1, window)
        self._redis = None
        if redis_url:
            import redis

            self._redis = redis.Redis.from_url(redis_url, socket_timeout=0.05, socket_connect_timeout=0.05)
        self._local: dict[str, tuple[int, int]] = {}  # key -> (window number, count)
        self._lock = threading.Lock()

    def hit(self, key: str, amount: int, limit: int, *, now: float | None = None) -> float | None:
        """Count `amount` against `key`; None if within `limit` this window, else the seconds to wait."""
        now = time.time() if now is None else now
        window_no = int(now // self.window)
        retry_after = max(1.0, math.ceil((window_no + 1) * self.window - now))
        if self._redis is not None:
            name = f"{PREFIX}{key}:{window_no}"
            try:
                pipe = self._redis.pipeline(transaction=False)
                pipe.incrby(name, amount)
                pipe.expire(name, self.window * 2)
                count = pipe.execute()[0]
            except Exception as exc:
                logger.warning("collector rate limit not checked: %s", type(exc).__name__)
                return None
        else:
            with self._lock:
                seen_window, count = self._local.get(key, (window_no, 0))
                count = (count if seen_window == window_no else 0) + amount
                if len(self._local) > 100_000:  # a flood of distinct IPs: forget the old windows
                    self._local = {k: v for k, v in self._local.items() if v[0] == window_no}
                self._local[key] = (window_no, count)
        return None if count <= limit else retry_after


_limiter: Limiter | None = None


def limiter() -> Limiter:
    global _limiter
    if _limiter is None:
        _limiter = Limiter(window=settings.COLLECTOR_RATE_WINDOW_SECONDS, redis_url=settings.REDIS_URL)
    return _limiter


def limiter_reset() -> None:
    """Forget the process's limiter (tests change the settings)."""
    global _limiter
    _limiter = None
