"""How long to wait before trying again: one backoff and one `Retry-After` reader for every job.

Credential refresh (connectors/services.py), the notification outbox (notifications/services.py) and
ingestion's retries and polls (ingestion/services.py) each keep their own base, ceiling and jitter; the
formula is this one. Every caller keeps the wait in its own row (`next_attempt_at`, `next_sync_at`,
`next_poll_at`): a task retries at that time, and a sweeper only rescues rows a lost task left behind.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import random
import re

# A provider asking for more than a day is broken or hostile: nobody waits longer than this on its word.
RETRY_AFTER_MAX_SECONDS = 24 * 60 * 60
# 2**64 steps outgrow any ceiling; a bound keeps a huge attempt count from overflowing the float.
_MAX_EXPONENT = 64
# RFC 9110 §10.2.3: delay-seconds is 1*DIGIT. Fractions are not in the grammar but harmless, so read too.
_DELAY_SECONDS = re.compile(r"\d+(\.\d+)?")


def backoff(attempt: int, *, base: float, ceiling: float, jitter: float = 0.5, floor: float = 0.0) -> float:
    """Seconds to wait after failed attempt number `attempt` (1: the first failure).

    The step doubles from `base` up to `ceiling` (base·2^(attempt-1), capped); the wait is drawn uniformly
    from the top `jitter` share of the step (0.5: 50-100 % of it, so a crowd that failed together does not
    come back together), and is never below `floor` (a provider's Retry-After, a negative-cache window).
    """
    if not 0.0 <= jitter <= 1.0:
        raise ValueError(f"jitter must be within [0, 1], not {jitter}")
    step = min(ceiling, base * 2.0 ** min(_MAX_EXPONENT, max(0, attempt - 1)))
    return max(floor, random.uniform(step * (1.0 - jitter), step))


def retry_after_seconds(
    value: str | None, *, now: dt.datetime | None = None, maximum: float = RETRY_AFTER_MAX_SECONDS
) -> float | None:
    """A `Retry-After` header in seconds from now, within [0, maximum]; None when absent or unreadable.

    Both forms of RFC 9110 §10.2.3: delay-seconds (`120`) and an HTTP-date (`Wed, 21 Oct 2026 07:28:00 GMT`,
    and the obsolete forms email.utils reads). A date in the past is 0 (try now); a negative number, `inf`,
    `nan` or any other text is unreadable (None: the caller's own backoff decides).
    """
    text = (value or "").strip()
    if not text:
        return None
    if _DELAY_SECONDS.fullmatch(text):
        return min(float(maximum), float(text))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when.tzinfo is None:  # "-0000" and the obsolete forms: RFC 9110 dates are GMT
        when = when.replace(tzinfo=dt.UTC)
    seconds = (when - (now or dt.datetime.now(dt.UTC))).total_seconds()
    return min(float(maximum), max(0.0, seconds))
