"""compliance/redaction.py on a store's raw and landed rows: linked identifiers are found, pseudonyms agree across
tables, a second run changes nothing, and rows landed later are rewritten by the load step before dbt reads them."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import psycopg
import pytest

from analytics.landing import raw_load
from analytics.raw_schema import create_raw_schema
from compliance import redaction
from tests.accounts.factories import MerchantFactory

from .privacy_fixtures import warehouse  # noqa: F401  (fixture)

pytestmark = pytest.mark.django_db(transaction=True)

T0 = dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC)


def _customer(conn, key, *, cid, email, phone, at=T0):
    conn.execute(
        f"insert into raw_{key}.shopify_customers (id, email, first_name, last_name, phone, default_address,"
        " _airbyte_raw_id, _airbyte_extracted_at) values (%s, %s, 'Jane', 'Roe', %s, '{\"city\": \"Lyon\"}', %s, %s)",
        [cid, email, phone, uuid.uuid4(), at],
    )


def _order(conn, key, *, oid, cid, email, at=T0):
    conn.execute(
        f"insert into raw_{key}.shopify_orders (id, email, browser_ip, customer, total_price, _airbyte_raw_id,"
        " _airbyte_extracted_at) values (%s, %s, '10.0.0.9', %s::jsonb, 10, %s, %s)",
        [oid, email, json.dumps({"id": cid, "email": email, "first_name": "Jane"}), uuid.uuid4(), at],
    )


@pytest.fixture
def store(warehouse):  # noqa: F811
    merchant = MerchantFactory(key="redact_unit")
    with psycopg.connect(**warehouse) as conn:
        create_raw_schema(conn, merchant.key)
        _customer(conn, merchant.key, cid=11, email="Jane@Example.com ", phone="+1 (555) 000-0011")
        _order(conn, merchant.key, oid=101, cid=11, email="jane@example.com")
        _customer(conn, merchant.key, cid=22, email="joe@example.com", phone="+15550000022")
        _order(conn, merchant.key, oid=202, cid=22, email="joe@example.com")
        conn.execute(
            f"insert into raw_{merchant.key}.klaviyo_profiles (type, id, attributes, _airbyte_raw_id,"
            " _airbyte_extracted_at) values ('profile', 'KP1', %s::jsonb, %s, %s)",
            [json.dumps({"email": "jane@example.com", "first_name": "Jane"}), uuid.uuid4(), T0],
        )
        conn.execute(
            f"insert into raw_{merchant.key}.klaviyo_events (type, id, attributes, relationships, _airbyte_raw_id,"
            " _airbyte_extracted_at) values ('event', 'E1', '{}'::jsonb, %s::jsonb, %s, %s)",
            [json.dumps({"profile": {"data": {"id": "KP1", "type": "profile"}}}), uuid.uuid4(), T0],
        )
        conn.commit()
        raw_load(conn, merchants=[{"id": merchant.pk, "key": merchant.key}])
    return merchant, warehouse


def _seed() -> redaction.Identifiers:
    seed = redaction.Identifiers()
    seed.add(customer_id=11)
    return seed


def test_linked_identifiers_are_found_and_rewritten_alike_everywhere_once(store):
    merchant, db = store
    with psycopg.connect(**db) as conn:
        found = redaction.identifiers_discover(conn, merchant_id=merchant.pk, key=merchant.key, seed=_seed())
        assert (found.customer_ids, found.emails, found.phones, found.text_ids) == (
            {11}, {"jane@example.com"}, {"15550000011"}, {"KP1"},
        )  # fmt: skip
        outcome = redaction.customer_redact(conn, merchant_id=merchant.pk, key=merchant.key, identifiers=found)
        conn.commit()
        assert outcome.rows == {
            f"{layer}.{table}": 1
            for layer in ("raw", "landed")
            for table in ("shopify_orders", "shopify_customers", "klaviyo_profiles", "klaviyo_events")
        }
        for layer in (f"raw_{merchant.key}", "landed"):
            customer = conn.execute(
                f"select id, email, first_name, last_name, phone, default_address from {layer}.shopify_customers"
                " where id < 0"
            ).fetchone()
            order = conn.execute(
                f"select email, browser_ip, customer from {layer}.shopify_orders where id = 101"
            ).fetchone()
            profile = conn.execute(f"select id, attributes from {layer}.klaviyo_profiles").fetchone()
            event = conn.execute(
                f"select relationships #>> '{{profile,data,id}}' from {layer}.klaviyo_events"
            ).fetchone()
            pseudo_id, pseudo_email = customer[0], customer[1]
            assert pseudo_email.startswith("redacted-") and pseudo_email.endswith("@redacted.invalid")
            assert customer[2:] == (None, None, customer[4], None) and customer[4].startswith("redacted-")
            assert order[0] == pseudo_email and order[1] is None
            assert order[2] == {"id": pseudo_id, "email": pseudo_email}  # names gone, the join to the customer kept
            assert profile[0] == event[0] and profile[0].startswith("redacted-")
            assert profile[1] == {"email": pseudo_email}
            # The other customer is untouched.
            assert conn.execute(f"select email from {layer}.shopify_customers where id = 22").fetchone() == (
                "joe@example.com",
            )
        again = redaction.customer_redact(conn, merchant_id=merchant.pk, key=merchant.key, identifiers=found)
        assert again.rows == {}  # nothing of theirs is left to match


def test_a_customer_synced_again_is_rewritten_by_the_load_before_any_build(store):
    merchant, db = store
    with psycopg.connect(**db) as conn:
        found = redaction.identifiers_discover(conn, merchant_id=merchant.pk, key=merchant.key, seed=_seed())
        redaction.customer_redact(conn, merchant_id=merchant.pk, key=merchant.key, identifiers=found)
        conn.commit()
        (pseudo_id,) = conn.execute(f"select id from raw_{merchant.key}.shopify_customers where id < 0").fetchone()
        # Airbyte lands the customer again, and a new order of theirs; the registry holds only digests.
        later = dt.datetime.now(dt.UTC)
        _customer(conn, merchant.key, cid=11, email="JANE@example.com", phone="555 000 0011", at=later)
        _order(conn, merchant.key, oid=103, cid=11, email="jane@example.com", at=later)
        conn.commit()
        raw_load(conn, merchants=[{"id": merchant.pk, "key": merchant.key}])
        for layer in (f"raw_{merchant.key}", "landed"):
            rows = conn.execute(
                f"select id, email, first_name from {layer}.shopify_customers where id <> 22"
            ).fetchall()
            assert {r[0] for r in rows} == {pseudo_id} and all(r[2] is None for r in rows)
            assert len({r[1] for r in rows}) == 1  # the same pseudonym whatever the spelling of the address
            (customer,) = conn.execute(f"select customer from {layer}.shopify_orders where id = 103").fetchone()
            assert customer["id"] == pseudo_id
        registry = conn.execute("select kind, count(*) from landed._redactions group by 1 order by 1").fetchall()
        assert registry == [("c", 1), ("e", 1), ("p", 1), ("t", 1)]
        assert "jane" not in json.dumps(conn.execute("select * from landed._redactions").fetchall(), default=str)
