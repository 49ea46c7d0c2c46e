"""Control API: reset, call log, route list, dev user list."""

from __future__ import annotations

import json

import pytest
import requests
from clerk_backend_api import Clerk, models

from sandbox import SandboxControl, SandboxServer


def test_call_log_counts_calls_per_route_without_secrets(
    clerk_sdk: Clerk, control: SandboxControl, secret_key: str
) -> None:
    clerk_sdk.users.get(user_id="user_startup")
    clerk_sdk.users.get(user_id="user_startup")
    with pytest.raises(models.ClerkErrors):
        clerk_sdk.users.get(user_id="user_missing")
    control.clerk_dev_users()

    calls = control.calls("clerk.users.get")

    assert [(c["method"], c["path"], c["status"]) for c in calls] == [
        ("GET", "/clerk/v1/users/user_startup", 200),
        ("GET", "/clerk/v1/users/user_startup", 200),
        ("GET", "/clerk/v1/users/user_missing", 404),
    ]
    assert len(control.calls()) == 4  # control calls are not logged, dev calls are
    assert secret_key not in json.dumps(control.calls())


def test_unmatched_paths_are_logged_without_a_route(server: SandboxServer, control: SandboxControl) -> None:
    response = requests.get(f"{server.url}/clerk/v2/users/user_startup", timeout=5)

    assert response.status_code == 404
    assert [(c["route"], c["status"]) for c in control.calls()] == [(None, 404)]


def test_wrong_method_is_405(server: SandboxServer, control: SandboxControl) -> None:
    response = requests.delete(f"{server.url}/clerk/v1/jwks", timeout=5)

    assert response.status_code == 405
    assert "GET" in response.headers["Allow"]


def test_reset_restores_startup_seed_and_clears_everything_else(
    server: SandboxServer, clerk_sdk: Clerk, control: SandboxControl
) -> None:
    kid_before = server.state.clerk.key_pair.kid
    control.seed_clerk_user("user_runtime", email_addresses=["runtime@example.com"])
    control.seed_clerk_user("user_startup", first_name="Overwritten")
    control.delete_clerk_user("user_startup")
    control.clerk_organization_put("org_a", name="A")
    clerk_sdk.organization_invitations.create(organization_id="org_a", email_address="x@example.com", role="org:admin")
    control.fault("clerk.users.get", 500, times=3)

    control.reset()

    assert control.calls() == [] and control.faults() == []
    assert [u["id"] for u in control.clerk_dev_users()] == ["user_startup"]
    assert clerk_sdk.users.get(user_id="user_startup").first_name == "Stella"
    with pytest.raises(models.ClerkErrors) as caught:  # organizations are gone with their invitations
        clerk_sdk.organization_invitations.list(organization_id="org_a")
    assert caught.value.status_code == 404
    assert control.clerk_events() == []
    assert server.state.clerk.key_pair.kid == kid_before


def test_routes_lists_every_named_route(control: SandboxControl) -> None:
    names = {r["name"] for r in control.routes()}

    assert {
        "clerk.users.get",
        "clerk.jwks.get",
        "clerk.organization_invitations.create",
        "clerk.organization_invitations.list",
        "clerk.dev.session_token",
        "clerk.dev.jwt_public_key",
        "clerk.dev.users",
        "control.reset",
        "control.faults.create",
        "control.calls.list",
    } <= names


def test_calls_filter_with_unknown_route_is_refused(server: SandboxServer, control: SandboxControl) -> None:
    response = requests.get(f"{server.url}/_control/calls", params={"route": "clerk.user.get"}, timeout=5)

    assert response.status_code == 400


def test_dev_users_lists_name_and_primary_email(control: SandboxControl) -> None:
    control.seed_clerk_user(
        "user_dev",
        first_name="Dev",
        last_name="Eloper",
        email_addresses=["other@example.com", "dev@example.com"],
        primary_email="dev@example.com",
    )

    assert control.clerk_dev_users()[-1] == {
        "id": "user_dev",
        "first_name": "Dev",
        "last_name": "Eloper",
        "name": "Dev Eloper",
        "email_address": "dev@example.com",
    }


def test_malformed_json_gets_a_clerk_shaped_400(
    server: SandboxServer, control: SandboxControl, secret_key: str
) -> None:
    response = requests.post(
        f"{server.url}/clerk/v1/organizations/org_a/invitations",
        data="{not json",
        headers={"Authorization": f"Bearer {secret_key}", "Content-Type": "application/json"},
        timeout=5,
    )

    assert response.status_code == 400
    assert response.json()["errors"][0]["code"] == "malformed_request"
