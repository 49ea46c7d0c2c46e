"""The dbt project without data: it parses and builds empty, typed relations with no active merchant."""

from __future__ import annotations

import re

import yaml

from analytics.dbt_runner import PROJECT_DIR, dbt_invoke

from .conftest import connect


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


def test_metrics_doc_lists_the_referrer_domains_the_models_use():
    project_vars = yaml.safe_load((PROJECT_DIR / "dbt_project.yml").read_text())["vars"]
    doc = (PROJECT_DIR.parent / "docs" / "metrics.md").read_text()
    listed = re.search(r"<!-- referrer-domains:start -->(.*)<!-- referrer-domains:end -->", doc, re.S).group(1)
    lists = dict(re.findall(r"^- (Social networks|Search engines): (.+)$", listed, re.M))
    assert lists["Social networks"].split(", ") == project_vars["social_referrer_domains"]
    assert lists["Search engines"].split(", ") == project_vars["search_referrer_domains"]
    for common in ("t.co", "x.com", "snapchat.com", "threads.net", "lnkd.in", "linkedin.com", "reddit.com"):
        assert common in project_vars["social_referrer_domains"]
    for common in ("google.*", "bing.com", "duckduckgo.com", "yahoo.*", "baidu.com", "yandex.*", "ecosia.org"):
        assert common in project_vars["search_referrer_domains"]


# PostgreSQL-only constructs (docs/scaling.md): the ones that change results across dialects live only in
# macros/cross_database.sql, behind adapter.dispatch; the rest are allowed where they are today and nowhere new,
# so a second adapter's port has a known, finite list.
DISPATCHED_ONLY = {
    "JSON operators": r"->>|\s->\s'",
    "jsonb functions": r"\bjsonb_\w+\(",
    "time zone conversion": r"\bat time zone\b",
    "session settings": r"(^|\")\s*set (local )?\w+ =",
}
KNOWN_ELSEWHERE = {
    "distinct on": (
        r"\bdistinct on\b",
        {"canonical/dim_customers.sql", "canonical/fct_sessions.sql", "canonical/int_web_sessions.sql",
         "marts/engagement/message_attributed_orders.sql"},
    ),
    "= any(array(...))": (
        r"any\(array\(",
        {"canonical/fct_ad_spend_daily.sql", "canonical/fct_messages.sql", "canonical/fct_sessions.sql",
         "marts/attribution/attribution_touches.sql", "marts/engagement/message_attributed_orders.sql",
         "marts/engagement/fct_message_engagement.sql"},
    ),
    "generate_series": (r"\bgenerate_series\(", {"marts/ltv/fct_ltv.sql", "marts/summary/fct_daily_summary.sql"}),
}  # fmt: skip


def _project_sql() -> dict[str, str]:
    files = {}
    for path in [
        *PROJECT_DIR.glob("models/**/*.sql"),
        *PROJECT_DIR.glob("macros/*.sql"),
        PROJECT_DIR / "dbt_project.yml",
    ]:
        name = str(path.relative_to(PROJECT_DIR / "models" if "models" in path.parts else PROJECT_DIR))
        files[name] = path.read_text()
    return files


def test_postgres_only_sql_stays_behind_the_dispatched_macros():
    files = _project_sql()
    assert "macros/cross_database.sql" in files and len(files) > 40
    for what, pattern in DISPATCHED_ONLY.items():
        found = sorted(
            n for n, text in files.items() if n != "macros/cross_database.sql" and re.search(pattern, text, re.I | re.M)
        )
        assert found == [], f"{what} outside macros/cross_database.sql: {found}"
    for what, (pattern, allowed) in KNOWN_ELSEWHERE.items():
        found = {n for n, text in files.items() if n != "macros/cross_database.sql" and re.search(pattern, text, re.I)}
        assert found <= allowed, f"{what} in new places (docs/scaling.md): {sorted(found - allowed)}"
