"""The portfolio page and API: who sees what (404 for anyone else), the figures both show, groups, sort and
filter, bad input answered with field errors."""

from __future__ import annotations

import pytest
from django.urls import reverse

from agencies.choices import AgencyRole, GrantStatus
from agencies.groups import GROUP_NAME_TAKEN, GROUP_STORE_UNKNOWN
from agencies.models import MerchantGroup
from compliance.models import AuditEvent
from tests.accounts.factories import MerchantFactory
from tests.agencies.portfolio_fixtures import *  # noqa: F403 — its fixtures (this module's `agency` is the portfolio's)

from .portfolio_fixtures import agency_make, assign, grant_make, member_make

pytestmark = pytest.mark.django_db(databases=["default", "warehouse"])


def page(agency, **query):
    return reverse("portfolio:page", args=[agency.pk]), query


def api(agency):
    return reverse("api-agency-portfolio", args=[agency.pk])


@pytest.fixture
def signed_in(client, clerk, ada):
    client.cookies["__session"] = clerk.token(ada.clerk_user_id)
    return client


def test_the_page_shows_a_tile_per_granted_store_with_blended_totals_and_links(signed_in, agency, granted, alpine):
    response = signed_in.get(*page(agency))
    html = response.content.decode()
    assert response.status_code == 200
    assert html.count('data-testid="store-tile"') == 2
    # the portfolio's own days (a store's "last 30 days" in its time zone can be other days)
    current = response.context["date_range"].current
    assert f'href="/m/{alpine.pk}/overview/?start={current.start:%Y-%m-%d}&amp;end={current.end:%Y-%m-%d}' in html
    portfolio = response.context["portfolio"]
    assert 'data-testid="blended-net-revenue"' not in html  # the keys are the metric keys
    assert 'data-testid="blended-net_revenue"' in html
    assert "$" in html and "€" in html  # Alpine's tile in dollars, Beach's in euros; totals in USD
    assert portfolio["blended"]["stores"] == 2


def test_the_api_answers_the_same_figures_as_the_page(signed_in, client, clerk, ada, agency, granted):
    page_portfolio = signed_in.get(*page(agency)).context["portfolio"]
    body = client.get(api(agency), **clerk.auth_header(ada.clerk_user_id)).json()
    assert body["currency"] == "USD" and body["group"] is None
    assert body["blended"]["current"]["net_revenue"] == str(page_portfolio["blended"]["current"]["net_revenue"])
    assert [s["name"] for s in body["stores"]] == ["Alpine Gear", "Beach Things"]
    assert body["stores"][1]["current"]["orders"] == page_portfolio["tiles"][1]["current"]["orders"]
    assert body["range"]["preset"] == "last_30_days"


def test_costs_hidden_by_a_grant_are_hidden_on_the_page_and_in_the_api(client, clerk, ada, agency, alpine, beach):
    grant_make(agency, alpine)
    grant_make(agency, beach, can_see_costs=False)
    client.cookies["__session"] = clerk.token(ada.clerk_user_id)
    html = client.get(*page(agency)).content.decode()
    assert "Costs hidden by the store" in html and "hidden</span>" in html
    body = client.get(api(agency), **clerk.auth_header(ada.clerk_user_id)).json()
    beach_entry = next(s for s in body["stores"] if s["merchant_id"] == beach.pk)
    assert beach_entry["current"]["ad_spend"] is None and beach_entry["current"]["mer"] is None
    assert beach_entry["can_see_costs"] is False and body["blended"]["costs_hidden"] == [beach.pk]


@pytest.mark.parametrize("case", ["not_a_member", "removed", "other_agency", "no_such_agency"])
def test_anyone_but_an_active_member_gets_404_from_page_and_api(client, clerk, agency, granted, case):
    from django.utils import timezone

    user = clerk.user("user_mallory")
    target = agency
    if case == "removed":
        member_make(agency, user).__class__.objects.filter(clerk_user_id=user).update(removed_at=timezone.now())
    elif case == "other_agency":
        member_make(agency_make("Other Agency"), user)
    elif case == "no_such_agency":
        target = type(agency)(pk=999999)
    client.cookies["__session"] = clerk.token(user)
    assert client.get(*page(target)).status_code == 404
    assert client.get(api(target), **clerk.auth_header(user)).status_code == 404


def test_signed_out_is_sent_to_sign_in_and_the_api_answers_401(client, agency):
    assert client.get(*page(agency)).status_code == 302
    assert client.get(api(agency)).status_code == 401


def test_only_active_grants_and_assigned_clients_are_shown(client, clerk, agency, alpine, beach):
    other = MerchantFactory(name="Ended Store")
    grant_make(agency, alpine)
    grant_make(agency, beach)
    grant_make(agency, other, status=GrantStatus.ENDED)
    member = member_make(agency, clerk.user("user_max"), role=AgencyRole.MEMBER)
    assign(member, beach)
    assign(member, other)
    client.cookies["__session"] = clerk.token("user_max")
    tiles = client.get(*page(agency)).context["portfolio"]["tiles"]
    assert [t["name"] for t in tiles] == ["Beach Things"]
    body = client.get(api(agency), **clerk.auth_header("user_max")).json()
    assert [s["merchant_id"] for s in body["stores"]] == [beach.pk]
    assert body["blended"]["stores"] == 1


def test_a_member_without_client_assignments_sees_no_store(client, clerk, agency, granted):
    member_make(agency, clerk.user("user_new"), role=AgencyRole.MEMBER)
    client.cookies["__session"] = clerk.token("user_new")
    response = client.get(*page(agency))
    assert response.status_code == 200
    assert 'data-testid="no-stores"' in response.content.decode()


def test_sort_and_problem_filter_on_page_and_api(signed_in, client, clerk, ada, agency, granted):
    response = signed_in.get(*page(agency, sort="orders", dir="asc"))
    orders = [t["current"]["orders"] for t in response.context["portfolio"]["tiles"]]
    assert orders == sorted(orders)
    auth = clerk.auth_header(ada.clerk_user_id)
    body = client.get(api(agency), {"sort": "net_revenue", "dir": "desc"}, **auth).json()
    revenue = [float(s["current"]["net_revenue"]) for s in body["stores"]]
    assert revenue == sorted(revenue, reverse=True)
    body = client.get(api(agency), {"problem": "no_data"}, **clerk.auth_header(ada.clerk_user_id)).json()
    assert body["stores"] == [] and body["blended"]["stores"] == 0


def test_bad_input_is_a_400_with_field_errors_never_a_500(signed_in, client, clerk, ada, agency, granted):
    bad = {"start": "2026-13-01", "end": "x", "sort": "evil", "dir": "up", "problem": "bad", "group": "abc"}
    body = client.get(api(agency), bad, **clerk.auth_header(ada.clerk_user_id))
    assert body.status_code == 400
    assert set(body.json()) == {"start", "end", "sort", "dir", "problem", "group"}
    response = signed_in.get(*page(agency, **bad))
    assert response.status_code == 400
    assert response.context["query"]["sort"] == "name"  # the defaults are shown, with the errors
    assert "Showing the defaults instead." in response.content.decode()


def test_groups_are_created_edited_and_deleted_and_audited(signed_in, agency, alpine, beach, granted):
    create = reverse("portfolio:group_create", args=[agency.pk])
    response = signed_in.post(create, {"name": "EU stores", "merchants": [beach.pk]})
    group = MerchantGroup.objects.get(agency=agency)
    assert response.status_code == 302 and response["Location"].endswith(f"?group={group.pk}")
    assert list(group.merchants.all()) == [beach]
    # The group's page: its stores only, and their totals.
    context = signed_in.get(*page(agency, group=group.pk)).context
    assert [t["name"] for t in context["portfolio"]["tiles"]] == ["Beach Things"]
    assert context["portfolio"]["blended"]["stores"] == 1
    update = reverse("portfolio:group_update", args=[agency.pk, group.pk])
    signed_in.post(update, {"name": "Europe", "merchants": [beach.pk, alpine.pk]})
    group.refresh_from_db()
    assert group.name == "Europe" and set(group.merchants.all()) == {alpine, beach}
    signed_in.post(reverse("portfolio:group_delete", args=[agency.pk, group.pk]))
    assert not MerchantGroup.objects.exists()
    actions = list(AuditEvent.objects.filter(target_type="agencies.merchantgroup").values_list("action", flat=True))
    assert sorted(actions) == ["merchant_group.created", "merchant_group.deleted", "merchant_group.updated"]


def test_a_group_takes_only_the_members_own_stores_and_a_unique_name(signed_in, agency, alpine, granted):
    create = reverse("portfolio:group_create", args=[agency.pk])
    stranger = MerchantFactory(name="Not a client")
    response = signed_in.post(create, {"name": "Sneaky", "merchants": [stranger.pk]}, follow=True)
    assert GROUP_STORE_UNKNOWN in response.content.decode()
    signed_in.post(create, {"name": "Main", "merchants": [alpine.pk]})
    response = signed_in.post(create, {"name": "MAIN", "merchants": []}, follow=True)
    assert GROUP_NAME_TAKEN in response.content.decode()
    assert list(MerchantGroup.objects.values_list("name", flat=True)) == ["Main"]


def test_another_agencys_group_is_404(signed_in, agency, granted):
    other = agency_make("Other Agency")
    group = MerchantGroup.objects.create(agency=other, name="Theirs", created_by="user_x")
    assert signed_in.post(reverse("portfolio:group_delete", args=[agency.pk, group.pk])).status_code == 404
    update = reverse("portfolio:group_update", args=[other.pk, group.pk])
    assert signed_in.post(update, {"name": "x"}).status_code == 404
    assert MerchantGroup.objects.filter(pk=group.pk, name="Theirs").exists()
