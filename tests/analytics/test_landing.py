"""The load step (analytics/landing.py): each store's new raw rows land once in the shared tables, in commit
order, store by store; a store that cannot be loaded fails alone."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest

from analytics.landing import landed_schema_ensure, raw_load
from analytics.raw_schema import create_raw_schema

from .conftest import connect

A = {"id": 1, "key": "store_a", "timezone": "UTC", "currency": "USD"}
B = {"id": 2, "key": "store_b", "timezone": "UTC", "currency": "USD"}
T0 = dt.datetime(2026, 11, 1, 12, tzinfo=dt.UTC)


@pytest.fixture
def conn(scratch_db_factory):
    with connect(scratch_db_factory()) as conn:
        for m in (A, B):
            create_raw_schema(conn, m["key"])
        yield conn


def add_orders(conn, merchant: dict, ids: list[int], extracted_at: dt.datetime, raw_id: bool = True) -> None:
    for order_id in ids:
        conn.execute(
            f"insert into raw_{merchant['key']}.shopify_orders (id, updated_at, _airbyte_raw_id, _airbyte_extracted_at)"
            " values (%s, %s, %s, %s)",
            [order_id, extracted_at, uuid.uuid4() if raw_id else None, extracted_at],
        )
    conn.commit()


def landed(conn, table: str = "shopify_orders") -> list[tuple]:
    return conn.execute(f"select merchant_id, id, _load_id from landed.{table} order by _load_id").fetchall()


def test_rows_land_once_in_commit_order_and_a_reload_adds_nothing(conn):
    add_orders(conn, A, [1, 2], T0)
    add_orders(conn, B, [10], T0)
    first = raw_load(conn, merchants=[A, B])
    assert first.rows == {"shopify_orders": 3} and not first.failures
    assert [(m, i) for m, i, _ in landed(conn)] == [(1, 1), (1, 2), (2, 10)]
    assert first.landed_through == max(load_id for *_, load_id in landed(conn))

    # the probes and re-reads of a store's recent rows go through an index on the extraction time
    indexed = conn.execute(
        "select count(*) from pg_indexes where schemaname = 'raw_store_a' and tablename = 'shopify_orders'"
        " and indexdef like '%(_airbyte_extracted_at)'"
    ).fetchone()[0]
    assert indexed == 1

    again = raw_load(conn, merchants=[A, B])
    assert again.rows == {} and again.landed_through == first.landed_through
    assert len(landed(conn)) == 3

    add_orders(conn, A, [3], T0 + dt.timedelta(hours=1))
    later = raw_load(conn, merchants=[A, B])
    assert later.rows == {"shopify_orders": 1}
    [(merchant_id, order_id, load_id)] = [row for row in landed(conn) if row[1] == 3]
    assert (merchant_id, order_id) == (1, 3) and load_id > first.landed_through == max(r[2] for r in landed(conn)[:3])
    ledger = conn.execute(
        "select merchant_id, table_name, row_count, first_load_id <= last_load_id from landed._loads order by id"
    ).fetchall()
    assert ledger == [(1, "shopify_orders", 2, True), (2, "shopify_orders", 1, True), (1, "shopify_orders", 1, True)]


def test_a_row_committed_late_with_an_older_extraction_time_still_lands(conn):
    add_orders(conn, A, [1], T0 + dt.timedelta(hours=2))
    raw_load(conn, merchants=[A])
    # extracted before what was loaded, committed after the load: within the commit lag (3 h)
    add_orders(conn, A, [2], T0 + dt.timedelta(minutes=30))
    assert raw_load(conn, merchants=[A]).rows == {"shopify_orders": 1}
    assert sorted(i for _, i, _ in landed(conn)) == [1, 2]


def test_a_row_without_an_airbyte_id_lands_once(conn):
    add_orders(conn, A, [7], T0, raw_id=False)
    raw_load(conn, merchants=[A])
    raw_load(conn, merchants=[A])
    assert [(m, i) for m, i, _ in landed(conn)] == [(1, 7)]


def test_the_scope_loads_only_the_stores_and_tables_named(conn):
    add_orders(conn, A, [1], T0)
    add_orders(conn, B, [10], T0)
    conn.execute(
        "insert into raw_store_a.shopify_customers (id, _airbyte_raw_id, _airbyte_extracted_at) values (5, %s, %s)",
        [uuid.uuid4(), T0],
    )
    conn.commit()
    result = raw_load(conn, merchants=[A, B], scope={A["id"]: ["shopify_customers"]})
    assert result.rows == {"shopify_customers": 1}
    assert landed(conn) == []
    assert raw_load(conn, merchants=[A, B], scope={B["id"]: None}).rows == {"shopify_orders": 1}
    assert [(m, i) for m, i, _ in landed(conn)] == [(2, 10)]


def test_a_store_whose_table_lacks_a_column_fails_alone(conn):
    add_orders(conn, A, [1], T0)
    add_orders(conn, B, [10], T0)
    conn.execute(
        "insert into raw_store_a.shopify_customers (id, _airbyte_raw_id, _airbyte_extracted_at) values (5, %s, %s)",
        [uuid.uuid4(), T0],
    )
    conn.execute("alter table raw_store_a.shopify_orders drop column landing_site")
    conn.commit()
    result = raw_load(conn, merchants=[A, B])
    [failure] = result.failures
    assert (failure["merchant_key"], failure["table"]) == ("store_a", "shopify_orders")
    assert "raw_store_a.shopify_orders" in failure["message"] and "landing_site" in failure["message"]
    assert result.rows == {"shopify_orders": 1, "shopify_customers": 1}
    assert [(m, i) for m, i, _ in landed(conn)] == [(2, 10)]


def test_a_store_without_its_raw_schema_has_nothing_to_load(conn):
    new = {"id": 3, "key": "store_new", "timezone": "UTC", "currency": "USD"}
    result = raw_load(conn, merchants=[new])
    assert result.rows == {} and result.failures == []


def test_the_landed_schema_gains_the_raw_columns_it_lacks(conn):
    landed_schema_ensure(conn)
    conn.execute("alter table landed.shopify_orders drop column landing_site")
    conn.commit()
    add_orders(conn, A, [1], T0)
    assert raw_load(conn, merchants=[A]).rows == {"shopify_orders": 1}
    columns = {
        name
        for (name,) in conn.execute(
            "select column_name from information_schema.columns"
            " where table_schema = 'landed' and table_name = 'shopify_orders'"
        ).fetchall()
    }
    assert {"merchant_id", "_load_id", "landing_site"} <= columns


def test_every_landed_index_leads_with_merchant_id(conn):
    landed_schema_ensure(conn)
    indexes = conn.execute(
        "select c.relname, i.relname, a.attname from pg_index x"
        " join pg_class c on c.oid = x.indrelid join pg_namespace n on n.oid = c.relnamespace"
        " join pg_class i on i.oid = x.indexrelid"
        " join pg_attribute a on a.attrelid = c.oid and a.attnum = x.indkey[0]"
        " where n.nspname = 'landed' and not c.relname like '\\_%'"
    ).fetchall()
    assert indexes and {first for _, _, first in indexes} == {"merchant_id"}
