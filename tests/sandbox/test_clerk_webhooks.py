"""The Clerk webhook sender: Svix-signed user events POSTed to a target the test controls."""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from svix.webhooks import Webhook, WebhookVerificationError

from sandbox import SandboxControl, SandboxServer

SECRET = "whsec_" + base64.b64encode(b"sandbox-suite-webhook-secret").decode()


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]]

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"ok": true}')

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def receiver() -> Iterator[tuple[str, list]]:
    received: list = []
    handler = type("Receiver", (_Receiver,), {"received": received})
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}/hook", received
    httpd.shutdown()
    httpd.server_close()


def _send(server: SandboxServer, **payload) -> requests.Response:
    return requests.post(f"{server.url}/_control/clerk/webhooks", json=payload, timeout=10)


def test_user_updated_carries_the_user_and_a_valid_svix_signature(server, control: SandboxControl, receiver):
    target, received = receiver
    control.seed_clerk_user("user_1", first_name="Ada", email_addresses=["ada@example.com"])
    answer = _send(server, target_url=target, type="user.updated", user_id="user_1", secret=SECRET)
    assert answer.status_code == 200
    assert answer.json()["status"] == 200
    assert answer.json()["body"] == '{"ok": true}'
    [(headers, body)] = received
    assert headers["svix-id"] == answer.json()["svix_id"]
    Webhook(SECRET).verify(body, headers)  # raises if the signature is wrong
    event = json.loads(body)
    assert event["type"] == "user.updated"
    assert event["object"] == "event"
    assert event["data"]["id"] == "user_1"
    assert event["data"]["email_addresses"][0]["email_address"] == "ada@example.com"


def test_user_deleted_needs_no_existing_user(server, control, receiver):
    target, received = receiver
    assert _send(server, target_url=target, type="user.deleted", user_id="user_gone", secret=SECRET).status_code == 200
    event = json.loads(received[0][1])
    assert event["data"] == {"deleted": True, "id": "user_gone", "object": "user"}


def test_forged_events_do_not_verify(server, control, receiver):
    target, received = receiver
    _send(server, target_url=target, type="user.deleted", user_id="u", secret=SECRET, forge=True)
    headers, body = received[0]
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(body, headers)


def test_the_secret_can_come_from_the_environment(server, control, receiver, monkeypatch):
    target, received = receiver
    monkeypatch.setenv("SANDBOX_CLERK_WEBHOOK_SECRET", SECRET)
    assert _send(server, target_url=target, type="user.deleted", user_id="u").status_code == 200
    Webhook(SECRET).verify(received[0][1], received[0][0])


@pytest.mark.parametrize(
    ("payload", "status"),
    [
        ({"target_url": "ftp://x", "type": "user.updated", "user_id": "u"}, 400),
        ({"target_url": "http://127.0.0.1:1/", "type": "session.created", "user_id": "u"}, 400),
        ({"target_url": "http://127.0.0.1:1/", "type": "user.updated", "user_id": ""}, 400),
        ({"target_url": "http://127.0.0.1:1/", "type": "user.updated", "user_id": "nobody"}, 404),
        ({"target_url": "http://127.0.0.1:1/", "type": "user.deleted", "user_id": "u", "secret": "whsec_%%%"}, 400),
        ({"target_url": "http://127.0.0.1:1/", "type": "user.deleted", "user_id": "u"}, 502),
    ],
)
def test_bad_requests_and_unreachable_targets(server, control, monkeypatch, payload, status):
    monkeypatch.setenv("SANDBOX_CLERK_WEBHOOK_SECRET", SECRET)
    assert _send(server, **payload).status_code == status


def test_without_any_secret_it_refuses(server, control, monkeypatch):
    monkeypatch.delenv("SANDBOX_CLERK_WEBHOOK_SECRET", raising=False)
    answer = _send(server, target_url="http://127.0.0.1:1/", type="user.deleted", user_id="u")
    assert answer.status_code == 400
    assert "SANDBOX_CLERK_WEBHOOK_SECRET" in answer.json()["error"]
