"""Scripted faults: what the next calls to a route answer."""

from __future__ import annotations

import time

import pytest
import requests
from clerk_backend_api import Clerk, models

from sandbox import SandboxControl, SandboxControlError, SandboxServer


def test_429_with_retry_after_reaches_the_sdk(clerk_sdk: Clerk, control: SandboxControl) -> None:
    control.fault("clerk.users.get", 429, headers={"Retry-After": 2})

    with pytest.raises(models.SDKError) as caught:
        clerk_sdk.users.get(user_id="user_startup")

    assert caught.value.status_code == 429
    assert caught.value.headers["retry-after"] == "2"
    # Without a scripted body the fault speaks Clerk's error shape.
    assert '"code": "too_many_requests"' in caught.value.body


def test_503_twice_then_success_when_sdk_retries_are_off(server: SandboxServer, control: SandboxControl) -> None:
    control.fault("clerk.users.get", 503, times=2)
    clerk_sdk = Clerk(bearer_auth="sk_test_no_retries", server_url=f"{server.url}/clerk/v1", retry_config=None)

    for _ in range(2):
        with pytest.raises(models.SDKError) as caught:
            clerk_sdk.users.get(user_id="user_startup")
        assert caught.value.status_code == 503
    user = clerk_sdk.users.get(user_id="user_startup")

    assert user.id == "user_startup"
    calls = control.calls("clerk.users.get")
    assert [(c["status"], c["faulted"]) for c in calls] == [(503, True), (503, True), (200, False)]
    assert control.faults() == []


def test_sdk_default_retries_ride_over_two_503s(clerk_sdk: Clerk, control: SandboxControl) -> None:
    # The SDK retries 5xx by default (exponential backoff from 0.5 s, for up to an hour in total).
    control.fault("clerk.users.get", 503, times=2)

    user = clerk_sdk.users.get(user_id="user_startup")

    assert user.id == "user_startup"
    assert [c["status"] for c in control.calls("clerk.users.get")] == [503, 503, 200]


def test_faults_are_consumed_in_the_order_scripted(server: SandboxServer, control: SandboxControl) -> None:
    control.fault("clerk.dev.users", 500)
    control.fault("clerk.dev.users", 429, body={"errors": [], "custom": True})
    control.fault("clerk.dev.users", 502, body="<html>Bad gateway</html>")
    url = f"{server.url}/clerk/_dev/users"

    answers = [requests.get(url, timeout=5) for _ in range(4)]

    assert [a.status_code for a in answers] == [500, 429, 502, 200]
    assert answers[1].json() == {"errors": [], "custom": True}
    assert answers[2].headers["Content-Type"].startswith("text/plain")
    assert answers[2].text == "<html>Bad gateway</html>"


def test_delay_only_fault_slows_the_call_and_passes_through(clerk_sdk: Clerk, control: SandboxControl) -> None:
    control.fault("clerk.users.get", delay=0.4, headers={"X-Sandbox-Slow": "yes"})

    started = time.monotonic()
    user = clerk_sdk.users.get(user_id="user_startup")

    assert time.monotonic() - started >= 0.4
    assert user.id == "user_startup"
    [call] = control.calls("clerk.users.get")
    assert (call["status"], call["faulted"]) == (200, True)
    assert call["duration_ms"] >= 400


def test_delay_longer_than_client_timeout_times_out(
    server: SandboxServer, control: SandboxControl, secret_key: str
) -> None:
    control.fault("clerk.users.get", delay=0.6)

    with pytest.raises(requests.Timeout):
        requests.get(
            f"{server.url}/clerk/v1/users/user_startup",
            headers={"Authorization": f"Bearer {secret_key}"},
            timeout=0.2,
        )


def test_fault_applies_to_its_route_only(clerk_sdk: Clerk, control: SandboxControl) -> None:
    control.fault("clerk.jwks.get", 500)

    assert clerk_sdk.users.get(user_id="user_startup").id == "user_startup"
    assert len(control.faults()) == 1


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"route": "clerk.users.nope", "status": 500}, "unknown route 'clerk.users.nope'"),
        ({"route": "control.reset", "status": 500}, "unknown route 'control.reset'"),
        ({"route": "clerk.users.get", "status": 700}, "status must be"),
        ({"route": "clerk.users.get", "status": 500, "times": 0}, "times must be"),
        ({"route": "clerk.users.get", "delay": -1}, "delay must be"),
        ({"route": "clerk.users.get"}, "needs a status, a delay or headers"),
        ({"route": "clerk.users.get", "body": {}}, "body needs a status"),
        ({"route": "clerk.users.get", "status": 500, "tims": 2}, "unknown fault fields"),
    ],
)
def test_invalid_faults_are_refused(control: SandboxControl, payload: dict, message: str) -> None:
    with pytest.raises(SandboxControlError) as caught:
        control._request("POST", "/_control/faults", json=payload)

    assert caught.value.status_code == 400
    assert message in caught.value.body
