"""Clerk's user webhooks, signed by the sandbox the way Svix signs them, drop the cached address."""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging

import pytest
from django.core.cache import cache
from svix.webhooks import Webhook

from notifications.selectors import email_cache_key, user_email_get

pytestmark = pytest.mark.django_db

SECRET = "whsec_" + base64.b64encode(b"notifications-test-webhook-secret").decode()


@pytest.fixture
def webhook(settings, live_server, sandbox):
    settings.CLERK_WEBHOOK_SECRET = SECRET
    target = f"{live_server.url}/webhooks/clerk/"

    def send(event_type: str, user_id: str, **extra) -> dict:
        payload = {"target_url": target, "type": event_type, "user_id": user_id, "secret": SECRET, **extra}
        return sandbox.session.post(f"{sandbox.base_url}/_control/clerk/webhooks", json=payload, timeout=10).json()

    return send


@pytest.mark.parametrize("event_type", ["user.updated", "user.deleted"])
def test_signed_user_event_drops_the_cached_address(clerk, sandbox, webhook, event_type):
    clerk.user("user_ada", email="ada@example.com")
    assert user_email_get("user_ada") == "ada@example.com"
    clerk.user("user_ada", email="ada@new.example.com")

    answer = webhook(event_type, "user_ada")

    assert answer["status"] == 200, answer
    assert json.loads(answer["body"]) == {"ok": True}
    assert cache.get(email_cache_key("user_ada")) is None
    assert user_email_get("user_ada") == "ada@new.example.com"


def test_forged_signature_is_refused_and_changes_nothing(clerk, webhook, caplog):
    clerk.user("user_ada", email="ada@example.com")
    user_email_get("user_ada")
    answer = webhook("user.updated", "user_ada", forge=True)
    assert answer["status"] == 400
    assert json.loads(answer["body"]) == {"error": "invalid signature"}
    assert cache.get(email_cache_key("user_ada")) == "ada@example.com"
    assert SECRET not in caplog.text


def test_unsigned_and_stale_requests_are_refused(client, settings, clerk):
    settings.CLERK_WEBHOOK_SECRET = SECRET
    cache.set(email_cache_key("user_ada"), "ada@example.com")
    body = json.dumps({"type": "user.deleted", "data": {"id": "user_ada", "deleted": True}})
    assert client.post("/webhooks/clerk/", body, content_type="application/json").status_code == 400
    # A correctly signed message from an hour ago is a replay.
    old = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    signature = Webhook(SECRET).sign("msg_1", old, body)
    response = client.post(
        "/webhooks/clerk/",
        body,
        content_type="application/json",
        HTTP_SVIX_ID="msg_1",
        HTTP_SVIX_TIMESTAMP=str(int(old.timestamp())),
        HTTP_SVIX_SIGNATURE=signature,
    )
    assert response.status_code == 400
    assert cache.get(email_cache_key("user_ada")) == "ada@example.com"


def test_without_a_secret_the_endpoint_answers_503_and_logs(client, settings, caplog):
    settings.CLERK_WEBHOOK_SECRET = ""
    cache.set(email_cache_key("user_ada"), "ada@example.com")
    with caplog.at_level(logging.ERROR, logger="notifications.views"):
        response = client.post("/webhooks/clerk/", "{}", content_type="application/json")
    assert response.status_code == 503
    assert "CLERK_WEBHOOK_SECRET is not set" in caplog.text
    assert cache.get(email_cache_key("user_ada")) == "ada@example.com"


def test_other_events_are_acknowledged_and_ignored(client, settings):
    settings.CLERK_WEBHOOK_SECRET = SECRET
    cache.set(email_cache_key("user_ada"), "ada@example.com")
    body = json.dumps({"type": "session.created", "data": {"id": "user_ada"}})
    now = dt.datetime.now(dt.UTC)
    response = client.post(
        "/webhooks/clerk/",
        body,
        content_type="application/json",
        HTTP_SVIX_ID="msg_2",
        HTTP_SVIX_TIMESTAMP=str(int(now.timestamp())),
        HTTP_SVIX_SIGNATURE=Webhook(SECRET).sign("msg_2", now, body),
    )
    assert response.status_code == 200
    assert cache.get(email_cache_key("user_ada")) == "ada@example.com"


@pytest.mark.parametrize(
    "body",
    ["[" * 10_000 + "]" * 10_000, '{"type": "user.deleted", "data": {"id": NaN}}', "\u00ff not json", "[1, 2]"],
    ids=["nested-10000-deep", "nan", "not-json", "not-an-object"],
)
def test_a_signed_body_that_is_not_a_clerk_event_is_a_400(client, settings, body):
    settings.CLERK_WEBHOOK_SECRET = SECRET
    now = dt.datetime.now(dt.UTC)
    response = client.post(
        "/webhooks/clerk/",
        body,
        content_type="application/json",
        HTTP_SVIX_ID="msg_3",
        HTTP_SVIX_TIMESTAMP=str(int(now.timestamp())),
        HTTP_SVIX_SIGNATURE=Webhook(SECRET).sign("msg_3", now, body),
    )
    assert response.status_code == 400
    assert response.json() == {"error": "not a Clerk event"}
