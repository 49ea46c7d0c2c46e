"""Pages and metrics are read from the marts once per dbt run, for one merchant, and hold nothing of the user."""

import re

import pytest
from django.db import connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from accounts.choices import Role
from analytics.choices import DbtRunStatus
from analytics.models import DbtRun
from tests.accounts.factories import MembershipFactory

pytestmark = pytest.mark.django_db(databases=["default", "warehouse"])

NET_REVENUE_TILE = re.compile(r'data-testid="kpi-net_revenue">([^<]+)<')


def net_revenue_tile(response) -> str:
    assert response.status_code in (200, 400), response.content[:500]
    return NET_REVENUE_TILE.search(response.content.decode()).group(1)


def mart_queries(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if "analytics." in q["sql"]]


def dbt_writes_more_revenue(merchant) -> None:
    """What a dbt run does to the marts (here without dbt): every day of the merchant earns 1,000 more."""
    with connections["warehouse"].cursor() as cursor:
        cursor.execute(
            "update analytics.fct_daily_summary set net_revenue = net_revenue + 1000 where merchant_id = %s",
            [merchant.pk],
        )


@pytest.fixture
def signed_in(client, clerk, owner):
    client.cookies["__session"] = clerk.token(owner.clerk_user_id)
    return client


def test_a_page_reads_the_marts_once_per_dbt_run(signed_in, alpine):
    path = f"/m/{alpine.pk}/overview/"
    before = net_revenue_tile(signed_in.get(path))
    dbt_writes_more_revenue(alpine)
    with CaptureQueriesContext(connections["warehouse"]) as queries:
        assert net_revenue_tile(signed_in.get(path)) == before
    assert mart_queries(queries) == []

    # A run starting is a new state of the marts; so is its end.
    run = DbtRun.objects.create(command="build", started_at=timezone.now())
    during = net_revenue_tile(signed_in.get(path))
    assert during != before
    dbt_writes_more_revenue(alpine)
    run.status, run.finished_at = DbtRunStatus.SUCCESS, timezone.now()
    run.save()
    after = net_revenue_tile(signed_in.get(path))
    assert len({before, during, after}) == 3


def test_the_metrics_api_reads_the_marts_once_per_dbt_run(client, clerk, owner, alpine):
    headers = clerk.auth_header(owner.clerk_user_id)
    path = f"/api/merchants/{alpine.pk}/metrics/overview/"
    before = client.get(path, **headers).json()["kpis"]["current"]["net_revenue"]
    dbt_writes_more_revenue(alpine)
    assert client.get(path, **headers).json()["kpis"]["current"]["net_revenue"] == before

    DbtRun.objects.create(command="build", started_at=timezone.now())
    after = client.get(path, **headers).json()["kpis"]["current"]["net_revenue"]
    assert after != before


def test_each_merchant_gets_its_own_numbers_for_the_same_range(client, clerk, alpine, beach):
    user = clerk.user("user_both")
    for merchant in (alpine, beach):
        MembershipFactory(clerk_user_id=user, merchant=merchant, role=Role.VIEWER)
    client.cookies["__session"] = clerk.token(user)
    first = client.get(f"/m/{alpine.pk}/overview/").content.decode()
    second = client.get(f"/m/{beach.pk}/overview/").content.decode()
    assert 'data-merchant="910001"' in first and "$" in NET_REVENUE_TILE.search(first).group(1)
    assert 'data-merchant="910002"' in second and "€" in NET_REVENUE_TILE.search(second).group(1)


def members_of_one_and_both(clerk, alpine, beach, in_both: str, in_one: str) -> tuple[str, str]:
    """An owner of both stores, and a viewer of the first one only."""
    in_both, in_one = clerk.user(in_both), clerk.user(in_one)
    MembershipFactory(clerk_user_id=in_both, merchant=alpine, role=Role.OWNER)
    MembershipFactory(clerk_user_id=in_both, merchant=beach, role=Role.OWNER)
    MembershipFactory(clerk_user_id=in_one, merchant=alpine, role=Role.VIEWER)
    return in_both, in_one


def test_the_cached_part_holds_nothing_of_the_member_who_first_asked(client, clerk, alpine, beach):
    """The first member is also in another store and gets a message; the second sees neither."""
    first, second = members_of_one_and_both(clerk, alpine, beach, "user_first", "user_second")
    path = f"/m/{alpine.pk}/overview/"

    client.cookies["__session"] = clerk.token(first)
    saved = client.post(
        f"/m/{alpine.pk}/dashboards/save/", {"source": "page:overview", "name": "Mine", "back": path}, follow=True
    )
    assert "Saved “Mine”." in saved.content.decode()
    first_html = client.get(path).content.decode()
    assert "Beach Things" in first_html and "user_first" in first_html

    client.cookies.clear()
    client.cookies["__session"] = clerk.token(second)
    with CaptureQueriesContext(connections["warehouse"]) as queries:
        second_html = client.get(path).content.decode()
    assert mart_queries(queries) == []  # served from the cache the first member filled
    assert NET_REVENUE_TILE.search(second_html).group(1) == NET_REVENUE_TILE.search(first_html).group(1)
    assert "user_second" in second_html
    assert "user_first" not in second_html and "Beach Things" not in second_html and "Mine" not in second_html
    token = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')
    assert set(token.findall(second_html)).isdisjoint(token.findall(first_html))


def test_a_range_the_form_rejects_is_answered_without_the_cache(signed_in, alpine):
    path = f"/m/{alpine.pk}/overview/"
    bad = {"start": "2026-03-10", "end": "2026-03-01"}
    before = net_revenue_tile(signed_in.get(path, bad))
    dbt_writes_more_revenue(alpine)
    assert net_revenue_tile(signed_in.get(path, bad)) != before


def test_editing_a_saved_dashboard_shows_the_new_version_at_once(signed_in, owner, alpine):
    from dashboards.layouts import PAGE_LAYOUTS
    from dashboards.models import DashboardTemplate

    template = DashboardTemplate.objects.create(
        merchant=alpine, name="Weekly", layout=PAGE_LAYOUTS["overview"], created_by=owner.clerk_user_id
    )
    path = f"/m/{alpine.pk}/dashboards/{template.pk}/"
    assert "version 1" in signed_in.get(path).content.decode()
    signed_in.post(
        f"{path}edit/",
        {
            "version": 1,
            "name": "Weekly",
            "description": "For Mondays",
            "layout": '[{"type": "kpi", "metric": "orders"}]',
        },
    )
    html = signed_in.get(path).content.decode()
    assert "For Mondays · version 2" in html
    assert html.count('data-widget-type="kpi"') == 1


def test_a_cached_page_has_the_members_own_parts_in_place(client, clerk, alpine, beach):
    """Top bar, messages and forms sit where the page puts them, for each member, on a page served from the cache."""
    both, one = members_of_one_and_both(clerk, alpine, beach, "user_both", "user_one")
    path = f"/m/{alpine.pk}/attribution/"

    client.cookies["__session"] = clerk.token(one)
    client.get(path)  # fills the cache
    client.cookies["__session"] = clerk.token(both)
    client.post(f"/m/{alpine.pk}/dashboards/save/", {"source": "page:attribution", "name": "", "back": path})
    with CaptureQueriesContext(connections["warehouse"]) as queries:
        html = client.get(path).content.decode()
    assert mart_queries(queries) == []

    header = html[html.index('<header class="topbar">') : html.index("</header>")]
    assert 'aria-label="Switch store"' in header and f'href="/m/{beach.pk}/attribution/"' in header
    assert "user_both" in header and 'name="csrfmiddlewaretoken"' in header
    main = html[html.index("<main>") : html.index("</main>")]
    assert main.index('class="messages"') < main.index('class="dash-head"') < main.index('id="model-detail"')
    assert "Not saved:" in main
    assert main.index('id="model-detail"') < main.index('aria-label="Save as template"')
    assert f'value="{path}"' in main  # "Save as template" comes back to this page
    assert html.index('aria-label="Dashboards"') < html.index("<main>")  # the tabs, with this page current
    current_tab = f'<a href="/m/{alpine.pk}/attribution/?preset=last_30_days&amp;compare=previous_period" aria-current'
    assert current_tab in html
    assert "<!--" not in html
