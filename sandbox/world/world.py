"""Which records of the simulated world exist up to a simulated clock, per merchant and per stream.

A world is one merchant simulation (``sandbox.world.simulation``) named by an identity taken from a
source's configuration (the Shopify shop, the Meta ad account, the Google Ads customer, the Klaviyo
account, the exchange-rate base currency), so two stores' sources see different merchants and a source
sees the same one every time.
The simulation stamps every row with the moment it became visible (``ext``: the next hourly sync after
the record changed); a sync at ``now`` reads what became visible since the stream's last sync, the way a
connector's incremental read does: each record once, in its latest version (the highest cursor value).

A world is simulated once and kept (``_WorldCache``, keyed by the identity, the first day and the settings
the simulation reads), then continued day by day as the clock moves: the simulation is causal, so a run
that stopped later holds the same records up to any earlier moment. A sync costs what it reads; only a
world's first sync (or one after its settings changed, or after it left the cache) pays for its history.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
import threading
import time
import zlib
from array import array
from collections import OrderedDict
from typing import Any
from zoneinfo import ZoneInfo

from analytics.raw_schema import RAW_TABLES
from sandbox.world.columns import EMITTED
from sandbox.world.simulation import DAY, WARMUP_DAYS, _Generator

# source type -> Airbyte stream name -> the world's table of that stream (analytics/raw_schema.py shape)
STREAM_TABLES: dict[str, dict[str, str]] = {
    "shopify": {
        "orders": "shopify_orders",
        "order_refunds": "shopify_order_refunds",
        "customers": "shopify_customers",
        "shop": "shopify_shop",
    },
    "facebook-marketing": {
        "campaigns": "facebook_marketing_campaigns",
        "ads_insights": "facebook_marketing_ads_insights",
    },
    "google-ads": {"campaign": "google_ads_campaign", "customer": "google_ads_customer"},
    "klaviyo": {
        "campaigns": "klaviyo_campaigns",
        "events": "klaviyo_events",
        "flows": "klaviyo_flows",
        "metrics": "klaviyo_metrics",
        "profiles": "klaviyo_profiles",
    },
    "exchange-rates": {"rates": "exchange_rates_rates"},
}
# table -> (columns naming one record, the column whose value orders its versions)
RECORD_KEYS: dict[str, tuple[tuple[str, ...], str | None]] = {
    "shopify_orders": (("id",), "updated_at"),
    "shopify_order_refunds": (("id",), "created_at"),
    "shopify_customers": (("id",), "updated_at"),
    "shopify_shop": (("id",), "updated_at"),
    "facebook_marketing_campaigns": (("id",), "updated_time"),
    "facebook_marketing_ads_insights": (("date_start", "account_id", "ad_id"), "updated_time"),
    "google_ads_campaign": (("campaign_id", "segments_date", "segments_ad_network_type", "segments_device"), None),
    "google_ads_customer": (("customer_id", "segments_date"), None),
    "klaviyo_campaigns": (("id",), "updated_at"),
    "klaviyo_events": (("id",), "datetime"),
    "klaviyo_flows": (("id",), "updated"),
    "klaviyo_metrics": (("id",), "updated"),
    "klaviyo_profiles": (("id",), "updated"),
    "exchange_rates_rates": (("date",), "date"),
}
# A record's text holds its emitter's columns (checked against the raw schema at import): key and cursor by name.
_INDEX = {table: {name: i for i, name in enumerate(cols)} for table, cols in EMITTED.items()}
_KEY_INDEXES = {
    table: (tuple(_INDEX[table][c] for c in key), None if cursor is None else _INDEX[table][cursor])
    for table, (key, cursor) in RECORD_KEYS.items()
}


@dataclasses.dataclass
class WorldSettings:
    """What every world of one sandbox shares. The demo's main store: a year, 40 orders a day."""

    history_days: int = 365
    orders_per_day: int = 40
    seed: int = 1
    timezone: str = "America/New_York"
    currency: str = "USD"
    start_date: dt.date | None = None  # first simulated day; None: fixed by the first sync's clock
    # identity -> identity: sources of one store read one merchant (its Meta campaigns are the ones its
    # Shopify sessions and Klaviyo events refer to), e.g. {"meta:111": "shopify:acme"}
    links: dict[str, str] = dataclasses.field(default_factory=dict)
    # identity -> settings of that world only (e.g. a smaller second demo store): {"history_days": 180}; a
    # world's own start_date keeps its first day across sandbox restarts (the demo fixes it from the store's)
    worlds: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        body = dataclasses.asdict(self)
        body["start_date"] = self.start_date.isoformat() if self.start_date else None
        return body


SETTINGS_FIELDS = {f.name for f in dataclasses.fields(WorldSettings)}


def settings_update(settings: WorldSettings, payload: dict[str, Any]) -> WorldSettings:
    """A copy of ``settings`` with ``payload`` applied; ValueError names a bad field."""
    unknown = set(payload) - SETTINGS_FIELDS
    if unknown:
        raise ValueError(f"unknown world settings: {sorted(unknown)}")
    values = dataclasses.asdict(settings)
    for name in ("history_days", "orders_per_day", "seed"):
        if name in payload:
            value = payload[name]
            if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "seed" else 1):
                raise ValueError(f"{name} must be a positive integer")
            values[name] = value
    if "timezone" in payload:
        try:
            ZoneInfo(str(payload["timezone"]))
        except (KeyError, ValueError):
            raise ValueError("timezone must be an IANA time zone") from None
        values["timezone"] = str(payload["timezone"])
    if "currency" in payload:
        if not isinstance(payload["currency"], str) or not re.fullmatch(r"[A-Z]{3}", payload["currency"]):
            raise ValueError("currency must be an ISO 4217 code")
        values["currency"] = payload["currency"]
    if "links" in payload:
        links = payload["links"]
        if not isinstance(links, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in links.items()):
            raise ValueError('links must map identities to identities, e.g. {"meta:111": "shopify:acme"}')
        values["links"] = dict(links)
    if "worlds" in payload:
        worlds = payload["worlds"]
        if not isinstance(worlds, dict) or not all(isinstance(v, dict) for v in worlds.values()):
            raise ValueError("worlds must map identities to settings of that world")
        for identity, own in worlds.items():
            if set(own) & {"links", "worlds"}:
                raise ValueError(
                    f"worlds.{identity}: only history_days, orders_per_day, seed, timezone, currency, start_date"
                )
            settings_update(settings, own)  # raises on a bad value
        values["worlds"] = {k: dict(v) for k, v in worlds.items()}
    if "start_date" in payload:
        raw = payload["start_date"]
        try:
            values["start_date"] = None if raw is None else dt.date.fromisoformat(raw)
        except (TypeError, ValueError):
            raise ValueError("start_date must be a YYYY-MM-DD date or null") from None
    return WorldSettings(**values)


class Clock:
    """The world's "now": the wall clock unless a test set it; setting it freezes it there."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.frozen: float | None = None

    def now(self) -> float:
        with self._lock:
            return time.time() if self.frozen is None else self.frozen

    def set(self, epoch: float) -> None:
        with self._lock:
            self.frozen = float(epoch)

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.frozen = (time.time() if self.frozen is None else self.frozen) + float(seconds)

    def follow_wall_clock(self) -> None:
        with self._lock:
            self.frozen = None


def _handle(shop: str) -> str:
    shop = re.sub(r"^https?://", "", shop.strip().lower()).rstrip("/")
    return shop.removesuffix(".myshopify.com")


def world_identity(source_type: str, configuration: dict[str, Any], klaviyo_account: str | None = None) -> str:
    """The merchant a source's data comes from, from its configuration (never a secret in clear)."""
    if source_type == "shopify":
        return f"shopify:{_handle(configuration['shop'])}"
    if source_type == "facebook-marketing":
        return "meta:" + ",".join(sorted(configuration["account_ids"]))
    if source_type == "google-ads":
        return "google:" + (configuration.get("customer_id") or "none")
    if source_type == "klaviyo":
        if klaviyo_account:
            return f"klaviyo:{klaviyo_account}"
        return f"klaviyo:key{zlib.crc32(configuration['api_key'].encode()):08x}"
    if source_type == "exchange-rates":  # one market for everyone: the world of the base currency
        return "fx:" + (configuration.get("base") or "EUR")
    raise ValueError(f"no world for source type {source_type}")


def world_of(settings: WorldSettings, identity: str) -> str:
    """The world an identity reads: its link's, if the test or the demo linked it to another one."""
    return settings.links.get(identity, identity)


def world_settings(settings: WorldSettings, identity: str) -> WorldSettings:
    """The settings of one world: the shared ones with that world's own (``worlds``) applied."""
    return settings_update(settings, settings.worlds.get(identity, {}))


def _world_key(identity: str) -> str:
    """A merchant key for the simulation (ids and names derive from it): ``w_<kind>_<id>``."""
    return ("w_" + re.sub(r"[^a-z0-9]+", "_", identity.lower()).strip("_"))[:51]


def _shop_domain(identity: str) -> str:
    kind, _, rest = identity.partition(":")
    if kind == "shopify":
        return f"{rest}.myshopify.com"
    return re.sub(r"[^a-z0-9]+", "-", identity.lower()).strip("-") + ".myshopify.com"


def world_start(settings: WorldSettings, now: float) -> dt.date:
    """The first simulated day when none is fixed: ``history_days`` days up to the local date of ``now``."""
    if settings.start_date is not None:
        return settings.start_date
    today = dt.datetime.fromtimestamp(now, ZoneInfo(settings.timezone)).date()
    return today - dt.timedelta(days=settings.history_days - 1)


@dataclasses.dataclass(frozen=True)
class Record:
    """One record as a sync reads it: the COPY text of its stream columns, and when it became visible."""

    fields: str
    visible_at: int
    seq: int


class _Reader(_Generator):
    """Replays the world and keeps, per wanted table, the latest version of each record in the window."""

    def __init__(self, tables: dict[str, int], **kwargs: Any) -> None:
        super().__init__(None, **kwargs)
        self.wanted = tables  # table -> lower bound of its window (epoch seconds)
        self.found: dict[str, dict[tuple[str, ...], tuple[tuple[str, int, int], Record]]] = {t: {} for t in tables}

    def emit(self, table: str, ext: int, fields: str) -> None:
        n = self.seq[table] = self.seq[table] + 1
        lo = self.wanted.get(table)
        if lo is None or not (lo <= ext < self.hi):
            return
        if table not in _KEY_INDEXES:  # a table no stream reads (sessions, Attentive events): every row as emitted
            self.found[table][(str(n),)] = (("", ext, n), Record(fields, ext, n))
            return
        values = fields.split("\t")
        key_at, cursor_at = _KEY_INDEXES[table]
        key = tuple(values[i] for i in key_at)
        order = ("" if cursor_at is None else values[cursor_at], ext, n)
        held = self.found[table].get(key)
        if held is None or held[0] < order:
            self.found[table][key] = (order, Record(fields, ext, n))


def _simulation(settings: WorldSettings, identity: str) -> dict[str, Any]:
    """The simulation's arguments that make a world what it is (what the cache keys a world by, with its start)."""
    return {
        "merchant_key": _world_key(identity),
        "shop_domain": _shop_domain(identity),
        "timezone": settings.timezone,
        "currency": settings.currency,
        "orders_per_day": settings.orders_per_day,
        "seed": zlib.crc32(f"{settings.seed}:{identity}".encode()),
    }


def _replayed(
    settings: WorldSettings, identity: str, *, start: dt.date, end: dt.date, now: float, windows: dict[str, int]
) -> dict[str, list[Record]]:
    """``world_records`` without the cache: replay the world from its first day through ``end``."""
    reader = _Reader(
        windows,
        **_simulation(settings, identity),
        days=(end - start).days + 1,
        end_date=end,
        from_date=None,
        progress=None,
        window=(min(windows.values()), int(now)),
    )
    reader.simulate()
    return {table: sorted((r for _, r in reader.found[table].values()), key=lambda r: r.seq) for table in windows}


class _Recorder(_Generator):
    """One world simulated once from its first day and continued day by day as its clock moves on.

    It keeps every version of every table's records that became visible from the first day on, with when
    (``ext``) and its place in the stream (``seq``), bucketed by the UTC day of ``ext`` so a window of a day
    reads a day. Continuing is replaying: the simulation draws from one random stream day after day and never
    looks at where it will stop, so day ``d`` is the same whether the run stops at ``d`` or goes on (the
    causality test in tests/sandbox/test_world.py). Guarded by ``lock``: one thread simulates or reads at once.

    A bucket no later day can add to (a day's records become visible 14 hours before its local midnight at
    the earliest, see ``_SEAL_MARGIN``) is sealed: its fields joined and zlib-compressed (7 to 15 times smaller), so a
    world of scale M fits in about a tenth of its text. Should a record still arrive for a sealed bucket, the
    bucket is opened again: the margin is about memory, never about which rows a window gets.
    """

    def __init__(self, *, start: dt.date, **simulation: Any) -> None:
        super().__init__(None, **simulation, days=1, end_date=start, from_date=None, progress=None)
        self.lo, self.hi = self.midnight(start), _NEVER  # keep all from the first day on; nothing is too late
        self.lock = threading.Lock()
        self.next_day: dt.date | None = None  # the first day not simulated yet (None: nothing simulated)
        # table -> UTC day of ext -> (fields, ext, seq) in emission order; sealed: the fields compressed
        self.open: dict[str, dict[int, tuple[list[str], array, array]]] = {t: {} for t in RAW_TABLES}
        self.sealed: dict[str, dict[int, tuple[bytes, array, array]]] = {t: {} for t in RAW_TABLES}
        self.reopened = 0  # sealed buckets a late record opened again (the margin too small: 0 expected)

    def emit(self, table: str, ext: int, fields: str) -> None:
        n = self.seq[table] = self.seq[table] + 1
        if ext < self.lo:  # before the first day
            return
        opened = self.open[table]
        bucket = opened.get(ext // DAY)
        if bucket is None:
            bucket = self._unsealed(table, ext // DAY)
            if bucket is None:
                bucket = ([], array("q"), array("q"))
            else:
                del self.sealed[table][ext // DAY]
                self.reopened += 1
            opened[ext // DAY] = bucket
        bucket[0].append(fields)
        bucket[1].append(ext)
        bucket[2].append(n)

    def _unsealed(self, table: str, day: int) -> tuple[list[str], array, array] | None:
        sealed = self.sealed[table].get(day)
        if sealed is None:
            return None
        text, exts, seqs = sealed
        return zlib.decompress(text).decode().split("\n"), exts, seqs

    def _seal(self) -> None:
        before = (self.midnight(self.next_day) - _SEAL_MARGIN) // DAY
        for table, opened in self.open.items():
            for day in [d for d in opened if d < before]:
                fields, exts, seqs = opened.pop(day)
                self.sealed[table][day] = (zlib.compress("\n".join(fields).encode(), 1), exts, seqs)

    def simulate_through(self, end: dt.date) -> int:
        """Simulate the days up to ``end`` not simulated yet; returns how many."""
        if self.next_day is None:
            self.setup()
            self.next_day = self.start - dt.timedelta(days=WARMUP_DAYS)
        days = 0
        while self.next_day <= end:
            self.day(self.next_day)
            self.next_day += dt.timedelta(days=1)
            days += 1
            if days % 7 == 0:  # as it goes: a history's text never all at once in memory
                self._seal()
        self._seal()
        return days

    def window(self, table: str, lo: int, hi: int) -> list[Record]:
        """What ``_Reader`` finds for ``table`` in ``[lo, hi)``, by seq: of a stream's table each key once in
        its latest version; of a table no stream reads (sessions, Attentive events) every row."""
        key_at, cursor_at = _KEY_INDEXES.get(table, (None, None))
        found: dict[tuple[str, ...], tuple[tuple[str, int, int], str]] = {}
        for day in range(lo // DAY, (hi - 1) // DAY + 1) if lo < hi else ():
            bucket = self.open[table].get(day) or self._unsealed(table, day)
            if bucket is None:
                continue
            for fields, ext, n in zip(*bucket, strict=True):
                if not lo <= ext < hi:
                    continue
                if key_at is None:  # every row, as emitted
                    found[(str(n),)] = (("", ext, n), fields)
                    continue
                values = fields.split("\t")
                key = tuple(values[i] for i in key_at)
                order = ("" if cursor_at is None else values[cursor_at], ext, n)
                held = found.get(key)
                if held is None or held[0] < order:
                    found[key] = (order, fields)
        return [Record(fields, ext, n) for (_, ext, n), fields in sorted(found.values(), key=lambda v: v[0][2])]

    def figures(self) -> dict[str, int]:
        """Records held (every version) and the bytes of their text as held (sealed: compressed)."""
        buckets = [b for held in (self.open, self.sealed) for table in held.values() for b in table.values()]
        text = sum(len(b[0]) if isinstance(b[0], bytes) else sum(map(len, b[0])) for b in buckets)
        return {"records": sum(len(b[1]) for b in buckets), "text_bytes": text, "reopened": self.reopened}


class _WorldCache:
    """The last few worlds simulated, least recently used first out. Thread-safe: the sandbox serves requests
    from threads and runs each job in a worker thread; ``_lock`` guards the table of worlds and the counters,
    each world's own lock its simulation and reads (two worlds simulate side by side)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._worlds: OrderedDict[tuple[Any, ...], _Recorder] = OrderedDict()
        self.replays = 0  # simulations begun from a world's first day
        self.days = 0  # days simulated, in all

    def world(self, key: tuple[Any, ...], start: dt.date, simulation: dict[str, Any]) -> _Recorder:
        with self._lock:
            world = self._worlds.get(key)
            if world is None:
                world = self._worlds[key] = _Recorder(start=start, **simulation)
                self.replays += 1
                while len(self._worlds) > self.size:
                    self._worlds.popitem(last=False)  # a job still reading it keeps its own reference
            else:
                self._worlds.move_to_end(key)
            return world

    def simulated(self, days: int) -> None:
        with self._lock:
            self.days += days

    def clear(self) -> None:
        with self._lock:
            self._worlds.clear()

    def stats(self) -> dict[str, int]:
        with self._lock:
            return {"worlds": len(self._worlds), "replays": self.replays, "days": self.days}


_NEVER = 2**62
# A day's records become visible 14 hours before its local midnight at the earliest (journeys that start
# the next day); buckets that end two days before the first day left to simulate are final.
_SEAL_MARGIN = 2 * DAY
# A world of the bench's scale M (730 days x 300 orders a day) holds 8.3 million records (every version of
# every table: 4.7 million Klaviyo events, 2.3 million sessions and Attentive events): the process grows by
# about 700 MB for it (280 MB of compressed text, 130 MB of times and positions, the simulation's own state).
# Three such worlds: ~2.1 GB; the demo's (365 days x 40 orders) are a tenth of that.
WORLD_CACHE_SIZE = 3
# Days simulated beyond the one a sync needs, so the next days' syncs find them done.
LOOKAHEAD_DAYS = 3
_CACHE = _WorldCache(WORLD_CACHE_SIZE)


def world_cache_clear() -> None:
    """Forget every simulated world (the world's settings changed: a world is keyed by what it depends on,
    so this only frees the memory of worlds no sync will read again)."""
    _CACHE.clear()


def world_cache_stats() -> dict[str, int]:
    """``worlds`` held, ``replays`` (simulations begun from a first day) and ``days`` simulated, so far."""
    return _CACHE.stats()


def world_records(
    settings: WorldSettings, identity: str, *, start: dt.date, now: float, windows: dict[str, int | None]
) -> dict[str, list[Record]]:
    """Per table, the records that became visible in ``[windows[table], now)`` (None: since the beginning).

    The simulation runs through the day after ``now``'s local date: a journey that starts tomorrow may
    already have sessions tonight. It never reads the wall clock, so the same arguments give the same rows.
    A world is simulated once and kept (``_WorldCache``): a sync costs what it reads, not the history.
    """
    tz = ZoneInfo(settings.timezone)
    end = dt.datetime.fromtimestamp(now, tz).date() + dt.timedelta(days=1)
    if end < start:
        return {table: [] for table in windows}
    # Like the demo data: what became visible from the first day on (journeys under way before it count
    # only from then; the shop, campaigns, metrics and the initial lists arrive with the first sync).
    beginning = int(dt.datetime(start.year, start.month, start.day, tzinfo=tz).timestamp())
    lows = {table: beginning if lo is None else int(lo) for table, lo in windows.items()}
    if any(lo < beginning for lo in lows.values()):  # a cursor from before the first day (start_date moved on)
        return _replayed(settings, identity, start=start, end=end, now=now, windows=lows)
    simulation = _simulation(settings, identity)
    world = _CACHE.world((identity, start, *sorted(simulation.items())), start, simulation)
    with world.lock:
        if world.next_day is None or world.next_day <= end:
            _CACHE.simulated(world.simulate_through(end + dt.timedelta(days=LOOKAHEAD_DAYS)))
        return {table: world.window(table, lo, int(now)) for table, lo in lows.items()}


def world_pixel_events(
    settings: WorldSettings,
    identity: str,
    *,
    start: dt.date,
    now: float,
    after: tuple[int, str] | None = None,
    limit: int = 5000,
) -> tuple[list[dict[str, Any]], tuple[int, str] | None]:
    """The web pixel's events of the world's visitors that occurred before ``now``, in (time, event id) order,
    from just after ``after`` (``(epoch seconds, event id)`` of the last one already taken; None: from the
    first day): at most ``limit``, and the position to continue from (None: nothing more before ``now``).

    Read a day of event time at a time: the sessions that can have events in it (visible from an hour before
    it to two hours after it: a session becomes visible at the next hourly sync after it starts) and the orders
    their checkouts end in (``sources.web_events``). Deterministic: the same world and arguments give the same
    events, and a page ends where the next one begins.
    """
    from sandbox.world.sources.web_events import events_in, orders_by_customer

    tz = ZoneInfo(settings.timezone)
    beginning = int(dt.datetime(start.year, start.month, start.day, tzinfo=tz).timestamp())
    end = int(now)
    lo = beginning if after is None else max(beginning, int(after[0]))
    found: list[dict[str, Any]] = []
    while lo < end:
        hi = min(end, (lo // DAY + 1) * DAY)
        reach = max(beginning, lo - 3600)
        records = world_records(
            settings, identity, start=start, now=hi + 2 * 3600, windows={"web_sessions": reach, "shopify_orders": reach}
        )
        orders = orders_by_customer(r.fields for r in records["shopify_orders"])
        events = events_in((r.fields for r in records["web_sessions"]), orders, lo, hi)
        if after is not None:
            events = [e for e in events if (e["seq"], e["event_id"]) > after]
        room = limit - len(found)
        if len(events) > room:
            found.extend(events[:room])
            last = found[-1]
            return found, (last["seq"], last["event_id"])
        found.extend(events)
        lo = hi
    if found and len(found) == limit:
        last = found[-1]
        return found, (last["seq"], last["event_id"])
    return found, None
