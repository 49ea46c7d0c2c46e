"""Demo data: deterministic, appendable, and the dbt project builds on it with every test passing;
incremental runs after one more day of data give exactly the rows of a full refresh."""

from __future__ import annotations

import datetime as dt

import pytest
from psycopg import sql

from analytics.dbt_runner import dbt_invoke
from analytics.demo_data import generate_demo_data
from analytics.raw_schema import RAW_TABLES, table_columns

from .conftest import connect

MERCHANT = {"id": 3, "key": "demo", "timezone": "America/Los_Angeles", "currency": "USD"}
END = dt.date(2026, 10, 31)
DEMO = {
    "merchant_key": "demo",
    "shop_domain": "demo-shop.myshopify.com",
    "timezone": "America/Los_Angeles",
    "currency": "USD",
}


def raw_rows(conn, table: str) -> list[str]:
    cols = sql.SQL(", ").join(sql.Identifier(c) for c, _ in table_columns(table))
    query = sql.SQL("select {} from raw_demo.{}").format(cols, sql.Identifier(table))
    return sorted(repr(row) for row in conn.execute(query).fetchall())


def assert_build_ok(result) -> None:
    failures = [(r.unique_id, r.status, r.message) for r in result.results if r.status not in ("success", "pass")]
    assert result.success and not failures, failures or result.error


def test_generator_is_deterministic_and_appends_one_more_day(scratch_db_factory):
    a, b, c = scratch_db_factory(), scratch_db_factory(), scratch_db_factory()
    with connect(a) as ca, connect(b) as cb, connect(c) as cc:
        counts = generate_demo_data(ca, **DEMO, days=12, orders_per_day=6, seed=5, end_date=END)
        assert generate_demo_data(cb, **DEMO, days=12, orders_per_day=6, seed=5, end_date=END) == counts
        # c: the same 12 days, then the 13th appended; a: all 13 days at once
        generate_demo_data(cc, **DEMO, days=12, orders_per_day=6, seed=5, end_date=END)
        appended = generate_demo_data(
            cc,
            **DEMO,
            days=13,
            orders_per_day=6,
            seed=5,
            end_date=END + dt.timedelta(days=1),
            from_date=END + dt.timedelta(days=1),
        )
        assert appended["shopify_orders"] > 0 and appended["klaviyo_events"] > 0
        assert sum(appended.values()) < sum(counts.values())
        for table in RAW_TABLES:
            assert raw_rows(ca, table) == raw_rows(cb, table), table
        ca.execute("drop schema raw_demo cascade")
        ca.commit()
        generate_demo_data(ca, **DEMO, days=13, orders_per_day=6, seed=5, end_date=END + dt.timedelta(days=1))
        for table in RAW_TABLES:
            full, pieces = raw_rows(ca, table), raw_rows(cc, table)
            assert set(pieces) <= set(full), table
            if table != "web_sessions" and not table.startswith(("klaviyo", "attentive")):
                # only the touches of an appended day's orders that fall before it are not written
                assert pieces == full, table
        # nothing is stamped in the future of the window
        latest = cc.execute("select max(_airbyte_extracted_at) from raw_demo.shopify_orders").fetchone()[0]
        assert latest < dt.datetime(2026, 11, 2, 8, 0, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def demo_db(scratch_db_factory):
    db = scratch_db_factory()
    with connect(db) as conn:
        counts = generate_demo_data(conn, **DEMO, days=60, orders_per_day=20, seed=11, end_date=END)
    assert counts["shopify_orders"] > 1200
    return db


def analytics_tables(conn) -> list[tuple[str, str, list[str]]]:
    """Tables to compare, with their columns minus bookkeeping: dbt_updated_at and the `_`-prefixed
    watermark/hash columns (an unchanged row is not rewritten, so it keeps its first extraction time)."""
    tables = conn.execute("""
        select table_schema, table_name from information_schema.tables
        where table_schema in ('analytics', 'analytics_staging') and table_type = 'BASE TABLE'
        order by 1, 2""").fetchall()
    out = []
    for schema, name in tables:
        cols = [
            c
            for (c,) in conn.execute(
                "select column_name from information_schema.columns where table_schema = %s and table_name = %s "
                "and column_name <> 'dbt_updated_at' and column_name not like '\\_%%' order by ordinal_position",
                (schema, name),
            )
        ]
        out.append((schema, name, cols))
    return out


def test_demo_data_builds_and_incremental_equals_full_refresh(demo_db):
    assert_build_ok(dbt_invoke(["build"], merchants=[MERCHANT], db=demo_db))
    with connect(demo_db) as conn:
        summary = conn.execute(
            "select sum(orders), sum(net_revenue) > 0, sum(ad_spend) > 0 from analytics.fct_daily_summary"
        ).fetchone()
        assert summary[0] > 1000 and summary[1] and summary[2]
        generate_demo_data(
            conn,
            **DEMO,
            days=61,
            orders_per_day=20,
            seed=11,
            end_date=END + dt.timedelta(days=1),
            from_date=END + dt.timedelta(days=1),
        )
    assert_build_ok(dbt_invoke(["build"], merchants=[MERCHANT], db=demo_db))

    with connect(demo_db) as conn:
        tables = analytics_tables(conn)
        assert len(tables) >= 15
        conn.execute("create schema snap")
        for schema, name, _ in tables:
            conn.execute(
                sql.SQL("create table snap.{} as table {}.{}").format(
                    sql.Identifier(f"{schema}__{name}"), sql.Identifier(schema), sql.Identifier(name)
                )
            )
        conn.commit()
    assert_build_ok(dbt_invoke(["build", "--full-refresh"], merchants=[MERCHANT], db=demo_db))

    differences = {}
    with connect(demo_db) as conn:
        for schema, name, cols in tables:
            col_list = sql.SQL(", ").join(sql.Identifier(c) for c in cols)
            incremental = sql.SQL("select {} from snap.{}").format(col_list, sql.Identifier(f"{schema}__{name}"))
            full = sql.SQL("select {} from {}.{}").format(col_list, sql.Identifier(schema), sql.Identifier(name))
            only_inc = conn.execute(sql.SQL("select count(*) from ({} except all {}) d").format(incremental, full))
            n_inc = only_inc.fetchone()[0]
            n_full = conn.execute(
                sql.SQL("select count(*) from ({} except all {}) d").format(full, incremental)
            ).fetchone()[0]
            if n_inc or n_full:
                differences[f"{schema}.{name}"] = (n_inc, n_full)
    assert differences == {}


def test_every_table_carries_merchant_id_and_every_index_leads_with_it(demo_db):
    """Tenancy and scale-out (docs/scaling.md): every row says whose it is and every index a query by store uses
    starts with merchant_id (a Citus distribution column). The one exception is the bookkeeping index on
    dbt_updated_at, which the build's "changed since the last run" reads across stores."""
    assert_build_ok(dbt_invoke(["build"], merchants=[MERCHANT], db=demo_db))
    with connect(demo_db) as conn:
        tables = conn.execute("""
            select t.table_schema, t.table_name,
                exists (select from information_schema.columns c where c.table_schema = t.table_schema
                        and c.table_name = t.table_name and c.column_name = 'merchant_id')
            from information_schema.tables t
            where t.table_schema in ('analytics', 'analytics_staging', 'landed') and t.table_type = 'BASE TABLE'
                and t.table_name not like '\\_%'""").fetchall()
        indexes = conn.execute("""
            select n.nspname, c.relname, i.relname, a.attname
            from pg_index x
            join pg_class c on c.oid = x.indrelid
            join pg_namespace n on n.oid = c.relnamespace
            join pg_class i on i.oid = x.indexrelid
            join pg_attribute a on a.attrelid = c.oid and a.attnum = x.indkey[0]
            where n.nspname in ('analytics', 'analytics_staging', 'landed') and c.relname not like '\\_%'""").fetchall()
    assert len(tables) > 20 and [(s, t) for s, t, has in tables if not has] == []
    assert len(indexes) > 30
    assert [(s, t, i, first) for s, t, i, first in indexes if first not in ("merchant_id", "dbt_updated_at")] == []


def test_build_tests_the_rows_it_wrote_and_dbt_test_every_row(demo_db):
    """Inside `dbt build`, tests of incremental models look at the rows that build wrote; `dbt test` looks
    at all of them. A broken row an earlier build left is found by `dbt test`, a broken row written now by
    both. (Runs after the full-refresh comparison above: it corrupts the module's database.)"""
    assert_build_ok(dbt_invoke(["build"], merchants=[MERCHANT], db=demo_db))
    broken_test = "accepted_values_fct_orders_new_vs_repeat"
    with connect(demo_db) as conn:
        # an old row with a value the model never writes, stamped before the next build starts
        conn.execute(
            "update analytics.fct_orders set new_vs_repeat = 'bogus', dbt_updated_at = now() - interval '1 day' "
            "where order_id = (select min(order_id) from analytics.fct_orders where new_vs_repeat = 'repeat')"
        )
        conn.commit()
    assert_build_ok(dbt_invoke(["build"], merchants=[MERCHANT], db=demo_db))
    full = dbt_invoke(["test"], merchants=[MERCHANT], db=demo_db)
    failed = [r.unique_id for r in full.results if r.status == "fail"]
    assert not full.success and len(failed) == 1 and broken_test in failed[0], failed

    with connect(demo_db) as conn:
        # the same break in a row the build is writing (stamped after it started) fails the build
        conn.execute(
            "update analytics.fct_orders set dbt_updated_at = now() + interval '1 hour' where new_vs_repeat = 'bogus'"
        )
        conn.commit()
    build = dbt_invoke(["build"], merchants=[MERCHANT], db=demo_db)
    failed = [r.unique_id for r in build.results if r.status == "fail"]
    assert not build.success and any(broken_test in f for f in failed), failed
