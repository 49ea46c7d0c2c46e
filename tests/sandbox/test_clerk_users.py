"""The Clerk users API as the official SDK sees it."""

from __future__ import annotations

import pytest
import requests
from clerk_backend_api import Clerk, models

from sandbox import SandboxControl, SandboxControlError, SandboxServer, SandboxState


def test_sdk_parses_seeded_user_with_two_addresses_and_resolves_primary(
    clerk_sdk: Clerk, control: SandboxControl
) -> None:
    control.seed_clerk_user(
        "user_two_mails",
        first_name="Ada",
        last_name="Lovelace",
        email_addresses=[
            {"email_address": "ada.old@example.com", "verified": False},
            "ada@example.com",
        ],
        primary_email="ada@example.com",
        public_metadata={"plan": "pro"},
    )

    user = clerk_sdk.users.get(user_id="user_two_mails")

    assert (user.id, user.first_name, user.last_name) == ("user_two_mails", "Ada", "Lovelace")
    assert user.public_metadata == {"plan": "pro"}
    primary = next(e for e in user.email_addresses if e.id == user.primary_email_address_id)
    assert primary.email_address == "ada@example.com"
    statuses = {e.email_address: e.verification.status.value for e in user.email_addresses}
    assert statuses == {"ada.old@example.com": "unverified", "ada@example.com": "verified"}
    assert user.created_at > 1_600_000_000_000  # Unix milliseconds, not seconds


def test_primary_email_defaults_to_first_address(clerk_sdk: Clerk, control: SandboxControl) -> None:
    control.seed_clerk_user("user_default_primary", email_addresses=["first@example.com", "second@example.com"])

    user = clerk_sdk.users.get(user_id="user_default_primary")

    primary = next(e for e in user.email_addresses if e.id == user.primary_email_address_id)
    assert primary.email_address == "first@example.com"


def test_user_without_email_has_null_primary(clerk_sdk: Clerk, control: SandboxControl) -> None:
    control.seed_clerk_user("user_no_mail", first_name="Nomail")

    user = clerk_sdk.users.get(user_id="user_no_mail")

    assert user.email_addresses == []
    assert user.primary_email_address_id is None


def test_unknown_user_raises_typed_sdk_error_with_clerk_body(clerk_sdk: Clerk) -> None:
    with pytest.raises(models.ClerkErrors) as caught:
        clerk_sdk.users.get(user_id="user_missing")

    assert caught.value.status_code == 404
    [error] = caught.value.data.errors
    assert (error.code, error.message) == ("resource_not_found", "not found")
    assert error.long_message == "No user was found with id user_missing"


def test_deleted_user_is_not_found(clerk_sdk: Clerk, control: SandboxControl) -> None:
    control.seed_clerk_user("user_leaving", email_addresses=["leaving@example.com"])
    control.delete_clerk_user("user_leaving")

    with pytest.raises(models.ClerkErrors) as caught:
        clerk_sdk.users.get(user_id="user_leaving")
    assert caught.value.status_code == 404


def test_deleting_unknown_user_is_refused(control: SandboxControl) -> None:
    with pytest.raises(SandboxControlError) as caught:
        control.delete_clerk_user("user_never_was")
    assert caught.value.status_code == 404


def test_seeding_again_replaces_the_user(clerk_sdk: Clerk, control: SandboxControl) -> None:
    control.seed_clerk_user("user_renamed", first_name="Before", email_addresses=["a@example.com"])
    control.seed_clerk_user("user_renamed", first_name="After", email_addresses=["b@example.com"])

    user = clerk_sdk.users.get(user_id="user_renamed")

    assert user.first_name == "After"
    assert [e.email_address for e in user.email_addresses] == ["b@example.com"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"id": "user_x", "primary_email": "nobody@example.com"}, "not one of the user's email addresses"),
        ({"id": "user_x", "nickname": "typo"}, "unknown user fields: ['nickname']"),
        ({"id": "user_x", "email_addresses": [{"email_address": "not-an-email"}]}, "not an email address"),
        ({"id": "user_x", "email_addresses": [{"email_address": "a@x.io", "verified": "yes"}]}, "true or false"),
    ],
)
def test_invalid_seed_specs_are_refused_with_a_reason(
    server: SandboxServer, control: SandboxControl, spec: dict, message: str
) -> None:
    response = requests.post(f"{server.url}/_control/clerk/users", json=spec, timeout=5)

    assert response.status_code == 400
    assert message in response.json()["error"]


@pytest.mark.parametrize(
    "authorization",
    [None, "sk_test_no_scheme", "Basic sk_test_abc", "Bearer pk_test_publishable", "Bearer "],
)
def test_backend_routes_demand_a_bearer_secret_key(
    server: SandboxServer, control: SandboxControl, authorization: str | None
) -> None:
    headers = {"Authorization": authorization} if authorization is not None else {}

    response = requests.get(f"{server.url}/clerk/v1/users/user_startup", headers=headers, timeout=5)

    assert response.status_code == 401
    [error] = response.json()["errors"]
    assert error["code"] == "authentication_invalid"


def test_configured_secret_key_must_match() -> None:
    state = SandboxState(clerk_secret_key="sk_test_the_right_one", clerk_seed_users=[{"id": "user_a"}])
    with SandboxServer(state=state) as server:
        wrong = Clerk(bearer_auth="sk_test_another", server_url=f"{server.url}/clerk/v1")
        right = Clerk(bearer_auth="sk_test_the_right_one", server_url=f"{server.url}/clerk/v1")

        with pytest.raises(models.ClerkErrors) as caught:
            wrong.users.get(user_id="user_a")
        assert caught.value.status_code == 401
        assert caught.value.data.errors[0].code == "authentication_invalid"
        assert right.users.get(user_id="user_a").id == "user_a"
