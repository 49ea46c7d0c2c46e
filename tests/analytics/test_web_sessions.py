"""Sessions built in dbt from the pixel's raw events (raw_<key>.web_events -> stg_web_events -> int_web_sessions
-> fct_sessions -> attribution): golden rows for each sessionisation rule, the switch of a store from the legacy
web_sessions input to events, and an incremental build giving the rows of a full refresh.

Raw rows land in two phases (phase 2 a day after phase 1, beyond the load step's 3-hour commit-lag overlap): phase 1 is
built from scratch, phase 2 incrementally, then everything again with --full-refresh, which must give the same
rows. The golden assertions read the final state (the same either way).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal

import pytest

from analytics.dbt_runner import dbt_invoke
from analytics.raw_schema import create_raw_schema, raw_schema_name

from .conftest import connect
from .test_dbt_golden import Raw
from .test_demo_data_and_incremental import assert_build_ok
from .test_late_commits import differences, snapshot

STORE = {"id": 21, "key": "sess", "timezone": "America/Los_Angeles", "currency": "USD"}
OTHER = {"id": 22, "key": "sess_eu", "timezone": "Europe/Berlin", "currency": "EUR"}
SWITCHING = {"id": 23, "key": "sess_switch", "timezone": "America/Los_Angeles", "currency": "USD"}
LEGACY = {"id": 24, "key": "sess_legacy", "timezone": "America/Los_Angeles", "currency": "USD"}
MERCHANTS = [STORE, OTHER, SWITCHING, LEGACY]

UTC = dt.UTC
MIN = dt.timedelta(minutes=1)
DAY = dt.timedelta(days=1)
T0 = dt.datetime(2026, 3, 10, 18, 0, tzinfo=UTC)  # 11:00 in Los Angeles (PDT since 8 March)
T1 = dt.datetime(2026, 3, 20, 18, 0, tzinfo=UTC)
E1 = dt.datetime(2026, 3, 25, 0, 0, tzinfo=UTC)  # phase 1 extraction (the newest)
OLD = E1 - dt.timedelta(hours=10)  # most phase 1 events: outside the next build's re-read overlap
E2 = E1 + DAY  # phase 2 extraction
BUYER_EMAIL = "Buyer@Example.com "
LATE_EMAIL = "late@example.com"
EDGE_ORDER = T1 + 5 * 60 * MIN


def sha256(text: str) -> str:
    return hashlib.sha256(text.strip().lower().encode()).hexdigest()


def session_id(merchant: dict, client_id: str, first_event_id: str) -> str:
    return hashlib.md5(f"{merchant['id']}/{client_id}/{first_event_id}".encode()).hexdigest()


class Events(Raw):
    """Raw pixel events as the collector writes them (web_events), on the store's own host."""

    def __init__(self, conn, merchant: dict):
        super().__init__(conn, merchant)
        self.host = f"{merchant['key'].replace('_', '-')}.example"
        self.seq: dict[str, int] = {}

    def event(
        self,
        client_id: str,
        event_id: str,
        at: dt.datetime,
        name: str = "page_viewed",
        *,
        path: str = "/",
        seq: int | None = None,
        extracted_at: dt.datetime = OLD,
        **fields,
    ) -> None:
        if seq is None:
            seq = self.seq[client_id] = self.seq.get(client_id, 0) + 1
        query = "&".join(f"{k}={v}" for k, v in fields.items() if k.startswith("utm_") or k.endswith("clid"))
        self.add(
            "web_events",
            extracted_at=extracted_at,
            event_id=event_id,
            event_name=name,
            client_id=client_id,
            seq=seq,
            occurred_at=at,
            sent_at=at + dt.timedelta(seconds=2),
            received_at=at + dt.timedelta(seconds=2),
            page_url=f"https://{self.host}{path}" + (f"?{query}" if query else ""),
            page_path=path,
            user_agent="Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X)",
            device="mobile",
            ip_prefix="203.0.113.0",
            shop_url=f"{self.host}",
            properties={},
            **fields,
        )


def allow_duplicate_rows(conn, merchant: dict) -> None:
    """The collector's unique index on event_id keeps a store's table free of copies; staging must count a copy
    once all the same (a table restored or replayed by hand), so this test drops the index to write copies."""
    schema = raw_schema_name(merchant["key"])
    names = conn.execute(
        """
        select i.relname from pg_index x
        join pg_class i on i.oid = x.indexrelid
        join pg_class t on t.oid = x.indrelid
        join pg_namespace n on n.oid = t.relnamespace
        where n.nspname = %s and t.relname = 'web_events' and x.indisunique""",
        (schema,),
    ).fetchall()
    for (name,) in names:
        conn.execute(f'drop index "{schema}"."{name}"')


def phase_1(conn) -> None:
    for m in MERCHANTS:
        create_raw_schema(conn, m["key"])
    allow_duplicate_rows(conn, STORE)
    ev = Events(conn, STORE)

    # 29, 30 and 31 minutes apart: only more than 30 minutes of inactivity ends a session. The 31-minute client's
    # second page has the shop's own page as referrer: internal navigation, not a referral.
    ev.event("c-29", "e29-1", T0, extracted_at=E1)
    ev.event("c-29", "e29-2", T0 + 29 * MIN, extracted_at=E1)
    ev.event("c-30", "e30-1", T0)
    ev.event("c-30", "e30-2", T0 + 30 * MIN)
    ev.event("c-31", "e31-1", T0, path="/a")
    ev.event("c-31", "e31-2", T0 + 31 * MIN, path="/b", referrer="https://sess.example/a")

    # A utm change mid-visit starts a session; a page without a source (internal) or with the same source again
    # does not. A TikTok click id alone is paid social.
    google = {"utm_source": "google", "utm_medium": "cpc", "gclid": "g1"}
    facebook = {"utm_source": "facebook", "utm_medium": "paid_social", "utm_campaign": "spring"}
    ev.event("c-utm", "u1", T0, path="/landing", **google)
    ev.event("c-utm", "u2", T0 + 5 * MIN, path="/p")
    ev.event("c-utm", "u3", T0 + 10 * MIN, path="/fb", **facebook)
    ev.event("c-utm", "u4", T0 + 12 * MIN, path="/p")
    ev.event("c-utm", "u5", T0 + 14 * MIN, path="/fb", **facebook)
    ev.event("c-tt", "t1", T0, path="/tt", ttclid="tt1")

    # Out of order: c-ord's events arrive in order, c-rev's (the same visit) in reverse, and its first and third
    # events only in phase 2. Two events at the same instant are ordered by seq: the one carrying a utm comes
    # second and starts the second session. Both have an older session a day before, which phase 2 keeps as held.
    visit = [
        ("1", T0, 1, "/a", {"referrer": "https://www.google.com/"}),
        ("2", T0 + 20 * MIN, 2, "/b", {}),
        ("3", T0 + 40 * MIN, 3, "/c", {}),
        ("4", T0 + 40 * MIN, 4, "/d", {"utm_source": "klaviyo", "utm_medium": "email"}),
        ("5", T0 + 55 * MIN, 5, "/e", {}),
    ]
    for client in ("c-ord", "c-rev"):
        ev.event(client, f"{client}-0", T0 - DAY, seq=0, path="/yesterday")
    for n, at, seq, path, fields in visit:
        ev.event("c-ord", f"c-ord-{n}", at, seq=seq, path=path, **fields)
    for n, at, seq, path, fields in reversed(visit):
        if n in ("2", "4", "5"):
            ev.event("c-rev", f"c-rev-{n}", at, seq=seq, path=path, extracted_at=OLD + int(n) * MIN, **fields)

    # Duplicates: the same event twice in one sync, and again in phase 2.
    for _ in range(2):
        ev.event("c-dup", "d1", T0, seq=1)
    ev.event("c-dup", "d2", T0 + 5 * MIN, seq=2)

    # Across the store's local midnight: 23:50 and 00:10 in Los Angeles, one session on 10 March.
    ev.event("c-mid", "m1", dt.datetime(2026, 3, 11, 6, 50, tzinfo=UTC))
    ev.event("c-mid", "m2", dt.datetime(2026, 3, 11, 7, 10, tzinfo=UTC))

    # Identity learned at checkout (phase 2): two earlier anonymous visits from ads, on the same browser.
    ev.order(7001, 701, T1 + MIN, gross="90.00", extracted_at=E1)
    ev.event("c-buy", "b1", T1 - 3 * DAY, path="/fb", fbclid="fb1", **facebook)
    ev.event("c-buy", "b2", T1 - DAY, path="/g", **google)
    # The pixel's checkout names order 7002, which Shopify's sync delivers only in phase 2.
    ev.event("c-late", "l1", T1 + 110 * MIN, path="/mail", utm_source="klaviyo", utm_medium="email")
    ev.event("c-late", "l2", T1 + 120 * MIN, "checkout_completed", path="/thank-you", order_id=7002, value=40)

    # A browser two customers share: 706 buys, then later 707 (phase 2).
    for n, at, customer in (
        ("k1", T0 + 3 * DAY - 2 * 60 * MIN, None),
        ("k2", T0 + 3 * DAY + 10 * MIN, 706),
        ("k3", T0 + 4 * DAY, None),
    ):
        ev.event("c-shared", n, at, "checkout_completed" if customer else "page_viewed", customer_id=customer)

    # A checkout whose email hash matches a customer record that lands only in phase 2.
    ev.event("c-hash-late", "hl1", T1, "checkout_completed", path="/thank-you", email_sha256=sha256(LATE_EMAIL))

    # A session credited to order 7004 (inside its 30-day lookback) that a late event (phase 2) merges into a
    # session starting before the lookback: the order loses that touch.
    ev.order(7004, 704, EDGE_ORDER, gross="20.00", extracted_at=E1)
    ev.event("c-edge", "x2", EDGE_ORDER - 30 * DAY + 10 * MIN, path="/old")
    ev.event("c-edge", "x3", EDGE_ORDER - 5 * MIN, path="/mail", utm_source="klaviyo", utm_medium="email")
    ev.event("c-edge", "x4", EDGE_ORDER - MIN, "checkout_completed", path="/thank-you", customer_id=704)

    # The second store: the same client id and event ids, one event.
    Events(conn, OTHER).event("c-29", "e29-1", T0 + 2 * DAY)

    # A store on the legacy web_sessions table until its first pixel event (phase 2); one that stays on it.
    switching = Raw(conn, SWITCHING)
    switching.session("legacy-s1", 801, T1 - 2 * 60 * MIN, anonymous_id="anon-801", utm_source="klaviyo",
                      utm_medium="email")  # fmt: skip
    switching.order(8001, 801, T1, gross="50.00", extracted_at=E1)
    Raw(conn, LEGACY).session("legacy-d1", None, T0, anonymous_id="anon-d1")
    conn.commit()


def phase_2(conn) -> None:
    ev = Events(conn, STORE)
    ev.event("c-rev", "c-rev-1", T0, seq=1, path="/a", referrer="https://www.google.com/", extracted_at=E2)
    ev.event("c-rev", "c-rev-3", T0 + 40 * MIN, seq=3, path="/c", extracted_at=E2)
    ev.event("c-dup", "d2", T0 + 5 * MIN, seq=2, extracted_at=E2)
    # checkout on c-buy: its own session carries the order; the email hash alone identifies c-hash
    ev.event("c-buy", "b3", T1 - 10 * MIN, path="/", extracted_at=E2)
    ev.event("c-buy", "b4", T1 - 5 * MIN, "checkout_started", path="/checkout", extracted_at=E2)
    ev.event("c-buy", "b5", T1, "checkout_completed", path="/thank-you", order_id=7001, value=95,
             email_sha256=sha256("c701@example.com"), extracted_at=E2)  # fmt: skip
    ev.add("shopify_customers", extracted_at=E2, id=702, email=BUYER_EMAIL, created_at=T0, updated_at=T0)
    ev.event("c-hash", "h1", T1, "checkout_completed", path="/thank-you", email_sha256=sha256(BUYER_EMAIL),
             extracted_at=E2)  # fmt: skip
    ev.order(7002, 703, T1 + 121 * MIN, gross="40.00", extracted_at=E2)
    ev.event("c-shared", "k4", T0 + 4 * DAY + 2 * 60 * MIN, "checkout_completed", customer_id=707, extracted_at=E2)
    ev.event("c-shared", "k5", T0 + 5 * DAY, extracted_at=E2)
    ev.add("shopify_customers", extracted_at=E2, id=705, email=LATE_EMAIL, created_at=T0, updated_at=T0)
    ev.event("c-edge", "x1", EDGE_ORDER - 30 * DAY - 10 * MIN, path="/older", extracted_at=E2)
    s = Events(conn, SWITCHING)
    s.event("c-s1", "s1", T1 - 20 * MIN, path="/sms", utm_source="attentive", utm_medium="sms", extracted_at=E2)
    s.event("c-s1", "s2", T1 - MIN, "checkout_completed", path="/thank-you", customer_id=801, order_id=8001,
            extracted_at=E2)  # fmt: skip
    conn.commit()


def build(db: dict, *extra: str) -> None:
    assert_build_ok(dbt_invoke(["build", *extra], merchants=MERCHANTS, db=db))


def touches(conn, merchant_id: int, order_id: int) -> list[tuple]:
    return conn.execute(
        "select touch_index, channel, round(linear_weight, 4) from analytics.attribution_touches"
        " where merchant_id = %s and order_id = %s order by touch_index",
        (merchant_id, order_id),
    ).fetchall()


def legacy_rows(conn) -> list[tuple]:
    return conn.execute(
        "select merchant_id, session_id, session_source from analytics.fct_sessions"
        " where session_source = 'web_sessions' order by 1, 2"
    ).fetchall()


@pytest.fixture(scope="module")
def built(scratch_db_factory):
    db = scratch_db_factory()
    state = {}
    with connect(db) as conn:
        phase_1(conn)
    build(db)
    with connect(db) as conn:
        state["phase_1"] = {
            "buy": touches(conn, 21, 7001),
            "switching": touches(conn, 23, 8001),
            "edge": touches(conn, 21, 7004),
            "legacy": legacy_rows(conn),
            "rev": conn.execute(
                "select started_at, event_count from analytics.fct_sessions where anonymous_id = 'c-rev'"
                " order by started_at"
            ).fetchall(),
        }
        phase_2(conn)
    build(db)
    with connect(db) as conn:
        tables = snapshot(conn, "incremental")
    build(db, "--full-refresh")
    with connect(db) as conn:
        state["differences"] = differences(conn, "incremental", tables)
        state["tables"] = {name for _, name, _ in tables}
        state["conn"] = conn
        yield state


def rows(conn, query: str, *params) -> list[tuple]:
    return conn.execute(query, params).fetchall()


def sessions_of(conn, client_id: str, merchant_id: int = 21) -> list[tuple]:
    return rows(
        conn,
        "select started_at, ended_at, event_count, landing_page, referrer, channel from analytics.fct_sessions"
        " where merchant_id = %s and anonymous_id = %s order by started_at, session_id",
        merchant_id,
        client_id,
    )


def test_incremental_build_gives_the_rows_of_a_full_refresh(built):
    assert {"stg_web_events", "int_web_sessions", "fct_sessions", "attribution_touches"} <= built["tables"]
    assert built["differences"] == {}
    # phase 1 really was another state: c-rev's visit arrived in pieces, order 7001 had no known sessions
    assert built["phase_1"]["rev"] == [
        (T0 - DAY, 1),
        (T0 + 20 * MIN, 1),
        (T0 + 40 * MIN, 2),
    ]
    assert built["phase_1"]["buy"] == [(1, "unattributed", Decimal("1.0000"))]


def test_more_than_30_minutes_apart_starts_a_session(built):
    conn = built["conn"]
    host = "https://sess.example"
    assert sessions_of(conn, "c-29") == [(T0, T0 + 29 * MIN, 2, f"{host}/", None, "direct")]
    assert sessions_of(conn, "c-30") == [(T0, T0 + 30 * MIN, 2, f"{host}/", None, "direct")]
    assert sessions_of(conn, "c-31") == [
        (T0, T0, 1, f"{host}/a", None, "direct"),
        (T0 + 31 * MIN, T0 + 31 * MIN, 1, f"{host}/b", None, "direct"),
    ]
    ids = rows(conn, "select session_id from analytics.fct_sessions where anonymous_id = 'c-31' order by started_at")
    assert ids == [(session_id(STORE, "c-31", "e31-1"),), (session_id(STORE, "c-31", "e31-2"),)]


def test_a_utm_change_mid_visit_starts_a_session(built):
    conn = built["conn"]
    got = rows(
        conn,
        """
        select started_at, ended_at, event_count, utm_source, utm_medium, utm_campaign, gclid, channel
        from analytics.fct_sessions where anonymous_id = 'c-utm' order by started_at""",
    )
    assert got == [
        (T0, T0 + 5 * MIN, 2, "google", "cpc", None, "g1", "paid_search"),
        (T0 + 10 * MIN, T0 + 14 * MIN, 3, "facebook", "paid_social", "spring", None, "paid_social"),
    ]
    assert rows(conn, "select ttclid, channel from analytics.fct_sessions where anonymous_id = 'c-tt'") == [
        ("tt1", "paid_social")
    ]


def test_events_out_of_order_give_the_sessions_of_events_in_order(built):
    conn = built["conn"]
    host = "https://sess.example"
    expected = [
        (T0 - DAY, T0 - DAY, 1, f"{host}/yesterday", None, "direct"),
        (T0, T0 + 40 * MIN, 3, f"{host}/a", "https://www.google.com/", "organic_search"),
        (T0 + 40 * MIN, T0 + 55 * MIN, 2, f"{host}/d?utm_source=klaviyo&utm_medium=email", None, "email"),
    ]
    assert sessions_of(conn, "c-ord") == expected
    assert sessions_of(conn, "c-rev") == expected
    firsts = rows(
        conn,
        "select first_event_id from analytics.int_web_sessions where client_id = 'c-rev' order by started_at",
    )
    assert firsts == [("c-rev-0",), ("c-rev-1",), ("c-rev-4",)]


def test_duplicate_events_count_once(built):
    conn = built["conn"]
    assert rows(conn, "select count(*) from raw_sess.web_events where client_id = 'c-dup'") == [(4,)]
    assert rows(conn, "select event_id from analytics_staging.stg_web_events where client_id = 'c-dup' order by 1") == [
        ("d1",),
        ("d2",),
    ]
    got = rows(
        conn,
        "select started_at, ended_at, event_count, page_views from analytics.fct_sessions where anonymous_id = 'c-dup'",
    )
    assert got == [(T0, T0 + 5 * MIN, 2, 2)]


def test_a_visit_across_local_midnight_is_one_session_dated_by_its_start(built):
    conn = built["conn"]
    got = rows(
        conn,
        "select started_at, ended_at, event_count, session_date from analytics.fct_sessions"
        " where anonymous_id = 'c-mid'",
    )
    assert got == [
        (
            dt.datetime(2026, 3, 11, 6, 50, tzinfo=UTC),
            dt.datetime(2026, 3, 11, 7, 10, tzinfo=UTC),
            2,
            dt.date(2026, 3, 10),
        )
    ]
    daily = rows(
        conn,
        "select date_day, sessions from analytics.fct_channel_daily where merchant_id = 21 and channel = 'direct'"
        " and date_day in ('2026-03-10', '2026-03-11') order by 1",
    )
    # 10 March: c-29, c-30, two of c-31, c-dup, c-mid; nothing on 11 March
    assert daily == [(dt.date(2026, 3, 10), 6)]


def test_identity_learned_at_checkout_joins_the_earlier_sessions_to_the_path(built):
    conn = built["conn"]
    got = rows(
        conn,
        """
        select started_at, channel, customer_id, is_stitched, is_converted, order_id, event_count
        from analytics.fct_sessions where anonymous_id = 'c-buy' order by started_at""",
    )
    assert got == [
        (T1 - 3 * DAY, "paid_social", 701, True, False, None, 1),
        (T1 - DAY, "paid_search", 701, True, False, None, 1),
        (T1 - 10 * MIN, "direct", 701, False, True, 7001, 3),
    ]
    assert touches(conn, 21, 7001) == [
        (1, "paid_social", Decimal("0.3333")),
        (2, "paid_search", Decimal("0.3333")),
        (3, "direct", Decimal("0.3333")),
    ]
    # the email hash alone (no order, no customer id) finds the customer
    assert rows(conn, "select customer_id, is_stitched from analytics.fct_sessions where anonymous_id = 'c-hash'") == [
        (702, False)
    ]
    assert rows(conn, "select customer_id from analytics.fct_sessions where anonymous_id = 'c-hash-late'") == [(705,)]
    # a shared browser: an unidentified session goes to the next purchase's customer, else the last one's
    assert rows(
        conn,
        "select started_at, customer_id, is_stitched from analytics.fct_sessions where anonymous_id = 'c-shared'"
        " order by started_at",
    ) == [
        (T0 + 3 * DAY - 2 * 60 * MIN, 706, True),
        (T0 + 3 * DAY + 10 * MIN, 706, False),
        (T0 + 4 * DAY, 707, True),
        (T0 + 4 * DAY + 2 * 60 * MIN, 707, False),
        (T0 + 5 * DAY, 707, True),
    ]
    # an order delivered after the pixel's checkout_completed identifies the client when it lands
    assert rows(conn, "select customer_id, channel from analytics.fct_sessions where anonymous_id = 'c-late'") == [
        (703, "email")
    ]
    assert touches(conn, 21, 7002) == [(1, "email", Decimal("1.0000"))]


def test_a_session_merged_out_of_the_lookback_stops_being_a_touch(built):
    conn = built["conn"]
    assert built["phase_1"]["edge"] == [(1, "direct", Decimal("0.5000")), (2, "email", Decimal("0.5000"))]
    assert rows(
        conn, "select started_at, event_count from analytics.fct_sessions where anonymous_id = 'c-edge' order by 1"
    ) == [(EDGE_ORDER - 30 * DAY - 10 * MIN, 2), (EDGE_ORDER - 5 * MIN, 2)]
    assert touches(conn, 21, 7004) == [(1, "email", Decimal("1.0000"))]


def test_stores_never_mix(built):
    conn = built["conn"]
    got = rows(
        conn,
        "select merchant_id, session_id, started_at, event_count, session_date from analytics.fct_sessions"
        " where anonymous_id = 'c-29' order by merchant_id",
    )
    assert got == [
        (21, session_id(STORE, "c-29", "e29-1"), T0, 2, dt.date(2026, 3, 10)),
        (22, session_id(OTHER, "c-29", "e29-1"), T0 + 2 * DAY, 1, dt.date(2026, 3, 12)),
    ]
    assert rows(conn, "select count(*) from analytics.fct_sessions where merchant_id = 22") == [(1,)]


def test_a_store_reads_legacy_sessions_only_until_its_first_pixel_event(built):
    conn = built["conn"]
    assert built["phase_1"]["legacy"] == [(23, "legacy-s1", "web_sessions"), (24, "legacy-d1", "web_sessions")]
    assert built["phase_1"]["switching"] == [(1, "email", Decimal("1.0000"))]
    assert legacy_rows(conn) == [(24, "legacy-d1", "web_sessions")]
    got = rows(
        conn,
        "select anonymous_id, session_source, customer_id, channel from analytics.fct_sessions where merchant_id = 23",
    )
    assert got == [("c-s1", "web_events", 801, "sms")]
    assert touches(conn, 23, 8001) == [(1, "sms", Decimal("1.0000"))]
