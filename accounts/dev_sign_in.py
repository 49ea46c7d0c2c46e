"""Local development only: sign in as a demo user through the sandbox's Clerk stand-in.

In production Clerk's hosted pages sign users in and set the `__session` cookie. Locally the sandbox
plays Clerk: it lists the demo users and mints a session token signed with its key, which the
normal verification path then checks like any other token.
"""

from __future__ import annotations

from dataclasses import dataclass

import requests
from django.conf import settings
from django.views.decorators.debug import sensitive_variables

DEV_SESSION_TTL_SECONDS = 8 * 60 * 60
_TIMEOUT = 5


class SandboxUnavailable(Exception):
    pass


@dataclass(frozen=True)
class DemoUser:
    id: str
    name: str
    email: str


def dev_sign_in_enabled() -> bool:
    return bool(settings.SANDBOX_URL) and settings.DEV


def _sandbox(method: str, path: str, **kwargs) -> requests.Response:
    try:
        response = requests.request(method, settings.SANDBOX_URL.rstrip("/") + path, timeout=_TIMEOUT, **kwargs)
    except requests.RequestException as exc:
        raise SandboxUnavailable(
            f"the sandbox at {settings.SANDBOX_URL} did not answer ({type(exc).__name__})"
        ) from exc
    if response.status_code >= 500:
        raise SandboxUnavailable(f"the sandbox answered {response.status_code}")
    return response


def demo_user_list() -> list[DemoUser]:
    response = _sandbox("GET", "/clerk/_dev/users")
    response.raise_for_status()
    return [DemoUser(id=u["id"], name=u["name"], email=u["email_address"] or "") for u in response.json()]


@sensitive_variables("response")  # it holds the minted session token
def dev_session_token_mint(*, user_id: str, authorized_party: str) -> str | None:
    """A session token for the user, or None when the sandbox has no such user."""
    response = _sandbox(
        "POST",
        "/clerk/_dev/session_token",
        json={"user_id": user_id, "azp": authorized_party, "ttl_seconds": DEV_SESSION_TTL_SECONDS},
    )
    if 400 <= response.status_code < 500:  # no such user, or not a user id the sandbox accepts (422)
        return None
    response.raise_for_status()
    return response.json()["token"]
