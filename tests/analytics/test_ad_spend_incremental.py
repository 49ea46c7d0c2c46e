"""Ad spend arriving late — a merchant onboarded after the first build, an ad account connected later, a
restatement older than the usual window — lands whole in fct_ad_spend_daily on the next incremental run."""

from __future__ import annotations

import datetime as dt

from analytics.dbt_runner import dbt_invoke
from analytics.demo_data import generate_demo_data

from .conftest import connect

END = dt.date(2026, 10, 31)
FIRST = {"id": 21, "key": "early", "timezone": "America/New_York", "currency": "USD"}
LATER = {"id": 22, "key": "later", "timezone": "Europe/Berlin", "currency": "EUR"}
SELECT = ["run", "--select", "+fct_ad_spend_daily"]


def demo(conn, merchant: dict, seed: int) -> None:
    generate_demo_data(
        conn, merchant_key=merchant["key"], shop_domain=f"{merchant['key']}.myshopify.com",
        timezone=merchant["timezone"], currency=merchant["currency"], days=75, orders_per_day=4, seed=seed,
        end_date=END,
    )  # fmt: skip


def spend_rows(conn) -> list[tuple]:
    return conn.execute(
        "select merchant_id, date_day, platform, account_id, campaign_id, spend, impressions, clicks,"
        " conversions, conversions_value from analytics.fct_ad_spend_daily order by 1, 2, 3, 4, 5"
    ).fetchall()


def backfill(conn, where: str, params: list, changes: str) -> None:
    """Rows of the first merchant's raw Meta insights copied, changed and extracted now, as Airbyte would."""
    conn.execute(
        # the latest extraction of each ad and day
        "create temp table copied as select distinct on (ad_id, date_start) *"
        f" from raw_early.facebook_marketing_ads_insights {where}"
        " order by ad_id, date_start, _airbyte_extracted_at desc",
        params,
    )
    conn.execute(f"update copied set {changes}, _airbyte_raw_id = gen_random_uuid(), _airbyte_extracted_at = now()")
    conn.execute("insert into raw_early.facebook_marketing_ads_insights select * from copied")
    conn.execute("drop table copied")


def run_ok(args: list[str], merchants: list[dict], db: dict) -> None:
    result = dbt_invoke(args, merchants=merchants, db=db)
    assert result.success, result.error or [(r.unique_id, r.message) for r in result.results if r.status != "success"]


def test_late_spend_history_is_built_whole_by_the_incremental_run(scratch_db_factory):
    db = scratch_db_factory()
    with connect(db) as conn:
        demo(conn, FIRST, seed=3)
    run_ok(SELECT, [FIRST], db)

    with connect(db) as conn:
        demo(conn, LATER, seed=4)  # onboarded later: 75 days of history, far beyond the 28-day window
        # the first merchant connects another Meta ad account, whose whole history is backfilled now
        backfill(
            conn,
            "where date_start < %s",
            [END - dt.timedelta(days=40)],
            "account_id = '777000777', campaign_id = 'c-' || campaign_id, ad_id = 'a-' || ad_id, spend = spend + 1",
        )
        conn.commit()
        oldest_new_account_day = conn.execute(
            "select min(date_start) from raw_early.facebook_marketing_ads_insights where account_id = '777000777'"
        ).fetchone()[0]
    assert oldest_new_account_day < END - dt.timedelta(days=40)
    run_ok(SELECT, [FIRST, LATER], db)

    with connect(db) as conn:
        days_of_later = conn.execute(
            "select count(distinct date_day) from analytics.fct_ad_spend_daily where merchant_id = %s", [LATER["id"]]
        ).fetchone()[0]
        new_account_days = conn.execute(
            "select min(date_day) from analytics.fct_ad_spend_daily where account_id = '777000777'"
        ).fetchone()[0]
    assert days_of_later >= 70
    assert new_account_days == oldest_new_account_day

    with connect(db) as conn:
        # Meta restates a day older than the 28-day window
        backfill(
            conn,
            "where date_start = %s and account_id <> '777000777'",
            [END - dt.timedelta(days=50)],
            "spend = spend + 5",
        )
        conn.commit()
    run_ok(SELECT, [FIRST, LATER], db)
    with connect(db) as conn:
        incremental = spend_rows(conn)
    run_ok([*SELECT, "--full-refresh"], [FIRST, LATER], db)
    with connect(db) as conn:
        assert spend_rows(conn) == incremental


def test_a_restatement_in_one_store_rewrites_that_store_only(scratch_db_factory):
    """Within the window a store's restated day is rebuilt; a store with nothing new is not read or rewritten."""
    db = scratch_db_factory()
    with connect(db) as conn:
        demo(conn, FIRST, seed=5)
        demo(conn, LATER, seed=6)
    run_ok(SELECT, [FIRST, LATER], db)
    restated = END - dt.timedelta(days=3)
    with connect(db) as conn:
        stamps = dict(
            conn.execute(
                "select merchant_id, max(dbt_updated_at) from analytics.fct_ad_spend_daily group by 1"
            ).fetchall()
        )
        before = conn.execute(
            "select sum(spend) from analytics.fct_ad_spend_daily where merchant_id = %s and date_day = %s",
            [FIRST["id"], restated],
        ).fetchone()[0]
        backfill(conn, "where date_start = %s", [restated], "spend = spend + 2")
        conn.commit()
        ads = conn.execute(
            "select count(distinct ad_id) from raw_early.facebook_marketing_ads_insights where date_start = %s",
            [restated],
        ).fetchone()[0]
    run_ok(SELECT, [FIRST, LATER], db)
    with connect(db) as conn:
        after = dict(
            conn.execute(
                "select merchant_id, max(dbt_updated_at) from analytics.fct_ad_spend_daily group by 1"
            ).fetchall()
        )
        spend = conn.execute(
            "select sum(spend) from analytics.fct_ad_spend_daily where merchant_id = %s and date_day = %s",
            [FIRST["id"], restated],
        ).fetchone()[0]
        incremental = spend_rows(conn)
    assert after[LATER["id"]] == stamps[LATER["id"]]  # untouched
    assert after[FIRST["id"]] > stamps[FIRST["id"]]
    assert ads > 0 and spend == before + 2 * ads  # account and shop currency are both USD for this store
    run_ok([*SELECT, "--full-refresh"], [FIRST, LATER], db)
    with connect(db) as conn:
        assert spend_rows(conn) == incremental
