"""Shopify install, both ways in, over real HTTP to the sandbox's Shopify: query HMAC, state, shop, code, claim."""

from __future__ import annotations

import hashlib
import hmac
import html
import re
import time
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
import requests
from django.test import Client

from accounts.choices import Role
from accounts.models import Membership, Merchant
from compliance.models import AuditEvent
from connectors import shopify
from connectors.choices import AuthKind, CredentialStatus, Provider
from connectors.crypto import decrypt_secret
from connectors.models import ConnectorCredential, ShopifyPendingInstall
from tests.accounts.factories import MembershipFactory, MerchantFactory

pytestmark = pytest.mark.django_db

SHOP = "demo-store.myshopify.com"
SECRET = "shpss_sandbox_shopify_api_secret_0000"


@pytest.fixture
def eager():
    """Celery tasks run inline (webhook registration after install), as in test_pages' disconnect test."""
    from config.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


def sign(params: dict[str, str], secret: str = SECRET) -> dict[str, str]:
    message = "&".join(f"{k}={v}" for k, v in sorted(params.items()))
    return {**params, "hmac": hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()}


def approve(location: str) -> str:
    """A person clicks "Install app" on the sandbox's consent page; returns where Shopify sends the browser."""
    split = urlsplit(location)
    fields = dict(parse_qsl(split.query))
    page = requests.get(location, timeout=5)
    assert page.status_code == 200 and "Install app" in page.text
    answer = requests.post(
        f"{split.scheme}://{split.netloc}{split.path}", data={**fields, "decision": "approve"},
        allow_redirects=False, timeout=5,
    )  # fmt: skip
    assert answer.status_code == 302
    return answer.headers["Location"]


def local(url: str) -> str:
    split = urlsplit(url)
    assert split.netloc == "testserver", url
    return f"{split.path}?{split.query}"


def add_store(client: Client, auth: dict, shop: str = SHOP) -> str:
    """Signed-in "Add a Shopify store" up to Shopify's redirect back; returns the callback path."""
    response = client.post("/shopify/add/", {"shop": shop}, **auth)
    assert response.status_code == 200, response.content
    url = continue_url(response.content.decode())
    assert url.startswith(f"{shopify.settings.SHOPIFY_ADMIN_URL.format(shop=shop)}/admin/oauth/authorize?")
    return local(approve(url))


def continue_url(page: str) -> str:
    """The "Continue to Shopify" link of the page "Add a Shopify store" answers with."""
    match = re.search(r'<a href="([^"]+)" data-testid="continue-to-shopify">', page)
    assert match, page
    return html.unescape(match.group(1))


# --- signed-in user adds a store ---------------------------------------------------------------------


def test_signed_in_user_adds_a_store_and_becomes_its_owner(
    client, clerk, providers, eager, django_capture_on_commit_callbacks
):
    auth = clerk.auth_header(clerk.user("user_new"))
    assert client.get("/shopify/add/", **auth).status_code == 200
    callback = add_store(client, auth)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.get(callback, **auth)

    merchant = Merchant.objects.get(shop_domain=SHOP)
    assert response.status_code == 302 and response["Location"] == f"/m/{merchant.pk}/overview/"
    assert (merchant.name, merchant.timezone, merchant.currency, merchant.key) == (
        "Demo Store", "America/New_York", "USD", "demo_store"
    )  # fmt: skip
    assert Membership.objects.get(merchant=merchant).clerk_user_id == "user_new"
    assert Membership.objects.get(merchant=merchant).role == Role.OWNER
    credential = ConnectorCredential.objects.get(merchant=merchant, provider=Provider.SHOPIFY)
    assert credential.auth_kind == AuthKind.OAUTH and credential.external_account_id == SHOP
    access, refresh = decrypt_secret(credential.access_token_enc), decrypt_secret(credential.refresh_token_enc)
    assert access.startswith("shpat_") and refresh.startswith("shprt_")
    assert access not in credential.access_token_enc and refresh not in credential.refresh_token_enc
    assert credential.expires_at is not None and credential.scopes
    # The code was exchanged with expiring=1 (the sandbox refuses anything else), webhooks registered.
    assert providers.calls("shopify.oauth.access_token") == 1
    hooks = requests.get(
        f"{providers.url}/shopify/{SHOP}/admin/api/2026-01/webhooks.json",
        headers={"X-Shopify-Access-Token": access}, timeout=5,
    ).json()["webhooks"]  # fmt: skip
    assert sorted(h["topic"] for h in hooks) == ["app/uninstalled", "shop/update"]
    assert {h["address"] for h in hooks} == {"http://testserver/webhooks/shopify/"}


def test_add_store_page_prefills_the_shop_escaped(client, clerk):
    auth = clerk.auth_header(clerk.user("user_new"))
    page = client.get("/shopify/add/?shop=demo-store.myshopify.com", **auth).content.decode()
    assert 'value="demo-store.myshopify.com"' in page
    page = client.get('/shopify/add/?shop="><script>x</script>', **auth).content.decode()
    assert "<script>x</script>" not in page


def test_add_store_page_needs_a_session(client, clerk):
    response = client.get("/shopify/add/")
    assert response.status_code == 302 and response["Location"].startswith("/sign-in")


@pytest.mark.parametrize(
    "shop", ["evil.com", "x.myshopify.com.evil.com", "https://evil.com/x.myshopify.com", "a b.myshopify.com", ""]
)
def test_add_store_refuses_a_shop_that_is_not_a_myshopify_domain(client, clerk, providers, shop):
    auth = clerk.auth_header(clerk.user("user_new"))
    response = client.post("/shopify/add/", {"shop": shop}, **auth)
    assert response.status_code == 400
    assert providers.calls("shopify.oauth.authorize") == 0


def test_reinstalling_a_known_shop_reconnects_it(client, clerk, providers, eager, django_capture_on_commit_callbacks):
    existing = MerchantFactory(shop_domain=SHOP, name="Old name", key="demo")
    MembershipFactory(merchant=existing, clerk_user_id=clerk.user("user_owner"), role=Role.OWNER)
    auth = clerk.auth_header("user_owner")
    for _ in range(2):
        with django_capture_on_commit_callbacks(execute=True):
            response = client.get(add_store(client, auth), **auth)
        assert response.status_code == 302
    assert Merchant.objects.filter(shop_domain=SHOP).count() == 1
    existing.refresh_from_db()
    assert existing.name == "Demo Store" and existing.key == "demo"
    assert ConnectorCredential.objects.filter(merchant=existing, provider=Provider.SHOPIFY).count() == 1
    assert Membership.objects.filter(merchant=existing).count() == 1


# --- state ---------------------------------------------------------------------------------------------


def test_state_replay_is_refused(client, clerk, providers, eager, django_capture_on_commit_callbacks):
    auth = clerk.auth_header(clerk.user("user_new"))
    callback = add_store(client, auth)
    with django_capture_on_commit_callbacks(execute=True):
        assert client.get(callback, **auth).status_code == 302
    # The same callback again (the browser's back button, or an attacker's copy): the cookie is gone...
    again = client.get(callback, **auth)
    assert again.status_code == 400
    # ...and with the state cookie put back, the nonce is spent.
    client.cookies[shopify.STATE_COOKIE] = _signed_state(dict(parse_qsl(urlsplit(callback).query))["state"])
    replay = client.get(callback, **auth)
    assert replay.status_code == 400 and shopify.STATE_REPLAYED in replay.content.decode()
    assert providers.calls("shopify.oauth.access_token") == 1


def _signed_state(nonce: str) -> str:
    from django.core import signing

    return signing.get_cookie_signer(salt=signing._cookie_signer_salt(shopify.STATE_COOKIE, shopify.STATE_SALT)).sign(
        nonce
    )


def test_state_from_another_browser_is_refused(client, clerk, providers):
    auth = clerk.auth_header(clerk.user("user_new"))
    callback = add_store(client, auth)
    other_browser = Client()
    response = other_browser.get(callback, **auth)
    assert response.status_code == 400 and shopify.STATE_FOREIGN in response.content.decode()
    # A cookie of another attempt does not fit either.
    other_browser.get("/", **auth)
    other_browser.post("/shopify/add/", {"shop": SHOP}, **auth)
    response = other_browser.get(callback, **auth)
    assert response.status_code == 400 and shopify.STATE_FOREIGN in response.content.decode()
    assert providers.calls("shopify.oauth.access_token") == 0
    assert not Merchant.objects.exists()


def test_state_for_another_shop_is_refused(client, clerk, providers):
    auth = clerk.auth_header(clerk.user("user_new"))
    client.post("/shopify/add/", {"shop": "other-shop.myshopify.com"}, **auth)
    other_state = client.cookies[shopify.STATE_COOKIE].value
    callback = add_store(client, auth)  # a second attempt, for demo-store; its cookie replaces the first
    params = dict(parse_qsl(urlsplit(callback).query))
    client.cookies[shopify.STATE_COOKIE] = other_state
    nonce = _unsign_state(other_state)
    forged = sign({k: v for k, v in params.items() if k != "hmac"} | {"state": nonce})
    response = client.get(f"/shopify/callback?{urlencode(forged)}", **auth)
    assert response.status_code == 400 and shopify.STATE_INVALID in response.content.decode()


def _unsign_state(value: str) -> str:
    from django.core import signing

    return signing.get_cookie_signer(salt=signing._cookie_signer_salt(shopify.STATE_COOKIE, shopify.STATE_SALT)).unsign(
        value
    )


# --- callback query ------------------------------------------------------------------------------------


def test_callback_hmac_tampered_or_missing_is_refused_before_the_code_is_spent(client, clerk, providers):
    auth = clerk.auth_header(clerk.user("user_new"))
    callback = add_store(client, auth)
    params = dict(parse_qsl(urlsplit(callback).query))
    tampered = {**params, "shop": "other-shop.myshopify.com"}
    assert client.get(f"/shopify/callback?{urlencode(tampered)}", **auth).status_code == 401
    missing = {k: v for k, v in params.items() if k != "hmac"}
    assert client.get(f"/shopify/callback?{urlencode(missing)}", **auth).status_code == 401
    wrong_secret = sign({k: v for k, v in params.items() if k != "hmac"}, secret="not-the-app-secret")
    assert client.get(f"/shopify/callback?{urlencode(wrong_secret)}", **auth).status_code == 401
    assert providers.calls("shopify.oauth.access_token") == 0
    # The genuine one still works.
    assert client.get(callback, **auth).status_code == 302


def test_code_reuse_is_refused_by_shopify_and_nothing_is_stored(client, clerk, providers):
    auth = clerk.auth_header(clerk.user("user_new"))
    callback = add_store(client, auth)
    params = dict(parse_qsl(urlsplit(callback).query))
    assert client.get(callback, **auth).status_code == 302
    merchants = Merchant.objects.count()
    # A fresh state for the same browser, with the spent code re-signed (as an attacker with the secret could).
    client.post("/shopify/add/", {"shop": SHOP}, **auth)
    nonce = _unsign_state(client.cookies[shopify.STATE_COOKIE].value)
    reused = sign(
        {k: v for k, v in params.items() if k != "hmac"} | {"state": nonce, "timestamp": str(int(time.time()))}
    )
    response = client.get(f"/shopify/callback?{urlencode(reused)}", **auth)
    assert response.status_code == 400 and "invalid_grant" in response.content.decode()
    assert Merchant.objects.count() == merchants
    assert providers.calls("shopify.oauth.access_token") == 2


# --- install started from Shopify ------------------------------------------------------------------------


def test_install_request_hmac_valid_tampered_stale_missing(client, providers):
    now = str(int(time.time()))
    valid = sign({"shop": SHOP, "timestamp": now, "host": "YWRtaW4"})
    response = client.get(f"/shopify/install?{urlencode(valid)}")
    assert response.status_code == 302 and "/admin/oauth/authorize?" in response["Location"]

    tampered = {**valid, "shop": "other-shop.myshopify.com"}
    assert client.get(f"/shopify/install?{urlencode(tampered)}").status_code == 401
    stale = sign({"shop": SHOP, "timestamp": str(int(time.time()) - 91)})
    response = client.get(f"/shopify/install?{urlencode(stale)}")
    assert response.status_code == 401 and shopify.HMAC_STALE in response.content.decode()
    future = sign({"shop": SHOP, "timestamp": str(int(time.time()) + 120)})
    assert client.get(f"/shopify/install?{urlencode(future)}").status_code == 401
    missing = {"shop": SHOP, "timestamp": now}
    assert client.get(f"/shopify/install?{urlencode(missing)}").status_code == 401
    assert client.get("/shopify/install").status_code == 401


def test_install_request_for_a_spoofed_shop_is_refused_even_when_signed(client, providers):
    now = str(int(time.time()))
    for shop in ("evil.com", "x.myshopify.com.evil.com"):
        response = client.get(f"/shopify/install?{urlencode(sign({'shop': shop, 'timestamp': now}))}")
        assert response.status_code == 400, shop
    assert providers.calls("shopify.oauth.authorize") == 0


def test_repeated_query_keys_are_joined_with_commas_before_hashing():
    now = str(int(time.time()))
    message = f"ids=1%2C2&shop={SHOP}&timestamp={now}"  # URLSearchParams encodes the joining comma
    digest = hmac.new(SECRET.encode(), message.encode(), hashlib.sha256).hexdigest()
    assert shopify.query_verify({"ids": ["1", "2"], "shop": [SHOP], "timestamp": [now], "hmac": [digest]}) == SHOP
    with pytest.raises(shopify.ShopifyFailed):
        shopify.query_verify({"ids": ["2", "1"], "shop": [SHOP], "timestamp": [now], "hmac": [digest]})


def test_install_from_shopify_then_sign_in_and_claim(
    client, clerk, providers, eager, django_capture_on_commit_callbacks
):
    url = providers.shopify_install_url(SHOP, "http://testserver/shopify/install")
    response = client.get(local(url))
    assert response.status_code == 302
    response = client.get(local(approve(response["Location"])))  # nobody signed in yet
    assert response.status_code == 302 and response["Location"] == f"/shopify/claim/?shop={SHOP}"
    assert not Merchant.objects.exists()
    pending = ShopifyPendingInstall.objects.get()
    assert decrypt_secret(pending.access_token_enc).startswith("shpat_")

    # The claim page wants a session first.
    assert client.get(response["Location"])["Location"].startswith("/sign-in")
    auth = clerk.auth_header(clerk.user("user_new"))
    page = client.get(response["Location"], **auth)
    assert page.status_code == 200 and "Demo Store" in page.content.decode()

    # Another browser (no claim cookie) cannot claim it, even signed in.
    thief = Client()
    thief_auth = clerk.auth_header(clerk.user("user_x"))
    assert thief.post(f"/shopify/claim/?shop={SHOP}", {"shop": SHOP}, **thief_auth).status_code == 403
    # Nor for another shop from this browser.
    assert client.post("/shopify/claim/?shop=other-shop.myshopify.com", **auth).status_code == 403

    claim_cookie = client.cookies[shopify.CLAIM_COOKIE].value
    with django_capture_on_commit_callbacks(execute=True):
        claimed = client.post(f"/shopify/claim/?shop={SHOP}", {"shop": SHOP}, **auth)
    merchant = Merchant.objects.get(shop_domain=SHOP)
    assert claimed.status_code == 302 and claimed["Location"] == f"/m/{merchant.pk}/overview/"
    assert Membership.objects.get(merchant=merchant).clerk_user_id == "user_new"
    pending.refresh_from_db()
    assert pending.claimed_by == "user_new" and pending.access_token_enc == "" and pending.merchant == merchant
    assert ConnectorCredential.objects.get(merchant=merchant).status == CredentialStatus.ACTIVE

    # One-time: the same browser cannot claim it again.
    client.cookies[shopify.CLAIM_COOKIE] = claim_cookie
    assert client.post(f"/shopify/claim/?shop={SHOP}", {"shop": SHOP}, **auth).status_code == 403
    assert Merchant.objects.count() == 1


def test_an_expired_claim_is_refused(client, clerk, providers, settings):
    url = providers.shopify_install_url(SHOP, "http://testserver/shopify/install")
    response = client.get(local(approve(client.get(local(url))["Location"])))
    assert response.status_code == 302
    ShopifyPendingInstall.objects.update(claim_expires_at=shopify.timezone.now())
    auth = clerk.auth_header(clerk.user("user_new"))
    assert client.post(f"/shopify/claim/?shop={SHOP}", {"shop": SHOP}, **auth).status_code == 403
    assert not Merchant.objects.exists()


def test_install_audit_records_no_secret(client, clerk, providers, eager, django_capture_on_commit_callbacks):
    auth = clerk.auth_header(clerk.user("user_new"))
    with django_capture_on_commit_callbacks(execute=True):
        client.get(add_store(client, auth), **auth)
    credential = ConnectorCredential.objects.get()
    secrets_ = [decrypt_secret(credential.access_token_enc), decrypt_secret(credential.refresh_token_enc), SECRET]
    for event in AuditEvent.objects.all():
        text = repr(event.metadata) + event.action
        assert not any(s in text for s in secrets_)


def test_install_from_shopify_while_signed_in_installs_at_once_and_later_opens_the_store(
    client, clerk, providers, eager, django_capture_on_commit_callbacks
):
    auth = clerk.auth_header(clerk.user("user_new"))
    url = providers.shopify_install_url(SHOP, "http://testserver/shopify/install")
    response = client.get(local(url), **auth)
    with django_capture_on_commit_callbacks(execute=True):
        response = client.get(local(approve(response["Location"])), **auth)
    merchant = Merchant.objects.get(shop_domain=SHOP)
    assert response["Location"] == f"/m/{merchant.pk}/overview/"
    assert not ShopifyPendingInstall.objects.exists()

    # Opening the app from Shopify's admin again goes straight to the store, no new consent.
    again = client.get(local(providers.shopify_install_url(SHOP, "http://testserver/shopify/install")), **auth)
    assert again.status_code == 302 and again["Location"] == f"/m/{merchant.pk}/overview/"
    # Someone else signed in is sent through consent (and then a claim), never straight in.
    other = Client()
    stranger = clerk.auth_header(clerk.user("user_stranger"))
    response = other.get(local(providers.shopify_install_url(SHOP, "http://testserver/shopify/install")), **stranger)
    assert "/admin/oauth/authorize?" in response["Location"]
