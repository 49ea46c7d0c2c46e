"""Engagement marts on incremental runs: late-landing deliveries and opens move counts between send days
exactly as a full build would."""

from __future__ import annotations

import datetime as dt

import pytest

from analytics.dbt_runner import dbt_invoke
from analytics.raw_schema import create_raw_schema

from .conftest import connect
from .test_dbt_golden import Raw

MERCHANT = {"id": 11, "key": "late", "timezone": "America/Los_Angeles", "currency": "USD"}
UTC = dt.UTC
FIRST_SYNC = dt.datetime(2026, 3, 8, 0, 0, tzinfo=UTC)
SECOND_SYNC = dt.datetime(2026, 3, 9, 0, 0, tzinfo=UTC)
COLUMNS = "date_day, campaign_or_flow_id, sends, delivered, opens, unique_opens, clicks, unique_clicks"


def day(n: int) -> dt.datetime:
    """18:00 UTC (10:00 in Los Angeles) on the n-th of March."""
    return dt.datetime(2026, 3, n, 18, 0, tzinfo=UTC)


def event(raw: Raw, eid: str, metric: str, profile: str, message: str, when: dt.datetime, extracted_at) -> None:
    raw.add(
        "klaviyo_events",
        extracted_at=extracted_at,
        type="event",
        id=eid,
        datetime=when,
        attributes={"timestamp": int(when.timestamp()), "event_properties": {"$flow": "flow1", "$message": message}},
        relationships={
            "metric": {"data": {"type": "metric", "id": metric}},
            "profile": {"data": {"type": "profile", "id": profile}},
        },
    )


def build(db, *args: str) -> None:
    result = dbt_invoke(["build", *args], merchants=[MERCHANT], db=db)
    failures = [(r.unique_id, r.status, r.message) for r in result.results if r.status not in ("success", "pass")]
    assert result.success and not failures, failures or result.error


def engagement(conn) -> list[tuple]:
    return conn.execute(f"select {COLUMNS} from analytics.fct_email_engagement order by 1, 2").fetchall()


@pytest.fixture(scope="module")
def late_db(scratch_db_factory):
    db = scratch_db_factory()
    with connect(db) as conn:
        create_raw_schema(conn, MERCHANT["key"])
        raw = Raw(conn, MERCHANT)
        for mid, name in (("m_recv", "Received Email"), ("m_open", "Opened Email"), ("m_click", "Clicked Email")):
            raw.add("klaviyo_metrics", extracted_at=FIRST_SYNC, type="metric", id=mid, attributes={"name": name})
        raw.add("klaviyo_flows", extracted_at=FIRST_SYNC, type="flow", id="flow1", attributes={"name": "Welcome"})
        # msgA reaches p1 and p2 on 2 March; p1 opens it on 6 March.
        event(raw, "a1", "m_recv", "p1", "msgA", day(2), FIRST_SYNC)
        event(raw, "a2", "m_recv", "p2", "msgA", day(2), FIRST_SYNC)
        event(raw, "a3", "m_open", "p1", "msgA", day(6), FIRST_SYNC)
        # msgB reaches p3 on 5 March, unopened.
        event(raw, "b1", "m_recv", "p3", "msgB", day(5), FIRST_SYNC)
        conn.commit()
    build(db)
    return db


def test_late_events_move_counts_like_a_full_build(late_db):
    with connect(late_db) as conn:
        assert engagement(conn) == [
            (dt.date(2026, 3, 2), "flow1", 2, 2, 1, 1, 0, 0),
            (dt.date(2026, 3, 5), "flow1", 1, 1, 0, 0, 0, 0),
        ]
        raw = Raw(conn, MERCHANT)
        # The next sync brings a resend of msgA to p1 on 4 March (it takes over p1's 6 March open from the
        # 2 March send), p3's open of the 5 March send on 7 March, and p4's open of a send never seen.
        event(raw, "a4", "m_recv", "p1", "msgA", day(4), SECOND_SYNC)
        event(raw, "b2", "m_open", "p3", "msgB", day(7), SECOND_SYNC)
        event(raw, "c1", "m_open", "p4", "msgC", day(7), SECOND_SYNC)
        conn.commit()
    build(late_db)
    with connect(late_db) as conn:
        incremental = engagement(conn)
    assert incremental == [
        (dt.date(2026, 3, 2), "flow1", 2, 2, 0, 0, 0, 0),  # p1's open went to the 4 March send
        (dt.date(2026, 3, 4), "flow1", 1, 1, 1, 1, 0, 0),
        (dt.date(2026, 3, 5), "flow1", 1, 1, 1, 1, 0, 0),
        (dt.date(2026, 3, 7), "flow1", 0, 0, 1, 0, 0, 0),  # no send: counts on its own date, never unique
    ]
    build(late_db, "--full-refresh")
    with connect(late_db) as conn:
        assert engagement(conn) == incremental
