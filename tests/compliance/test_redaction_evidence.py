"""Evidence for customers/redact: a customer present in every source of a demo store (Shopify customers and
orders, Klaviyo profiles and events, Attentive messages, subscriptions and other events, web sessions and pixel
events) is erased from raw_<key>, landed, every dbt schema, the data-request files and the caches — and stays
erased after a full dbt rebuild, also when Airbyte syncs the customer's original record again. A held customer's
data survives their own redact, with the exemption recorded. The store's figures do not move."""

from __future__ import annotations

import datetime as dt
import uuid

import psycopg
import pytest
from django.core.cache import caches

from analytics.dbt_runner import dbt_invoke
from compliance.choices import ActorType, PrivacyState, PrivacyTopic
from compliance.holds import hold_place
from compliance.models import HoldExemption, PrivacyRequest
from compliance.services import Actor
from tests.accounts.factories import MembershipFactory, MerchantFactory

from .privacy_fixtures import (  # noqa: F401  (fixtures)
    _no_notification_delivery,
    add_every_source,
    compliance_storage,
    customer_payload,
    eager,
    needles,
    pick_customers,
    scan,
    seed_store,
    signed_post,
    warehouse,
)

pytestmark = pytest.mark.django_db(transaction=True)

STAFF = Actor(type=ActorType.STAFF, id="1", label="counsel@example.com")
FIGURES = (
    "select count(*), sum(orders), sum(net_revenue), sum(new_customers), sum(returning_customers)"
    " from analytics.fct_daily_summary where merchant_id = %s"
)
LTV = "select sum(cohort_size), sum(net_revenue) from analytics.fct_ltv where merchant_id = %s"


def build(db, merchant, *args):
    result = dbt_invoke(
        ["build", *args],
        merchants=[
            {"id": merchant.pk, "key": merchant.key, "timezone": merchant.timezone, "currency": merchant.currency}
        ],
        db=db,
    )
    assert result.success, (result.error, [(r.unique_id, r.message) for r in result.results if r.status == "error"])


def figures(db, merchant):
    with psycopg.connect(**db) as conn:
        return conn.execute(FIGURES, [merchant.pk]).fetchone(), conn.execute(LTV, [merchant.pk]).fetchone()


def resync_original(db, merchant, customer):
    """Airbyte syncs the customer's record from Shopify again: a new raw row carrying the original values."""
    at = dt.datetime.now(dt.UTC)
    with psycopg.connect(**db) as conn:
        conn.execute(
            f"insert into raw_{merchant.key}.shopify_customers (id, email, first_name, last_name, phone, created_at,"
            " updated_at, orders_count, _airbyte_raw_id, _airbyte_extracted_at, _airbyte_meta, _airbyte_generation_id)"
            " values (%s, %s, %s, %s, %s, %s, %s, 1, %s, %s, '{}', 0)",
            [customer["id"], customer["email"], customer["first_name"], customer["last_name"], customer["phone"],
             at - dt.timedelta(days=400), at, uuid.uuid4(), at],
        )  # fmt: skip
        conn.execute(
            f"insert into raw_{merchant.key}.klaviyo_profiles (type, id, attributes, _airbyte_raw_id,"
            " _airbyte_extracted_at, _airbyte_meta, _airbyte_generation_id, updated)"
            " values ('profile', %s, jsonb_build_object('email', %s::text, 'phone_number', %s::text, 'first_name',"
            " %s::text), %s, %s, '{}', 0, %s)",
            [customer["profile_id"], customer["email"], customer["phone"], customer["first_name"], uuid.uuid4(), at,
             at],
        )  # fmt: skip
        conn.commit()


def test_a_redacted_customer_appears_nowhere_after_a_full_rebuild_and_a_held_one_survives(
    client,
    eager,  # noqa: F811  (a fixture)
    warehouse,  # noqa: F811
    compliance_storage,  # noqa: F811
):
    merchant = MerchantFactory(key="evidence", shop_domain="evidence.myshopify.com", timezone="UTC")
    MembershipFactory(merchant=merchant, clerk_user_id="user_owner", role="owner")
    seed_store(warehouse, merchant)
    target, held = pick_customers(warehouse, merchant, n=2)
    for n, customer in enumerate((target, held)):
        add_every_source(warehouse, merchant, customer, n=n)
    build(warehouse, merchant)
    before = figures(warehouse, merchant)
    assert not any(name == "email" for _, name, _ in scan(warehouse, merchant, {"email": "redacted.invalid"}))
    present = {table for table, _, _ in scan(warehouse, merchant, needles(target))}
    # The customer really is everywhere to begin with: every layer, messages and events included.
    for table in ("shopify_customers", "shopify_orders", "klaviyo_profiles", "klaviyo_events", "attentive_sms_sent",
                  "attentive_subscribed", "attentive_other_events", "web_sessions", "web_events"):  # fmt: skip
        assert {f"raw_evidence.{table}", f"landed.{table}"} <= present, table
    assert {"analytics.dim_customers", "analytics.fct_orders", "analytics.fct_sessions", "analytics.fct_messages",
            "analytics_staging.stg_shopify__customers"} <= present  # fmt: skip

    # Before the redact the store asked for the customer's data: that file must go with the rest.
    response = signed_post(
        client, customer_payload(merchant, target, orders_requested=[], data_request={"id": 9999}),
        topic=PrivacyTopic.CUSTOMERS_DATA_REQUEST, shop=merchant.shop_domain,
    )  # fmt: skip
    assert response.status_code == 200
    data_request = PrivacyRequest.objects.get(topic=PrivacyTopic.CUSTOMERS_DATA_REQUEST)
    assert data_request.state == PrivacyState.DONE and data_request.file_key
    assert target["email"].encode() in (compliance_storage / data_request.file_key).read_bytes()
    caches["dashboards"].set("dash:probe", {"customer": target["email"]})

    hold = hold_place(
        merchant_id=merchant.pk, matter="Doe v. Store", reason="litigation", actor=STAFF, emails=[held["email"]]
    )
    for customer in (target, held):
        response = signed_post(
            client, customer_payload(merchant, customer, orders_to_redact=[]),
            topic=PrivacyTopic.CUSTOMERS_REDACT, shop=merchant.shop_domain,
        )  # fmt: skip
        assert response.status_code == 200

    redacted = PrivacyRequest.objects.get(
        topic=PrivacyTopic.CUSTOMERS_REDACT, customer_id=None, state=PrivacyState.DONE
    )
    assert redacted.identifiers_redacted and redacted.customer_email == "" and not redacted.exemptions
    assert redacted.result["files_deleted"] == 1 and redacted.result["rows"]["raw.shopify_customers"] >= 1
    # Now, before any build: raw, landed and the dbt tables hold none of it; nor do the files or the caches.
    assert scan(warehouse, merchant, needles(target)) == []
    assert not list(compliance_storage.rglob("*.json"))
    data_request.refresh_from_db()
    assert data_request.file_key == "" and data_request.customer_email == ""
    assert caches["dashboards"].get("dash:probe") is None
    with psycopg.connect(**warehouse) as conn:
        django_cache = conn.execute("select count(*) from django_cache where value ilike %s", [f"%{target['email']}%"])
        assert django_cache.fetchone()[0] == 0
    assert figures(warehouse, merchant) == before  # pseudonyms, not deletions: the store's figures stand

    # The held customer: nothing of theirs was touched, and the request says why.
    kept = PrivacyRequest.objects.get(topic=PrivacyTopic.CUSTOMERS_REDACT, state=PrivacyState.PARTIALLY_EXEMPT)
    assert kept.customer_email == held["email"]  # still needed: the work is owed once the hold is released
    assert {e["category"] for e in kept.exemptions} >= {"raw", "events"}
    assert all(e["hold_id"] == hold.pk and e["work"] == "customers/redact" for e in kept.exemptions)
    assert HoldExemption.objects.filter(hold=hold, work="customers/redact").count() == len(kept.exemptions)
    still = {table for table, _, _ in scan(warehouse, merchant, {"email": held["email"]})}
    assert {"raw_evidence.shopify_customers", "landed.shopify_customers", "analytics.dim_customers"} <= still

    # Airbyte brings the original record back; a full rebuild from everything landed produces none of it.
    resync_original(warehouse, merchant, target)
    build(warehouse, merchant, "--full-refresh")
    assert scan(warehouse, merchant, needles(target)) == []
    assert figures(warehouse, merchant) == before
    assert {table for table, _, _ in scan(warehouse, merchant, {"email": held["email"]})} >= still
