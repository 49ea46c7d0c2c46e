"""The raw layer: what Airbyte (or our webhook ingestion, for Attentive) lands per merchant.

One PostgreSQL schema per merchant (``raw_<merchant key>``) holding one table per stream, named
``<source>_<stream>``. Columns follow the connector's stream schema with nested objects as ``jsonb``,
plus Airbyte's metadata columns. ``RAW_TABLES`` is the single source of truth: the DDL is built from
it, the simulation declares its emitters' columns against it, and the load step (``analytics.landing``) builds
the shared ``landed`` tables the dbt project reads from it, so models build as empty, correctly typed relations
when no merchant is active.
"""

from __future__ import annotations

import re

import psycopg
from psycopg import sql

from compliance.guards import guard_install

AIRBYTE_META_COLUMNS: tuple[tuple[str, str], ...] = (
    ("_airbyte_raw_id", "uuid"),
    ("_airbyte_extracted_at", "timestamptz"),
    ("_airbyte_meta", "jsonb"),
    ("_airbyte_generation_id", "bigint"),
)

_KLAVIYO_JSONAPI = (
    ("type", "text"),
    ("id", "text"),
    ("attributes", "jsonb"),
    ("links", "jsonb"),
    ("relationships", "jsonb"),
)

# Attentive has no bulk read API: these are its webhook payloads, flattened the way Fivetran lands them.
_ATTENTIVE_MESSAGE = (
    ("type", "text"),
    ("timestamp", "timestamptz"),
    ("company_id", "text"),
    ("company_display_name", "text"),
    ("message_id", "text"),
    ("message_name", "text"),
    ("message_type", "text"),  # CAMPAIGN or JOURNEY
    ("message_channel", "text"),  # TEXT or EMAIL
    ("message_text", "text"),
    ("subscriber_external_id", "text"),
    ("subscriber_email", "text"),
    ("subscriber_phone", "text"),
)
_ATTENTIVE_CLICK = (*_ATTENTIVE_MESSAGE, ("message_link_click_url", "text"))
_ATTENTIVE_SUBSCRIPTION = (
    ("type", "text"),
    ("timestamp", "timestamptz"),
    ("company_id", "text"),
    ("subscription_type", "text"),  # MARKETING / TRANSACTIONAL
    ("subscription_channel", "text"),  # TEXT or EMAIL
    ("creative_name", "text"),
    ("creative_type", "text"),
    ("subscriber_external_id", "text"),
    ("subscriber_email", "text"),
    ("subscriber_phone", "text"),
)

# table -> ordered (column, PostgreSQL type); metadata columns are appended by ``table_columns``.
RAW_TABLES: dict[str, tuple[tuple[str, str], ...]] = {
    "shopify_orders": (
        ("id", "bigint"),
        ("name", "text"),
        ("order_number", "bigint"),
        ("email", "text"),
        ("created_at", "timestamptz"),
        ("updated_at", "timestamptz"),
        ("processed_at", "timestamptz"),
        ("cancelled_at", "timestamptz"),
        ("cancel_reason", "text"),
        ("closed_at", "timestamptz"),
        ("currency", "text"),
        ("presentment_currency", "text"),
        ("financial_status", "text"),
        ("fulfillment_status", "text"),
        ("total_price", "numeric"),
        ("subtotal_price", "numeric"),
        ("total_tax", "numeric"),
        ("total_discounts", "numeric"),
        ("total_line_items_price", "numeric"),
        ("total_shipping_price_set", "jsonb"),
        ("taxes_included", "boolean"),
        ("test", "boolean"),
        ("source_name", "text"),
        ("landing_site", "text"),
        ("referring_site", "text"),
        ("browser_ip", "text"),
        ("buyer_accepts_marketing", "boolean"),
        ("cart_token", "text"),
        ("tags", "text"),
        ("discount_codes", "jsonb"),
        ("customer", "jsonb"),
        ("line_items", "jsonb"),
        ("shop_url", "text"),
    ),
    "shopify_order_refunds": (
        ("id", "bigint"),
        ("order_id", "bigint"),
        ("created_at", "timestamptz"),
        ("processed_at", "timestamptz"),
        ("restock", "boolean"),
        ("note", "text"),
        ("order_adjustments", "jsonb"),
        ("refund_line_items", "jsonb"),
        ("transactions", "jsonb"),
        ("shop_url", "text"),
    ),
    "shopify_customers": (
        ("id", "bigint"),
        ("email", "text"),
        ("first_name", "text"),
        ("last_name", "text"),
        ("phone", "text"),
        ("created_at", "timestamptz"),
        ("updated_at", "timestamptz"),
        ("orders_count", "bigint"),
        ("total_spent", "numeric"),
        ("state", "text"),
        ("verified_email", "boolean"),
        ("tags", "text"),
        ("currency", "text"),
        ("accepts_marketing", "boolean"),
        ("email_marketing_consent", "jsonb"),
        ("sms_marketing_consent", "jsonb"),
        ("default_address", "jsonb"),
        ("shop_url", "text"),
    ),
    "shopify_shop": (
        ("id", "bigint"),
        ("name", "text"),
        ("domain", "text"),
        ("myshopify_domain", "text"),
        ("currency", "text"),
        ("enabled_presentment_currencies", "jsonb"),
        ("iana_timezone", "text"),
        ("timezone", "text"),
        ("plan_name", "text"),
        ("country_code", "text"),
        ("created_at", "timestamptz"),
        ("updated_at", "timestamptz"),
        ("shop_url", "text"),
    ),
    "facebook_marketing_ads_insights": (
        ("account_id", "text"),
        ("account_name", "text"),
        ("account_currency", "text"),
        ("campaign_id", "text"),
        ("campaign_name", "text"),
        ("adset_id", "text"),
        ("adset_name", "text"),
        ("ad_id", "text"),
        ("ad_name", "text"),
        ("date_start", "date"),
        ("date_stop", "date"),
        ("created_time", "date"),
        ("updated_time", "date"),
        ("objective", "text"),
        ("spend", "numeric"),
        ("impressions", "bigint"),
        ("clicks", "bigint"),
        ("inline_link_clicks", "bigint"),
        ("reach", "bigint"),
        ("cpc", "numeric"),
        ("cpm", "numeric"),
        ("ctr", "numeric"),
        ("actions", "jsonb"),
        ("action_values", "jsonb"),
    ),
    "facebook_marketing_campaigns": (
        ("id", "text"),
        ("account_id", "text"),
        ("name", "text"),
        ("objective", "text"),
        ("status", "text"),
        ("effective_status", "text"),
        ("daily_budget", "numeric"),
        ("bid_strategy", "text"),
        ("buying_type", "text"),
        ("created_time", "timestamptz"),
        ("start_time", "timestamptz"),
        ("updated_time", "timestamptz"),
    ),
    "google_ads_campaign": (
        ("customer_id", "bigint"),
        ("campaign_id", "bigint"),
        ("campaign_name", "text"),
        ("campaign_status", "text"),
        ("campaign_advertising_channel_type", "text"),
        ("campaign_bidding_strategy_type", "text"),
        ("campaign_budget_amount_micros", "bigint"),
        ("segments_date", "date"),
        ("segments_ad_network_type", "text"),
        ("segments_device", "text"),
        ("metrics_clicks", "bigint"),
        ("metrics_impressions", "bigint"),
        ("metrics_cost_micros", "bigint"),
        ("metrics_conversions", "numeric"),
        ("metrics_conversions_value", "numeric"),
        ("metrics_ctr", "numeric"),
        ("metrics_average_cpc", "numeric"),
    ),
    "google_ads_customer": (
        ("customer_id", "bigint"),
        ("customer_descriptive_name", "text"),
        ("customer_currency_code", "text"),
        ("customer_time_zone", "text"),
        ("customer_manager", "boolean"),
        ("customer_test_account", "boolean"),
        ("customer_auto_tagging_enabled", "boolean"),
        ("segments_date", "date"),
    ),
    # Airbyte's exchange-rates source: one row per date with every rate against ``base``.
    "exchange_rates_rates": (
        ("date", "date"),
        ("base", "text"),
        ("timestamp", "bigint"),
        ("rates", "jsonb"),
    ),
    "klaviyo_events": (*_KLAVIYO_JSONAPI, ("datetime", "timestamptz")),
    "klaviyo_metrics": (*_KLAVIYO_JSONAPI, ("updated", "timestamptz")),
    "klaviyo_campaigns": (*_KLAVIYO_JSONAPI, ("updated_at", "timestamptz")),
    "klaviyo_flows": (*_KLAVIYO_JSONAPI, ("updated", "timestamptz")),
    "klaviyo_profiles": (*_KLAVIYO_JSONAPI, ("updated", "timestamptz")),
    "attentive_sms_sent": _ATTENTIVE_MESSAGE,
    "attentive_sms_message_link_click": _ATTENTIVE_CLICK,
    "attentive_email_sent": _ATTENTIVE_MESSAGE,
    "attentive_email_opened": _ATTENTIVE_MESSAGE,
    "attentive_email_message_link_click": _ATTENTIVE_CLICK,
    "attentive_subscribed": _ATTENTIVE_SUBSCRIPTION,
    "attentive_unsubscribed": _ATTENTIVE_SUBSCRIPTION,
    "web_sessions": (
        ("session_id", "text"),
        ("anonymous_id", "text"),
        ("customer_id", "bigint"),
        ("email", "text"),
        ("started_at", "timestamptz"),
        ("ended_at", "timestamptz"),
        ("landing_page", "text"),
        ("referrer", "text"),
        ("utm_source", "text"),
        ("utm_medium", "text"),
        ("utm_campaign", "text"),
        ("utm_content", "text"),
        ("utm_term", "text"),
        ("fbclid", "text"),
        ("gclid", "text"),
        ("device", "text"),
        ("shop_url", "text"),
    ),
    # Attentive event types no staging model reads (custom_attribute.set, sms.inbound_message, names Attentive
    # adds later), kept whole so a model written later can read what arrived before it. Last in this dict: the
    # demo generator numbers tables by position, and a table inserted earlier would change its row ids.
    "attentive_other_events": (
        ("type", "text"),
        ("timestamp", "timestamptz"),
        ("company_id", "text"),
        ("payload", "jsonb"),
    ),
    # The web pixel's events, one row per event as the collector (collector/) writes them; the shape is the
    # contract with the sessions models (docs/rfcs/session-tracking.md). After attentive_other_events for the
    # same reason as it: the demo generator numbers tables by position.
    "web_events": (
        ("event_id", "text"),
        ("event_name", "text"),
        ("client_id", "text"),
        ("seq", "bigint"),
        ("occurred_at", "timestamptz"),
        ("sent_at", "timestamptz"),
        ("received_at", "timestamptz"),
        ("page_url", "text"),
        ("page_path", "text"),
        ("referrer", "text"),
        ("utm_source", "text"),
        ("utm_medium", "text"),
        ("utm_campaign", "text"),
        ("utm_content", "text"),
        ("utm_term", "text"),
        ("fbclid", "text"),
        ("gclid", "text"),
        ("ttclid", "text"),
        ("user_agent", "text"),
        ("device", "text"),
        ("ip_prefix", "text"),
        ("customer_id", "bigint"),
        ("order_id", "bigint"),
        ("checkout_token", "text"),
        ("email_sha256", "text"),
        ("value", "numeric"),
        ("currency", "text"),
        ("product_id", "text"),
        ("properties", "jsonb"),
        ("shop_url", "text"),
    ),
}

_KEY_RE = re.compile(r"^[a-z][a-z0-9_]{0,50}$")


def table_columns(table: str) -> tuple[tuple[str, str], ...]:
    """Stream columns followed by Airbyte's metadata columns, in table order."""
    return RAW_TABLES[table] + AIRBYTE_META_COLUMNS


def raw_schema_name(merchant_key: str) -> str:
    """``raw_<key>``; keys are restricted so the name never needs quoting."""
    if not _KEY_RE.match(merchant_key):
        raise ValueError(f"invalid merchant key {merchant_key!r}: use lowercase letters, digits and _")
    return f"raw_{merchant_key}"


# Tables our own webhook intake writes: each row's _airbyte_raw_id is derived from the delivery (the sha256 of
# its raw body), and this unique index is what makes a redelivered event land once (INSERT ... ON CONFLICT).
WEBHOOK_TABLES = tuple(table for table in RAW_TABLES if table.startswith("attentive_"))
# Tables whose rows carry their own id, unique per store: the collector dedupes a resent pixel event on it.
EVENT_ID_TABLES = ("web_events",)


def raw_table_statements(merchant_key: str, tables: tuple[str, ...] | None = None) -> list[sql.Composed]:
    """The DDL of the merchant's raw schema and of `tables` (default: all) with their legal-hold trigger, every
    statement idempotent."""
    schema = raw_schema_name(merchant_key)
    statements = [sql.SQL("create schema if not exists {}").format(sql.Identifier(schema))]
    for table in tables or tuple(RAW_TABLES):
        cols = sql.SQL(", ").join(
            sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(pg_type)) for name, pg_type in table_columns(table)
        )
        statements.append(
            sql.SQL("create table if not exists {}.{} ({})").format(sql.Identifier(schema), sql.Identifier(table), cols)
        )
        if table in WEBHOOK_TABLES:
            statements.append(
                sql.SQL("create unique index if not exists {} on {}.{} (_airbyte_raw_id)").format(
                    sql.Identifier(f"{table}_raw_id_key"), sql.Identifier(schema), sql.Identifier(table)
                )
            )
        if table in EVENT_ID_TABLES:
            statements.append(
                sql.SQL("create unique index if not exists {} on {}.{} (event_id)").format(
                    sql.Identifier(f"{table}_event_id_key"), sql.Identifier(schema), sql.Identifier(table)
                )
            )
        # Legal holds: no delete or rewrite of a held row, from the moment the table exists (compliance/guards.py).
        statements.append(guard_install(schema, table, merchant_key=merchant_key))
    return statements


def create_raw_schema(conn: psycopg.Connection, merchant_key: str) -> None:
    """Create the merchant's raw schema and every raw table (idempotent; existing data is kept)."""
    with conn.cursor() as cur:
        for statement in raw_table_statements(merchant_key):
            cur.execute(statement)
    conn.commit()
