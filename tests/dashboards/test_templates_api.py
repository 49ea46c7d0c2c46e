"""Dashboard templates over the API: schema-validated layouts, unique names, optimistic concurrency, audit."""

import pytest

from compliance.models import AuditEvent
from dashboards import layouts, services
from dashboards.models import DashboardTemplate

pytestmark = pytest.mark.django_db(databases=["default", "warehouse"])

LAYOUT = [
    {"type": "kpi", "metric": "net_revenue", "options": {"title": "Revenue"}},
    {"type": "timeseries", "metric": "ad_spend", "options": {"width": "wide"}},
    {"type": "attribution_table", "metric": "comparison"},
    {"type": "engagement_table", "metric": "summary"},
    {"type": "cohort_heatmap", "metric": "retention"},
]


@pytest.fixture
def api(client, clerk, owner):
    headers = clerk.auth_header(owner.clerk_user_id)
    base = f"/api/merchants/{owner.merchant.pk}/dashboard-templates/"

    def call(method: str, path: str = "", body=None, **params):
        url = base + path
        if params:
            url += "?" + "&".join(f"{k}={v}" for k, v in params.items())
        return getattr(client, method)(url, body, content_type="application/json", **headers)

    return call


def create(api, name="Weekly", layout=LAYOUT):
    return api("post", "", {"name": name, "description": "Mondays", "layout": layout})


def test_create_list_retrieve(api, owner):
    response = create(api)
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["name"] == "Weekly"
    assert body["version"] == 1
    assert body["created_by"] == owner.clerk_user_id
    assert body["layout"][2] == {"type": "attribution_table", "metric": "comparison", "options": {}}
    assert [t["id"] for t in api("get").json()] == [body["id"]]
    assert api("get", f"{body['id']}/").json() == body
    event = AuditEvent.objects.get(action="dashboard_template.created")
    assert (event.merchant_id, event.target_id, event.actor_id) == (owner.merchant.pk, str(body["id"]), "user_olivia")


@pytest.mark.parametrize(
    ("layout", "message"),
    [
        ([LAYOUT[0], {"type": "pie", "metric": "orders"}], "Widget 2: unknown type 'pie'"),
        ([{"type": "kpi", "metric": "profit"}], "Widget 1: unknown metric 'profit' for kpi"),
        ([LAYOUT[0], LAYOUT[1], {"type": "kpi", "metric": "mer", "colour": "red"}], "Widget 3: unknown keys 'colour'"),
        ([{"type": "kpi", "metric": "mer", "options": {"width": "huge"}}], "Widget 1: width must be one of"),
        ({"type": "kpi"}, layouts.LAYOUT_NOT_A_LIST),
        ([LAYOUT[0]] * 51, layouts.LAYOUT_TOO_MANY),
        ([{"type": "kpi", "metric": "mer", "options": {"title": "x" * 100}}] * 50, ""),  # 50 widgets fit
    ],
)
def test_layout_validation_names_the_widget(api, layout, message):
    response = create(api, layout=layout)
    if not message:
        assert response.status_code == 201
        return
    assert response.status_code == 400
    assert list(response.json()) == ["layout"]
    assert response.json()["layout"][0].startswith(message)
    assert not DashboardTemplate.objects.exists()


def test_layout_over_64_kb_is_refused(api):
    # Titles are capped at 100 characters, so only a layout padded with other JSON can pass 64 KB.
    huge = [{"type": "kpi", "metric": "mer", "options": {"title": "x" * 70_000}}]
    response = create(api, layout=huge)
    assert response.status_code == 400
    assert response.json() == {"layout": [layouts.LAYOUT_TOO_BIG]}
    assert not DashboardTemplate.objects.exists()


def test_names_are_unique_per_merchant_ignoring_case(api):
    assert create(api).status_code == 201
    response = create(api, name="weekly")
    assert response.status_code == 409
    assert response.json() == {"name": [services.NAME_TAKEN]}


def test_update_with_the_current_version_bumps_it(api):
    template = create(api).json()
    response = api("patch", f"{template['id']}/", {"version": 1, "name": "Weekly v2", "layout": LAYOUT[:2]})
    assert response.status_code == 200, response.json()
    assert (response.json()["version"], response.json()["name"]) == (2, "Weekly v2")
    assert len(response.json()["layout"]) == 2
    assert AuditEvent.objects.filter(action="dashboard_template.updated").count() == 1


def test_stale_update_is_409_and_changes_nothing(api):
    template = create(api).json()
    assert api("patch", f"{template['id']}/", {"version": 1, "name": "First"}).status_code == 200
    response = api("patch", f"{template['id']}/", {"version": 1, "name": "Second"})
    assert response.status_code == 409
    assert response.json() == {"version": [services.VERSION_STALE.format(current=2)]}
    assert DashboardTemplate.objects.get().name == "First"


def test_update_validates_the_layout_and_needs_a_version(api):
    template = create(api).json()
    response = api("patch", f"{template['id']}/", {"version": 1, "layout": [{"type": "kpi", "metric": "nope"}]})
    assert response.status_code == 400
    assert response.json()["layout"][0].startswith("Widget 1:")
    assert api("patch", f"{template['id']}/", {"name": "No version"}).status_code == 400
    assert DashboardTemplate.objects.get().version == 1


def test_delete_is_audited(api, owner):
    template = create(api).json()
    assert api("delete", f"{template['id']}/").status_code == 204
    assert not DashboardTemplate.objects.exists()
    event = AuditEvent.objects.get(action="dashboard_template.deleted")
    assert event.metadata["name"] == "Weekly"


def test_apply_renders_the_layout_with_the_same_numbers_as_the_metrics_api(api, client, clerk, owner):
    template = create(api).json()
    response = api("post", f"{template['id']}/apply/", preset="last_7_days")
    assert response.status_code == 200, response.json()
    body = response.json()
    assert [w["type"] for w in body["widgets"]] == [w["type"] for w in LAYOUT]
    overview = client.get(
        f"/api/merchants/{owner.merchant.pk}/metrics/overview/?preset=last_7_days",
        **clerk.auth_header(owner.clerk_user_id),
    ).json()
    assert body["widgets"][0]["data"]["value"] == overview["kpis"]["current"]["net_revenue"]
    assert [d["value"] for d in body["widgets"][1]["data"]] == [d["ad_spend"] for d in overview["daily"]]
    assert AuditEvent.objects.filter(action="dashboard_template.applied", target_id=str(template["id"])).exists()
    assert api("post", f"{template['id']}/apply/", start="2026-01-02", end="2026-01-01").status_code == 400


def test_starter_templates_are_valid():
    for starter in layouts.STARTER_TEMPLATES.values():
        assert layouts.layout_validate(starter["layout"])
    for layout in layouts.PAGE_LAYOUTS.values():
        assert layouts.layout_validate(layout)


def test_starters_are_listed_and_can_be_saved_as_the_merchants_own(api):
    starters = api("get", "starters/").json()
    assert [t["key"] for t in starters] == ["acquisition", "retention", "email-sms"]
    retention = starters[1]
    response = create(api, name="My retention", layout=retention["layout"])
    assert response.status_code == 201
    assert response.json()["layout"] == retention["layout"]
