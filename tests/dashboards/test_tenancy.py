"""A member of another merchant gets 404 from every dashboard page and metrics/template API route."""

import pytest

from dashboards.models import DashboardTemplate

pytestmark = pytest.mark.django_db(databases=["default", "warehouse"])

PAGES = [
    "overview/", "ltv/", "attribution/", "engagement/", "dashboards/", "dashboards/starter/acquisition/",
    "dashboards/{template}/", "export/overview-daily.csv", "export/ltv-cohorts.csv", "export/attribution-channels.csv",
    "export/attribution-comparison.csv", "export/attribution-campaigns.csv", "export/engagement-summary.csv",
    "export/engagement-messages.csv", "export/engagement-daily.csv",
]  # fmt: skip
PAGE_POSTS = ["dashboards/apply/", "dashboards/save/", "dashboards/{template}/edit/", "dashboards/{template}/delete/"]
API_GETS = [
    "metrics/overview/", "metrics/ltv/", "metrics/attribution/", "metrics/attribution/compare/",
    "metrics/engagement/", "dashboard-templates/", "dashboard-templates/starters/", "dashboard-templates/{template}/",
]  # fmt: skip


@pytest.fixture
def template(alpine):
    return DashboardTemplate.objects.create(
        merchant=alpine, name="Mine", layout=[{"type": "kpi", "metric": "orders", "options": {}}], created_by="x"
    )


@pytest.mark.parametrize("path", PAGES)
def test_pages(client, clerk, owner, outsider, template, path):
    url = f"/m/{owner.merchant.pk}/" + path.format(template=template.pk)
    client.cookies["__session"] = clerk.token(owner.clerk_user_id)
    assert client.get(url).status_code == 200
    client.cookies["__session"] = clerk.token(outsider.clerk_user_id)
    assert client.get(url).status_code == 404


@pytest.mark.parametrize("path", PAGE_POSTS)
def test_page_posts(client, clerk, owner, outsider, template, path):
    client.cookies["__session"] = clerk.token(outsider.clerk_user_id)
    url = f"/m/{owner.merchant.pk}/" + path.format(template=template.pk)
    response = client.post(url, {"template": template.pk, "source": "page:overview", "name": "Stolen"})
    assert response.status_code == 404
    assert DashboardTemplate.objects.filter(merchant=owner.merchant).count() == 1


@pytest.mark.parametrize("path", API_GETS)
def test_api_reads(client, clerk, owner, outsider, template, path):
    url = f"/api/merchants/{owner.merchant.pk}/" + path.format(template=template.pk)
    assert client.get(url, **clerk.auth_header(owner.clerk_user_id)).status_code == 200
    response = client.get(url, **clerk.auth_header(outsider.clerk_user_id))
    assert response.status_code == 404
    assert "Alpine" not in response.content.decode()


def test_api_writes(client, clerk, owner, outsider, template):
    headers = clerk.auth_header(outsider.clerk_user_id)
    base = f"/api/merchants/{owner.merchant.pk}/dashboard-templates/"
    layout = [{"type": "kpi", "metric": "orders"}]
    assert (
        client.post(base, {"name": "X", "layout": layout}, content_type="application/json", **headers).status_code
        == 404
    )
    detail = f"{base}{template.pk}/"
    assert (
        client.patch(detail, {"version": 1, "name": "Y"}, content_type="application/json", **headers).status_code == 404
    )
    assert client.delete(detail, **headers).status_code == 404
    assert client.post(f"{detail}apply/", **headers).status_code == 404
    template.refresh_from_db()
    assert (template.name, template.version) == ("Mine", 1)


def test_own_merchant_url_with_another_merchants_template_is_404(client, clerk, owner, outsider, template):
    # Bob asks for Alpine's template under his own merchant's URL.
    url = f"/api/merchants/{outsider.merchant.pk}/dashboard-templates/{template.pk}/"
    assert client.get(url, **clerk.auth_header(outsider.clerk_user_id)).status_code == 404
    client.cookies["__session"] = clerk.token(outsider.clerk_user_id)
    assert client.get(f"/m/{outsider.merchant.pk}/dashboards/{template.pk}/").status_code == 404
