"""CSV for every dashboard export: one writer, so no export can forget to neutralise a formula.

Names in the marts come from raw data anyone can shape (a store visit with a crafted `utm_campaign`, a
campaign named in Klaviyo). A spreadsheet opening the file runs a cell that starts with `=`, `+`, `-` or
`@` as a formula (`=HYPERLINK(...)`, `-2+3+cmd|' /C calc'!A0`), and a leading tab or carriage return is
stripped by some importers before they look. OWASP's rule: prefix such a cell with a single quote, which
spreadsheets show as text. The fullwidth forms of the four signs are included because Excel in East
Asian locales reads them as the ASCII ones.

Every table of `CSV_TABLES` is written through `csv_lines`, and only text is neutralised. Numbers (int,
float, Decimal) are written as they are, so a refund's -5 stays the number -5 rather than the text '-5.
Text cells are always quoted (csv.QUOTE_NONNUMERIC), so a spreadsheet that splits on `;` or tab (many
locales) cannot cut a name into a second cell that starts with `=`.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal

from dashboards import selectors
from dashboards.periods import DEFAULT_PRESET, LTV_DEFAULT_PRESET, DateRange

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def csv_cell(value: object) -> object:
    """What the CSV writer is given for one cell: numbers unchanged, None empty, anything else safe text."""
    if value is None:
        return ""
    if isinstance(value, int | float | Decimal):  # bool is an int: written True/False, never a formula
        return value
    text = str(value)
    if text.startswith(FORMULA_TRIGGERS):
        return "'" + text
    return text


class _Echo:
    """A file that hands back what is written to it, so csv.writer yields lines for a streaming response."""

    def write(self, value: str) -> str:
        return value


def csv_lines(rows: Iterable[Iterable[object]]) -> Iterator[str]:
    """The rows as CSV lines, every cell through csv_cell."""
    writer = csv.writer(_Echo(), quoting=csv.QUOTE_NONNUMERIC)
    for row in rows:
        yield writer.writerow([csv_cell(value) for value in row])


# --- the tables: a header row, then the rows of the same selectors the pages read ----------------------


def _overview_csv(merchant, dr: DateRange, params) -> Iterable[list]:
    yield ["date", "orders", "net_revenue", "ad_spend", "new_customers", "currency"]
    for r in selectors.overview_daily_list(merchant=merchant, period=dr.current):
        yield [r["date_day"], r["orders"], r["net_revenue"], r["ad_spend"], r["new_customers"], merchant.currency]


def _ltv_csv(merchant, dr: DateRange, params) -> Iterable[list]:
    yield [
        "cohort_month",
        "month",
        "cohort_size",
        "active_customers",
        "orders",
        "net_revenue",
        "cum_net_revenue_per_customer",
        "retention_rate",
        "cac",
        "ltv_to_cac",
        "payback_month",
        "currency",
    ]
    for c in selectors.ltv_cohort_list(merchant=merchant, period=dr.current):
        for m in c["months"]:
            yield [
                c["cohort_month"],
                m["month"],
                c["cohort_size"],
                m["active_customers"],
                m["orders"],
                m["net_revenue"],
                m["cum_net_revenue_per_customer"],
                m["retention_rate"],
                c["cac"],
                c["ltv_to_cac"],
                c["payback_month"],
                merchant.currency,
            ]


def _attribution_model(params) -> str:
    model = params.get("model", "last_touch")
    return model if model in selectors.ATTRIBUTION_MODELS else "last_touch"


def _attribution_channels_csv(merchant, dr: DateRange, params) -> Iterable[list]:
    model = _attribution_model(params)
    yield ["model", "channel", "attributed_orders", "attributed_revenue", "spend", "roas", "currency"]
    for r in selectors.attribution_channel_list(merchant=merchant, period=dr.current, model=model):
        yield [
            model,
            r["channel"],
            r["attributed_orders"],
            r["attributed_revenue"],
            r["spend"],
            r["roas"],
            merchant.currency,
        ]


def _attribution_comparison_csv(merchant, dr: DateRange, params) -> Iterable[list]:
    yield (
        ["channel", "spend"]
        + [f"{m}_{k}" for m in selectors.ATTRIBUTION_MODELS for k in ("revenue", "roas")]
        + ["currency"]
    )
    for r in selectors.attribution_comparison_list(merchant=merchant, period=dr.current):
        values = [r["models"][m][k] for m in selectors.ATTRIBUTION_MODELS for k in ("revenue", "roas")]
        yield [r["channel"], r["spend"], *values, merchant.currency]


def _attribution_campaigns_csv(merchant, dr: DateRange, params) -> Iterable[list]:
    model = _attribution_model(params)
    yield ["model", "channel", "campaign", "attributed_orders", "attributed_revenue", "currency"]
    rows = selectors.attribution_campaign_list(
        merchant=merchant, period=dr.current, model=model, channel=params.get("channel") or None, limit=10_000
    )
    for r in rows:
        yield [model, r["channel"], r["campaign"], r["attributed_orders"], r["attributed_revenue"], merchant.currency]


ENGAGEMENT_COLUMNS = [
    "sends",
    "delivered",
    "unique_opens",
    "unique_clicks",
    "bounces",
    "unsubscribes",
    "open_rate",
    "click_rate",
    "ctor",
    "unsubscribe_rate",
    "bounce_rate",
    "attributed_orders",
    "attributed_revenue",
]


def _engagement_summary_csv(merchant, dr: DateRange, params) -> Iterable[list]:
    yield ["channel", "provider", "message_type", *ENGAGEMENT_COLUMNS, "currency"]
    for r in selectors.engagement_summary_list(merchant=merchant, period=dr.current):
        yield [r["channel"], r["provider"], r["message_type"], *(r[c] for c in ENGAGEMENT_COLUMNS), merchant.currency]


def _engagement_messages_csv(merchant, dr: DateRange, params) -> Iterable[list]:
    yield ["channel", "provider", "message_type", "id", "name", *ENGAGEMENT_COLUMNS, "currency"]
    for r in selectors.engagement_message_list(merchant=merchant, period=dr.current, limit=10_000):
        yield [
            r["channel"],
            r["provider"],
            r["message_type"],
            r["id"],
            r["name"],
            *(r[c] for c in ENGAGEMENT_COLUMNS),
            merchant.currency,
        ]


def _engagement_daily_csv(merchant, dr: DateRange, params) -> Iterable[list]:
    yield ["date", "email_sends", "sms_sends", "email_attributed_revenue", "sms_attributed_revenue", "currency"]
    for r in selectors.engagement_daily_list(merchant=merchant, period=dr.current):
        yield [r["date_day"], r["email_sends"], r["sms_sends"], r["email_revenue"], r["sms_revenue"], merchant.currency]


CSV_TABLES: dict[str, tuple[Callable, str]] = {
    "overview-daily": (_overview_csv, DEFAULT_PRESET),
    "ltv-cohorts": (_ltv_csv, LTV_DEFAULT_PRESET),
    "attribution-channels": (_attribution_channels_csv, DEFAULT_PRESET),
    "attribution-comparison": (_attribution_comparison_csv, DEFAULT_PRESET),
    "attribution-campaigns": (_attribution_campaigns_csv, DEFAULT_PRESET),
    "engagement-summary": (_engagement_summary_csv, DEFAULT_PRESET),
    "engagement-messages": (_engagement_messages_csv, DEFAULT_PRESET),
    "engagement-daily": (_engagement_daily_csv, DEFAULT_PRESET),
}
