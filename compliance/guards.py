"""Legal holds enforced in the database: which tables carry the hold trigger, and the DDL that installs it.

Python checks holds before it deletes (compliance/holds.py, `holds_covering`), but a check only binds the code
that remembers to call it. The trigger `compliance_hold_guard` (migration compliance/0003) refuses, row by row,
a DELETE — or an UPDATE that rewrites what a hold preserves — of a row an active hold covers, whoever issues it:
the ORM, a raw SQL statement, a psql session. It raises SQLSTATE `HOLD_SQLSTATE` naming the hold.

The app's role owns the tables it creates (the landed layer, the raw tables of our own intakes), and an owner could
TRUNCATE them or disable, drop or rename the trigger. A TRUNCATE trigger and two event triggers (migration 0004)
refuse each of those while a hold covers the table's store (docs/retention.md, "Who can switch the guard off").

Each trigger reads its row as JSON and is told, by its arguments, where the row keeps what a hold is scoped by:

  0. the data category (compliance.choices.DataCategory),
  1. the store's id, fixed at install for a per-store table (``raw_<key>.*``); empty: the row's ``merchant_id``,
  2. the JSON path of the customer's Shopify id, 3. of the customer's e-mail (a sha256 hex of it matches too,
     as the web pixel sends it), 4. of the row's date (what a hold's date range is compared with); empty: none,
  5. the columns whose change counts as a rewrite (comma-separated); empty: any change. The outbox updates a
     notification's status all day; only rewriting its content is a redaction.

This module imports nothing from Django: the load step (analytics/landing.py) and the raw schema DDL
(analytics/raw_schema.py) run on plain psycopg connections. Their statements are wrapped so that a database
without the compliance migration (a scratch database in the landing tests) simply gets no trigger.
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

TRIGGER_NAME = "compliance_hold_guard"
HOLD_SQLSTATE = "HL001"

RAW = "raw"
EVENTS = "events"
MESSAGES = "messages"


@dataclass(frozen=True)
class Guard:
    category: str
    customer_path: str = ""
    email_path: str = ""
    date_path: str = ""
    watched: str = ""


def _klaviyo(date: str) -> Guard:
    # Klaviyo ids are its own profile ids, not Shopify's: profiles are matched by e-mail only.
    return Guard(RAW, email_path="{attributes,email}", date_path=date)


_ATTENTIVE = Guard(RAW, "{subscriber_external_id}", "{subscriber_email}", "{timestamp}")

# Every raw table (analytics.raw_schema.RAW_TABLES), in its raw schema and in the landed layer alike. Tables
# without a customer (ads, campaigns, the shop, exchange rates) are covered by store-wide holds only.
# shopify_order_refunds carries only its order's id: a customer-scoped hold does not reach it (docs/retention.md).
TABLE_GUARDS: dict[str, Guard] = {
    "shopify_orders": Guard(RAW, "{customer,id}", "{email}", "{created_at}"),
    "shopify_order_refunds": Guard(RAW, date_path="{created_at}"),
    "shopify_customers": Guard(RAW, "{id}", "{email}", "{created_at}"),
    "shopify_shop": Guard(RAW),
    "facebook_marketing_ads_insights": Guard(RAW, date_path="{date_start}"),
    "facebook_marketing_campaigns": Guard(RAW, date_path="{created_time}"),
    "google_ads_campaign": Guard(RAW, date_path="{segments_date}"),
    "google_ads_customer": Guard(RAW, date_path="{segments_date}"),
    "exchange_rates_rates": Guard(RAW, date_path="{date}"),
    "klaviyo_events": Guard(RAW, date_path="{datetime}"),
    "klaviyo_metrics": Guard(RAW),
    "klaviyo_campaigns": Guard(RAW),
    "klaviyo_flows": Guard(RAW),
    "klaviyo_profiles": _klaviyo("{attributes,created}"),
    "attentive_sms_sent": _ATTENTIVE,
    "attentive_sms_message_link_click": _ATTENTIVE,
    "attentive_email_sent": _ATTENTIVE,
    "attentive_email_opened": _ATTENTIVE,
    "attentive_email_message_link_click": _ATTENTIVE,
    "attentive_subscribed": _ATTENTIVE,
    "attentive_unsubscribed": _ATTENTIVE,
    "attentive_other_events": Guard(RAW, date_path="{timestamp}"),
    "web_sessions": Guard(EVENTS, "{customer_id}", "{email}", "{started_at}"),
    "web_events": Guard(EVENTS, "{customer_id}", "{email_sha256}", "{occurred_at}"),
}

# Django's own tables, installed by migrations (0003 and those of the apps that own them).
NOTIFICATIONS_GUARD = Guard(
    MESSAGES, email_path="{to_email}", date_path="{created_at}", watched="to_email,subject,body_text,body_html,context"
)


def guard_install(schema: str, table: str, *, merchant_key: str | None, guard: Guard | None = None) -> sql.Composed:
    """One statement installing (or refreshing) the hold trigger on `schema.table`; a no-op where the compliance
    migration has not run. `merchant_key`: the store of a per-store table (resolved to its id once, here), None
    for a table whose rows carry `merchant_id`. Must run as the table's owner (CREATE TRIGGER)."""
    guard = guard or TABLE_GUARDS[table]
    call = sql.SQL("PERFORM compliance_hold_guard_install({rel}::regclass, {key}, {cat}, {c}, {e}, {d}, {w});").format(
        rel=sql.Literal(f'"{schema}"."{table}"'),
        key=sql.Literal(merchant_key),
        cat=sql.Literal(guard.category),
        c=sql.Literal(guard.customer_path),
        e=sql.Literal(guard.email_path),
        d=sql.Literal(guard.date_path),
        w=sql.Literal(guard.watched),
    )
    return sql.SQL(
        "DO $guard$ BEGIN IF to_regproc('compliance_hold_guard_install') IS NOT NULL THEN {} END IF; END $guard$"
    ).format(call)
