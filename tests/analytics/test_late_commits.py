"""Rows a sync commits after a build although it extracted them before (Airbyte commits a stream at the end
of its sync; webhook writers commit in parallel) are picked up by the next incremental build, and re-reading
the overlap (the load step's commit lag, analytics/landing.py) never counts a row twice."""

from __future__ import annotations

import datetime as dt

import pytest
from psycopg import sql

from analytics.dbt_runner import dbt_invoke
from analytics.demo_data import generate_demo_data
from analytics.raw_schema import RAW_TABLES

from .conftest import connect
from .test_demo_data_and_incremental import DEMO, END, MERCHANT, analytics_tables, assert_build_ok

# A short Meta restatement window, so a late restatement older than it fits in a small data set.
VARS = {"meta_restatement_days": 3}


def build(db: dict, *extra: str) -> None:
    assert_build_ok(dbt_invoke(["build", *extra], merchants=[MERCHANT], db=db, vars=VARS))


def snapshot(conn, schema: str) -> list[tuple[str, str, list[str]]]:
    tables = analytics_tables(conn)
    conn.execute(sql.SQL("create schema {}").format(sql.Identifier(schema)))
    for s, name, _ in tables:
        conn.execute(
            sql.SQL("create table {}.{} as table {}.{}").format(
                sql.Identifier(schema), sql.Identifier(f"{s}__{name}"), sql.Identifier(s), sql.Identifier(name)
            )
        )
    conn.commit()
    return tables


def differences(conn, schema: str, tables) -> dict[str, tuple[int, int]]:
    """Rows only in the snapshot / only in the current tables, per table (multiplicity counts: a row held
    twice differs from a row held once)."""
    out = {}
    for s, name, cols in tables:
        col_list = sql.SQL(", ").join(sql.Identifier(c) for c in cols)
        snap = sql.SQL("select {} from {}.{}").format(col_list, sql.Identifier(schema), sql.Identifier(f"{s}__{name}"))
        now = sql.SQL("select {} from {}.{}").format(col_list, sql.Identifier(s), sql.Identifier(name))
        a = conn.execute(sql.SQL("select count(*) from ({} except all {}) d").format(snap, now)).fetchone()[0]
        b = conn.execute(sql.SQL("select count(*) from ({} except all {}) d").format(now, snap)).fetchone()[0]
        if a or b:
            out[f"{s}.{name}"] = (a, b)
    conn.rollback()  # hold no lock a later build's table swap would wait for
    return out


@pytest.fixture(scope="module")
def late_db(scratch_db_factory):
    """Build 1 runs while the last syncs are still committing; their rows (extracted before it started, older
    than what it saw of the same tables) and a Meta restatement extracted before it land after it; build 2 is
    incremental. Yields the connection and the tables as build 2 left them (schema `after_late`)."""
    db = scratch_db_factory()
    with connect(db) as conn:
        generate_demo_data(conn, **DEMO, days=14, orders_per_day=8, seed=17, end_date=END)
        conn.execute("create schema late")
        held = {}
        for table in RAW_TABLES:
            # rows of the syncs that extracted between 150 and 30 minutes before the table's newest row
            newest = sql.SQL("(select max(_airbyte_extracted_at) from raw_demo.{t})").format(t=sql.Identifier(table))
            window = sql.SQL(
                "_airbyte_extracted_at >= {n} - interval '150 minutes'"
                " and _airbyte_extracted_at < {n} - interval '30 minutes'"
            ).format(n=newest)
            conn.execute(
                sql.SQL("create table late.{t} as select * from raw_demo.{t} where {w}").format(
                    t=sql.Identifier(table), w=window
                )
            )
            held[table] = conn.execute(
                sql.SQL("with d as (delete from raw_demo.{t} where {w} returning 1) select count(*) from d").format(
                    t=sql.Identifier(table), w=window
                )
            ).fetchone()[0]
        conn.commit()
    assert held["shopify_orders"] and held["klaviyo_events"] and held["web_sessions"], held

    build(db)
    with connect(db) as conn:
        built_at = conn.execute("select max(dbt_updated_at) from analytics.fct_ad_spend_daily").fetchone()[0]
        for table in RAW_TABLES:
            conn.execute(sql.SQL("insert into raw_demo.{t} select * from late.{t}").format(t=sql.Identifier(table)))
        # Meta restates a day older than the window; the sync extracted it half an hour before build 1
        restated_day = END - dt.timedelta(days=8)
        conn.execute(
            "create temp table restated as select distinct on (ad_id) * from raw_demo.facebook_marketing_ads_insights"
            " where date_start = %s order by ad_id, _airbyte_extracted_at desc",
            [restated_day],
        )
        conn.execute(
            "update restated set spend = spend + 5, _airbyte_raw_id = gen_random_uuid(), _airbyte_extracted_at = %s",
            [built_at - dt.timedelta(minutes=30)],
        )
        assert conn.execute("insert into raw_demo.facebook_marketing_ads_insights select * from restated").rowcount
        conn.commit()
    build(db)
    with connect(db) as conn:
        yield conn, snapshot(conn, "after_late"), db


def test_rows_committed_after_a_build_are_picked_up_like_a_full_refresh(late_db):
    conn, tables, db = late_db
    build(db, "--full-refresh")
    assert differences(conn, "after_late", tables) == {}


def test_the_re_read_overlap_counts_every_row_once(late_db):
    conn, tables, db = late_db
    build(db)  # no new rows: this build's load re-reads the last 3 hours of every raw table
    assert differences(conn, "after_late", tables) == {}
    orders = conn.execute(
        "select count(*), count(distinct order_id), sum(net_revenue) from analytics.fct_orders where is_revenue_order"
    ).fetchone()
    summary = conn.execute("select sum(orders), sum(net_revenue) from analytics.fct_daily_summary").fetchone()
    conn.rollback()
    assert orders[0] == orders[1] == summary[0] and orders[2] == summary[1]
