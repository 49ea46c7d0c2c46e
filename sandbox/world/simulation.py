"""Deterministic, fast demo data in Airbyte's raw shape (see ``analytics.raw_schema``).

The generator is a day-by-day simulation of one merchant: customer journeys (sessions with UTM/click
ids over up to ~45 days, then an order), repeat buyers, refunds processed weeks later, cancelled and
test orders, Airbyte re-emits and later versions of orders, Meta insights restated for 28 days, an
ad account in another currency with a dated FX table, Klaviyo email campaigns and flows and Attentive
SMS campaigns with their funnels (received -> opened -> clicked -> ordered, bounces, unsubscribes).

Every row carries the time Airbyte extracted it (``_airbyte_extracted_at``: the next hourly sync after
the record changed; webhooks within seconds). A row is written when that time falls in
``[local midnight of from_date, local midnight after end_date)``. The simulation always starts at the
same place (``end_date - days + 1``, minus a warm-up for journeys already under way) and never looks at
the wall clock or at ``end_date`` while drawing random numbers, so the same seed and window give
identical rows, and a later window is a strict continuation of an earlier one.

This module is the engine (the clock, the day loop, the buffers and COPY); each source's rows are written by its
emitter in ``sandbox.world.sources``, which names the columns it writes (``sandbox.world.columns``, checked
against the raw schema at import).
"""

from __future__ import annotations

import datetime as dt
import queue
import random
import threading
import zlib
from collections.abc import Callable
from zoneinfo import ZoneInfo

import psycopg
from psycopg import sql

from analytics.raw_schema import RAW_TABLES, create_raw_schema, raw_schema_name
from sandbox.world.columns import TABLE_NUMBERS, copy_columns
from sandbox.world.sources.attentive import AttentiveEmitter
from sandbox.world.sources.common import DAY, N
from sandbox.world.sources.exchange_rates import ExchangeRatesEmitter
from sandbox.world.sources.google import GoogleAdsEmitter
from sandbox.world.sources.klaviyo import KlaviyoEmitter
from sandbox.world.sources.meta import MetaEmitter
from sandbox.world.sources.shopify import ShopifyEmitter
from sandbox.world.sources.web_sessions import WebSessionsEmitter

__all__ = ["DAY", "WARMUP_DAYS", "N", "copy_columns", "generate_demo_data"]

WARMUP_DAYS = 45  # journeys that convert inside the window may start before it

_HMS = [f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}" for s in range(DAY)]
# Diurnal weights per local hour (late evening is busy, so orders land near midnight).
_HOUR_WEIGHTS = [2, 1, 1, 1, 1, 1, 2, 3, 4, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 9, 9, 8, 7, 5]
_CHANNELS = [
    ("paid_social", 30),
    ("paid_search", 24),
    ("organic_search", 12),
    ("direct", 12),
    ("email", 8),
    ("sms", 4),
    ("referral", 4),
    ("organic_social", 6),
]
_BROWSE_CHANNELS = [
    ("paid_social", 28),
    ("paid_search", 20),
    ("organic_search", 20),
    ("direct", 16),
    ("referral", 6),
    ("organic_social", 10),
]


def _cumulative(weights: list[tuple[str, int]]) -> tuple[list[str], list[int]]:
    names, cum, total = [], [], 0
    for name, w in weights:
        total += w
        names.append(name)
        cum.append(total)
    return names, cum


class _Generator(
    ShopifyEmitter,
    MetaEmitter,
    GoogleAdsEmitter,
    ExchangeRatesEmitter,
    KlaviyoEmitter,
    AttentiveEmitter,
    WebSessionsEmitter,
):
    """One merchant's simulation; the sources' emitters are its mixins (they share its random stream)."""

    def __init__(
        self,
        conn,
        *,
        merchant_key,
        shop_domain,
        timezone,
        currency,
        days,
        orders_per_day,
        seed,
        end_date,
        from_date,
        progress,
        window: tuple[int, int] | None = None,
    ):
        self.conn = conn
        self.schema = raw_schema_name(merchant_key)
        self.shop = shop_domain
        self.tz = ZoneInfo(timezone)
        self.tzname = timezone
        self.currency = currency
        self.ad_currency = "EUR" if currency != "EUR" else "USD"  # the Google Ads account
        self.O = max(1, orders_per_day)
        self.rng = random.Random(seed)
        self.mh = zlib.crc32(f"{seed}:{merchant_key}".encode())
        self.start = end_date - dt.timedelta(days=days - 1)
        self.end = end_date
        self.lo = self.midnight(max(from_date, self.start) if from_date else self.start)
        self.hi = self.midnight(end_date + dt.timedelta(days=1))
        if window is not None:  # epoch seconds [lo, hi) of _airbyte_extracted_at (the world's syncs)
            self.lo, self.hi = window
        self.progress = progress
        self.buf: dict[str, list[str]] = {t: [] for t in RAW_TABLES}
        self.seq: dict[str, int] = dict.fromkeys(RAW_TABLES, 0)
        self.written: dict[str, int] = dict.fromkeys(RAW_TABLES, 0)
        self.pending = 0
        self._days: dict[int, str] = {}
        # id prefixes, formatted once (hot paths)
        self.uuid_prefix = {t: f"{self.mh:08x}-{n:04x}-4000-8000-" for t, n in TABLE_NUMBERS.items()}
        self.profile_prefix = f"01HP{self.mh % 10_000:04d}"
        self.event_prefix = f"{self.mh % 10_000:04d}E"
        self.session_prefix = f"{self.mh % 100_000:05d}S"
        # people: index -> [anon_id, customer_id or None, orders, total_spent, is_subscriber]
        self.people: list[list] = []
        self.customers: list[int] = []  # people indexes with at least one order already placed
        self.new_customers_by_day: dict[dt.date, list[int]] = {}
        self.subscribers: list[int] = []
        self.sms_subscribers: list[int] = []
        self.order_seq = 0
        self.customer_seq = 0

    # ---------------------------------------------------------------- helpers

    def midnight(self, d: dt.date) -> int:
        return int(dt.datetime(d.year, d.month, d.day, tzinfo=self.tz).timestamp())

    def ts(self, t: int) -> str:
        d, s = divmod(t, DAY)
        ds = self._days.get(d)
        if ds is None:
            ds = self._days[d] = (dt.date(1970, 1, 1) + dt.timedelta(days=d)).isoformat()
        return f"{ds} {_HMS[s]}+00"

    def day_str(self, t: int) -> str:
        return self.ts(t)[:10]

    @staticmethod
    @staticmethod
    def sync_after(t: int) -> int:
        """Airbyte's hourly sync: five minutes past the next hour."""
        return (t // 3600 + 1) * 3600 + 300

    def emit(self, table: str, ext: int, fields: str) -> None:
        """Queue one row; the uuid counter advances even for rows outside the window (determinism)."""
        n = self.seq[table] = self.seq[table] + 1
        if self.lo <= ext < self.hi:
            self.buf[table].append(
                f"{fields}\t{self.uuid_prefix[table]}{n:012x}\t{self.ts(ext)}"
                f'\t{{"sync_id":{ext // 3600},"changes":[]}}\t0\n'
            )
            self.pending += 1
            if self.pending >= 200_000:
                self.flush()

    def flush(self) -> None:
        """Hand the buffered rows to the COPY thread, so the server parses while we generate."""
        for table, rows in self.buf.items():
            if rows:
                self.queue.put((table, "".join(rows)))
                self.written[table] += len(rows)
                rows.clear()
        self.pending = 0

    def copy_worker(self) -> None:
        try:
            with self.conn.cursor() as cur:
                while (item := self.queue.get()) is not None:
                    table, data = item
                    cols = sql.SQL(", ").join(sql.Identifier(c) for c in copy_columns(table))
                    stmt = sql.SQL("copy {}.{} ({}) from stdin").format(
                        sql.Identifier(self.schema), sql.Identifier(table), cols
                    )
                    with cur.copy(stmt) as copy:
                        copy.write(data)
        except BaseException as exc:  # surfaced by run(); keep draining so the producer never blocks
            self.copy_error = exc
            while self.queue.get() is not None:
                pass

    def pick(self, names: list[str], cum: list[int]) -> str:
        r = self.rng.random() * cum[-1]
        for name, c in zip(names, cum, strict=True):
            if r < c:
                return name
        return names[-1]

    def local_time(self, day_start: int, day_len: int) -> int:
        r = self.rng.random() * self.hour_total
        h = 0
        for h, c in enumerate(self.hour_cum):  # noqa: B007  (h is the hour the loop stops at)
            if r < c:
                break
        return min(day_start + h * 3600 + int(self.rng.random() * 3600), day_start + day_len - 1)

    # ---------------------------------------------------------------- static dimensions

    def setup(self) -> None:
        self.hour_cum, acc = [], 0
        for w in _HOUR_WEIGHTS:
            acc += w
            self.hour_cum.append(acc)
        self.hour_total = acc
        self.ch_names, self.ch_cum = _cumulative(_CHANNELS)
        self.br_names, self.br_cum = _cumulative(_BROWSE_CHANNELS)
        t0 = self.midnight(self.start) - (WARMUP_DAYS + 400) * DAY
        created = self.ts(t0)
        first_sync = self.midnight(self.start) + 300  # the connection's first sync
        self.store_name = self.shop.split(".")[0].replace("-", " ").title()
        # Each source's static records, in the order the random stream has always been drawn in.
        self.setup_shopify(created, first_sync)
        self.setup_meta(created, first_sync)
        self.setup_google(first_sync)
        self.setup_klaviyo(created, first_sync)
        self.setup_lists(t0, first_sync)

    # ---------------------------------------------------------------- the day loop

    def ads(self, d: dt.date, seasonal: float) -> None:
        dstr = d.isoformat()
        base_sync = self.midnight(d + dt.timedelta(days=1)) + 6 * 3600
        budget = self.O * 25.0 * seasonal  # ≈ 25 per order of daily spend, split across platforms
        self.meta_insights(dstr, base_sync, budget)
        self.google_ads_day(dstr, base_sync, budget)
        if d.weekday() < 5:  # exchange rates are published on business days only
            self.exchange_rates(d, dstr)

    def day(self, d: dt.date) -> None:
        rng = self.rng
        per_day = self.O
        day_start = self.midnight(d)
        day_len = self.midnight(d + dt.timedelta(days=1)) - day_start
        # customers whose first order has been placed join the repeat-buyer pool the next day
        self.customers.extend(self.new_customers_by_day.pop(d - dt.timedelta(days=1), ()))
        seasonal = (1.0, 0.95, 0.95, 1.0, 1.05, 1.15, 1.1)[d.weekday()]
        if d.month == 11 and 24 <= d.day <= 30:
            seasonal *= 2.5
        elif d.month == 12 and d.day <= 20:
            seasonal *= 1.4
        self.ads(d, seasonal)
        # journeys starting today: touches over the coming days, then an order
        n_journeys = max(0, round(per_day * seasonal * rng.uniform(0.85, 1.15)))
        for _ in range(n_journeys):
            r = rng.random()
            span = (
                0
                if r < 0.35
                else rng.randrange(1, 4)
                if r < 0.6
                else rng.randrange(4, 15)
                if r < 0.85
                else rng.randrange(15, 31)
                if r < 0.97
                else rng.randrange(31, 45)
            )
            od = d + dt.timedelta(days=span)
            od_start = self.midnight(od)
            t_order = self.local_time(od_start, self.midnight(od + dt.timedelta(days=1)) - od_start)
            first = max(t_order - 1800, t_order - span * DAY - rng.randrange(0, 12 * 3600))
            n_touch = 1 + min(6, int(rng.expovariate(0.8)))
            times = sorted(first + rng.randrange(max(1, t_order - 600 - first)) for _ in range(n_touch - 1))
            times.append(t_order - rng.randrange(60, 600))
            touches = [(tt, self.pick(self.ch_names, self.ch_cum)) for tt in times]
            if self.customers and rng.random() < 0.3:
                p = self.customers[int(rng.random() * len(self.customers))]
            elif self.subscribers and rng.random() < 0.3:
                p = self.subscribers[int(rng.random() * len(self.subscribers))]
                if self.people[p][1] is not None:
                    p = self.new_person()
                    self.emit_profile(p, times[0])
            else:
                p = self.new_person()
                self.emit_profile(p, times[0])
            if self.people[p][1] is None:
                self.new_customers_by_day.setdefault(od, []).append(p)
            self.order(p, t_order, touches)
        # browsing that does not convert (some of it by known shoppers on their usual device)
        n_browse = round(per_day * 6.5 * seasonal * rng.uniform(0.9, 1.1))
        view_props = '{"ProductName":"Product","$value":0}'
        for _ in range(n_browse):
            t = self.local_time(day_start, day_len)
            ch = self.pick(self.br_names, self.br_cum)
            if self.customers and rng.random() < 0.1:
                p = self.customers[int(rng.random() * len(self.customers))]
                self.session(p, t, ch, identified=False)
                self.kev("Viewed Product", p, t + 20, view_props)
                if rng.random() < 0.08:
                    self.flow("Abandoned Cart", p, t)
            else:
                self.session(None, t, ch, identified=False)
        # new newsletter subscribers (welcome series) and SMS subscribers (Attentive welcome email)
        for _ in range(round(per_day * 0.6)):
            p = self.new_person()
            t = self.local_time(day_start, day_len)
            self.emit_profile(p, t)
            self.subscribers.append(p)
            self.flow("Welcome Series", p, t)
        for _ in range(round(per_day * 0.2)):
            p = self.subscribers[int(rng.random() * len(self.subscribers))]
            t = self.local_time(day_start, day_len)
            self.sms_subscribers.append(p)
            self.attentive_subscription("attentive_subscribed", p, t)
            mid = f"AE{self.mh % 1000:03d}01"
            self.attentive("attentive_email_sent", p, t + 60, mid, "Welcome email", "JOURNEY", "EMAIL")
            if rng.random() < 0.45:
                self.attentive("attentive_email_opened", p, t + 900, mid, "Welcome email", "JOURNEY", "EMAIL")
                if rng.random() < 0.15:
                    self.attentive(
                        "attentive_email_message_link_click",
                        p,
                        t + 960,
                        mid,
                        "Welcome email",
                        "JOURNEY",
                        "EMAIL",
                        f"https://{self.shop}/?utm_source=attentive",
                    )
        # Klaviyo email campaigns: Tuesday, Thursday, Saturday at 10:00 local time
        if d.weekday() in (1, 3, 5):
            self.email_campaign(d, day_start + 10 * 3600)
        # Attentive SMS campaign: Wednesdays at noon
        if d.weekday() == 2:
            self.sms_campaign(d, day_start + 12 * 3600)

    def simulate(self, go_on: Callable[[], bool] = lambda: True) -> None:
        """Replay the world from its first day through ``end``, emitting every row (``emit`` filters)."""
        self.setup()
        d = self.start - dt.timedelta(days=WARMUP_DAYS)
        while d <= self.end and go_on():
            self.day(d)
            if self.progress is not None:
                self.progress(d.isoformat(), sum(self.written.values()) + self.pending)
            d += dt.timedelta(days=1)

    def run(self) -> dict[str, int]:
        self.queue: queue.Queue = queue.Queue(maxsize=4)
        self.copy_error: BaseException | None = None
        worker = threading.Thread(target=self.copy_worker, name="demo-data-copy", daemon=True)
        worker.start()
        try:
            self.simulate(lambda: self.copy_error is None)
            self.flush()
        finally:
            self.queue.put(None)
            worker.join()
        if self.copy_error is not None:
            self.conn.rollback()
            raise self.copy_error
        self.conn.commit()
        return dict(self.written)


def generate_demo_data(
    conn: psycopg.Connection,
    *,
    merchant_key: str,
    shop_domain: str,
    timezone: str,
    currency: str,
    days: int,
    orders_per_day: int,
    seed: int,
    end_date: dt.date | None = None,
    progress: Callable[[str, int], None] | None = None,
    from_date: dt.date | None = None,
) -> dict[str, int]:
    """Write ``days`` days of raw data ending on ``end_date`` (a local date, inclusive; default today).

    Creates the raw schema if needed, writes with COPY and commits; returns rows written per table.
    ``progress(label, rows_so_far)`` is called once per simulated day.

    Appending: rows are written when their ``_airbyte_extracted_at`` falls between local midnight of
    ``from_date`` (default: the first day) and local midnight after ``end_date``. To add one more day
    to data generated with ``days=N, end_date=E``, call again with ``days=N + 1, end_date=E + 1 day,
    from_date=E + 1 day`` and the same seed: the simulation replays the same history and writes only
    what the next day's syncs would land (new records, later versions, refunds and Meta restatements
    of earlier days). Sessions of a new order that fall before ``from_date`` are not written.
    """
    if days < 1 or orders_per_day < 1:
        raise ValueError("days and orders_per_day must be positive")
    end = end_date or dt.date.today()
    create_raw_schema(conn, merchant_key)
    gen = _Generator(
        conn,
        merchant_key=merchant_key,
        shop_domain=shop_domain,
        timezone=timezone,
        currency=currency,
        days=days,
        orders_per_day=orders_per_day,
        seed=seed,
        end_date=end,
        from_date=from_date,
        progress=progress,
    )
    return gen.run()
