"""The local sign-in: pick a demo user, the sandbox mints a Clerk token, the normal path verifies it."""

import pytest
from django.urls import reverse
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from accounts.forms import USER_ID_INVALID, DevSignInForm
from accounts.models import Merchant
from compliance.models import AuditEvent
from tests.accounts.factories import MembershipFactory, MerchantFactory

pytestmark = pytest.mark.django_db


def test_dev_sign_in_lists_sandbox_users_and_lands_on_the_merchant(client, clerk):
    membership = MembershipFactory(clerk_user_id=clerk.user("user_dev", first_name="Dana", last_name="Dev"))
    page = client.get(reverse("accounts:sign_in"))
    assert page.status_code == 200
    assert "Sign in as Dana Dev" in page.content.decode()

    response = client.post(reverse("accounts:sign_in"), {"user_id": "user_dev", "next": "/"})

    assert response.url == "/"
    assert client.get("/").url == reverse("dashboards:overview", args=[membership.merchant.pk])
    store_page = client.get(reverse("accounts:merchant_home", args=[membership.merchant.pk]))
    assert store_page.status_code == 200
    assert membership.merchant.name in store_page.content.decode()
    signed_in = AuditEvent.objects.get(action="user.signed_in")
    assert signed_in.actor_id == "user_dev"


def test_sign_out_clears_the_session_and_is_audited(client, clerk):
    MembershipFactory(clerk_user_id=clerk.user("user_dev"))
    client.post(reverse("accounts:sign_in"), {"user_id": "user_dev"})
    response = client.post(reverse("accounts:sign_out"))
    assert response.status_code == 302
    assert response.cookies["__session"].value == ""
    assert AuditEvent.objects.filter(action="user.signed_out", actor_id="user_dev").count() == 1
    assert client.get("/").status_code == 302


def test_dev_sign_in_is_unavailable_without_the_sandbox(client, settings):
    settings.SANDBOX_URL = ""
    settings.CLERK_SIGN_IN_URL = ""
    response = client.get(reverse("accounts:sign_in"))
    assert response.status_code == 503
    assert client.post(reverse("accounts:sign_in"), {"user_id": "user_dev"}).status_code == 503


def test_production_sign_in_redirects_to_clerk(client, settings):
    settings.SANDBOX_URL = ""
    settings.CLERK_SIGN_IN_URL = "https://accounts.example.com/sign-in"
    response = client.get(reverse("accounts:sign_in"))
    assert response.status_code == 302
    assert response.url == "https://accounts.example.com/sign-in"


def test_open_redirect_through_next_is_refused(client, clerk):
    MembershipFactory(clerk_user_id=clerk.user("user_dev"))
    response = client.post(reverse("accounts:sign_in"), {"user_id": "user_dev", "next": "//evil.example/x"})
    assert response.url == "/"


def test_unknown_demo_user_is_refused(client, clerk):
    response = client.post(reverse("accounts:sign_in"), {"user_id": "user_ghost"}, follow=True)
    assert "No such demo user." in response.content.decode()
    assert "__session" not in client.cookies or client.cookies["__session"].value == ""
    assert not Merchant.objects.exists()


@pytest.mark.parametrize(
    "data",
    [{}, {"user_id": ""}, {"user_id": "user_dev\x00"}, {"user_id": "../users"}, {"user_id": "user_" + "x" * 100}],
    ids=["no user", "empty user", "NUL", "path", "too long"],
)
def test_a_sign_in_post_without_a_usable_user_is_a_field_error(client, clerk, sandbox, data):
    before = len(sandbox.calls("clerk.dev.session_token"))
    response = client.post(reverse("accounts:sign_in"), data)
    assert response.status_code == 400
    assert USER_ID_INVALID in response.context["form"].errors["user_id"]
    assert f"user_id: {USER_ID_INVALID}" in response.content.decode()
    assert "__session" not in response.cookies
    # Nothing the sandbox could not answer is sent to it.
    assert len(sandbox.calls("clerk.dev.session_token")) == before


@pytest.mark.parametrize("target", ["//evil.example/x", "/\\evil.example", "https://evil.example/", "javascript:x"])
def test_next_never_leaves_the_site(client, clerk, target):
    MembershipFactory(clerk_user_id=clerk.user("user_dev"))
    response = client.post(reverse("accounts:sign_in"), {"user_id": "user_dev", "next": target})
    assert response.status_code == 302
    assert response.url == "/"


GENERATED = hypothesis_settings(
    max_examples=40,
    deadline=None,
    derandomize=True,  # the same examples on every run
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
# Text as a browser can send it (no lone surrogates), with NUL, controls, slashes and non-ASCII weighted in.
awkward = st.text(
    alphabet=st.one_of(
        st.sampled_from(["\x00", "\x01", "\t", "\n", " ", "/", "\\", ":", "é", "\u202e", "%"]),
        st.characters(blacklist_categories=["Cs"]),
    ),
    max_size=80,
)
# Half the user ids look like one (user_...), so the examples reach the sandbox too.
user_ids = st.one_of(awkward, awkward.map(lambda s: "user_" + s), st.sampled_from(["user_dev", "user_ghost"]))
form_data = st.fixed_dictionaries({}, optional={"user_id": user_ids, "next": awkward, "other": awkward})


@GENERATED
@given(data=form_data)
def test_the_dev_sign_in_form_answers_every_input_with_a_field_error_or_a_clean_value(data):
    form = DevSignInForm(data)
    if form.is_valid():
        assert form.cleaned_data["user_id"].startswith("user_")
        assert form.cleaned_data["next"] == "/" or not form.cleaned_data["next"].startswith(("//", "/\\"))
    else:
        assert set(form.errors) <= {"user_id", "next"}


@pytest.fixture
def dev_user(clerk):
    return clerk.user("user_dev")


@GENERATED
@given(data=form_data)
def test_the_dev_sign_in_page_never_answers_5xx(client, dev_user, data):
    response = client.post(reverse("accounts:sign_in"), data)
    assert response.status_code in (302, 400), response.status_code
    if response.status_code == 302:
        assert response.url == "/sign-in/" or response.url.startswith("/")
        assert not response.url.startswith(("//", "/\\"))


@GENERATED
@given(name=awkward, shop=awkward, timezone=awkward, currency=awkward, key=awkward)
def test_the_merchant_admin_form_never_answers_5xx(admin_client, name, shop, timezone, currency, key):
    response = admin_client.post(
        reverse("admin:accounts_merchant_add"),
        {
            "name": name, "shop_domain": shop, "timezone": timezone, "currency": currency, "key": key,
            "is_active": "on",
            "memberships-TOTAL_FORMS": "1", "memberships-INITIAL_FORMS": "0",
            "memberships-0-clerk_user_id": name, "memberships-0-role": "owner",
        },
    )  # fmt: skip
    assert response.status_code in (200, 302), response.status_code
    if response.status_code == 200:
        assert response.context["adminform"].form.errors or response.context["inline_admin_formsets"]


@GENERATED
@given(clerk_user_id=awkward, role=awkward)
def test_the_membership_admin_form_never_answers_5xx(admin_client, clerk_user_id, role):
    merchant = MerchantFactory()
    response = admin_client.post(
        reverse("admin:accounts_membership_add"),
        {"merchant": str(merchant.pk), "clerk_user_id": clerk_user_id, "role": role},
    )
    assert response.status_code in (200, 302), response.status_code
