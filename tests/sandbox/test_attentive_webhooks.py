"""Attentive's webhook API in the sandbox (create/list/update/delete, its errors) and the signing, retrying emitter."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests

from sandbox import SandboxServer
from tests.connectors.providers import ProviderSandbox

EVENTS = ["sms.sent", "sms.message_link_click", "email.opened"]


@pytest.fixture
def providers(control) -> ProviderSandbox:
    return ProviderSandbox(control)


class _Receiver(BaseHTTPRequestHandler):
    received: list[tuple[dict[str, str], bytes]]
    script: list[int]  # statuses for the next requests; 0 drops the connection without an answer
    lock: threading.Lock

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        with self.lock:
            status = self.script.pop(0) if self.script else 200
            if status == 200:
                self.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
        if status == 0:
            self.close_connection = True
            self.connection.close()
            return
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"ok": true}' if status == 200 else b'{"error": "try later"}')

    def log_message(self, *args) -> None:
        pass


class Receiver:
    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.script: list[int] = []
        handler = type("H", (_Receiver,), {"received": self.received, "script": self.script, "lock": threading.Lock()})
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_port}/webhooks/attentive/abc/"


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    receiver = Receiver()
    thread = threading.Thread(target=receiver.httpd.serve_forever, daemon=True)
    thread.start()
    yield receiver
    receiver.httpd.shutdown()
    receiver.httpd.server_close()


def _api(server: SandboxServer, method: str, path: str, key: str | None, **kwargs) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.request(method, f"{server.url}/attentive/v1{path}", headers=headers, timeout=10, **kwargs)


def _emit(server: SandboxServer, webhook_id: str, **payload) -> requests.Response:
    return requests.post(f"{server.url}/_control/attentive/webhooks/{webhook_id}/emit", json=payload, timeout=120)


def test_create_returns_the_signing_key_once_and_list_never_shows_it(server, providers):
    key = providers.attentive_key(company="Hudson & Ivy")
    created = _api(server, "POST", "/webhooks", key, json={"url": "https://app.example/hook", "events": EVENTS})
    assert created.status_code == 201
    body = created.json()
    assert set(body) == {"id", "url", "type", "events", "companyId", "disabledAt", "signingKey"}
    assert body["events"] == EVENTS and body["disabledAt"] is None and len(body["signingKey"]) == 64

    other = _api(server, "POST", "/webhooks", key, json={"url": "https://app.example/b", "events": ["sms.sent"]})
    assert other.json()["signingKey"] != body["signingKey"]  # one key per webhook

    listed = _api(server, "GET", "/webhooks", key)
    assert listed.status_code == 200
    webhooks = listed.json()["webhooks"]
    assert [w["id"] for w in webhooks] == [body["id"], other.json()["id"]]
    assert all("signingKey" not in w for w in webhooks)
    assert body["signingKey"] not in listed.text
    # Another company sees none of them.
    assert _api(server, "GET", "/webhooks", providers.attentive_key(company="Other")).json() == {"webhooks": []}


def test_update_and_delete(server, providers):
    key = providers.attentive_key()
    webhook = _api(server, "POST", "/webhooks", key, json={"url": "https://a.example/", "events": EVENTS}).json()
    updated = _api(server, "PUT", f"/webhooks/{webhook['id']}", key, json={"events": ["sms.sent"], "disabled": True})
    assert updated.status_code == 200
    assert updated.json()["events"] == ["sms.sent"] and updated.json()["disabledAt"]
    assert _api(server, "DELETE", f"/webhooks/{webhook['id']}", key).status_code == 204
    assert _api(server, "GET", "/webhooks", key).json() == {"webhooks": []}
    gone = _api(server, "DELETE", f"/webhooks/{webhook['id']}", key)
    assert gone.status_code == 404 and gone.json() == {"errors": [{"status": 404, "message": "Webhook not found"}]}


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"url": "ftp://x", "events": ["sms.sent"]}, "url must be an http(s) URL"),
        ({"url": "https://x.example/", "events": []}, "events must be a non-empty list of event types"),
        ({"url": "https://x.example/", "events": ["SMS.SENT", "sms.sent"]}, "unknown event types: SMS.SENT"),
    ],
)
def test_create_refuses_bad_bodies_in_attentive_error_shape(server, providers, body, message):
    answer = _api(server, "POST", "/webhooks", providers.attentive_key(), json=body)
    assert answer.status_code == 400
    assert answer.json() == {"errors": [{"status": 400, "message": message}]}


def test_auth_errors(server, providers, control):
    body = {"url": "https://x.example/", "events": ["sms.sent"]}
    assert _api(server, "POST", "/webhooks", None, json=body).json() == {
        "errors": [{"status": 401, "message": "Unauthorized"}]
    }
    assert _api(server, "GET", "/webhooks", "not-a-key").status_code == 401
    scopeless = control._request("POST", "/_control/attentive/keys", json={"scopes": []}).json()["api_key"]
    forbidden = _api(server, "POST", "/webhooks", scopeless, json=body)
    assert forbidden.status_code == 403
    assert forbidden.json()["errors"][0]["status"] == 403
    # Another company's webhook is not found, not forbidden.
    webhook = _api(server, "POST", "/webhooks", providers.attentive_key(), json=body).json()
    assert _api(server, "DELETE", f"/webhooks/{webhook['id']}", providers.attentive_key()).status_code == 404
    # Faults answer in Attentive's shape too.
    control.fault("attentive.webhooks.create", 500)
    assert _api(server, "POST", "/webhooks", providers.attentive_key(), json=body).json()["errors"][0]["status"] == 500


def _webhook(server, providers, url: str) -> dict:
    key = providers.attentive_key(company="Hudson & Ivy")
    return _api(server, "POST", "/webhooks", key, json={"url": url, "events": EVENTS}).json()


def test_emitted_events_are_signed_hex_hmac_of_the_raw_body(server, providers, receiver):
    webhook = _webhook(server, providers, receiver.url)
    answer = _emit(server, webhook["id"], types=["sms.sent", "sms.message_link_click", "sms.subscribed"], count=3)
    assert answer.status_code == 200
    report = answer.json()
    assert report["delivered"] == 3 and report["undelivered"] == 0 and report["attempts"] == 3
    assert report["statuses"] == {"200": 3}
    assert len(receiver.received) == 3
    for headers, body in receiver.received:
        expected = hmac.new(webhook["signingKey"].encode(), body, hashlib.sha256).hexdigest()
        assert headers["x-attentive-hmac-sha256"] == expected
        assert "x-attentive-event-id" not in headers  # Attentive sends no event id
    # Delivered concurrently, in no particular order (as Attentive does).
    by_type = {event["type"]: event for event in (json.loads(body) for _, body in receiver.received)}
    sent, click, subscribed = by_type["sms.sent"], by_type["sms.message_link_click"], by_type["sms.subscribed"]
    assert sent["timestamp"] > 1_600_000_000_000  # milliseconds
    assert sent["company"]["company_id"] == webhook["companyId"]
    assert set(sent["message"]) >= {"id", "type", "name", "text", "channel"}
    assert click["link"]["url"].startswith("https://")
    assert subscribed["subscription"] == {"type": "MARKETING"} and subscribed["creative"]["type"] == "TEXT_TO_JOIN"


def test_given_events_are_sent_as_given_and_base64_forged_and_unsigned_variants(server, providers, receiver):
    webhook = _webhook(server, providers, receiver.url)
    raw = '{"type":"phone.subscribed","timestamp":1632945178104}'
    _emit(server, webhook["id"], events=[raw], signature="base64")
    headers, body = receiver.received[-1]
    assert body == raw.encode()
    digest = hmac.new(webhook["signingKey"].encode(), body, hashlib.sha256).digest()
    assert headers["x-attentive-hmac-sha256"] == base64.b64encode(digest).decode()

    _emit(server, webhook["id"], events=[{"type": "sms.sent"}], signature="forged")
    headers, body = receiver.received[-1]
    assert headers["x-attentive-hmac-sha256"] != hmac.new(webhook["signingKey"].encode(), body, "sha256").hexdigest()

    _emit(server, webhook["id"], events=[{"type": "sms.sent"}], signature="none")
    assert "x-attentive-hmac-sha256" not in receiver.received[-1][0]


def test_non_2xx_and_dropped_connections_are_retried_until_delivered(server, providers, receiver):
    webhook = _webhook(server, providers, receiver.url)
    receiver.script.extend([503, 0, 500])
    report = _emit(server, webhook["id"], count=1, base_delay=0.01).json()
    assert report["delivered"] == 1 and report["attempts"] == 4
    assert report["deliveries"] == [{"attempts": 4, "status": 200, "delivered": True, "answer": '{"ok": true}'}]
    assert len(receiver.received) == 1


def test_retries_are_bounded_and_the_failure_reported(server, providers, receiver):
    webhook = _webhook(server, providers, receiver.url)
    receiver.script.extend([401] * 10)
    report = _emit(server, webhook["id"], count=2, max_attempts=3, base_delay=0).json()
    assert report["delivered"] == 0 and report["undelivered"] == 2 and report["attempts"] == 6
    assert report["statuses"] == {"401": 2}


def test_an_unreachable_url_is_a_connection_error(server, providers, receiver):
    webhook = _webhook(server, providers, "http://127.0.0.1:9/nothing-listens")
    report = _emit(server, webhook["id"], count=1, max_attempts=2, base_delay=0).json()
    assert report["delivered"] == 0 and report["statuses"] == {"connection_error": 1}
    assert report["deliveries"][0]["answer"].startswith("connection error")


def test_emit_refuses_unknown_webhooks_and_bad_options(server, providers, receiver):
    assert _emit(server, "nope").status_code == 404
    webhook = _webhook(server, providers, receiver.url)
    assert _emit(server, webhook["id"], max_attempts=0).status_code == 400
    assert _emit(server, webhook["id"], signature="md5").status_code == 400
    assert _emit(server, webhook["id"], events=[]).status_code == 400
    assert receiver.received == []
