"""Agency-owned dashboard templates: exactly one owner, saved through the agency's API, applied on any store that
granted the agency access (page and API), never on another store, never edited from a store's pages."""

from __future__ import annotations

import pytest
from django.db import IntegrityError, transaction
from django.urls import reverse

from accounts.choices import Role
from agencies.choices import GrantLevel
from compliance.models import AuditEvent
from dashboards.models import DashboardTemplate
from tests.accounts.factories import MembershipFactory
from tests.agencies.portfolio_fixtures import *  # noqa: F403 — its fixtures (this module's `agency` is the portfolio's)

from .portfolio_fixtures import agency_make, grant_make, member_make

pytestmark = pytest.mark.django_db(databases=["default", "warehouse"])

LAYOUT = [{"type": "kpi", "metric": "net_revenue", "options": {"title": "Revenue"}}]


def templates_url(agency):
    return reverse("api-agency-dashboard-template-list", args=[agency.pk])


@pytest.fixture
def ada_in_both(ada, alpine, beach):
    """Ada, the agency's admin, reaches a store's pages only through the agency's grant (accounts.access)."""
    return ada


@pytest.fixture
def agency_template(client, clerk, ada, agency):
    response = client.post(
        templates_url(agency), {"name": "Agency KPIs", "layout": LAYOUT}, content_type="application/json",
        **clerk.auth_header(ada.clerk_user_id),
    )  # fmt: skip
    assert response.status_code == 201, response.content
    return DashboardTemplate.objects.get(pk=response.json()["id"])


def test_a_template_has_exactly_one_owner(agency, alpine):
    for owner in ({}, {"agency": agency, "merchant": alpine}):
        with pytest.raises(IntegrityError), transaction.atomic():
            DashboardTemplate.objects.create(name="Orphan", layout=LAYOUT, created_by="user_x", **owner)


def test_the_agency_api_saves_lists_updates_and_deletes_with_audit(client, clerk, ada, agency, agency_template):
    auth = clerk.auth_header(ada.clerk_user_id)
    assert agency_template.agency == agency and agency_template.merchant is None
    assert [t["name"] for t in client.get(templates_url(agency), **auth).json()] == ["Agency KPIs"]
    again = client.post(templates_url(agency), {"name": "agency kpis", "layout": LAYOUT},
                        content_type="application/json", **auth)  # fmt: skip
    assert again.status_code == 409 and set(again.json()) == {"name"}
    detail = reverse("api-agency-dashboard-template-detail", args=[agency.pk, agency_template.pk])
    patched = client.patch(detail, {"version": 1, "name": "Agency overview"}, content_type="application/json", **auth)
    assert patched.status_code == 200 and patched.json()["version"] == 2
    assert client.delete(detail, **auth).status_code == 204
    actions = AuditEvent.objects.filter(target_id=str(agency_template.pk)).values_list("action", "metadata")
    assert [a for a, _ in actions.order_by("pk")] == [
        "dashboard_template.created", "dashboard_template.updated", "dashboard_template.deleted"
    ]  # fmt: skip
    assert all(m["agency_id"] == agency.pk for _, m in actions)


def test_non_members_and_other_agencies_get_404(client, clerk, agency, agency_template):
    outsider = clerk.user("user_eve")
    member_make(agency_make("Other Agency"), outsider)
    auth = clerk.auth_header(outsider)
    assert client.get(templates_url(agency), **auth).status_code == 404
    other = agency_make("Third Agency")
    member_make(other, clerk.user("user_tom"))
    detail = reverse("api-agency-dashboard-template-detail", args=[other.pk, agency_template.pk])
    assert client.get(detail, **clerk.auth_header("user_tom")).status_code == 404
    assert client.delete(detail, **clerk.auth_header("user_tom")).status_code == 404
    assert DashboardTemplate.objects.filter(pk=agency_template.pk).exists()


def test_applied_on_a_granted_store_and_404_on_any_other(client, clerk, ada_in_both, agency, alpine, beach,
                                                        agency_template):  # fmt: skip
    grant_make(agency, alpine)  # Beach has not granted the agency access
    client.cookies["__session"] = clerk.token(ada_in_both.clerk_user_id)
    listing = client.get(reverse("dashboards:template_list", args=[alpine.pk])).content.decode()
    assert 'data-testid="agency-templates"' in listing and "Agency KPIs" in listing
    page = client.get(reverse("dashboards:template_detail", args=[alpine.pk, agency_template.pk]))
    assert page.status_code == 200 and 'data-testid="agency-template"' in page.content.decode()
    assert 'aria-label="Edit template"' not in page.content.decode()  # the agency edits it, not the store
    applied = client.post(reverse("dashboards:template_apply", args=[alpine.pk]), {"template": agency_template.pk})
    assert applied.status_code == 302
    event = AuditEvent.objects.get(action="dashboard_template.applied")
    assert event.merchant_id == alpine.pk and event.metadata["agency_id"] == agency.pk
    api = reverse("api-dashboard-template-apply", args=[alpine.pk, agency_template.pk])
    body = client.post(api, **clerk.auth_header(ada_in_both.clerk_user_id))
    assert body.status_code == 200 and body.json()["widgets"][0]["metric"] == "net_revenue"
    # Beach never granted the agency: the template does not exist there.
    assert client.get(reverse("dashboards:template_detail", args=[beach.pk, agency_template.pk])).status_code == 404
    api_beach = reverse("api-dashboard-template-apply", args=[beach.pk, agency_template.pk])
    assert client.post(api_beach, **clerk.auth_header(ada_in_both.clerk_user_id)).status_code == 404
    assert "Agency KPIs" not in client.get(reverse("dashboards:template_list", args=[beach.pk])).content.decode()


def test_a_store_cannot_edit_or_delete_an_agency_template(client, clerk, ada_in_both, agency, alpine,
                                                          agency_template):  # fmt: skip
    grant_make(agency, alpine, level=GrantLevel.ANALYST)  # may edit the store's own templates, not the agency's
    client.cookies["__session"] = clerk.token(ada_in_both.clerk_user_id)
    edit = reverse("dashboards:template_edit", args=[alpine.pk, agency_template.pk])
    assert client.post(edit, {"version": 1, "name": "Mine now", "layout": "[]"}).status_code == 404
    assert client.post(reverse("dashboards:template_delete", args=[alpine.pk, agency_template.pk])).status_code == 404
    api = reverse("api-dashboard-template-detail", args=[alpine.pk, agency_template.pk])
    assert client.delete(api, **clerk.auth_header(ada_in_both.clerk_user_id)).status_code == 404
    agency_template.refresh_from_db()
    assert agency_template.name == "Agency KPIs"


def test_the_stores_own_people_do_not_see_the_agency_template(client, clerk, agency, alpine, agency_template):
    grant_make(agency, alpine)
    owner = MembershipFactory(clerk_user_id=clerk.user("user_olivia"), merchant=alpine, role=Role.OWNER)
    client.cookies["__session"] = clerk.token(owner.clerk_user_id)
    assert client.get(reverse("dashboards:template_detail", args=[alpine.pk, agency_template.pk])).status_code == 404


def test_an_ended_grant_takes_the_template_away(client, clerk, ada_in_both, agency, alpine,
                                                                   agency_template):  # fmt: skip
    from agencies.choices import GrantStatus

    grant = grant_make(agency, alpine)
    client.cookies["__session"] = clerk.token(ada_in_both.clerk_user_id)
    url = reverse("dashboards:template_detail", args=[alpine.pk, agency_template.pk])
    assert client.get(url).status_code == 200
    grant.status = GrantStatus.ENDED
    grant.save()
    assert client.get(url).status_code == 404


def test_an_agency_member_saves_a_stores_page_for_the_agency(client, clerk, ada, agency, alpine, beach):
    grant_make(agency, alpine, level=GrantLevel.ANALYST)
    grant_make(agency, beach)
    client.cookies["__session"] = clerk.token(ada.clerk_user_id)
    page = client.get(reverse("dashboards:overview", args=[alpine.pk])).content.decode()
    assert 'data-testid="save-for-agency"' in page
    save = reverse("dashboards:template_save", args=[alpine.pk])
    response = client.post(save, {"source": "page:overview", "name": "Agency overview", "owner": "agency"})
    template = DashboardTemplate.objects.get(name="Agency overview")
    assert template.agency == agency and template.merchant is None
    assert response["Location"] == reverse("dashboards:template_detail", args=[alpine.pk, template.pk])
    # It applies on the agency's other granted store too.
    assert client.get(reverse("dashboards:template_detail", args=[beach.pk, template.pk])).status_code == 200


def test_a_store_member_cannot_save_for_an_agency(client, clerk, agency, alpine):
    grant_make(agency, alpine)
    owner = MembershipFactory(clerk_user_id=clerk.user("user_olivia"), merchant=alpine, role=Role.OWNER)
    client.cookies["__session"] = clerk.token(owner.clerk_user_id)
    save = reverse("dashboards:template_save", args=[alpine.pk])
    client.post(save, {"source": "page:overview", "name": "Mine", "owner": "agency"})
    template = DashboardTemplate.objects.get(name="Mine")
    assert template.merchant == alpine and template.agency is None
