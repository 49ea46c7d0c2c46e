"""Fixtures for the privacy webhook tests (tests/compliance/test_privacy*.py, test_redaction*.py).

The warehouse is the test database itself (the `warehouse` alias points at it): the work runs on its own
psycopg connections, so these tests commit (transactional) and the fixture drops the schemas they made."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import uuid

import psycopg
import pytest
from django.conf import settings

from analytics.demo_data import generate_demo_data
from analytics.selectors import warehouse_connection_params

SHOPIFY_SECRET = "shpss_privacy_tests_secret_0000"


@pytest.fixture
def eager(settings):
    from config.celery import app

    settings.SHOPIFY_API_SECRET = SHOPIFY_SECRET
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


@pytest.fixture(autouse=True)
def _no_notification_delivery(monkeypatch):
    """Owners' and staff's emails are outbox rows here; delivering them is the notifications app's business."""
    from notifications.tasks import notification_deliver_task

    monkeypatch.setattr(notification_deliver_task, "delay", lambda *args, **kwargs: None)


@pytest.fixture
def compliance_storage(settings, tmp_path):
    location = tmp_path / "compliance-files"
    settings.STORAGES = {
        **settings.STORAGES,
        "compliance_files": {
            "BACKEND": "django.core.files.storage.FileSystemStorage",
            "OPTIONS": {"location": location},
        },
    }
    return location


@pytest.fixture
def warehouse():
    """The warehouse's connection parameters; every schema the test made there is dropped afterwards."""
    params = warehouse_connection_params()
    yield params
    with psycopg.connect(**params, autocommit=True) as conn:
        # A hold the test placed still guards its tables against DROP (compliance/guards.py): released first.
        conn.execute("update compliance_legalhold set released_at = now() where released_at is null")
        schemas = [
            name
            for (name,) in conn.execute(
                "select nspname from pg_namespace where nspname like 'raw\\_%%'"
                " or nspname in ('landed', 'analytics', 'analytics_staging')"
            ).fetchall()
        ]
        for name in schemas:
            conn.execute(f'drop schema if exists "{name}" cascade')


def seed_store(db: dict, merchant, *, days: int = 20, orders_per_day: int = 5) -> None:
    with psycopg.connect(**db) as conn:
        generate_demo_data(
            conn, merchant_key=merchant.key, shop_domain=merchant.shop_domain, timezone=merchant.timezone,
            currency=merchant.currency, days=days, orders_per_day=orders_per_day, seed=7,
            end_date=dt.date(2026, 11, 30),
        )  # fmt: skip


def signed_post(client, body: dict, *, topic: str, shop: str, event_id: str | None = None, secret: str | None = None):
    raw = json.dumps(body).encode()
    key = (secret or settings.SHOPIFY_API_SECRET).encode()
    digest = base64.b64encode(hmac.new(key, raw, hashlib.sha256).digest()).decode()
    return client.post(
        "/webhooks/shopify/",
        data=raw,
        content_type="application/json",
        HTTP_X_SHOPIFY_TOPIC=topic,
        HTTP_X_SHOPIFY_SHOP_DOMAIN=shop,
        HTTP_X_SHOPIFY_API_VERSION="2026-01",
        HTTP_X_SHOPIFY_WEBHOOK_ID=str(uuid.uuid4()),
        HTTP_X_SHOPIFY_EVENT_ID=event_id or str(uuid.uuid4()),
        HTTP_X_SHOPIFY_HMAC_SHA256=digest,
    )


def customer_payload(merchant, customer: dict, **extra) -> dict:
    return {
        "shop_id": 954889,
        "shop_domain": merchant.shop_domain,
        "customer": {"id": customer["id"], "email": customer["email"], "phone": customer["phone"]},
        **extra,
    }


def pick_customers(db: dict, merchant, n: int = 2) -> list[dict]:
    """Customers of the demo store with orders, a Klaviyo profile and web sessions (most orders first)."""
    schema = f"raw_{merchant.key}"
    with psycopg.connect(**db) as conn:
        rows = conn.execute(
            f"select distinct on (c.id) c.id, c.email, c.first_name, c.last_name, c.phone,"
            f" (select count(*) from {schema}.shopify_orders o where o.email = c.email) as orders,"
            f" (select min(p.id) from {schema}.klaviyo_profiles p where p.attributes ->> 'email' = c.email),"
            f" (select min(w.anonymous_id) from {schema}.web_sessions w where w.email = c.email)"
            f" from {schema}.shopify_customers c order by c.id"
        ).fetchall()
    found = [
        {"id": r[0], "email": r[1], "first_name": r[2], "last_name": r[3], "phone": r[4], "orders": r[5],
         "profile_id": r[6], "anonymous_id": r[7]}
        for r in rows
        if r[5] and r[6] and r[7]
    ]  # fmt: skip
    found.sort(key=lambda c: (-c["orders"], c["id"]))
    return found[:n]


def add_every_source(db: dict, merchant, customer: dict, *, n: int) -> None:
    """The demo world's Attentive subscribers and pixel events are other people: give the customer theirs, so
    they appear in every source (Attentive SMS and subscriptions, unknown Attentive events, pixel events)."""
    schema = f"raw_{merchant.key}"
    ext = f"SUB-{uuid.uuid4().hex[:12]}"
    client_id = f"cid-{uuid.uuid4().hex[:16]}"
    email_sha = hashlib.sha256(customer["email"].encode()).hexdigest()
    at = dt.datetime(2026, 11, 20, 12, n, tzinfo=dt.UTC)
    with psycopg.connect(**db) as conn:
        for table in ("attentive_sms_sent", "attentive_email_sent"):
            conn.execute(
                f"insert into {schema}.{table} (type, timestamp, company_id, message_id, message_name, message_type,"
                " message_channel, message_text, subscriber_external_id, subscriber_email, subscriber_phone,"
                " _airbyte_raw_id, _airbyte_extracted_at, _airbyte_meta, _airbyte_generation_id)"
                " values ('sms_sent', %s, 'C1', %s, 'Drop', 'CAMPAIGN', 'TEXT', 'new drop', %s, %s, %s, %s, %s,"
                " '{}', 0)",
                [at, f"M{n}{table}", ext, customer["email"], customer["phone"], uuid.uuid4(), at],
            )
        conn.execute(
            f"insert into {schema}.attentive_subscribed (type, timestamp, company_id, subscription_type,"
            " subscription_channel, subscriber_external_id, subscriber_email, subscriber_phone, _airbyte_raw_id,"
            " _airbyte_extracted_at, _airbyte_meta, _airbyte_generation_id)"
            " values ('subscription.subscribed', %s, 'C1', 'MARKETING', 'TEXT', %s, %s, %s, %s, %s, '{}', 0)",
            [at, ext, customer["email"], customer["phone"], uuid.uuid4(), at],
        )
        conn.execute(
            f"insert into {schema}.attentive_other_events (type, timestamp, company_id, payload, _airbyte_raw_id,"
            " _airbyte_extracted_at, _airbyte_meta, _airbyte_generation_id) values ('sms.inbound_message', %s, 'C1',"
            " %s::jsonb, %s, %s, '{}', 0)",
            [at, json.dumps({"type": "sms.inbound_message", "message": {"text": "STOP"},
             "subscriber": {"external_id": ext, "email": customer["email"], "phone": customer["phone"]}}),
             uuid.uuid4(), at],
        )  # fmt: skip
        for seq, name in enumerate(("page_viewed", "checkout_completed")):
            conn.execute(
                f"insert into {schema}.web_events (event_id, event_name, client_id, seq, occurred_at, sent_at,"
                " received_at, page_url, page_path, user_agent, device, ip_prefix, customer_id, email_sha256,"
                " properties, shop_url, _airbyte_raw_id, _airbyte_extracted_at, _airbyte_meta, _airbyte_generation_id)"
                " values (%s, %s, %s, %s, %s, %s, %s, %s, '/', 'Mozilla/5.0', 'desktop', '10.1.2.0', %s, %s,"
                " '{}'::jsonb, %s, %s, %s, '{}', 0)",
                [uuid.uuid4().hex, name, client_id, seq, at, at, at, f"https://{merchant.shop_domain}/",
                 customer["id"], email_sha, merchant.shop_domain, uuid.uuid4(), at],
            )  # fmt: skip
        conn.commit()
    customer.update(subscriber_id=ext, client_id=client_id)


def needles(customer: dict) -> dict[str, str]:
    """What must appear nowhere once the customer is redacted."""
    return {
        "email": customer["email"],
        "first_name": customer["first_name"],
        "last_name": customer["last_name"],
        "phone": customer["phone"],
        "phone_digits": customer["phone"].lstrip("+"),
        "customer_id": str(customer["id"]),
        "klaviyo_profile_id": customer["profile_id"],
        "web_anonymous_id": customer["anonymous_id"],
        **({"attentive_subscriber": customer["subscriber_id"]} if customer.get("subscriber_id") else {}),
        **({"pixel_client_id": customer["client_id"]} if customer.get("client_id") else {}),
    }


def scan(db: dict, merchant, values: dict[str, str]) -> list[tuple[str, str, int]]:
    """(table, needle, rows) for every table or view in the store's raw schema, landed and the dbt schemas whose
    rows, as text, contain a needle (case-insensitive)."""
    leaks = []
    with psycopg.connect(**db) as conn:
        tables = conn.execute(
            "select table_schema, table_name from information_schema.tables where table_schema = any(%s)",
            [[f"raw_{merchant.key}", "landed", "analytics", "analytics_staging"]],
        ).fetchall()
        for schema, table in tables:
            for name, value in values.items():
                (count,) = conn.execute(
                    f'select count(*) from "{schema}"."{table}" as t where t::text ilike %s', [f"%{value}%"]
                ).fetchone()
                if count:
                    leaks.append((f"{schema}.{table}", name, count))
    return leaks
