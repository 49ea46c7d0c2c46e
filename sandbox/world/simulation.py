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

from analytics.raw_schema import RAW_TABLES, create_raw_schema, raw_schema_name, table_columns

N = "\\N"  # NULL in COPY text format
DAY = 86400
WARMUP_DAYS = 45  # journeys that convert inside the window may start before it

_HMS = [f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}" for s in range(DAY)]
_TABLE_NO = {name: i + 1 for i, name in enumerate(RAW_TABLES)}
_PRODUCTS = [
    (7_000_000_000 + i, f"Product {i:02d}", price)
    for i, price in enumerate(
        [
            12,
            15,
            18,
            19,
            22,
            24,
            25,
            28,
            29,
            32,
            35,
            38,
            39,
            42,
            45,
            48,
            49,
            55,
            59,
            65,
            69,
            75,
            79,
            85,
            89,
            95,
            99,
            110,
            120,
            135,
        ]
    )
]
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
_KLAVIYO_METRICS = [
    "Received Email",
    "Opened Email",
    "Clicked Email",
    "Bounced Email",
    "Marked Email as Spam",
    "Unsubscribed",
    "Placed Order",
    "Ordered Product",
    "Viewed Product",
]
_KLAVIYO_FLOWS = [  # (name, trigger, number of messages, delays in hours)
    ("Welcome Series", "Added to List", (0, 48, 120)),
    ("Abandoned Cart", "Metric", (2, 26)),
    ("Post-Purchase", "Metric", (24,)),
    ("Browse Abandonment", "Metric", (1,)),
]


def _cumulative(weights: list[tuple[str, int]]) -> tuple[list[str], list[int]]:
    names, cum, total = [], [], 0
    for name, w in weights:
        total += w
        names.append(name)
        cum.append(total)
    return names, cum


class _Generator:
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
        self.uuid_prefix = {t: f"{self.mh:08x}-{_TABLE_NO[t]:04x}-4000-8000-" for t in RAW_TABLES}
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
                    cols = sql.SQL(", ").join(sql.Identifier(c) for c, _ in table_columns(table))
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
        rng = self.rng
        self.hour_cum, acc = [], 0
        for w in _HOUR_WEIGHTS:
            acc += w
            self.hour_cum.append(acc)
        self.hour_total = acc
        self.ch_names, self.ch_cum = _cumulative(_CHANNELS)
        self.br_names, self.br_cum = _cumulative(_BROWSE_CHANNELS)
        t0 = self.midnight(self.start) - (WARMUP_DAYS + 400) * DAY
        created = self.ts(t0)
        shop_id = 60_000_000 + self.mh % 1_000_000
        name = self.shop.split(".")[0].replace("-", " ").title()
        shop = (
            f"{shop_id}\t{name}\t{self.shop}\t{self.shop}\t{self.currency}\t"
            f'["{self.currency}"]\t{self.tzname}\t(GMT) {self.tzname}\tShopify\tUS\t{created}\t{created}\t'
            f"{self.shop}"
        )
        first_sync = self.midnight(self.start) + 300  # the connection's first sync
        self.emit("shopify_shop", first_sync, shop)
        self.emit("shopify_shop", first_sync + 7 * DAY, shop)  # re-emitted by a later full sync
        # Meta: one ad account in the shop currency
        self.fb_account = f"{10_000_000_000 + self.mh % 1_000_000}"
        n_fb = max(2, self.O // 30)
        self.fb_campaigns = []
        for i in range(n_fb):
            cid = f"{23_850_000_000_000 + self.mh % 10_000 * 1000 + i}"
            cname = ["Prospecting", "Retargeting", "Advantage+ Shopping", "Lookalike"][i % 4] + f" {i + 1:02d}"
            ads = [(f"{cid}{a:02d}", f"{cname} / Ad {a + 1}") for a in range(6)]
            weight = rng.uniform(0.5, 1.5)
            self.fb_campaigns.append((cid, cname, ads, weight))
            self.emit(
                "facebook_marketing_campaigns",
                first_sync,
                f"{cid}\t{self.fb_account}\t{cname}\tOUTCOME_SALES\tACTIVE\tACTIVE\t{rng.randrange(50, 500)}00"
                f"\tLOWEST_COST_WITHOUT_CAP\tAUCTION\t{created}\t{created}\t{created}",
            )
        # Google Ads: one customer (account) billed in another currency
        self.g_customer = 1_000_000_000 + self.mh % 100_000_000
        n_g = max(2, self.O // 40)
        kinds = ["SEARCH", "SHOPPING", "PERFORMANCE_MAX"]
        self.g_campaigns = []
        for i in range(n_g):
            gname = ["Brand Search", "Generic Search", "Shopping", "PMax"][i % 4] + f" {i + 1:02d}"
            self.g_campaigns.append(
                (20_000_000_000 + self.mh % 10_000 * 100 + i, gname, kinds[i % 3], rng.uniform(0.5, 1.5))
            )
        self.emit(
            "google_ads_customer",
            first_sync,
            f"{self.g_customer}\t{name} Ads\t{self.ad_currency}\t{self.tzname}\tf\tf\tt\t{self.day_str(first_sync)}",
        )
        # Klaviyo metrics and flows
        self.metric_ids = {}
        for i, m in enumerate(_KLAVIYO_METRICS):
            mid = f"M{self.mh % 10_000:04d}{i:02d}"
            self.metric_ids[m] = mid
            integ = "Shopify" if m in ("Placed Order", "Ordered Product", "Viewed Product") else "Klaviyo"
            self.emit(
                "klaviyo_metrics",
                first_sync,
                f'metric\t{mid}\t{{"name":"{m}","created":"{created}","updated":"{created}",'
                f'"integration":{{"name":"{integ}","category":"{"eCommerce" if integ == "Shopify" else "Internal"}"}}}}'
                f'\t{{"self":"https://a.klaviyo.com/api/metrics/{mid}/"}}\t{{}}\t{created}',
            )
        self.rel_prefix = {
            m: f'{{"metric":{{"data":{{"type":"metric","id":"{mid}"}}}},"profile":{{"data":{{"type":"profile","id":"'
            for m, mid in self.metric_ids.items()
        }
        self.flows = []
        for i, (fname, trigger, delays) in enumerate(_KLAVIYO_FLOWS):
            fid = f"F{self.mh % 10_000:04d}{i:02d}"
            msgs = [f"{fid}M{j}" for j in range(len(delays))]
            self.flows.append((fid, fname, delays, msgs))
            self.emit(
                "klaviyo_flows",
                first_sync,
                f'flow\t{fid}\t{{"name":"{fname}","status":"live","archived":false,"trigger_type":"{trigger}",'
                f'"created":"{created}","updated":"{created}"}}\t{N}\t{{}}\t{created}',
            )
        self.flow_by_name = {f[1]: f for f in self.flows}
        # Initial email list (Klaviyo) and SMS list (Attentive)
        for _ in range(20 * self.O):
            p = self.new_person()
            self.subscribers.append(p)
            if rng.random() < 0.2:
                self.sms_subscribers.append(p)
            self.emit_profile(p, t0 + int(rng.random() * (400 * DAY)), ext=first_sync)

    def new_person(self) -> int:
        idx = len(self.people)
        self.people.append([f"a{self.mh % 100_000:05d}{idx:08d}", None, 0, 0.0])
        return idx

    def profile_id(self, p: int) -> str:
        return f"{self.profile_prefix}{p:018d}"

    def email(self, p: int) -> str:
        return f"shopper{p}@example.com"

    def emit_profile(self, p: int, t: int, ext: int | None = None) -> None:
        pid = self.profile_id(p)
        when = self.ts(t)
        self.emit(
            "klaviyo_profiles",
            ext or self.sync_after(t),
            f'profile\t{pid}\t{{"email":"{self.email(p)}","phone_number":"+1555{p:07d}","created":"{when}",'
            f'"updated":"{when}","location":{{"country":"United States"}}}}'
            f'\t{{"self":"https://a.klaviyo.com/api/profiles/{pid}/"}}\t{{}}\t{when}',
        )

    # ---------------------------------------------------------------- Klaviyo / Attentive events
    def kev(self, metric: str, p: int, t: int, props: str) -> None:
        ext = self.sync_after(t)
        if not (self.lo - 2 * DAY <= ext < self.hi):  # outside the window: only advance the counters
            self.seq["klaviyo_events"] += 1
            if self.rng.random() < 0.01:
                self.seq["klaviyo_events"] += 1
            return
        fields = (
            f'event\t{self.event_prefix}{self.seq["klaviyo_events"] + 1:012d}\t{{"timestamp":{t},'
            f'"event_properties":{props}}}\t{N}\t{self.rel_prefix[metric]}{self.profile_id(p)}"}}}}}}\t{self.ts(t)}'
        )
        self.emit("klaviyo_events", ext, fields)
        if self.rng.random() < 0.01:  # re-emitted by an overlapping incremental sync
            self.emit("klaviyo_events", ext + 3600, fields)

    def message_funnel(self, p: int, t: int, props: str, open_rate: float, click_rate: float) -> int | None:
        """Received -> (bounce) -> opened (maybe twice) -> clicked; returns the click time."""
        rng = self.rng
        r = rng.random()
        if r < 0.008:
            self.kev("Bounced Email", p, t + 5, props)
            return None
        self.kev("Received Email", p, t + 5, props)
        if r > 1 - 0.0003:
            self.kev("Marked Email as Spam", p, t + 3600, props)
        if rng.random() >= open_rate:
            return None
        t_open = t + 60 + int(rng.expovariate(1 / 10800))
        self.kev("Opened Email", p, t_open, props)
        if rng.random() < 0.3:
            self.kev("Opened Email", p, t_open + rng.randrange(600, 86400), props)
        if rng.random() < 0.004:
            self.kev("Unsubscribed", p, t_open + 30, props)
        if rng.random() >= click_rate:
            return None
        t_click = t_open + rng.randrange(5, 300)
        self.kev("Clicked Email", p, t_click, props)
        if rng.random() < 0.2:
            self.kev("Clicked Email", p, t_click + rng.randrange(30, 900), props)
        return t_click

    def flow_props(self, flow_name: str, step: int) -> str:
        fid, _, _, msgs = self.flow_by_name[flow_name]
        return f'{{"$flow":"{fid}","$message":"{msgs[step]}","Subject":"{flow_name} #{step + 1}"}}'

    def flow(self, flow_name: str, p: int, t: int, open_rate: float = 0.45, click_rate: float = 0.12) -> None:
        _, _, delays, _ = self.flow_by_name[flow_name]
        for step, delay in enumerate(delays):
            click = self.message_funnel(p, t + delay * 3600, self.flow_props(flow_name, step), open_rate, click_rate)
            if click is not None and self.rng.random() < 0.6:
                self.session(p, click + 2, "email", identified=False, campaign=flow_name.lower().replace(" ", "_"))

    def attentive(
        self,
        table: str,
        p: int,
        t: int,
        msg_id: str,
        msg_name: str,
        msg_type: str,
        channel: str,
        extra: str | None = None,
    ) -> None:
        fields = (
            f"{table.removeprefix('attentive_')}\t{self.ts(t)}\tC{self.mh % 100_000}\t{self.shop}\t{msg_id}"
            f"\t{msg_name}\t{msg_type}\t{channel}\t{msg_name}: new drop inside\tS{p:09d}\t{self.email(p)}"
            f"\t+1555{p:07d}"
        )
        if extra is not None:
            fields += f"\t{extra}"
        self.emit(table, t + 2, fields)

    def attentive_subscription(self, table: str, p: int, t: int) -> None:
        self.emit(
            table,
            t + 2,
            f"{table.removeprefix('attentive_')}\t{self.ts(t)}\tC{self.mh % 100_000}\tMARKETING\tTEXT\t"
            f"Spring popup\tPOPUP\tS{p:09d}\t{self.email(p)}\t+1555{p:07d}",
        )

    # ---------------------------------------------------------------- sessions
    def session(
        self,
        p: int | None,
        t: int,
        channel: str,
        *,
        identified: bool,
        anon: str | None = None,
        campaign: str | None = None,
    ) -> None:
        rng = self.rng
        sid = f"{self.session_prefix}{self.seq['web_sessions'] + 1:011d}"
        if anon is None:
            anon = self.people[p][0] if p is not None else f"x{self.mh % 100_000:05d}{rng.getrandbits(40):012x}"
        cust = email = N
        if identified and p is not None:
            cust = str(self.people[p][1])
            email = self.email(p)
        src = med = camp = content = fbclid = gclid = N
        referrer = N
        landing = "/"
        if channel == "paid_social":
            _, cname, ads, _ = self.fb_campaigns[int(rng.random() * len(self.fb_campaigns))]
            src, med, camp, content = "facebook", "paid_social", cname, ads[int(rng.random() * 6)][0]
            fbclid = f"IwAR{rng.getrandbits(64):016x}"
            referrer = "https://l.facebook.com/"
            landing = f"/products/p{int(rng.random() * 30)}"
        elif channel == "paid_search":
            _, gname, _, _ = self.g_campaigns[int(rng.random() * len(self.g_campaigns))]
            src, med, camp = "google", "cpc", gname
            gclid = f"Cj0K{rng.getrandbits(64):016x}"
            referrer = "https://www.google.com/"
            landing = f"/collections/c{int(rng.random() * 8)}"
        elif channel == "organic_search":
            referrer = ("https://www.google.com/", "https://www.bing.com/", "https://duckduckgo.com/")[
                int(rng.random() * 3)
            ]
        elif channel == "email":
            src, med, camp = "klaviyo", "email", campaign or "newsletter"
        elif channel == "sms":
            src, med, camp = "attentive", "sms", campaign or "sms_campaign"
        elif channel == "referral":
            referrer = (
                "https://www.reddit.com/",
                "https://blog.example.org/review",
                "https://www.buzzfeed.com/",
            )[int(rng.random() * 3)]
        elif channel == "organic_social":
            referrer = ("https://www.instagram.com/", "https://www.tiktok.com/", "https://l.facebook.com/")[
                int(rng.random() * 3)
            ]
        device = ("mobile", "mobile", "desktop", "tablet")[int(rng.random() * 4)]
        self.emit(
            "web_sessions",
            self.sync_after(t),
            f"{sid}\t{anon}\t{cust}\t{email}\t{self.ts(t)}\t{self.ts(t + 60 + int(rng.random() * 900))}"
            f"\thttps://{self.shop}{landing}\t{referrer}\t{src}\t{med}\t{camp}\t{content}\t{N}\t{fbclid}\t{gclid}"
            f"\t{device}\t{self.shop}",
        )

    # ---------------------------------------------------------------- orders
    def order(self, p: int, t: int, touches: list[tuple[int, str]]) -> None:
        rng = self.rng
        person = self.people[p]
        new = person[1] is None
        if new:
            self.customer_seq += 1
            person[1] = 6_000_000_000 + self.mh % 1000 * 1_000_000 + self.customer_seq
        cust_id = person[1]
        # the journey's sessions: the final one is identified (checkout), earlier ones only carry the cookie
        second_device = f"x{self.mh % 100_000:05d}{rng.getrandbits(40):012x}"
        for i, (st, ch) in enumerate(touches):
            last = i == len(touches) - 1
            if ch == "email":
                self.flow("Browse Abandonment", p, st - 3600 - 60, open_rate=1.0, click_rate=0.0)
                self.kev("Clicked Email", p, st - 1, self.flow_props("Browse Abandonment", 0))
                self.session(p, st, ch, identified=last, campaign="browse_abandonment")
            elif ch == "sms":
                mid = f"AJ{self.mh % 1000:03d}01"  # the journey's message
                self.attentive("attentive_sms_sent", p, st - 1800, mid, "Browse journey", "JOURNEY", "TEXT")
                self.attentive(
                    "attentive_sms_message_link_click",
                    p,
                    st - 1,
                    mid,
                    "Browse journey",
                    "JOURNEY",
                    "TEXT",
                    f"https://{self.shop}/?utm_source=attentive",
                )
                self.session(p, st, ch, identified=last, campaign="browse_journey")
            else:
                anon = second_device if (not last and rng.random() < 0.15) else None
                self.session(p, st, ch, identified=last, anon=anon)
        self.order_seq += 1
        oid = 5_000_000_000 + self.mh % 1000 * 10_000_000 + self.order_seq
        number = 1000 + self.order_seq
        lines, gross, li = [], 0.0, []
        for j in range(1 + min(3, int(rng.expovariate(1.2)))):
            pid, title, price = _PRODUCTS[int(rng.random() * len(_PRODUCTS))]
            qty = 1 if rng.random() < 0.8 else 2
            lid = oid * 10 + j
            gross += price * qty
            li.append((lid, price * qty, pid))
            lines.append(
                f'{{"id":{lid},"product_id":{pid},"variant_id":{pid + 1},"title":"{title}",'
                f'"quantity":{qty},"price":"{price:.2f}","sku":"SKU-{pid % 1000}"}}'
            )
        discount, codes = 0.0, "[]"
        if rng.random() < 0.22:
            pct = (10, 15, 20)[int(rng.random() * 3)]
            discount = round(gross * pct / 100, 2)
            codes = f'[{{"code":"SAVE{pct}","amount":"{discount:.2f}","type":"percentage"}}]'
        subtotal = round(gross - discount, 2)
        shipping = 0.0 if subtotal >= 75 else 6.95
        tax = round(subtotal * 0.08, 2)
        total = round(subtotal + shipping + tax, 2)
        test = rng.random() < 0.004
        cancelled = not test and rng.random() < 0.02
        cur = self.currency
        ship_set = (
            f'{{"shop_money":{{"amount":"{shipping:.2f}","currency_code":"{cur}"}},'
            f'"presentment_money":{{"amount":"{shipping:.2f}","currency_code":"{cur}"}}}}'
        )
        email = self.email(p)
        customer_json = f'{{"id":{cust_id},"email":"{email}","accepts_marketing":true}}'
        landing = f"/?utm_source={touches[-1][1]}" if touches else "/"
        line_json = "[" + ",".join(lines) + "]"

        def version(updated: int, financial: str, fulfillment: str, cancelled_at: str = N, closed: str = N) -> str:
            return (
                f"{oid}\t#{number}\t{number}\t{email}\t{self.ts(t)}\t{self.ts(updated)}\t{self.ts(t)}\t{cancelled_at}"
                f"\t{'customer' if cancelled_at != N else N}\t{closed}\t{cur}\t{cur}\t{financial}\t{fulfillment}"
                f"\t{total:.2f}\t{subtotal:.2f}\t{tax:.2f}\t{discount:.2f}\t{gross:.2f}\t{ship_set}\tf"
                f"\t{'t' if test else 'f'}\tweb\t{landing}\t{N}\t10.0.{p % 250}.{number % 250}\tt"
                f"\tc{oid:x}\t{'test' if test else N}\t{codes}\t{customer_json}\t{line_json}\t{self.shop}"
            )

        v1 = version(t, "paid", N)
        self.emit("shopify_orders", self.sync_after(t), v1)
        if rng.random() < 0.04:  # Airbyte's inclusive cursor re-emits the same record
            self.emit("shopify_orders", self.sync_after(t) + 3600 * rng.randrange(1, 30), v1)
        if cancelled:
            tc = t + rng.randrange(1800, 20 * 3600)
            self.emit("shopify_orders", self.sync_after(tc), version(tc, "voided", N, self.ts(tc), self.ts(tc)))
        else:
            tf = t + rng.randrange(DAY, 3 * DAY)
            if rng.random() < 0.7:
                self.emit(
                    "shopify_orders",
                    self.sync_after(tf),
                    version(tf, "paid", "fulfilled", closed=self.ts(tf)),
                )
            if not test and rng.random() < 0.08:
                self.refund(oid, t, li, discount / gross if gross else 0.0, shipping, version)
        # customer record: created with the first order, a later version after each order
        person[2] += 1
        person[3] += total
        when = self.ts(t)
        self.emit(
            "shopify_customers",
            self.sync_after(t),
            f"{cust_id}\t{email}\tFirst{p}\tLast{p}\t+1555{p:07d}\t{self.ts(t - 60) if new else self.ts(t - DAY)}"
            f"\t{when}\t{person[2]}\t{person[3]:.2f}\tenabled\tt\t{N}\t{cur}\tt"
            f'\t{{"state":"subscribed","opt_in_level":"single_opt_in"}}\t{{"state":"not_subscribed"}}'
            f'\t{{"country_code":"US","city":"Springfield"}}\t{self.shop}',
        )
        # Klaviyo: Placed Order / Ordered Product, then the post-purchase flow
        self.kev("Placed Order", p, t + 30, f'{{"$value":{total:.2f},"$event_id":"{oid}","OrderId":{oid}}}')
        for lid, amount, pid in li:
            self.kev(
                "Ordered Product",
                p,
                t + 31,
                f'{{"$value":{amount:.2f},"$event_id":"{lid}","ProductID":{pid}}}',
            )
        self.flow("Post-Purchase", p, t, open_rate=0.5, click_rate=0.06)

    def refund(self, oid: int, t: int, li: list, disc_ratio: float, shipping: float, version) -> None:
        rng = self.rng
        # 45 % within two weeks, the rest weeks later (often in a later month than the order)
        delay = rng.randrange(2 * DAY, 14 * DAY) if rng.random() < 0.45 else rng.randrange(15 * DAY, 75 * DAY)
        tr = t + delay
        full = rng.random() < 0.4
        refunded = li if full else [li[int(rng.random() * len(li))]]
        items, sub, tax = [], 0.0, 0.0
        for lid, amount, _ in refunded:
            s = round(amount * (1 - disc_ratio), 2)
            x = round(s * 0.08, 2)
            sub += s
            tax += x
            items.append(
                f'{{"line_item_id":{lid},"quantity":1,"subtotal":{s:.2f},"total_tax":{x:.2f},"restock_type":"return"}}'
            )
        adjustments = "[]"
        ship_refund = 0.0
        if full and shipping:
            ship_refund = shipping
            adjustments = (
                f'[{{"amount":"{-shipping:.2f}","tax_amount":"0.00","kind":"shipping_refund",'
                f'"reason":"Shipping refund"}}]'
            )
        amount = round(sub + tax + ship_refund, 2)
        rid = oid * 10 + 9
        self.emit(
            "shopify_order_refunds",
            self.sync_after(tr),
            f"{rid}\t{oid}\t{self.ts(tr)}\t{self.ts(tr)}\tt\t{'Full refund' if full else 'Returned item'}"
            f"\t{adjustments}\t[{','.join(items)}]"
            f'\t[{{"amount":"{amount:.2f}","kind":"refund","status":"success","gateway":"shopify_payments",'
            f'"processed_at":"{self.ts(tr)}"}}]\t{self.shop}',
        )
        status = "refunded" if full else "partially_refunded"
        self.emit("shopify_orders", self.sync_after(tr), version(tr, status, "fulfilled", closed=self.ts(tr)))

    # ---------------------------------------------------------------- the day loop
    def ads(self, d: dt.date, seasonal: float) -> None:
        rng = self.rng
        dstr = d.isoformat()
        base_sync = self.midnight(d + dt.timedelta(days=1)) + 6 * 3600
        budget = self.O * 25.0 * seasonal  # ≈ 25 per order of daily spend, split across platforms
        n_ads = sum(len(c[2]) for c in self.fb_campaigns)
        for cid, cname, ads, weight in self.fb_campaigns:
            for ad_id, ad_name in ads:
                spend = round(budget * 0.55 / n_ads * weight * rng.uniform(0.6, 1.4), 2)
                impressions = int(spend * rng.uniform(60, 120))
                clicks = int(impressions * rng.uniform(0.008, 0.02))
                purchases = clicks * rng.uniform(0.01, 0.04)
                value = purchases * rng.uniform(70, 110)
                # Meta restates the last 28 days: later syncs carry more conversions and a slightly different spend
                for k, share in ((0, 0.8), (2, 0.92), (9, 0.98), (27, 1.0)):
                    s = round(spend * (1 + (rng.uniform(-0.02, 0.02) if k else 0)), 2)
                    conv, val = round(purchases * share, 2), round(value * share, 2)
                    cpc = round(s / clicks, 4) if clicks else 0
                    self.emit(
                        "facebook_marketing_ads_insights",
                        base_sync + k * DAY,
                        f"{self.fb_account}\t{self.shop} ads\t{self.currency}\t{cid}\t{cname}\t{cid}0\t{cname} set"
                        f"\t{ad_id}\t{ad_name}\t{dstr}\t{dstr}\t{dstr}\t{self.day_str(base_sync + k * DAY)}"
                        f"\tOUTCOME_SALES\t{s:.2f}\t{impressions}\t{clicks}"
                        f"\t{int(clicks * 0.8)}\t{int(impressions * 0.7)}"
                        f"\t{cpc}\t{round(s / impressions * 1000, 4) if impressions else 0}"
                        f"\t{round(clicks / impressions * 100, 4) if impressions else 0}"
                        f'\t[{{"action_type":"link_click","value":{clicks}}},'
                        f'{{"action_type":"offsite_conversion.fb_pixel_purchase","value":{conv},"7d_click":{conv}}}]'
                        f'\t[{{"action_type":"offsite_conversion.fb_pixel_purchase","value":{val},"7d_click":{val}}}]',
                    )
        for gid, gname, kind, weight in self.g_campaigns:
            for device in ("MOBILE", "DESKTOP", "TABLET"):
                for network in ("SEARCH", "CONTENT"):
                    cost = budget * 0.45 / len(self.g_campaigns) / 6 * weight * rng.uniform(0.5, 1.5) * 0.92
                    micros = int(cost * 1_000_000)
                    impressions = int(cost * rng.uniform(40, 90))
                    clicks = int(impressions * rng.uniform(0.02, 0.06))
                    conv = round(clicks * rng.uniform(0.02, 0.05), 2)
                    val = round(conv * rng.uniform(70, 110), 2)
                    for k in (0, 3):  # conversions keep arriving for a few days
                        share = 0.9 if k == 0 else 1.0
                        self.emit(
                            "google_ads_campaign",
                            base_sync + k * DAY,
                            f"{self.g_customer}\t{gid}\t{gname}\tENABLED\t{kind}\tMAXIMIZE_CONVERSION_VALUE"
                            f"\t{int(budget * 1_000_000 / 10)}\t{dstr}\t{network}\t{device}\t{clicks}\t{impressions}"
                            f"\t{micros}\t{round(conv * share, 2)}\t{round(val * share, 2)}"
                            f"\t{round(clicks / impressions, 4) if impressions else 0}"
                            f"\t{int(micros / clicks) if clicks else 0}",
                        )
        if d.weekday() < 5:  # exchange rates are published on business days only
            eur_usd = 1.08 + 0.04 * ((d.toordinal() % 97) / 97 - 0.5) + rng.uniform(-0.005, 0.005)
            rates = {"EUR": 1.0, "USD": eur_usd, "GBP": 0.86, "CAD": eur_usd * 1.36, "AUD": eur_usd * 1.52}
            body = ",".join(f'"{k}":{v:.6f}' for k, v in rates.items())
            t = self.midnight(d) + 16 * 3600
            self.emit("exchange_rates_rates", self.sync_after(t), f"{dstr}\tEUR\t{t}\t{{{body}}}")

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

    def email_campaign(self, d: dt.date, t: int) -> None:
        rng = self.rng
        cid = f"C{self.mh % 10_000:04d}{d.toordinal()}"
        cname = f"Newsletter {d.isoformat()}"
        when = self.ts(t)
        self.emit(
            "klaviyo_campaigns",
            self.sync_after(t + 3 * 3600),
            f'campaign\t{cid}\t{{"name":"{cname}","status":"Sent","archived":false,"channel":"email",'
            f'"send_time":"{when}","scheduled_at":"{self.ts(t - DAY)}","created_at":"{self.ts(t - 2 * DAY)}",'
            f'"updated_at":"{self.ts(t + 3 * 3600)}"}}\t{N}\t{{}}\t{self.ts(t + 3 * 3600)}',
        )
        props = f'{{"$message":"{cid}","Campaign Name":"{cname}","Subject":"{cname}"}}'
        size = min(len(self.subscribers), 20 * self.O)
        offset = rng.randrange(max(1, len(self.subscribers) - size + 1))
        slug = f"newsletter_{d.isoformat()}"
        for p in self.subscribers[offset : offset + size]:
            click = self.message_funnel(p, t + int(rng.random() * 600), props, 0.32, 0.1)
            if click is not None and rng.random() < 0.7:
                self.session(p, click + 2, "email", identified=False, campaign=slug)

    def sms_campaign(self, d: dt.date, t: int) -> None:
        rng = self.rng
        size = min(len(self.sms_subscribers), 4 * self.O)
        offset = rng.randrange(max(1, len(self.sms_subscribers) - size + 1))
        name = f"SMS drop {d.isoformat()}"
        mid = f"AS{self.mh % 1000:03d}{d.toordinal()}"
        for p in self.sms_subscribers[offset : offset + size]:
            ts = t + int(rng.random() * 300)
            self.attentive("attentive_sms_sent", p, ts, mid, name, "CAMPAIGN", "TEXT")
            r = rng.random()
            if r < 0.09:
                tc = ts + rng.randrange(30, 7200)
                self.attentive(
                    "attentive_sms_message_link_click",
                    p,
                    tc,
                    mid,
                    name,
                    "CAMPAIGN",
                    "TEXT",
                    f"https://{self.shop}/?utm_source=attentive",
                )
                self.session(p, tc + 2, "sms", identified=False, campaign=f"sms_{d.isoformat()}")
            elif r > 0.988:
                self.attentive_subscription("attentive_unsubscribed", p, ts + rng.randrange(30, 3600))

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
