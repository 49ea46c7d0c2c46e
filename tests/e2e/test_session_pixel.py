"""A shopper in Chromium: a storefront page served by the test loads the session pixel's script
(extensions/session-pixel/src/pixel.js) with stand-ins for Shopify's APIs (tests/e2e/shop_page.html), lands from a
Facebook ad (utm and fbclid on the landing URL), views a product, adds it to the cart and checks out; the
pixel's batches reach the app's collector (the live server) and land in the store's raw web_events. After a dbt
build the visit is a paid-social session of the order's customer, and the store's member reads the order's
revenue attributed to paid social on the attribution page.

The build runs on the test database, whose marts the dashboard tests share (tests/dashboards/conftest.py): it
builds their stores too, so their marts stay as they were.

The browser context has a regular Chrome user agent: headless Chromium's own says "HeadlessChrome", which the
collector drops as a bot.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from zoneinfo import ZoneInfo

import psycopg
import pytest
from playwright.sync_api import expect

from accounts.choices import Role
from analytics.dbt_runner import dbt_invoke
from analytics.raw_schema import create_raw_schema
from analytics.selectors import warehouse_connection_params
from collector import intake, ratelimit
from collector.models import EventCount
from collector.services import write_key_get_or_create
from tests.accounts.factories import MembershipFactory, MerchantFactory
from tests.dashboards.conftest import marts  # noqa: F401 — the session fixture: the marts this build keeps

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "warehouse"])

ROOT = Path(__file__).resolve().parents[2]
PIXEL = ROOT / "extensions" / "session-pixel" / "src" / "pixel.js"
PAGE = Path(__file__).resolve().parent / "shop_page.html"
CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
SHOP = "pixel-e2e.myshopify.com"
ORDER_ID = 5_990_000_000_001
CUSTOMER_ID = 6_990_000_000_001
EMAIL = "Shopper.One@Example.com"
TOKEN = "c0ffee0e2e"
LANDING = "/?utm_source=facebook&utm_medium=paid_social&utm_campaign=spring_sale&utm_content=ad_7&fbclid=IwAR0e2e"


@pytest.fixture
def browser_context_args(browser_context_args):
    return {**browser_context_args, "user_agent": CHROME}


@pytest.fixture(autouse=True)
def _fresh_collector_state(settings):
    intake.write_keys_forget()
    ratelimit.limiter_reset()
    settings.REDIS_URL = ""
    yield
    intake.write_keys_forget()
    ratelimit.limiter_reset()
    intake._counts.clear()  # counted by the live server after the test's last flush: the database is gone at exit


@pytest.fixture
def store():
    merchant = MerchantFactory(key="pixel_e2e", shop_domain=SHOP, timezone="America/New_York", currency="USD")
    with psycopg.connect(**warehouse_connection_params()) as conn:
        conn.execute(f"drop schema if exists {merchant.raw_schema} cascade")
        conn.commit()
        create_raw_schema(conn, merchant.key)
        conn.commit()
    yield merchant
    with psycopg.connect(**warehouse_connection_params()) as conn:
        conn.execute(f"drop schema if exists {merchant.raw_schema} cascade")


def _order_write(merchant, created: dt.datetime) -> None:
    """The order the checkout completed, as Shopify's Airbyte sync lands it after the checkout."""
    with psycopg.connect(**warehouse_connection_params()) as conn:
        _order_insert(conn, merchant, created)


def _order_insert(conn, merchant, created: dt.datetime) -> None:
    conn.execute(
        f"""insert into {merchant.raw_schema}.shopify_orders (id, name, order_number, email, created_at, updated_at,
            processed_at, currency, presentment_currency, financial_status, total_price, subtotal_price, total_tax,
            total_discounts, total_line_items_price, taxes_included, test, source_name, customer, line_items,
            shop_url, _airbyte_raw_id, _airbyte_extracted_at, _airbyte_meta, _airbyte_generation_id)
            values (%(id)s, '#1001', 1001, %(email)s, %(at)s, %(at)s, %(at)s, 'USD', 'USD', 'paid', '64.80', '60.00',
            '4.80', '0.00', '60.00', false, false, 'web', %(customer)s, %(lines)s, %(shop)s, gen_random_uuid(),
            now(), '{{"changes": [], "sync_id": 1}}', 0)""",
        {
            "id": ORDER_ID,
            "email": EMAIL.lower(),
            "at": created,
            "shop": SHOP,
            "customer": json.dumps({"id": CUSTOMER_ID, "email": EMAIL.lower()}),
            "lines": json.dumps(
                [
                    {
                        "id": 1,
                        "product_id": 7000000001,
                        "variant_id": 7000000002,
                        "title": "Mug",
                        "quantity": 2,
                        "price": "30.00",
                        "sku": "SKU-1",
                    }
                ]
            ),
        },
    )


@pytest.fixture
def shop_server(app_url, store):
    """The storefront's origin: every path is shop_page.html, /pixel.js the pixel, /config.json its settings."""
    config = {
        "settings": {
            "writeKey": write_key_get_or_create(merchant=store).key,
            "collectorUrl": f"{app_url}/collect/v1/batch",
        },
        "product": {"id": "7000000002", "price": {"amount": 30.0, "currencyCode": "USD"}, "product": {"title": "Mug"}},
        "checkout": {
            "token": TOKEN,
            "totalPrice": {"amount": "64.80", "currencyCode": "USD"},
            "email": EMAIL,
            "customer": {"id": str(CUSTOMER_ID)},
            "order": {
                "id": f"gid://shopify/Order/{ORDER_ID}",
                "customer": {"id": f"gid://shopify/Customer/{CUSTOMER_ID}"},
            },
        },
    }
    files = {
        "/pixel.js": (PIXEL.read_bytes(), "text/javascript"),
        "/config.json": (json.dumps(config).encode(), "application/json"),
    }

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):
            body, kind = files.get(self.path.split("?")[0], (PAGE.read_bytes(), "text/html; charset=utf-8"))
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _stored(merchant) -> list[dict]:
    with psycopg.connect(**warehouse_connection_params()) as conn:
        conn.row_factory = psycopg.rows.dict_row
        try:
            return conn.execute(f"select * from {merchant.raw_schema}.web_events order by seq").fetchall()
        except psycopg.errors.UndefinedTable:
            return []


def _wait_for(merchant, count: int, timeout: float = 30) -> list[dict]:
    deadline = time.monotonic() + timeout
    rows = _stored(merchant)
    while len(rows) < count and time.monotonic() < deadline:
        time.sleep(0.25)
        rows = _stored(merchant)
    return rows


def _shop(page, url: str) -> None:
    """A page of the shop, read until the pixel has sent its events, as a shopper stays on a page for seconds.

    Pages 100 ms apart could change order in the table: the collector moves each batch's events by the batch's
    time in flight (occurred_at + received_at - sent_at, its clock-skew correction), which can be longer."""
    page.goto(url)
    expect(page.locator("#status")).to_have_text("ready")
    page.wait_for_function("window.pixel.pending() === 0", timeout=20_000)


def _browse_and_check_out(page, shop_server: str) -> None:
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _shop(page, shop_server + LANDING)
    _shop(page, shop_server + "/products/mug")
    page.get_by_role("button", name="Add to cart").click()
    # The page's view, its product view and now the cart add, all acknowledged by the collector.
    page.wait_for_function("window.pixel.stats.acknowledged === 3 && window.pixel.pending() === 0", timeout=20_000)
    _shop(page, f"{shop_server}/checkouts/cn/{TOKEN}")
    _shop(page, f"{shop_server}/checkouts/cn/{TOKEN}/thank-you")
    page.wait_for_function("window.pixel && window.pixel.pending() === 0", timeout=20_000)
    assert errors == []


def test_a_shopper_browses_and_checks_out_and_the_pixel_s_events_arrive(page, shop_server, store):
    _browse_and_check_out(page, shop_server)

    rows = _wait_for(store, 8)
    assert [r["event_name"] for r in rows] == [
        "page_viewed", "page_viewed", "product_viewed", "product_added_to_cart", "page_viewed", "checkout_started",
        "page_viewed", "checkout_completed",
    ][: len(rows)] and len(rows) == 8  # fmt: skip
    assert len({r["client_id"] for r in rows}) == 1 and [r["seq"] for r in rows] == list(range(8))
    landing = rows[0]
    assert landing["page_url"] == shop_server + LANDING and landing["page_path"] == "/"
    assert (landing["utm_source"], landing["utm_medium"], landing["utm_campaign"], landing["utm_content"]) == (
        "facebook", "paid_social", "spring_sale", "ad_7",
    )  # fmt: skip
    assert landing["fbclid"] == "IwAR0e2e" and landing["gclid"] is None
    assert all(r["user_agent"] == CHROME and r["device"] == "desktop" and r["shop_url"] == SHOP for r in rows)
    assert all(r["ip_prefix"] == "127.0.0.0/24" for r in rows)
    completed = rows[-1]
    assert (completed["order_id"], completed["customer_id"], completed["checkout_token"]) == (
        ORDER_ID, CUSTOMER_ID, TOKEN,
    )  # fmt: skip
    assert completed["email_sha256"] == hashlib.sha256(EMAIL.strip().lower().encode()).hexdigest()
    assert (float(completed["value"]), completed["currency"]) == (64.8, "USD")
    cart = rows[3]
    assert (cart["product_id"], float(cart["value"]), cart["properties"]) == ("7000000002", 30.0, {"quantity": 1})
    # The collector's counters: every event accepted (a resend after a page change counts as a duplicate), none
    # dropped as a bot or for consent, none refused.
    intake.counts_flush(force=True)
    counts = EventCount.objects.filter(merchant=store)
    assert sum(c.accepted for c in counts) == 8
    assert sum(c.bot + c.no_consent + c.rejected for c in counts) == 0


def test_after_a_build_the_visit_and_the_order_s_attribution_show_on_the_attribution_page(
    page,
    shop_server,
    store,
    app_url,
    clerk,
    marts,  # noqa: F811
):
    _browse_and_check_out(page, shop_server)
    events = _wait_for(store, 8)
    assert len(events) == 8
    _order_write(store, events[-1]["occurred_at"])  # Shopify's sync brings the order the checkout completed

    stores = [*marts, {"id": store.pk, "key": store.key, "timezone": store.timezone, "currency": store.currency}]
    merchants = [{k: m[k] for k in ("id", "key", "timezone", "currency")} for m in stores]
    result = dbt_invoke(["build"], merchants=merchants, db=warehouse_connection_params())
    unbuilt = [r for r in result.results if r.unique_id.startswith("model.") and r.status != "success"]
    assert result.results and not unbuilt, result.error or unbuilt

    # One session: the ad's, from the pixel's events, of the customer the checkout named.
    with psycopg.connect(**warehouse_connection_params()) as conn:
        sessions = conn.execute(
            "select session_source, channel, campaign, customer_id, order_id, is_converted, page_views"
            " from analytics.fct_sessions where merchant_id = %s",
            [store.pk],
        ).fetchall()
    assert sessions == [("web_events", "paid_social", "spring_sale", CUSTOMER_ID, ORDER_ID, True, 4)]

    clerk.user("user_pia", first_name="Pia", last_name="Pixel")
    MembershipFactory(clerk_user_id="user_pia", merchant=store, role=Role.OWNER)
    today = dt.datetime.now(ZoneInfo(store.timezone)).date().isoformat()  # the order's day, in the store's zone
    page.goto(f"{app_url}/m/{store.pk}/attribution/")
    page.get_by_role("button", name="Sign in as Pia Pixel").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Attribution")
    page.goto(f"{app_url}/m/{store.pk}/attribution/?start={today}&end={today}")
    expect(page.get_by_test_id("range")).to_contain_text(f"{dt.date.fromisoformat(today):%b} ")
    rows = page.get_by_test_id("channel-table").locator("tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first.locator("th")).to_have_text("paid_social")
    expect(rows.first.locator("td").nth(0)).to_have_text("1")  # attributed orders
    expect(rows.first.locator("td").nth(1)).to_have_text("$60.00")  # the order's net revenue (60.00 of items)
