"""Dashboard reads, computed once per state of the marts.

Only dbt writes the marts, and every dbt run the app starts is a DbtRun row: saved when the run starts
and again when it ends. The newest row's id, status and finish time therefore name the state the marts
are in; pages and API bodies are cached under that name, so a run starting or ending makes every earlier
entry unreachable. The timeout bounds what a dbt run outside the app (an engineer's `dbt build` by hand)
can leave stale.

The cache is `CACHES["dashboards"]`, local to each process: a hit costs no network round trip, and a
deploy restarts the processes, so fragments of old templates are never served.

Keys always carry the merchant's id and are read only after the membership check: an entry can only
reach the members of the merchant it was computed for.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import TypeVar

from django.core.cache import caches

from analytics.choices import NOT_STARTED_STATUSES
from analytics.models import DbtRun

CACHE_ALIAS = "dashboards"
T = TypeVar("T")


def marts_version() -> str:
    """The latest dbt run's id, status and finish time: changes whenever a run starts or ends.

    A run dbt never started (waiting or skipped: the lock was held) changes no mart, and is created while another
    run may be running: were it the newest row, that run's end would not change the version."""
    latest = (
        DbtRun.objects.exclude(status__in=NOT_STARTED_STATUSES)
        .order_by("-pk")
        .values_list("pk", "status", "finished_at")
        .first()
    )
    if latest is None:
        return "none"
    pk, status, finished_at = latest
    return f"{pk}:{status}:{finished_at.isoformat() if finished_at else ''}"


def cached(key_parts: tuple, build: Callable[[], T]) -> T:
    """`build()`'s value for these key parts, computed on the first call and reused until it expires.

    The parts must name everything the value depends on: the merchant, the marts' version, the range
    and the request's options. Exceptions (MartsNotBuilt, database errors) propagate and cache nothing.
    """
    key = "dash:" + hashlib.blake2b(repr(key_parts).encode(), digest_size=16).hexdigest()
    return caches[CACHE_ALIAS].get_or_set(key, build)
