"""The pixel's script (extensions/session-pixel/src/pixel.js) run outside Shopify with stand-ins for its APIs,
against the real collector: what it sends, that a refused batch is resent with the same ids until stored, that
unsent events wait in storage for the next page, and that nothing is sent without settings."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import threading
import time
import tomllib
from pathlib import Path

import pytest

from tests.collector.conftest import CHROME, stored

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "warehouse"])

ROOT = Path(__file__).resolve().parents[2]
EXTENSION = ROOT / "extensions" / "session-pixel"
HARNESS = Path(__file__).with_name("pixel_harness.mjs")
NODE = shutil.which("node")


@pytest.fixture(autouse=True)
def _drop_raw_schema(store, owner_db):
    yield
    owner_db.execute(f'drop schema if exists "raw_{store.key}" cascade')


def run_pixel(scenario: dict) -> dict:
    if NODE is None:
        pytest.fail("node is needed to run the pixel's script (Debian: apt-get install nodejs)")
    done = subprocess.run(
        [NODE, str(HARNESS), str(EXTENSION / "src" / "pixel.js"), json.dumps(scenario)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def shopify_event(n: int, name: str = "page_viewed", data: dict | None = None, path: str = "/") -> dict:
    """A Shopify standard event, in the shape the Web Pixels API delivers (INGESTION.md §6)."""
    return {
        "id": f"sh-{n}-{time.time_ns()}",
        "clientId": "client-abc",
        "name": name,
        "seq": n,
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "type": "standard",
        "context": {
            "document": {
                "location": {"href": f"https://hudson-ivy.myshopify.com{path}?utm_source=ig&gclid=G1"},
                "referrer": "https://www.instagram.com/",
            },
            "navigator": {"userAgent": CHROME},
        },
        "data": data or {},
    }


def journey() -> list[dict]:
    variant = {
        "id": "gid://shopify/ProductVariant/11",
        "price": {"amount": 24.0, "currencyCode": "USD"},
        "product": {"title": "Mug"},
    }
    checkout = {
        "token": "ck-1",
        "totalPrice": {"amount": "48.00", "currencyCode": "USD"},
        "email": " Ada@Example.com ",
        "order": {"id": "gid://shopify/Order/9001", "customer": {"id": "gid://shopify/Customer/7001"}},
    }
    return [
        shopify_event(1, path="/"),
        shopify_event(2, "product_viewed", {"productVariant": variant}, path="/products/mug"),
        shopify_event(
            3,
            "product_added_to_cart",
            {
                "cartLine": {
                    "merchandise": {"id": variant["id"]},
                    "quantity": 2,
                    "cost": {"totalAmount": {"amount": 48.0, "currencyCode": "USD"}},
                }
            },
        ),
        shopify_event(4, "checkout_started", {"checkout": {**checkout, "order": {}}}, path="/checkouts/c/1"),
        shopify_event(5, "checkout_completed", {"checkout": checkout}, path="/checkouts/c/1/thank-you"),
    ]


def test_the_toml_declares_what_shopify_needs():
    config = tomllib.loads((EXTENSION / "shopify.extension.toml").read_text())
    assert config["type"] == "web_pixel_extension" and config["runtime_context"] == "strict"
    assert config["customer_privacy"]["analytics"] is True and config["customer_privacy"]["marketing"] is False
    assert set(config["settings"]["fields"]) == {"writeKey", "collectorUrl"}
    assert "register(startPixel)" in (EXTENSION / "src" / "index.js").read_text()


def test_a_visit_to_checkout_arrives_as_the_collector_stores_it(store, write_key, live_server):
    out = run_pixel({"settings": {"writeKey": write_key, "collectorUrl": f"{live_server.url}/collect/v1/batch"},
                     "events": journey()})  # fmt: skip
    assert out["pending"] == 0 and out["stats"]["acknowledged"] == 5 and out["stats"]["retries"] == 0
    assert out["storage"] == {}  # nothing left waiting for the next page
    rows = stored(store)
    assert [r["event_name"] for r in rows] == [
        "page_viewed", "product_viewed", "product_added_to_cart", "checkout_started", "checkout_completed",
    ]  # fmt: skip
    viewed, added, started, completed = rows[1], rows[2], rows[3], rows[4]
    assert (viewed["product_id"], float(viewed["value"]), viewed["currency"]) == (
        "gid://shopify/ProductVariant/11", 24.0, "USD",
    )  # fmt: skip
    assert viewed["properties"] == {"title": "Mug"} and added["properties"] == {"quantity": 2}
    assert (rows[0]["utm_source"], rows[0]["gclid"], rows[0]["referrer"]) == ("ig", "G1", "https://www.instagram.com/")
    assert started["order_id"] is None and started["checkout_token"] == "ck-1"
    assert (completed["order_id"], completed["customer_id"], float(completed["value"])) == (9001, 7001, 48.0)
    assert completed["email_sha256"] == hashlib.sha256(b"ada@example.com").hexdigest()
    assert all("Ada" not in json.dumps({k: str(v) for k, v in r.items()}) for r in rows)


def test_a_refused_batch_is_resent_with_the_same_ids_until_stored(store, write_key, live_server, owner_db, settings):
    from tests.collector.conftest import batch, event, wsgi_call

    assert wsgi_call(batch(write_key, [event(0)]))[0] == 200  # the table exists, so it can be refused
    table = f'"raw_{store.key}".web_events'
    role = settings.DATABASE_APP_ROLE
    owner_db.execute(f'revoke insert on {table} from "{role}"')
    threading.Timer(1.5, lambda: owner_db.execute(f'grant insert on {table} to "{role}"')).start()
    out = run_pixel({"settings": {"writeKey": write_key, "collectorUrl": f"{live_server.url}/collect/v1/batch"},
                     "events": journey(), "wait_ms": 30000})  # fmt: skip
    assert out["stats"]["retries"] >= 1 and out["stats"]["acknowledged"] == 5 and out["pending"] == 0
    rows = stored(store)
    assert len(rows) == 6 and len({r["event_id"] for r in rows}) == 6


def test_events_unsent_when_the_page_goes_away_are_sent_by_the_next_page(store, write_key, live_server):
    closed = "http://127.0.0.1:9/collect/v1/batch"  # the discard port: nobody answers
    first = run_pixel({"settings": {"writeKey": write_key, "collectorUrl": closed}, "events": journey()[:3],
                       "wait_ms": 800})  # fmt: skip
    assert first["pending"] == 3 and stored(store) == []
    [saved] = first["storage"].values()
    assert [e["seq"] for e in json.loads(saved)] == [1, 2, 3]
    # The next page: the same storage, the collector reachable, one more event.
    second = run_pixel({"settings": {"writeKey": write_key, "collectorUrl": f"{live_server.url}/collect/v1/batch"},
                        "storage": first["storage"], "events": journey()[4:]})  # fmt: skip
    assert second["pending"] == 0
    assert [r["seq"] for r in stored(store)] == [1, 2, 3, 5]


def test_without_settings_the_pixel_sends_nothing(store, live_server):
    out = run_pixel({"settings": {}, "events": journey(), "wait_ms": 300})
    assert out == {"started": False, "subscribed": []}
    assert stored(store) == []


def test_a_batch_over_the_keepalive_limit_is_split(store, write_key, live_server):
    """A keepalive fetch carries at most 64 KiB: twenty events with 2 KB URLs go as several batches."""
    events = []
    for n in range(20):
        one = shopify_event(n, path="/p/" + "x" * 1900)
        one["context"]["document"]["referrer"] = "https://r.example/" + "y" * 1900
        events.append(one)
    out = run_pixel({"settings": {"writeKey": write_key, "collectorUrl": f"{live_server.url}/collect/v1/batch"},
                     "events": events})  # fmt: skip
    assert out["pending"] == 0 and out["stats"]["acknowledged"] == 20 and out["stats"]["sent"] >= 2
    assert len(stored(store)) == 20
