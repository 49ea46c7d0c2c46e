"""The dbt project without data: it parses and builds empty, typed relations with no active merchant."""

from __future__ import annotations

from analytics.dbt_runner import dbt_invoke
from analytics.raw_schema import DBT_MACRO_PATH, render_dbt_macro

from .conftest import connect


def test_generated_raw_tables_macro_is_up_to_date():
    # regenerate with: python -m analytics.raw_schema
    assert DBT_MACRO_PATH.read_text() == render_dbt_macro()


def test_empty_merchant_list_parses_and_builds_empty_relations(scratch_db_factory):
    db = scratch_db_factory()
    assert dbt_invoke(["parse"], merchants=[], db=db).success
    result = dbt_invoke(["build"], merchants=[], db=db)
    assert result.success, [(r.unique_id, r.message) for r in result.results if r.status not in ("success", "pass")]
    with connect(db) as conn:
        counts = conn.execute(
            "select count(*) from analytics.fct_daily_summary union all select count(*) from analytics.fct_ltv"
        ).fetchall()
        assert counts == [(0,), (0,)]
        columns = conn.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'analytics' and table_name = 'fct_orders' and column_name in "
            "('merchant_id', 'net_revenue', 'order_date') order by 1"
        ).fetchall()
        assert columns == [("merchant_id", "integer"), ("net_revenue", "numeric"), ("order_date", "date")]
