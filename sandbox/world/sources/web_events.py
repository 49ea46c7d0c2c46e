"""The web pixel's events of the world's visitors: what our Shopify pixel would have posted for each session.

Derived from the world's records rather than drawn in the day loop: a session (``web_sessions``) becomes its page
views, product views and cart adds, and the session that ends a journey (the identified one: it has the customer)
also its checkout, finished by ``checkout_completed`` with the id, customer, total and email of the journey's order
(``shopify_orders``: the customer's order placed within minutes after the session started). The choices a session
needs (how many pages, which products) come from a random stream of its own, seeded by its id, so the main
stream — and every other table of the world — is exactly what it was, and the same world gives the same events.

Each event is the JSON object the pixel puts in a batch (extensions/session-pixel/src/pixel.js ``eventFor``):
the loader adds the batch's ``write_key`` and ``sent_at`` and posts it to the collector.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
import zlib
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlencode

from sandbox.world.sources.common import PRODUCTS, N
from sandbox.world.sources.shopify import ORDER_COLUMNS
from sandbox.world.sources.web_sessions import SESSION_COLUMNS

# Every event id of the world starts so: the loader's high-water mark reads only the world's events back.
EVENT_ID_PREFIX = "w:"
# A session's events end this long after it starts at the latest (its checkout: the order follows the session's
# start by 1 to 10 minutes; browsing: the world's ``ended_at``, at most 16 minutes after the start).
SESSION_SPAN_SECONDS = 20 * 60
CONSENT = {"analytics": True, "marketing": True, "preferences": True, "sale_of_data": True}
# Regular browsers' user agents by the session's device (no "HeadlessChrome", no crawler: the collector drops those).
USER_AGENTS = {
    "desktop": (
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 "
        "Safari/537.36",
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 "
        "Safari/605.1.15",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:133.0) Gecko/20100101 Firefox/133.0",
    ),
    "mobile": (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.6 Mobile/15E148 Safari/604.1",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 "
        "Mobile Safari/537.36",
    ),
    "tablet": (
        "Mozilla/5.0 (iPad; CPU OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 "
        "Mobile/15E148 Safari/604.1",
    ),
}
_QUERY = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term", "fbclid", "gclid")
_S = {name: i for i, name in enumerate(SESSION_COLUMNS)}
_O = {name: i for i, name in enumerate(ORDER_COLUMNS)}


def _epoch(text: str) -> int:
    """A world timestamp (``YYYY-MM-DD HH:MM:SS+00``) as epoch seconds."""
    return int(dt.datetime.fromisoformat(text).timestamp())


def _iso(t: int) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


class Order:
    """What a checkout of the world's order carries."""

    __slots__ = ("created", "currency", "customer_id", "email", "id", "lines", "token", "total")

    def __init__(self, fields: str) -> None:
        values = fields.split("\t")
        customer = json.loads(values[_O["customer"]])
        self.id = int(values[_O["id"]])
        self.created = _epoch(values[_O["created_at"]])
        self.customer_id = int(customer["id"])
        self.email = values[_O["email"]]
        self.total = float(values[_O["total_price"]])
        self.currency = values[_O["currency"]]
        self.token = values[_O["cart_token"]]
        self.lines = [(str(line["variant_id"]), float(line["price"])) for line in json.loads(values[_O["line_items"]])]


def orders_by_customer(order_fields: Iterable[str]) -> dict[int, list[Order]]:
    """The orders (one version each) per customer id, by creation time."""
    found: dict[int, list[Order]] = {}
    for fields in order_fields:
        order = Order(fields)
        found.setdefault(order.customer_id, []).append(order)
    for orders in found.values():
        orders.sort(key=lambda o: o.created)
    return found


def _journey_order(orders: dict[int, list[Order]], customer_id: int, started: int) -> Order | None:
    """The order a journey's identified session ends in: the customer's first order after the session started and
    within its span (shopify.ShopifyEmitter.order places it 1 to 10 minutes later)."""
    for order in orders.get(customer_id, ()):
        if started < order.created <= started + SESSION_SPAN_SECONDS:
            return order
    return None


def session_events(session_fields: str, orders: dict[int, list[Order]]) -> list[dict[str, Any]]:
    """The pixel's events of one world session, in time order (see the module docstring)."""
    v = session_fields.split("\t")
    sid, client, shop = v[_S["session_id"]], v[_S["anonymous_id"]], v[_S["shop_url"]]
    started, ended = _epoch(v[_S["started_at"]]), _epoch(v[_S["ended_at"]])
    rng = random.Random(zlib.crc32(sid.encode()))
    agents = USER_AGENTS.get(v[_S["device"]], USER_AGENTS["desktop"])
    agent = agents[zlib.crc32(client.encode()) % len(agents)]  # one browser per visitor and device
    query = urlencode([(name, v[_S[name]]) for name in _QUERY if v[_S[name]] != N])
    landing = v[_S["landing_page"]] + (f"?{query}" if query else "")
    referrer = v[_S["referrer"]]
    order = None
    if v[_S["customer_id"]] != N:
        order = _journey_order(orders, int(v[_S["customer_id"]]), started)
    out: list[dict[str, Any]] = []
    page = {"url": landing, "referrer": None if referrer == N else referrer}

    def add(name: str, t: int, **fields: Any) -> None:
        event = {
            "event_id": f"{EVENT_ID_PREFIX}{sid}.{len(out)}",
            "name": name,
            "client_id": client,
            # The pixel's seq only orders one client's events where their times tie: the world's clock is such an
            # order (a visitor's events are seconds apart), and unlike a counter it needs no replay of the
            # visitor's history to serve a page of events.
            "seq": t,
            "occurred_at": _iso(t),
            "url": page["url"],
            "user_agent": agent,
            "consent": CONSENT,
        }
        if page["referrer"]:
            event["referrer"] = page["referrer"]
        event.update({k: val for k, val in fields.items() if val is not None})
        out.append(event)

    def visit(url: str, t: int) -> None:
        page["referrer"], page["url"] = page["url"], url
        add("page_viewed", t)

    add("page_viewed", started)
    if order is not None:
        span = max(60, order.created - started)
        variant, price = order.lines[int(rng.random() * len(order.lines))]
        product_url = f"https://{shop}/products/v{variant}"
        visit(product_url, started + span // 5)
        add("product_viewed", started + span // 5 + 1, product_id=variant, value=price, currency=order.currency)
        add("product_added_to_cart", started + 2 * span // 5, product_id=variant, value=price, currency=order.currency)
        checkout = {
            "checkout_token": order.token,
            "value": order.total,
            "currency": order.currency,
            "customer_id": str(order.customer_id),
            "email_sha256": hashlib.sha256(order.email.strip().lower().encode()).hexdigest(),
        }
        visit(f"https://{shop}/checkouts/cn/{order.token}", started + 3 * span // 5)
        add("checkout_started", started + 3 * span // 5 + 1, **checkout)
        visit(f"https://{shop}/checkouts/cn/{order.token}/thank-you", order.created)
        add("checkout_completed", order.created, order_id=str(order.id), **checkout)
        return out
    # Browsing: a few product pages (some with a cart add) until the session's end.
    t = started
    for _ in range(int(rng.random() * 4)):
        t += 20 + int(rng.random() * 120)
        if t + 1 >= ended:
            break
        pid, _title, price = PRODUCTS[int(rng.random() * len(PRODUCTS))]
        variant = str(pid + 1)
        visit(f"https://{shop}/products/v{variant}", t)
        add("product_viewed", t + 1, product_id=variant, value=float(price))
        if rng.random() < 0.08 and t + 2 < ended:
            add("product_added_to_cart", t + 2, product_id=variant, value=float(price), properties={"quantity": 1})
    return out


def events_in(sessions: Iterable[str], orders: dict[int, list[Order]], lo: int, hi: int) -> list[dict[str, Any]]:
    """The events of ``sessions`` that occurred in ``[lo, hi)`` (epoch seconds), ordered by (time, event id):
    the order the world serves them in, and the one a high-water mark continues from."""
    found = []
    for fields in sessions:
        for event in session_events(fields, orders):
            if lo <= event["seq"] < hi:
                found.append(event)
    found.sort(key=lambda e: (e["seq"], e["event_id"]))
    return found
