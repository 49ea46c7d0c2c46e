"""The pixel is activated per store at install (webPixelCreate through the sandbox's Shopify GraphQL), its
settings updated at key rotation (webPixelUpdate), and a failure is recorded and retried, never failing the install."""

from __future__ import annotations

import json

import pytest
import requests

from accounts.models import Merchant
from collector import services
from collector.choices import ActivationStatus
from collector.models import PixelActivation, WriteKey
from connectors.clients.base import Forbidden, Transient
from connectors.clients.shopify import ShopifyClient
from tests.connectors.test_shopify import SHOP, add_store

pytestmark = pytest.mark.django_db


@pytest.fixture
def eager():
    from config.celery import app

    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


def pixels(providers, shop: str = SHOP) -> list[dict]:
    return requests.post(f"{providers.url}/_control/shopify/pixels", json={"shop": shop}, timeout=5).json()["pixels"]


def install(client, clerk, django_capture_on_commit_callbacks) -> Merchant:
    auth = clerk.auth_header(clerk.user("user_new"))
    with django_capture_on_commit_callbacks(execute=True):
        response = client.get(add_store(client, auth), **auth)
    assert response.status_code == 302
    return Merchant.objects.get(shop_domain=SHOP)


def test_install_activates_the_pixel_with_the_stores_write_key(
    client, clerk, providers, eager, django_capture_on_commit_callbacks, settings
):
    settings.COLLECTOR_URL = "https://app.example/collect/v1/batch"
    merchant = install(client, clerk, django_capture_on_commit_callbacks)
    key = WriteKey.objects.get(merchant=merchant, expires_at__isnull=True).key
    [pixel] = pixels(providers)
    assert pixel["settings"] == {"writeKey": key, "collectorUrl": "https://app.example/collect/v1/batch"}
    activation = PixelActivation.objects.get(merchant=merchant)
    assert (activation.status, activation.web_pixel_id, activation.last_error) == (
        ActivationStatus.ACTIVE, pixel["id"], "",
    )  # fmt: skip
    assert activation.settings_sent == pixel["settings"]


def test_rotation_updates_the_pixels_settings_in_place(
    client, clerk, providers, eager, django_capture_on_commit_callbacks
):
    merchant = install(client, clerk, django_capture_on_commit_callbacks)
    [before] = pixels(providers)
    with django_capture_on_commit_callbacks(execute=True):
        new = services.write_key_rotate(merchant=merchant)
    [after] = pixels(providers)
    assert after["id"] == before["id"] and after["settings"]["writeKey"] == new.key != before["settings"]["writeKey"]
    assert providers.calls("shopify.graphql") == 2  # one create, one update


def test_a_shopify_failure_does_not_fail_the_install_and_is_recorded_then_retried(
    client, clerk, providers, django_capture_on_commit_callbacks
):
    providers.control.fault("shopify.graphql", status=503, times=1)
    merchant = install(client, clerk, django_capture_on_commit_callbacks)  # the task only enqueued here
    assert PixelActivation.objects.get(merchant=merchant).status == ActivationStatus.PENDING
    with pytest.raises(Transient):  # what the task's autoretry retries, with backoff
        services.pixel_activate(merchant_id=merchant.pk)
    failed = PixelActivation.objects.get(merchant=merchant)
    assert failed.status == ActivationStatus.FAILED and "503" in failed.last_error and failed.attempts == 1
    assert pixels(providers) == []
    services.pixel_activate(merchant_id=merchant.pk)  # the retry
    activation = PixelActivation.objects.get(merchant=merchant)
    assert activation.status == ActivationStatus.ACTIVE and activation.attempts == 2 and len(pixels(providers)) == 1


def test_a_pixel_left_from_an_earlier_install_is_found_and_updated(
    client, clerk, providers, eager, django_capture_on_commit_callbacks
):
    merchant = install(client, clerk, django_capture_on_commit_callbacks)
    PixelActivation.objects.filter(merchant=merchant).update(web_pixel_id="")  # our record of it lost
    services.pixel_activate(merchant_id=merchant.pk)  # webPixelCreate says TAKEN: read it, update it
    [pixel] = pixels(providers)
    assert PixelActivation.objects.get(merchant=merchant).web_pixel_id == pixel["id"]


# --- the sandbox's GraphQL, as Shopify answers --------------------------------------------------------------


def _token(providers, scope: str) -> str:
    answer = requests.post(
        f"{providers.url}/_control/shopify/tokens", json={"shop": SHOP, "scope": scope}, timeout=5
    ).json()
    return answer["access_token"]


def _graphql(providers, token: str, query: str, variables: dict | None = None) -> dict:
    response = requests.post(
        f"{providers.url}/shopify/{SHOP}/admin/api/2026-01/graphql.json",
        json={"query": query, "variables": variables or {}},
        headers={"X-Shopify-Access-Token": token},
        timeout=5,
    )
    assert response.status_code == 200
    return response.json()


CREATE = (
    "mutation($s: JSON!) { webPixelCreate(webPixel: {settings: $s}) "
    "{ userErrors { code field message } webPixel { id settings } } }"
)


def test_the_sandbox_refuses_without_the_pixel_scopes_as_shopify_does(providers):
    token = _token(providers, "read_orders")
    body = _graphql(providers, token, CREATE, {"s": json.dumps({"writeKey": "wk_x", "collectorUrl": "https://a"})})
    assert body["data"] == {"webPixelCreate": None}
    [error] = body["errors"]
    assert error["extensions"]["code"] == "ACCESS_DENIED" and error["path"] == ["webPixelCreate"]
    assert "`write_pixels` access scope" in error["message"]
    with pytest.raises(Forbidden):
        ShopifyClient(shop=SHOP).web_pixel_upsert(access_token=token, settings={"writeKey": "k", "collectorUrl": "u"})


def test_the_sandbox_checks_settings_against_the_extensions_definition(providers):
    token = _token(providers, "write_pixels,read_customer_events")
    url = "https://a"
    for bad in (
        {"writeKey": "wk_x"},
        {"writeKey": "wk_x", "collectorUrl": url, "extra": "1"},
        {"writeKey": "", "collectorUrl": url},
        {"writeKey": 5, "collectorUrl": url},
    ):
        body = _graphql(providers, token, CREATE, {"s": json.dumps(bad)})
        [error] = body["data"]["webPixelCreate"]["userErrors"]
        assert error["code"] == "INVALID_SETTINGS", bad
    assert (
        _graphql(providers, token, CREATE, {"s": "{not json"})["data"]["webPixelCreate"]["userErrors"][0]["code"]
        == "INVALID_CONFIGURATION_JSON"
    )
    good = {"writeKey": "wk_x", "collectorUrl": "https://a"}
    created = _graphql(providers, token, CREATE, {"s": json.dumps(good)})["data"]["webPixelCreate"]
    assert created["userErrors"] == [] and json.loads(created["webPixel"]["settings"]) == good
    again = _graphql(providers, token, CREATE, {"s": json.dumps(good)})["data"]["webPixelCreate"]
    assert again["userErrors"][0]["code"] == "TAKEN" and again["webPixel"] is None
    unknown = _graphql(providers, token, "{ webPixel { id nonsense } }")
    assert "data" not in unknown and "nonsense" in unknown["errors"][0]["message"]
