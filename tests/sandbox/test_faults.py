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


# --- what proxies and overloaded token endpoints answer (issue 12, item 13) -------------------------

HTML_502 = (
    "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center></body></html>"
)
GOOGLE_REFRESH = {"grant_type": "refresh_token", "refresh_token": "1//x", "client_id": "c", "client_secret": "s"}


def test_google_token_endpoint_answers_an_html_502_like_a_proxy(server: SandboxServer, control: SandboxControl) -> None:
    control.fault("google.oauth.token", 502, body=HTML_502, headers={"Content-Type": "text/html; charset=UTF-8"})

    answer = requests.post(f"{server.url}/google/token", data=GOOGLE_REFRESH, timeout=5)

    assert answer.status_code == 502
    assert answer.headers["Content-Type"] == "text/html; charset=UTF-8"
    assert answer.text == HTML_502
    with pytest.raises(ValueError):
        answer.json()
    assert [(c["status"], c["faulted"]) for c in control.calls("google.oauth.token")] == [(502, True)]


@pytest.mark.parametrize("body", ["", "upstream connect error or disconnect/reset before headers"])
def test_token_endpoints_answer_a_non_json_500(server: SandboxServer, control: SandboxControl, body: str) -> None:
    control.fault("google.oauth.token", 500, body=body)
    control.fault("meta.oauth.access_token", 500, body=body)

    google = requests.post(f"{server.url}/google/token", data=GOOGLE_REFRESH, timeout=5)
    meta = requests.get(f"{server.url}/meta/graph/v25.0/oauth/access_token", timeout=5)

    for answer in (google, meta):
        assert answer.status_code == 500
        assert answer.headers["Content-Type"].startswith("text/plain")
        assert answer.text == body


def test_google_token_endpoint_answers_429_with_retry_after(server: SandboxServer, control: SandboxControl) -> None:
    control.fault("google.oauth.token", 429, headers={"Retry-After": 120})

    first = requests.post(f"{server.url}/google/token", data=GOOGLE_REFRESH, timeout=5)
    second = requests.post(f"{server.url}/google/token", data=GOOGLE_REFRESH, timeout=5)

    assert first.status_code == 429
    assert first.headers["Retry-After"] == "120"
    assert set(first.json()) == {"error", "error_description"}  # the token endpoint's RFC 6749 shape
    assert second.status_code == 400  # the fault is spent: the real handler refuses the unknown token
    assert second.json()["error"] == "invalid_grant"


def test_meta_token_endpoint_answers_429_with_retry_after(server: SandboxServer, control: SandboxControl) -> None:
    control.fault("meta.oauth.access_token", 429, headers={"Retry-After": "Wed, 21 Oct 2037 07:28:00 GMT"})

    answer = requests.get(f"{server.url}/meta/graph/v25.0/oauth/access_token", timeout=5)

    assert answer.status_code == 429
    assert answer.headers["Retry-After"] == "Wed, 21 Oct 2037 07:28:00 GMT"
    assert answer.json()["error"]["code"] == 4  # Graph's throttling code


def test_a_token_endpoint_hangs_past_the_client_read_timeout(server: SandboxServer, control: SandboxControl) -> None:
    control.fault("google.oauth.token", delay=0.6)

    with pytest.raises(requests.ReadTimeout):
        requests.post(f"{server.url}/google/token", data=GOOGLE_REFRESH, timeout=(1.0, 0.2))
    deadline = time.monotonic() + 5
    while not control.calls("google.oauth.token") and time.monotonic() < deadline:
        time.sleep(0.05)  # the sandbox logs the call once it has sent its slow answer
    [call] = control.calls("google.oauth.token")
    assert call["faulted"] and call["duration_ms"] >= 600
