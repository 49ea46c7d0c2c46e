"""Agency staff in the tenancy matrix: every page and API route taking a merchant id answers 404 unless an
effective grant reaches the store (accounts.access), 200 with one, and 403 for what the grant's level does
not cover — as the same route answers a store member whose role does not cover it.

`test_every_merchant_route_is_in_the_matrix` walks the URL configuration, so a new route taking a merchant id
fails here until it is added to the matrix.
"""

from __future__ import annotations

import pytest
from django.urls import URLPattern, URLResolver, get_resolver
from django.utils import timezone

from accounts.choices import Role
from agencies.choices import AgencyRole, AgencyStatus, GrantLevel, GrantStatus
from agencies.models import AccessGrant, Agency, AgencyMember
from connectors.choices import CredentialStatus
from connectors.models import ConnectorCredential
from dashboards.models import DashboardTemplate
from tests.accounts.factories import MembershipFactory
from tests.agencies.factories import (
    AccessGrantFactory,
    AgencyFactory,
    AgencyMemberFactory,
    ClientAssignmentFactory,
    expired,
)
from tests.connectors import conftest as connectors_conftest
from tests.connectors.factories import CredentialFactory
from tests.dashboards import conftest as dashboards_conftest

# The marts the dashboard pages read (built once per session), reused from the dashboards' tests.
marts = dashboards_conftest.marts
alpine = dashboards_conftest.alpine
beach = dashboards_conftest.beach
providers = connectors_conftest.providers  # the provider sandbox, for the connect and disconnect writes

pytestmark = pytest.mark.django_db(databases=["default", "warehouse"])

AGENT = "user_agent_ann"

# Every route under /m/<id>/ and /api/merchants/<id>/ that a GET may read.
PAGE_GETS = [
    "", "notifications/", "connectors/",
    "overview/", "ltv/", "attribution/", "engagement/", "dashboards/", "dashboards/starter/acquisition/",
    "dashboards/{template}/",
]  # fmt: skip
EXPORTS = [
    "export/overview-daily.csv", "export/ltv-cohorts.csv", "export/attribution-channels.csv",
    "export/attribution-comparison.csv", "export/attribution-campaigns.csv", "export/engagement-summary.csv",
    "export/engagement-messages.csv", "export/engagement-daily.csv",
]  # fmt: skip
API_GETS = [
    "", "connectors/",
    "metrics/overview/", "metrics/ltv/", "metrics/attribution/", "metrics/attribution/compare/",
    "metrics/engagement/", "dashboard-templates/", "dashboard-templates/starters/", "dashboard-templates/{template}/",
]  # fmt: skip
# Routes that change something: (method, path, body). The writes a grant's level may not cover come first.
PAGE_POSTS = [
    ("dashboards/save/", {"source": "page:overview", "name": "Agency copy"}),
    ("dashboards/{template}/edit/", {"version": 1, "name": "Renamed", "layout": "[]"}),
    ("dashboards/{template}/delete/", {}),
    ("connectors/api-key/", {"provider": "klaviyo", "api_key": "pk_" + "b" * 34, "label": "K"}),
    ("connectors/google_ads/connect/", {}),
    ("connectors/{credential}/disconnect/", {}),
    ("dashboards/apply/", {"template": "{template}"}),
]
API_WRITES = [
    ("post", "dashboard-templates/", {"name": "Agency copy", "layout": [{"type": "kpi", "metric": "orders"}]}),
    ("patch", "dashboard-templates/{template}/", {"version": 1, "name": "Renamed"}),
    ("delete", "dashboard-templates/{template}/", None),
    ("post", "dashboard-templates/{template}/apply/", None),
]
# The store's side of agency grants: owners only, so agency staff get 403 even with an active grant.
STORE_GRANT_GETS = ["agencies/"]
STORE_GRANT_POSTS = [
    ("agencies/codes/", {"level": "manager", "can_see_pii": "on", "can_see_costs": "on"}),
    ("agencies/{grant}/approve/", {"level": "manager", "can_see_pii": "on"}),
    ("agencies/{grant}/decline/", {}),
    ("agencies/{grant}/end/", {}),
]
# The store's compliance pages and API (audit exports, privacy requests): owners only. Agency staff get 404
# without an effective grant and, with one, 403 on the pages and 404 on the API; nothing is created.
EXPORT_RANGE = {"occurred_from": "2026-01-01T00:00:00Z", "occurred_to": "2026-02-01T00:00:00Z"}
OWNER_PAGE_GETS = ["privacy/", "audit/exports/"]
OWNER_PAGE_POSTS = [("audit/exports/", EXPORT_RANGE), ("audit/exports/{export}/download/", {})]
OWNER_API_GETS = ["audit-exports/", "audit-exports/{export}/", "audit-exports/{export}/download-link/"]
OWNER_API_WRITES = [("post", "audit-exports/", EXPORT_RANGE)]
# Not under /api/merchants/<id>/: the store is in the body.
API_KEY_CONNECT = "/api/connectors/api-key/connect"


def _merchant_routes() -> set[str]:
    """Every route string of the URL configuration that takes a merchant id, with its prefix."""
    found = set()

    def walk(patterns, prefix):
        for p in patterns:
            if isinstance(p, URLResolver):
                walk(p.url_patterns, prefix + str(p.pattern))
            elif isinstance(p, URLPattern):
                route = prefix + str(p.pattern)
                if "<int:merchant_id>" in route:
                    found.add(route)

    walk(get_resolver().url_patterns, "")
    return found


def _covered() -> set[str]:
    paths = [f"m/<id>/{p}" for p in PAGE_GETS + EXPORTS + [p for p, _ in PAGE_POSTS]]
    paths += [f"m/<id>/{p}" for p in STORE_GRANT_GETS + [p for p, _ in STORE_GRANT_POSTS]]
    paths += [f"api/merchants/<id>/{p}" for p in API_GETS + [p for _, p, _ in API_WRITES]]
    paths += [f"m/<id>/{p}" for p in OWNER_PAGE_GETS + [p for p, _ in OWNER_PAGE_POSTS]]
    paths += [f"api/merchants/<id>/{p}" for p in OWNER_API_GETS + [p for _, p, _ in OWNER_API_WRITES]]
    return set(paths)


def _normalise(route: str) -> str:
    """The URL configuration's `m/<int:merchant_id>/export/<slug:table>.csv` as the matrix writes it."""
    import re

    route = route.replace("<int:merchant_id>", "<id>")
    return re.sub(r"<[^>]+>", "*", route)


def test_every_merchant_route_is_in_the_matrix():
    import fnmatch

    covered = _covered()
    missing = [r for r in _merchant_routes() if not any(fnmatch.fnmatch(c, _normalise(r)) for c in covered)]
    assert missing == []


# --- the people and their grants ------------------------------------------------------------------------


@pytest.fixture
def agency(db):
    return AgencyFactory(name="Acme Agency")


@pytest.fixture
def agent(clerk, agency):
    """An agency admin (sees every store the agency was granted) with no store membership of their own."""
    return AgencyMemberFactory(agency=agency, clerk_user_id=clerk.user(AGENT), role=AgencyRole.ADMIN)


@pytest.fixture
def template(alpine):
    return DashboardTemplate.objects.create(
        merchant=alpine, name="Mine", layout=[{"type": "kpi", "metric": "orders", "options": {}}], created_by="x"
    )


@pytest.fixture
def credential(alpine):
    return CredentialFactory(merchant=alpine)


def _fill(path: str, template, credential, grant=None) -> str:
    return path.format(template=template.pk, credential=credential.pk, grant=grant.pk if grant else 0)


def _body(body, template, credential):
    if isinstance(body, dict):
        return {k: _fill(v, template, credential) if isinstance(v, str) else v for k, v in body.items()}
    return body


def _no_grant(alpine, beach, agency, agent):
    pass


def _ended_grant(alpine, beach, agency, agent):
    AccessGrantFactory(agency=agency, merchant=alpine, status=GrantStatus.ENDED, ended_at=timezone.now())


def _expired_grant(alpine, beach, agency, agent):
    AccessGrantFactory(agency=agency, merchant=alpine, expires_at=expired())


def _pending_request(alpine, beach, agency, agent):
    AccessGrantFactory(agency=agency, merchant=alpine, status=GrantStatus.PENDING, approved_at=None)


def _grant_for_another_store(alpine, beach, agency, agent):
    AccessGrantFactory(agency=agency, merchant=beach, level=GrantLevel.MANAGER)


def _assignment_excludes_the_store(alpine, beach, agency, agent):
    AgencyMember.objects.filter(pk=agent.pk).update(role=AgencyRole.MEMBER)
    AccessGrantFactory(agency=agency, merchant=alpine, level=GrantLevel.MANAGER)
    AccessGrantFactory(agency=agency, merchant=beach, level=GrantLevel.MANAGER)
    ClientAssignmentFactory(member=agent, merchant=beach)


def _removed_member(alpine, beach, agency, agent):
    AccessGrantFactory(agency=agency, merchant=alpine, level=GrantLevel.MANAGER)
    AgencyMember.objects.filter(pk=agent.pk).update(removed_at=timezone.now())


def _suspended_agency(alpine, beach, agency, agent):
    AccessGrantFactory(agency=agency, merchant=alpine, level=GrantLevel.MANAGER)
    Agency.objects.filter(pk=agency.pk).update(status=AgencyStatus.SUSPENDED)


def _another_agencys_grant(alpine, beach, agency, agent):
    AccessGrantFactory(agency=AgencyFactory(), merchant=alpine, level=GrantLevel.MANAGER)


DENIED = [
    _no_grant, _ended_grant, _expired_grant, _pending_request, _grant_for_another_store,
    _assignment_excludes_the_store, _removed_member, _suspended_agency, _another_agencys_grant,
]  # fmt: skip


@pytest.mark.parametrize("setup", DENIED, ids=lambda f: f.__name__.strip("_"))
def test_agency_staff_without_an_effective_grant_get_404_everywhere(
    client, clerk, alpine, beach, agency, agent, template, credential, setup
):
    setup(alpine, beach, agency, agent)
    base, api = f"/m/{alpine.pk}/", f"/api/merchants/{alpine.pk}/"
    client.cookies["__session"] = clerk.token(AGENT)
    headers = clerk.auth_header(AGENT)
    answers = {}
    for path in PAGE_GETS + EXPORTS + STORE_GRANT_GETS:
        answers[f"GET {base}{path}"] = client.get(base + _fill(path, template, credential)).status_code
    for path, body in PAGE_POSTS + STORE_GRANT_POSTS:
        url = base + _fill(path, template, credential)
        answers[f"POST {base}{path}"] = client.post(url, _body(body, template, credential)).status_code
    for path in API_GETS:
        answers[f"GET {api}{path}"] = client.get(api + _fill(path, template, credential), **headers).status_code
    for method, path, body in API_WRITES:
        url = api + _fill(path, template, credential)
        kwargs = {"data": body, "content_type": "application/json"} if body is not None else {}
        answers[f"{method.upper()} {api}{path}"] = getattr(client, method)(url, **kwargs, **headers).status_code
    connect = {"merchant_id": alpine.pk, "provider": "klaviyo", "api_key": "pk_" + "b" * 34, "label": "K"}
    answers["POST " + API_KEY_CONNECT] = client.post(
        API_KEY_CONNECT, connect, content_type="application/json", **headers
    ).status_code
    assert {k: v for k, v in answers.items() if v != 404} == {}
    # Nothing of the store changed, and the store is not in the person's list.
    template.refresh_from_db()
    assert (template.name, template.version, DashboardTemplate.objects.filter(merchant=alpine).count()) == (
        "Mine",
        1,
        1,
    )
    assert ConnectorCredential.objects.filter(merchant=alpine, status=CredentialStatus.ACTIVE).count() == 1
    listing = client.get("/api/merchants/", **headers).json()
    assert alpine.pk not in [m["id"] for m in listing["results"]]


@pytest.mark.parametrize("level", [GrantLevel.VIEWER, GrantLevel.ANALYST, GrantLevel.MANAGER])
def test_agency_staff_with_an_active_grant_read_every_page_and_api_route(
    client, clerk, alpine, agency, agent, template, credential, level
):
    AccessGrantFactory(agency=agency, merchant=alpine, level=level)
    base, api = f"/m/{alpine.pk}/", f"/api/merchants/{alpine.pk}/"
    client.cookies["__session"] = clerk.token(AGENT)
    headers = clerk.auth_header(AGENT)
    answers = {f"GET {base}{p}": client.get(base + _fill(p, template, credential)).status_code for p in PAGE_GETS}
    answers |= {
        f"GET {api}{p}": client.get(api + _fill(p, template, credential), **headers).status_code for p in API_GETS
    }
    assert {k: v for k, v in answers.items() if v != 200} == {}
    # The store's agency settings are the store's: never an agency's, whatever its level.
    grant = AccessGrant.objects.get(agency=agency, merchant=alpine)
    store_side = {p: client.get(base + p).status_code for p in STORE_GRANT_GETS}
    store_side |= {
        p: client.post(base + _fill(p, template, credential, grant), b).status_code for p, b in STORE_GRANT_POSTS
    }
    assert set(store_side.values()) == {403}
    assert AccessGrant.objects.get(pk=grant.pk).status == GrantStatus.ACTIVE
    # The exports: the analyst level and above.
    exports = {p: client.get(base + p).status_code for p in EXPORTS}
    assert set(exports.values()) == ({403} if level == GrantLevel.VIEWER else {200})


def test_assigned_agency_member_reaches_the_assigned_store(client, clerk, alpine, agency, agent):
    AgencyMember.objects.filter(pk=agent.pk).update(role=AgencyRole.MEMBER)
    AccessGrantFactory(agency=agency, merchant=alpine)
    ClientAssignmentFactory(member=agent, merchant=alpine)
    client.cookies["__session"] = clerk.token(AGENT)
    assert client.get(f"/m/{alpine.pk}/overview/").status_code == 200


# Each write, and the levels that may make it (a store viewer may save templates and export, as today).
WRITE_LEVELS = {
    "dashboards/save/": {GrantLevel.ANALYST, GrantLevel.MANAGER},
    "dashboards/{template}/edit/": {GrantLevel.ANALYST, GrantLevel.MANAGER},
    "dashboards/{template}/delete/": {GrantLevel.ANALYST, GrantLevel.MANAGER},
    "connectors/api-key/": {GrantLevel.MANAGER},
    "connectors/google_ads/connect/": {GrantLevel.MANAGER},
    "connectors/{credential}/disconnect/": {GrantLevel.MANAGER},
    "dashboards/apply/": {GrantLevel.VIEWER, GrantLevel.ANALYST, GrantLevel.MANAGER},
}


@pytest.mark.parametrize("level", [GrantLevel.VIEWER, GrantLevel.ANALYST, GrantLevel.MANAGER])
@pytest.mark.parametrize(("path", "body"), PAGE_POSTS, ids=[p for p, _ in PAGE_POSTS])
def test_page_writes_beyond_the_grants_level_are_403(
    client, clerk, alpine, agency, agent, template, credential, providers, level, path, body
):
    AccessGrantFactory(agency=agency, merchant=alpine, level=level)
    client.cookies["__session"] = clerk.token(AGENT)
    response = client.post(f"/m/{alpine.pk}/" + _fill(path, template, credential), _body(body, template, credential))
    if level in WRITE_LEVELS[path]:
        # Allowed: whatever the write itself answers (a redirect, or the provider's verdict on a made-up key).
        assert response.status_code in (302, 422), response.status_code
    else:
        assert response.status_code == 403
        template.refresh_from_db()
        assert (template.name, template.version) == ("Mine", 1)
        assert DashboardTemplate.objects.filter(merchant=alpine).count() == 1
        assert ConnectorCredential.objects.filter(merchant=alpine, status=CredentialStatus.ACTIVE).count() == 1


@pytest.mark.parametrize("level", [GrantLevel.VIEWER, GrantLevel.ANALYST])
def test_api_writes_beyond_the_grants_level_are_403(client, clerk, alpine, agency, agent, template, level):
    AccessGrantFactory(agency=agency, merchant=alpine, level=level)
    headers = clerk.auth_header(AGENT)
    api = f"/api/merchants/{alpine.pk}/"
    answers = {}
    for method, path, body in API_WRITES:
        url = api + path.format(template=template.pk)
        kwargs = {"data": body, "content_type": "application/json"} if body is not None else {}
        answers[f"{method} {path}"] = getattr(client, method)(url, **kwargs, **headers).status_code
    connect = {"merchant_id": alpine.pk, "provider": "klaviyo", "api_key": "pk_" + "b" * 34, "label": "K"}
    answers["connect"] = client.post(API_KEY_CONNECT, connect, content_type="application/json", **headers).status_code
    if level == GrantLevel.VIEWER:
        expected = {
            "post dashboard-templates/": 403,
            "patch dashboard-templates/{template}/": 403,
            "delete dashboard-templates/{template}/": 403,
            "post dashboard-templates/{template}/apply/": 200,
            "connect": 403,
        }
    else:
        expected = {
            "post dashboard-templates/": 201,
            "patch dashboard-templates/{template}/": 200,
            "delete dashboard-templates/{template}/": 204,
            "post dashboard-templates/{template}/apply/": 404,  # deleted just before
            "connect": 403,
        }
    assert answers == expected


def test_agency_viewer_pages_offer_no_export_or_template_forms(client, clerk, alpine, agency, agent, template):
    AccessGrantFactory(agency=agency, merchant=alpine, level=GrantLevel.VIEWER)
    client.cookies["__session"] = clerk.token(AGENT)
    overview = client.get(f"/m/{alpine.pk}/overview/").content.decode()
    assert "Export CSV" not in overview and "Save as template" not in overview
    listing = client.get(f"/m/{alpine.pk}/dashboards/").content.decode()
    assert "Mine" in listing and f"/dashboards/{template.pk}/delete/" not in listing
    # A store member of the same store, right after (the same cached fragments): the links are there.
    MembershipFactory(merchant=alpine, clerk_user_id=clerk.user("user_store_viewer"), role=Role.VIEWER)
    client.cookies["__session"] = clerk.token("user_store_viewer")
    overview = client.get(f"/m/{alpine.pk}/overview/").content.decode()
    assert "Export CSV" in overview and "Save as template" in overview


def test_agency_manager_sees_the_connect_buttons_and_no_member_list(client, clerk, alpine, agency, agent):
    AccessGrantFactory(agency=agency, merchant=alpine, level=GrantLevel.MANAGER)
    MembershipFactory(merchant=alpine, clerk_user_id="user_store_owner", role=Role.OWNER)
    client.cookies["__session"] = clerk.token(AGENT)
    home = client.get(f"/m/{alpine.pk}/").content.decode()
    assert "Manager via Acme Agency" in home
    assert "user_store_owner" not in home  # the store's people are not the agency's business


def test_agency_only_user_lands_on_a_granted_store_and_switches_between_them(
    client, clerk, alpine, beach, agency, agent
):
    AccessGrantFactory(agency=agency, merchant=alpine, level=GrantLevel.VIEWER)
    AccessGrantFactory(agency=agency, merchant=beach, level=GrantLevel.VIEWER)
    client.cookies["__session"] = clerk.token(AGENT)
    assert client.get("/").url == f"/m/{alpine.pk}/overview/"
    page = client.get(f"/m/{alpine.pk}/overview/").content.decode()
    assert f'href="/m/{beach.pk}/overview/"' in page  # the store switcher lists the other granted store
    listing = client.get("/api/merchants/", **clerk.auth_header(AGENT)).json()["results"]
    assert [(m["id"], m["agency"], m["level"], m["can_see_pii"]) for m in listing] == [
        (alpine.pk, {"id": agency.pk, "name": "Acme Agency"}, "viewer", False),
        (beach.pk, {"id": agency.pk, "name": "Acme Agency"}, "viewer", False),
    ]


def test_a_page_costs_the_same_queries_for_agency_staff_as_for_members(
    client, clerk, alpine, beach, agency, agent, django_assert_max_num_queries
):
    MembershipFactory(merchant=alpine, clerk_user_id=clerk.user("user_store_owner"), role=Role.OWNER)
    AccessGrantFactory(agency=agency, merchant=alpine)
    AccessGrantFactory(agency=agency, merchant=beach)
    url = f"/m/{alpine.pk}/"
    # The access list (memberships, grants), the cached display name, and — for a store member only — the
    # store's member list.
    for user, most in (("user_store_owner", 4), (AGENT, 3)):
        client.cookies["__session"] = clerk.token(user)
        client.get(url)  # warm the display name's cache
        with django_assert_max_num_queries(most):
            assert client.get(url).status_code == 200


def test_grant_rows_are_untouched_by_reading(client, clerk, alpine, agency, agent):
    grant = AccessGrantFactory(agency=agency, merchant=alpine)
    client.cookies["__session"] = clerk.token(AGENT)
    client.get(f"/m/{alpine.pk}/overview/")
    assert AccessGrant.objects.get(pk=grant.pk).updated_at == grant.updated_at


# --- the store's compliance routes: owners only --------------------------------------------------------


@pytest.fixture
def audit_export(alpine):
    import datetime

    from compliance.models import AuditExport

    return AuditExport.objects.create(
        merchant=alpine,
        occurred_from=timezone.now() - datetime.timedelta(days=30),
        occurred_to=timezone.now(),
        requested_by_type="clerk_user",
        requested_by_id="user_store_owner",
    )


def _owner_route_answers(client, clerk, alpine, audit_export) -> dict[str, int]:
    from compliance.models import AuditExport

    base, api = f"/m/{alpine.pk}/", f"/api/merchants/{alpine.pk}/"
    client.cookies["__session"] = clerk.token(AGENT)
    headers = clerk.auth_header(AGENT)
    before = AuditExport.objects.count()
    answers = {
        f"GET {base}{p}": client.get(base + p.format(export=audit_export.pk)).status_code for p in OWNER_PAGE_GETS
    }
    for path, body in OWNER_PAGE_POSTS:
        answers[f"POST {base}{path}"] = client.post(base + path.format(export=audit_export.pk), body).status_code
    for path in OWNER_API_GETS:
        url = api + path.format(export=audit_export.pk)
        answers[f"GET {api}{path}"] = client.get(url, **headers).status_code
    for method, path, body in OWNER_API_WRITES:
        response = getattr(client, method)(api + path, data=body, content_type="application/json", **headers)
        answers[f"{method.upper()} {api}{path}"] = response.status_code
    assert AuditExport.objects.count() == before  # nothing was created
    return answers


@pytest.mark.parametrize("setup", DENIED, ids=lambda f: f.__name__.strip("_"))
def test_agency_staff_without_an_effective_grant_get_404_on_the_stores_compliance_routes(
    client, clerk, alpine, beach, agency, agent, audit_export, setup
):
    setup(alpine, beach, agency, agent)
    answers = _owner_route_answers(client, clerk, alpine, audit_export)
    assert {k: v for k, v in answers.items() if v != 404} == {}


@pytest.mark.parametrize("level", [GrantLevel.VIEWER, GrantLevel.MANAGER])
def test_agency_staff_with_a_grant_never_reach_the_stores_compliance_routes(
    client, clerk, alpine, agency, agent, audit_export, level
):
    AccessGrantFactory(agency=agency, merchant=alpine, level=level, can_see_pii=True, can_see_costs=True)
    answers = _owner_route_answers(client, clerk, alpine, audit_export)
    # the privacy page answers a non-owner as a stranger (its files hold a customer's personal data)
    privacy = answers.pop(f"GET /m/{alpine.pk}/privacy/")
    pages = {k: v for k, v in answers.items() if k.split()[1].startswith("/m/")}
    apis = {k: v for k, v in answers.items() if k.split()[1].startswith("/api/")}
    assert (privacy, set(pages.values()), set(apis.values())) == (404, {403}, {404}), answers
