"""Reads behind an agency's portfolio: one tile per client store, and blended totals across them.

The numbers are the store dashboards' own (dashboards.selectors: the same mart, `fct_daily_summary`, and the
same formulas, `_overview_kpis`), read for the whole set of stores in one statement rather than one per store:
a portfolio of 20 stores costs one query over the mart, one over the exchange rates, and one each for the
freshness and the connector problems, whatever the number of stores.

Blended totals are in the agency's reporting currency. Each store's *daily* sums are converted at that day's
rate (the latest rate the store's exchange-rate source published on or before the day, the earliest one before
its first; the same rule fct_ad_spend_daily converts ad spend with), and the ratios (MER, new-customer CAC,
AOV) are computed from the converted sums, never by averaging the stores' ratios. A store whose grant hides
costs shows no ad spend, MER or CAC, and is left out of the blended cost figures entirely — revenue included
in those ratios — so a blended MER is never inflated by revenue whose spend we may not count.

The caller decides which stores the viewer may see (`StoreAccess`): these functions never widen it.
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import Decimal

from django.conf import settings
from django.utils import timezone

from accounts.models import Merchant
from analytics.choices import FreshnessStatus
from analytics.selectors import source_freshness_list
from connectors.choices import CredentialStatus, Provider
from dashboards.cache import cached, marts_version
from dashboards.periods import DateRange
from dashboards.selectors import LOWER_IS_BETTER, _change, _overview_kpis, _rows

# The tile figures, in the order tiles show them: key -> (label, kind). Keys and formulas are the dashboards'.
TILE_METRICS = {
    "net_revenue": ("Net revenue", "money"),
    "orders": ("Orders", "count"),
    "ad_spend": ("Ad spend", "money"),
    "mer": ("MER", "ratio"),
    "new_customer_cac": ("New-customer CAC", "money"),
}
COST_METRICS = frozenset({"ad_spend", "mer", "new_customer_cac"})
SORT_KEYS = ("name", *TILE_METRICS, "change_net_revenue", "problems", "freshness")
PROBLEM_FILTERS = {"any": "Any problem", "none": "No problem", "no_data": "No data yet", "stale": "Stale data"}

COSTS_HIDDEN_NOTE = "Costs hidden by the store's grant: left out of blended ad spend, MER and CAC."
NO_RATE_NOTE = "No exchange rate to {currency} for some days: left out of the blended totals."
NO_DATA_PROBLEM = "No data yet: the figures appear after the store's first sync and build."

# The same table fct_ad_spend_daily converts with: the store's exchange-rate source, one row per date and
# currency, `rate` units of `currency` per one `base_currency`.
_RATES = "analytics_staging.stg_exchange_rates__rates"


@dataclass(frozen=True)
class StoreAccess:
    """One store the viewer may see, with what its grant lets them see of it: the two fields of
    accounts.access.StoreAccess the portfolio reads (either type may be passed)."""

    merchant: Merchant
    can_see_costs: bool


@dataclass
class _Sums:
    """Summable components (what `_overview_kpis` takes), in one currency."""

    orders: int = 0
    net_revenue: Decimal = Decimal(0)
    new_customers: int = 0
    returning_customers: int = 0
    ad_spend: Decimal = Decimal(0)
    days: int = 0

    def add(self, row: dict, rate: Decimal | None = None) -> None:
        """Add a day's row (the mart's integers and numerics: no conversion of types), times `rate` if given."""
        self.days += 1
        self.orders += row["orders"] or 0
        self.new_customers += row["new_customers"] or 0
        self.returning_customers += row["returning_customers"] or 0
        if rate is None:
            self.net_revenue += row["net_revenue"] or 0
            self.ad_spend += row["ad_spend"] or 0
        else:
            self.net_revenue += (row["net_revenue"] or 0) * rate
            self.ad_spend += (row["ad_spend"] or 0) * rate

    def kpis(self, *, costs: bool = True) -> dict:
        values = _overview_kpis(
            {
                "orders": self.orders,
                "net_revenue": self.net_revenue,
                "new_customers": self.new_customers,
                "returning_customers": self.returning_customers,
                "ad_spend": self.ad_spend,
            }
        )
        tile = {key: values[key] for key in TILE_METRICS}
        if not costs:
            tile.update(dict.fromkeys(COST_METRICS))
        return tile


@dataclass
class _Blend:
    revenue: _Sums = field(default_factory=_Sums)  # every store converted: revenue and orders
    costed: _Sums = field(default_factory=_Sums)  # stores whose costs the viewer may see: the cost ratios

    def kpis(self) -> dict:
        values = self.revenue.kpis()
        costed = self.costed.kpis()
        return {**values, **{key: costed[key] for key in COST_METRICS}}


class _RateTable:
    """One store's published rates, to answer "units of `to` per unit of `frm` on day d"."""

    def __init__(self, rows: list[dict]) -> None:
        by_day: dict[dt.date, dict[str, Decimal]] = {}
        for row in rows:
            # Several bases could be published the same day; the cross rate needs one base per day.
            day = by_day.setdefault(row["rate_date"], {"__base__": row["base_currency"]})
            if day["__base__"] == row["base_currency"]:
                day[row["currency"]] = Decimal(row["rate"])
                day.setdefault(row["base_currency"], Decimal(1))
        self.days = sorted(by_day)
        self.rates = [by_day[d] for d in self.days]

    def rate(self, day: dt.date, frm: str, to: str) -> Decimal | None:
        if frm == to:
            return Decimal(1)
        index = bisect.bisect_right(self.days, day) - 1
        # The latest published day on or before `day` that has both currencies; before the first, the earliest.
        candidates = range(index, -1, -1) if index >= 0 else range(0, len(self.days))
        for i in candidates:
            rates = self.rates[i]
            if frm in rates and to in rates:
                return rates[to] / rates[frm]
        return None


def _daily_rows(ids: list[int], date_range: DateRange) -> list[dict]:
    cur = date_range.current
    cmp = date_range.comparison or cur
    return _rows(
        """
        select merchant_id, date_day, orders, net_revenue, new_customers, returning_customers, ad_spend
        from analytics.fct_daily_summary
        where merchant_id = any(%(ids)s)
          and (date_day between %(cs)s and %(ce)s or date_day between %(ps)s and %(pe)s)
        """,
        {"ids": ids, "cs": cur.start, "ce": cur.end, "ps": cmp.start, "pe": cmp.end},
    )


# Rates are published every business day: the latest one before a range is almost always within a few days of
# it. Reading only this far back keeps the read on the view's recent rows (its dedupe runs over what it reads:
# a store's whole history of rates cost ~75 ms for 20 stores, a bounded window ~3 ms); a store with no rate in
# the window (a gap, or rates that start later) is read again in full (_rate_rows).
RATE_LOOKBACK_DAYS = 31


def _rate_rows_recent(ids: list[int], currencies: list[str], start: dt.date, end: dt.date) -> list[dict]:
    """The rates published from RATE_LOOKBACK_DAYS before `start` to `end`."""
    if not ids:
        return []
    return _rows(
        f"""
        select merchant_id, rate_date, base_currency, currency, rate from {_RATES}
        where merchant_id = any(%(ids)s) and currency = any(%(currencies)s)
          and rate_date between %(since)s and %(end)s
        """,  # noqa: S608 — the table name is a constant
        {
            "ids": ids,
            "currencies": currencies,
            "since": start - dt.timedelta(days=RATE_LOOKBACK_DAYS),
            "end": end,
        },
    )


def _rate_rows(ids: list[int], currencies: list[str], start: dt.date, end: dt.date) -> list[dict]:
    """The rates the conversion can use: those published in the range, the latest one before it, and the
    earliest ones (for days before a store's first rate). Reads each store's whole history of rates."""
    if not ids:
        return []
    return _rows(
        f"""
        with r as materialized (
            select merchant_id, rate_date, base_currency, currency, rate from {_RATES}
            where merchant_id = any(%(ids)s) and currency = any(%(currencies)s) and rate_date <= %(end)s
        )
        select * from r where rate_date >= %(start)s
        union
        select * from r where (merchant_id, base_currency, rate_date) in (
            select merchant_id, base_currency, max(rate_date) from r where rate_date < %(start)s group by 1, 2
        )
        union
        select * from r where (merchant_id, base_currency, rate_date) in (
            select merchant_id, base_currency, min(rate_date) from r group by 1, 2
        )
        """,  # noqa: S608 — the table name is a constant
        {"ids": ids, "currencies": currencies, "start": start, "end": end},
    )


def _figures(stores: Sequence[StoreAccess], date_range: DateRange, currency: str) -> dict:
    """What the marts say: per store its KPIs in its own currency, and the blended totals. Cached per state of
    the marts, like the dashboards' pages (dashboards/cache.py); the key names every store with its cost flag."""
    ids = [s.merchant.pk for s in stores]
    cur, cmp = date_range.current, date_range.comparison
    rows = _daily_rows(ids, date_range)
    needs_fx = [s.merchant.pk for s in stores if s.merchant.currency != currency]
    shop_currencies = sorted({s.merchant.currency for s in stores} | {currency})
    low = min(cur.start, cmp.start) if cmp else cur.start
    tables: dict[int, list[dict]] = {}
    for r in _rate_rows_recent(needs_fx, shop_currencies, low, cur.end):
        tables.setdefault(r["merchant_id"], []).append(r)
    # A store whose window holds no rate on or before the range's first day: read its whole history instead.
    unanchored = [mid for mid in needs_fx if not any(r["rate_date"] <= low for r in tables.get(mid, ()))]
    for r in _rate_rows(unanchored, shop_currencies, low, cur.end):
        tables.setdefault(r["merchant_id"], []).append(r)
    rate_tables = {mid: _RateTable(rs) for mid, rs in tables.items()}
    empty = _RateTable([])

    by_store = {s.merchant.pk: s for s in stores}
    dated = []  # (row, store, the periods it falls in, its rate into the reporting currency)
    for row in rows:
        store = by_store[row["merchant_id"]]
        day = row["date_day"]
        periods = [p for p, rng in (("current", cur), ("comparison", cmp)) if rng and rng.start <= day <= rng.end]
        rate = rate_tables.get(store.merchant.pk, empty).rate(day, store.merchant.currency, currency)
        dated.append((row, store, periods, rate))
    # A store with a day it cannot convert is left out of the blend whole: part of a store's revenue would be
    # worse than none of it, and the page names the store.
    unconverted = {store.merchant.pk for _, store, _, rate in dated if rate is None}
    own: dict[tuple[int, str], _Sums] = {}
    blend = {"current": _Blend(), "comparison": _Blend()}
    for row, store, periods, rate in dated:
        for period in periods:
            own.setdefault((store.merchant.pk, period), _Sums()).add(row)
            if store.merchant.pk in unconverted:
                continue
            blend[period].revenue.add(row, rate)
            if store.can_see_costs:
                blend[period].costed.add(row, rate)

    stores_out = {}
    for s in stores:
        mid = s.merchant.pk
        current = own.get((mid, "current"), _Sums()).kpis(costs=s.can_see_costs)
        previous = own.get((mid, "comparison"), _Sums()).kpis(costs=s.can_see_costs) if cmp else None
        stores_out[mid] = {
            "has_data": (mid, "current") in own or (mid, "comparison") in own,
            "current": current,
            "comparison": previous,
            "change": {k: _change(v, previous[k]) for k, v in current.items()} if previous else None,
        }
    blended_current = blend["current"].kpis()
    blended_previous = blend["comparison"].kpis() if cmp else None
    return {
        "stores": stores_out,
        "blended": {
            "current": blended_current,
            "comparison": blended_previous,
            "change": (
                {k: _change(v, blended_previous[k]) for k, v in blended_current.items()} if blended_previous else None
            ),
            "unconverted": sorted(unconverted),
        },
    }


def _freshness(ids: set[int], now: dt.datetime) -> dict[int, dict]:
    """Per store: its connected sources' freshness (analytics.selectors.source_freshness_list, one statement for
    every store, the hourly check's own reading) and the stalest landing."""
    warn = dt.timedelta(hours=settings.DATA_FRESHNESS_WARN_HOURS)
    error = dt.timedelta(hours=settings.DATA_FRESHNESS_ERROR_HOURS)
    out: dict[int, dict] = {mid: {"data_as_of": None, "status": "not_connected", "sources": []} for mid in ids}
    worst_order = [FreshnessStatus.STALE, FreshnessStatus.WARN, FreshnessStatus.AWAITING_FIRST_SYNC]
    for f in source_freshness_list():
        if f.merchant_id not in ids:
            continue
        entry = out[f.merchant_id]
        status = f.status(now=now, warn_after=warn, error_after=error)
        label = Provider(f.source).label if f.source in Provider.values else f.source
        entry["sources"].append({"source": f.source, "label": label, "landed_at": f.landed_at, "status": status})
    for entry in out.values():
        landed = [s["landed_at"] for s in entry["sources"] if s["landed_at"]]
        entry["data_as_of"] = min(landed, default=None)
        statuses = {s["status"] for s in entry["sources"]}
        fallback = "fresh" if statuses else "not_connected"
        entry["status"] = next((s.value for s in worst_order if s in statuses), fallback)
        entry["sources"].sort(key=lambda s: s["label"])
    return out


def _connector_problems(ids: list[int]) -> dict[int, list[str]]:
    """Per store: its connections that need someone (the Connectors page's states), in one query each for the
    credentials and the pipelines, whatever the number of stores."""
    from connectors.models import ConnectorCredential
    from ingestion.choices import PipelineStatus
    from ingestion.models import Pipeline

    problems: dict[int, list[str]] = {mid: [] for mid in ids}
    credentials = ConnectorCredential.objects.filter(
        merchant_id__in=ids, status__in=[CredentialStatus.NEEDS_REAUTH, CredentialStatus.ERROR]
    ).values_list("merchant_id", "provider", "status", "account_label")
    for mid, provider, status, label in credentials.order_by("merchant_id", "provider"):
        what = Provider(provider).label + (f" ({label})" if label else "")
        problems[mid].append(f"{what}: {CredentialStatus(status).label.lower()}")
    failing = Pipeline.objects.filter(
        merchant_id__in=ids, status=PipelineStatus.ACTIVE, consecutive_failures__gt=0
    ).values_list("merchant_id", "source_type", "consecutive_failures")
    for mid, source_type, failures in failing.order_by("merchant_id", "source_type"):
        problems[mid].append(f"{source_type}: last {failures} sync{'s' if failures > 1 else ''} failed")
    return problems


def portfolio_get(
    *, agency, stores: Sequence[StoreAccess], date_range: DateRange, now: dt.datetime | None = None
) -> dict:
    """One tile per store the viewer may see, and the blended totals in the agency's reporting currency.

    `stores` is the viewer's access (accounts.access), already limited to active grants and client
    assignments. Raises dashboards.selectors.MartsNotBuilt before the first dbt build.
    """
    now = now or timezone.now()
    currency = agency.reporting_currency
    stores = sorted(stores, key=lambda s: (s.merchant.name.lower(), s.merchant.pk))  # the tiles' default order
    key = (
        "portfolio",
        agency.pk,
        currency,
        marts_version(),
        date_range,
        tuple(sorted((s.merchant.pk, s.merchant.currency, s.can_see_costs) for s in stores)),
    )
    figures = cached(key, lambda: _figures(stores, date_range, currency))
    ids = [s.merchant.pk for s in stores]
    freshness = _freshness(set(ids), now)
    problems = _connector_problems(ids)
    tiles = []
    for s in stores:
        m = s.merchant
        fig = figures["stores"][m.pk]
        fresh = freshness[m.pk]
        store_problems = list(problems[m.pk])
        if fresh["status"] == FreshnessStatus.STALE:
            store_problems.append("Data over 48 hours old: " + ", ".join(
                src["label"] for src in fresh["sources"] if src["status"] == FreshnessStatus.STALE
            ))  # fmt: skip
        if not fig["has_data"]:
            store_problems.append(NO_DATA_PROBLEM)
        tiles.append(
            {
                "merchant_id": m.pk,
                "name": m.name,
                "currency": m.currency,
                "timezone": m.timezone,
                "can_see_costs": s.can_see_costs,
                "has_data": fig["has_data"],
                "current": fig["current"],
                "comparison": fig["comparison"],
                "change": fig["change"],
                "freshness": fresh,
                "problems": store_problems,
                "converted": m.pk not in figures["blended"]["unconverted"],
            }
        )
    blended = figures["blended"]
    costed = [t for t in tiles if t["can_see_costs"] and t["converted"]]
    notes = []
    if any(not t["can_see_costs"] for t in tiles):
        notes.append(COSTS_HIDDEN_NOTE)
    if blended["unconverted"]:
        notes.append(NO_RATE_NOTE.format(currency=currency))
    return {
        "currency": currency,
        "tiles": tiles,
        "blended": {
            "current": blended["current"],
            "comparison": blended["comparison"],
            "change": blended["change"],
            "stores": sum(1 for t in tiles if t["converted"]),
            "cost_stores": len(costed),
            "left_out": [t["merchant_id"] for t in tiles if not t["converted"]],
            "costs_hidden": [t["merchant_id"] for t in tiles if not t["can_see_costs"]],
            "notes": notes,
        },
    }


def _sort_value(tile: dict, key: str):
    if key == "name":
        return tile["name"].lower()
    if key == "problems":
        return len(tile["problems"])
    if key == "freshness":
        return tile["freshness"]["data_as_of"] or dt.datetime.min.replace(tzinfo=dt.UTC)
    if key == "change_net_revenue":
        return (tile["change"] or {}).get("net_revenue")
    return tile["current"].get(key)


def portfolio_tiles_arrange(
    tiles: list[dict], *, sort: str = "name", descending: bool = False, problem: str = "", merchant_ids=None
) -> list[dict]:
    """Filter (by a group's stores, by problem) and sort tiles; a missing value (hidden, none) sorts last.

    Money is compared in each store's own currency (a tile's figures are the store's), as the tiles show it.
    """
    if merchant_ids is not None:
        wanted = set(merchant_ids)
        tiles = [t for t in tiles if t["merchant_id"] in wanted]
    if problem == "any":
        tiles = [t for t in tiles if t["problems"]]
    elif problem == "none":
        tiles = [t for t in tiles if not t["problems"]]
    elif problem == "no_data":
        tiles = [t for t in tiles if not t["has_data"]]
    elif problem == "stale":
        tiles = [t for t in tiles if t["freshness"]["status"] == FreshnessStatus.STALE]
    present = [t for t in tiles if _sort_value(t, sort) is not None]
    missing = [t for t in tiles if _sort_value(t, sort) is None]
    present.sort(key=lambda t: (_sort_value(t, sort), t["name"].lower()), reverse=descending)
    return present + sorted(missing, key=lambda t: t["name"].lower())


__all__ = [
    "COST_METRICS",
    "LOWER_IS_BETTER",
    "PROBLEM_FILTERS",
    "SORT_KEYS",
    "TILE_METRICS",
    "StoreAccess",
    "portfolio_get",
    "portfolio_tiles_arrange",
]


# --- who is looking ---------------------------------------------------------------------------------------

AGENCY_NOT_FOUND = "No such agency."


@dataclass(frozen=True)
class PortfolioViewer:
    agency: object  # agencies.models.Agency
    member: object  # agencies.models.AgencyMember
    stores: list  # accounts.access.StoreAccess: what portfolio_get reads of it is .merchant and .can_see_costs


def portfolio_viewer_get(*, clerk_user_id: str, agency_id) -> PortfolioViewer:
    """The agency, the viewer's membership and the stores they may see; 404 for anyone not an active member.

    The stores are accounts.access.agency_store_access_list: effective grants only (an active membership of an
    active agency, an active unexpired grant, and for a member who is not an admin a client assignment), with
    the grant's terms — the agency's view, even for someone who is also a member of one of the stores.
    """
    from django.http import Http404

    from accounts.access import agency_store_access_list
    from agencies.choices import AgencyStatus
    from agencies.models import AgencyMember

    try:
        agency_id = int(agency_id)
    except (TypeError, ValueError):
        raise Http404(AGENCY_NOT_FOUND) from None
    member = (
        AgencyMember.objects.select_related("agency")
        .filter(
            agency_id=agency_id,
            clerk_user_id=clerk_user_id,
            removed_at__isnull=True,
            agency__status=AgencyStatus.ACTIVE,
        )
        .first()
    )
    if member is None:
        raise Http404(AGENCY_NOT_FOUND)
    stores = agency_store_access_list(clerk_user_id=clerk_user_id, agency=member.agency)
    return PortfolioViewer(agency=member.agency, member=member, stores=stores)
