"""The sandbox's Shopify stand-in over real HTTP, without Django: consent, tokens, shop.json, webhooks."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests

from sandbox.providers.shopify import SANDBOX_API_KEY, SANDBOX_API_SECRET

SHOP = "demo-store.myshopify.com"
REDIRECT = "http://127.0.0.1:9/shopify/callback"


def admin(server, shop: str = SHOP) -> str:
    return f"{server.url}/shopify/{shop}/admin"


def signed_ok(params: dict[str, str], secret: str = SANDBOX_API_SECRET) -> bool:
    """Shopify's check (INGESTION.md §4), written independently of the sandbox's signer."""
    given = params["hmac"]
    rest = {k: v for k, v in params.items() if k not in ("hmac", "signature")}
    message = "&".join(f"{k}={v}" for k, v in sorted(rest.items()))
    return hmac.compare_digest(hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest(), given)


def consent(server, *, state: str = "nonce-1", decision: str = "approve", shop: str = SHOP) -> requests.Response:
    fields = {"client_id": SANDBOX_API_KEY, "scope": "read_orders", "redirect_uri": REDIRECT, "state": state}
    page = requests.get(f"{admin(server, shop)}/oauth/authorize", params=fields, timeout=5)
    assert page.status_code == 200 and "Install app" in page.text
    return requests.post(
        f"{admin(server, shop)}/oauth/authorize",
        data={**fields, "decision": decision},
        allow_redirects=False,
        timeout=5,
    )


def callback_params(server, **kwargs) -> dict[str, str]:
    answer = consent(server, **kwargs)
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith(REDIRECT + "?")
    return dict(parse_qsl(urlsplit(location).query))


def token_call(server, body: dict, shop: str = SHOP) -> requests.Response:
    creds = {"client_id": SANDBOX_API_KEY, "client_secret": SANDBOX_API_SECRET}
    return requests.post(f"{admin(server, shop)}/oauth/access_token", json={**creds, **body}, timeout=5)


def refresh(server, refresh_token: str) -> requests.Response:
    return token_call(server, {"grant_type": "refresh_token", "refresh_token": refresh_token})


def shop_json(server, token: str, shop: str = SHOP) -> requests.Response:
    return requests.get(
        f"{admin(server, shop)}/api/2026-01/shop.json", headers={"X-Shopify-Access-Token": token}, timeout=5
    )


def install(server) -> dict:
    params = callback_params(server)
    answer = token_call(server, {"code": params["code"], "expiring": "1"})
    assert answer.status_code == 200
    return answer.json()


def test_consent_redirects_with_a_signed_query(server, control):
    params = callback_params(server, state="abc123")
    assert set(params) == {"code", "hmac", "host", "shop", "state", "timestamp"}
    assert params["shop"] == SHOP and params["state"] == "abc123"
    assert base64.b64decode(params["host"] + "==").decode() == "admin.shopify.com/store/demo-store"
    assert signed_ok(params)
    assert not signed_ok({**params, "shop": "other.myshopify.com"})


def test_cancel_does_not_go_back_to_the_app(server, control):
    answer = consent(server, decision="cancel")
    assert answer.status_code == 200 and "not installed" in answer.text


def test_unknown_app_or_bad_shop_is_refused_on_the_consent_page(server, control):
    bad_app = requests.get(
        f"{admin(server)}/oauth/authorize", params={"client_id": "nope", "redirect_uri": REDIRECT}, timeout=5
    )
    assert bad_app.status_code == 400
    bad_shop = requests.get(
        f"{admin(server, 'evil.com')}/oauth/authorize",
        params={"client_id": SANDBOX_API_KEY, "redirect_uri": REDIRECT},
        timeout=5,
    )
    assert bad_shop.status_code == 404


def test_code_grant_gives_expiring_tokens_and_a_code_works_once(server, control):
    params = callback_params(server)
    answer = token_call(server, {"code": params["code"], "expiring": "1"})
    assert answer.status_code == 200
    body = answer.json()
    assert body["access_token"].startswith("shpat_") and body["refresh_token"].startswith("shprt_")
    assert body["expires_in"] == 3600 and body["refresh_token_expires_in"] == 7_776_000
    assert body["scope"] == "read_orders"

    again = token_call(server, {"code": params["code"], "expiring": "1"})
    assert again.status_code == 400 and again.json()["error"] == "invalid_grant"


def test_code_grant_without_expiring_is_refused_and_bad_client_secret_too(server, control):
    params = callback_params(server)
    answer = token_call(server, {"code": params["code"]})
    assert answer.status_code == 403 and "Non-expiring" in answer.json()["errors"]
    params = callback_params(server)
    wrong = token_call(server, {"code": params["code"], "expiring": "1", "client_secret": "wrong"})
    assert wrong.status_code == 401 and wrong.json()["error"] == "invalid_client"


def test_shop_json_needs_a_live_token_of_that_shop(server, control):
    tokens = install(server)
    answer = shop_json(server, tokens["access_token"])
    assert answer.status_code == 200
    shop = answer.json()["shop"]
    assert shop["myshopify_domain"] == SHOP and shop["iana_timezone"] == "America/New_York"
    assert shop["currency"] == "USD" and shop["name"] == "Demo Store"

    assert shop_json(server, "shpat_unknown").status_code == 401
    assert shop_json(server, tokens["access_token"], shop="other.myshopify.com").status_code == 401
    requests.post(
        f"{server.url}/_control/shopify/tokens/expire", json={"access_token": tokens["access_token"]}, timeout=5
    )
    expired = shop_json(server, tokens["access_token"])
    assert expired.status_code == 401 and "Invalid API key or access token" in expired.json()["errors"]


def test_refresh_rotates_and_the_previous_token_lives_until_the_new_one_is_used(server, control):
    first = install(server)
    second = refresh(server, first["refresh_token"]).json()
    assert second["refresh_token"] != first["refresh_token"]
    assert shop_json(server, first["access_token"]).status_code == 401  # one active access token
    assert shop_json(server, second["access_token"]).status_code == 200

    # The answer with `second` was lost: the previous refresh token still works...
    third = refresh(server, first["refresh_token"])
    assert third.status_code == 200
    third = third.json()
    # ...and the never-used `second` is gone with it.
    assert refresh(server, second["refresh_token"]).status_code == 400

    # Using the new token kills the previous one.
    fourth = refresh(server, third["refresh_token"])
    assert fourth.status_code == 200
    dead = refresh(server, first["refresh_token"])
    assert dead.status_code == 400 and dead.json()["error"] == "invalid_grant"


def test_revoked_refresh_token_is_invalid_grant(server, control):
    tokens = install(server)
    requests.post(
        f"{server.url}/_control/shopify/tokens/revoke", json={"refresh_token": tokens["refresh_token"]}, timeout=5
    )
    answer = refresh(server, tokens["refresh_token"])
    assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"


def test_token_exchange_migrates_a_non_expiring_token(server, control):
    legacy = requests.post(
        f"{server.url}/_control/shopify/tokens", json={"shop": SHOP, "expiring": False}, timeout=5
    ).json()
    assert "refresh_token" not in legacy
    body = {
        "grant_type": "urn:ietf:params:oauth:grant-type:token-exchange",
        "subject_token": legacy["access_token"],
        "subject_token_type": "urn:shopify:params:oauth:token-type:offline-access-token",
        "requested_token_type": "urn:shopify:params:oauth:token-type:offline-access-token",
        "expiring": "1",
    }
    answer = token_call(server, body)
    assert answer.status_code == 200 and answer.json()["expires_in"] == 3600
    assert shop_json(server, legacy["access_token"]).status_code == 401
    assert token_call(server, body).status_code == 400  # the subject token is gone


def test_scripted_faults_apply_to_the_token_endpoint(server, control):
    tokens = install(server)
    control.fault("shopify.oauth.access_token", 503)
    assert refresh(server, tokens["refresh_token"]).status_code == 503
    assert refresh(server, tokens["refresh_token"]).status_code == 200


class _Receiver(BaseHTTPRequestHandler):
    answers: list[int] = []
    received: list[tuple[dict, bytes]] = []

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((dict(self.headers), body))
        status = type(self).answers.pop(0) if type(self).answers else 200
        self.send_response(status)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def receiver():
    _Receiver.answers, _Receiver.received = [], []
    httpd = HTTPServer(("127.0.0.1", 0), _Receiver)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}/webhooks/shopify/", _Receiver
    httpd.shutdown()
    httpd.server_close()


def test_webhook_registration_and_signed_delivery_retried_until_2xx(server, control, receiver):
    url, handler = receiver
    tokens = install(server)
    headers = {"X-Shopify-Access-Token": tokens["access_token"]}
    hook = {"webhook": {"topic": "shop/update", "address": url, "format": "json"}}
    created = requests.post(f"{admin(server)}/api/2026-01/webhooks.json", json=hook, headers=headers, timeout=5)
    assert created.status_code == 201 and created.json()["webhook"]["topic"] == "shop/update"
    duplicate = requests.post(f"{admin(server)}/api/2026-01/webhooks.json", json=hook, headers=headers, timeout=5)
    assert duplicate.status_code == 422
    listed = requests.get(f"{admin(server)}/api/2026-01/webhooks.json", headers=headers, timeout=5).json()
    assert [h["address"] for h in listed["webhooks"]] == [url]

    requests.post(f"{server.url}/_control/shopify/shops", json={"shop": SHOP, "name": "Renamed"}, timeout=5)
    handler.answers = [500, 503]
    sent = requests.post(
        f"{server.url}/_control/shopify/webhooks", json={"shop": SHOP, "topic": "shop/update"}, timeout=10
    ).json()
    assert sent["deliveries"][0]["attempts"] == [500, 503, 200]
    assert len(handler.received) == 3
    ids = {(h["X-Shopify-Webhook-Id"], h["X-Shopify-Event-Id"]) for h, _ in handler.received}
    assert len(ids) == 1  # retries carry the same ids and payload
    head, raw = handler.received[-1]
    expected = base64.b64encode(hmac.new(SANDBOX_API_SECRET.encode(), raw, hashlib.sha256).digest()).decode()
    assert head["X-Shopify-Hmac-Sha256"] == expected
    assert head["X-Shopify-Topic"] == "shop/update" and head["X-Shopify-Shop-Domain"] == SHOP
    assert json.loads(raw)["name"] == "Renamed"


def test_app_uninstalled_revokes_the_shops_tokens_before_it_is_sent(server, control, receiver):
    url, handler = receiver
    tokens = install(server)
    sent = requests.post(
        f"{server.url}/_control/shopify/webhooks",
        json={"shop": SHOP, "topic": "app/uninstalled", "target_url": url, "forge": True},
        timeout=10,
    ).json()
    assert sent["deliveries"][0]["attempts"] == [200]
    head, raw = handler.received[0]
    good = base64.b64encode(hmac.new(SANDBOX_API_SECRET.encode(), raw, hashlib.sha256).digest()).decode()
    assert head["X-Shopify-Hmac-Sha256"] != good  # forged on request
    assert shop_json(server, tokens["access_token"]).status_code == 401
    assert refresh(server, tokens["refresh_token"]).status_code == 400


def test_install_url_is_signed_like_shopifys(server, control):
    answer = requests.post(
        f"{server.url}/_control/shopify/install_url", json={"shop": SHOP, "app_url": "http://app/shopify/install"},
        timeout=5,
    ).json()  # fmt: skip
    assert answer["url"].startswith("http://app/shopify/install?")
    assert signed_ok(dict(parse_qsl(urlsplit(answer["url"]).query)))
