"""The simulated world is causal, and its cache answers exactly what a replay from the first day answers.

Plain functions, no server, no database: ``world_records`` (cached) against ``_replayed`` (the simulation run
from the world's first day for that one question), on a short world that crosses the start of daylight saving
time in its zone. The cache is the process's own, shared with the sandbox server of the other tests, so every
test starts by emptying it and counts replays from there.
"""

from __future__ import annotations

import datetime as dt
import threading
from zoneinfo import ZoneInfo

import pytest

from analytics.raw_schema import RAW_TABLES
from sandbox.world import world
from sandbox.world.world import (
    LOOKAHEAD_DAYS,
    STREAM_TABLES,
    WORLD_CACHE_SIZE,
    WorldSettings,
    _replayed,
    world_cache_clear,
    world_cache_stats,
    world_identity,
    world_of,
    world_records,
    world_settings,
)

TZ = "America/New_York"
START = dt.date(2026, 2, 20)  # daylight saving time starts on 8 March in TZ
SETTINGS = WorldSettings(history_days=20, orders_per_day=8, timezone=TZ, seed=7)
TABLES = list(RAW_TABLES)  # every stream's, and those no stream carries (sessions, Attentive: the demo seeds them)
DAY = 86400


def at(day: int, hour: int, minute: int = 0) -> float:
    """A moment of March 2026 in the world's zone, as epoch seconds."""
    return dt.datetime(2026, 3, day, hour, minute, tzinfo=ZoneInfo(TZ)).timestamp()


BEGINNING = int(dt.datetime(2026, 2, 20, tzinfo=ZoneInfo(TZ)).timestamp())


def replayed(now: float, windows: dict[str, float | None], *, settings=SETTINGS, identity="shopify:acme", extra=0):
    """What a replay finds, simulating through the day after now's local date (plus ``extra`` days)."""
    end = dt.datetime.fromtimestamp(now, ZoneInfo(settings.timezone)).date() + dt.timedelta(days=1 + extra)
    lows = {t: BEGINNING if lo is None else int(lo) for t, lo in windows.items()}
    return _replayed(settings, identity, start=START, end=end, now=now, windows=lows)


def cached(now: float, windows: dict[str, float | None], *, settings=SETTINGS, identity="shopify:acme"):
    return world_records(settings, identity, start=START, now=now, windows=windows)


@pytest.fixture(autouse=True)
def stats():
    """An empty cache, and then its figures: worlds held, replays and days simulated since the test began."""
    world_cache_clear()
    before = world_cache_stats()
    yield lambda: {name: n - (0 if name == "worlds" else before[name]) for name, n in world_cache_stats().items()}
    world_cache_clear()


def counts(answer: dict) -> int:
    return sum(len(records) for records in answer.values())


# Late evening (tomorrow's journeys already have sessions tonight), the night DST starts, and mornings.
NOWS = [at(1, 23, 59), at(7, 23, 30), at(8, 0, 30), at(8, 12), at(10, 3)]


@pytest.mark.parametrize("now", NOWS)
def test_records_visible_before_now_do_not_depend_on_how_far_the_simulation_ran(now):
    """One random stream drawn day after day, refunds and Meta restatements drawn on the order's or the
    ad's day: the records visible before now are the same whether the run stopped the day after now or a
    week later, ids and stream positions included."""
    everything = dict.fromkeys(TABLES)
    day_after = replayed(now, everything)
    assert replayed(now, everything, extra=6) == day_after
    assert all(day_after[t] for t in ("shopify_orders", "shopify_customers", "klaviyo_events", "klaviyo_profiles"))
    # Not vacuous: the longer run does hold more, visible only later.
    week = now + 6 * DAY
    assert counts(replayed(week, everything, extra=-6)) < counts(replayed(week, everything))


def test_the_cache_answers_what_a_replay_answers_for_every_window(stats):
    mixed = {
        "shopify_orders": None,
        "shopify_order_refunds": at(1, 12),
        "shopify_customers": at(1, 12) + 77,
        "facebook_marketing_ads_insights": at(5, 6, 5),
        "google_ads_campaign": at(5, 6, 6),
        "klaviyo_events": at(6, 23),
        "exchange_rates_rates": BEGINNING,
    }
    for now in [*NOWS, at(4, 12)]:  # later and later, then back to an earlier day
        for windows in (dict.fromkeys(TABLES), mixed, dict.fromkeys(TABLES, now - DAY), dict.fromkeys(TABLES, now)):
            answer = cached(now, windows)
            assert answer == replayed(now, windows), (now, windows)
    assert counts(cached(at(10, 3), dict.fromkeys(TABLES))) > 1000
    assert counts(cached(at(8, 12), dict.fromkeys(TABLES, at(8, 12)))) == 0  # an empty window
    assert counts(cached(at(8, 12), dict.fromkeys(TABLES, at(9, 12)))) == 0  # a cursor after now
    assert stats()["replays"] == 1


def test_the_sources_of_linked_worlds_read_one_cached_world(stats):
    settings = WorldSettings(
        history_days=20, orders_per_day=8, timezone=TZ, seed=7,
        links={"meta:111": "shopify:acme", "google:1234567890": "shopify:acme", "klaviyo:acct": "shopify:acme"},
        worlds={"shopify:acme": {"orders_per_day": 5}, "shopify:globex": {"orders_per_day": 3}},
    )  # fmt: skip
    sources = {
        "shopify": {"shop": "https://Acme.myshopify.com/"},
        "facebook-marketing": {"account_ids": ["111"]},
        "google-ads": {"customer_id": "1234567890"},
        "klaviyo": {"api_key": "pk_x"},
    }
    now = at(9, 21)
    for source_type, configuration in sources.items():
        identity = world_of(settings, world_identity(source_type, configuration, klaviyo_account="acct"))
        assert identity == "shopify:acme"
        own = world_settings(settings, identity)
        for windows in (dict.fromkeys(STREAM_TABLES[source_type].values()),
                        dict.fromkeys(STREAM_TABLES[source_type].values(), now - 2 * DAY)):  # fmt: skip
            answer = cached(now, windows, settings=own, identity=identity)
            assert answer == replayed(now, windows, settings=own, identity=identity) and counts(answer)
    assert stats()["worlds"] == 1 and stats()["replays"] == 1
    # Another store (its own settings), and the same store with other settings: worlds of their own.
    for identity, own in (("shopify:globex", world_settings(settings, "shopify:globex")),
                          ("shopify:acme", world_settings(settings, "shopify:globex"))):  # fmt: skip
        windows = dict.fromkeys(STREAM_TABLES["shopify"].values())
        assert cached(now, windows, settings=own, identity=identity) == replayed(
            now, windows, settings=own, identity=identity
        )
    assert stats()["replays"] == 3


def test_one_more_day_with_a_warm_cache_simulates_nothing_and_later_days_only_themselves(stats):
    now = at(5, 23, 30)
    orders = ("shopify_orders", "shopify_order_refunds", "shopify_customers")
    history = cached(now, dict.fromkeys(orders))
    simulated = stats()
    assert simulated["replays"] == 1 and counts(history) > 0
    # 45 warm-up days, the first day through now's, the next one and the lookahead.
    assert simulated["days"] == 45 + (dt.date(2026, 3, 5) - START).days + 1 + 1 + LOOKAHEAD_DAYS
    next_day = cached(now + DAY, dict.fromkeys(orders, now))
    assert stats() == simulated
    assert next_day == replayed(now + DAY, dict.fromkeys(orders, now)) and counts(next_day) > 0
    # Past the lookahead (through 9 March): the world goes on from where it stopped, it is not replayed.
    later = at(9, 23, 30)
    assert cached(later, dict.fromkeys(orders, now + DAY)) == replayed(later, dict.fromkeys(orders, now + DAY))
    assert stats() == {**simulated, "days": simulated["days"] + 1 + LOOKAHEAD_DAYS}  # 10 March and the lookahead


def test_threads_asking_for_one_world_at_once_simulate_it_once(stats):
    now = at(9, 12)
    windows = dict.fromkeys(TABLES)
    answers: list[dict] = []
    barrier = threading.Barrier(4)

    def ask() -> None:
        barrier.wait()
        answers.append(cached(now, windows))

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(answers) == 4 and all(answer == answers[0] for answer in answers)
    assert answers[0] == replayed(now, windows)
    assert stats()["replays"] == 1


def test_the_cache_keeps_the_last_few_worlds_and_forgets_the_least_recently_used(stats):
    now = at(3, 12)
    windows = {"shopify_orders": None}
    for seed in range(WORLD_CACHE_SIZE + 1):
        cached(now, windows, settings=WorldSettings(orders_per_day=4, timezone=TZ, seed=seed))
    assert stats()["worlds"] == WORLD_CACHE_SIZE and stats()["replays"] == WORLD_CACHE_SIZE + 1
    cached(now, windows, settings=WorldSettings(orders_per_day=4, timezone=TZ, seed=WORLD_CACHE_SIZE))  # held
    assert stats()["replays"] == WORLD_CACHE_SIZE + 1
    cached(now, windows, settings=WorldSettings(orders_per_day=4, timezone=TZ, seed=0))  # forgotten: replayed
    assert stats()["replays"] == WORLD_CACHE_SIZE + 2
    world_cache_clear()
    assert stats()["worlds"] == 0


def test_a_cursor_from_before_the_first_day_is_answered_by_a_replay(stats):
    """A start date moved later than a stream's cursor: the warm-up's records of that stretch count too."""
    windows = {"klaviyo_events": BEGINNING - 3 * DAY, "shopify_orders": None}
    answer = cached(at(2, 12), windows)
    assert answer == replayed(at(2, 12), windows)
    assert any(r.visible_at < BEGINNING for r in answer["klaviyo_events"])
    assert stats()["replays"] == 0


def test_sealed_days_are_never_opened_again_by_a_late_record():
    cached(at(10, 3), {"shopify_orders": None})
    [held] = world._CACHE._worlds.values()
    figures = held.figures()
    assert figures["reopened"] == 0 and figures["records"] > 1000

    # Most records sit in sealed (compressed) days; the open ones are the last days' and the future's.
    def records(buckets: dict) -> int:
        return sum(len(bucket[1]) for days in buckets.values() for bucket in days.values())

    assert records(held.sealed) > 3 * records(held.open) > 0
