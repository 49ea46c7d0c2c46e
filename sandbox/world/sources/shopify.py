"""Shopify's streams: the shop, orders (each version Airbyte lands), refunds and customers.

An order is where a journey ends: ``order`` also writes the journey's sessions, messages and Klaviyo events
through the other sources' emitters, in the order the random stream was always drawn in.
"""

from __future__ import annotations

from sandbox.world.columns import declare
from sandbox.world.sources.common import DAY, PRODUCTS, N

ORDER_COLUMNS = declare(
    __name__,
    {"shopify_orders": 1},
    (
        "id",
        "name",
        "order_number",
        "email",
        "created_at",
        "updated_at",
        "processed_at",
        "cancelled_at",
        "cancel_reason",
        "closed_at",
        "currency",
        "presentment_currency",
        "financial_status",
        "fulfillment_status",
        "total_price",
        "subtotal_price",
        "total_tax",
        "total_discounts",
        "total_line_items_price",
        "total_shipping_price_set",
        "taxes_included",
        "test",
        "source_name",
        "landing_site",
        "referring_site",
        "browser_ip",
        "buyer_accepts_marketing",
        "cart_token",
        "tags",
        "discount_codes",
        "customer",
        "line_items",
        "shop_url",
    ),
)
REFUND_COLUMNS = declare(
    __name__,
    {"shopify_order_refunds": 2},
    (
        "id",
        "order_id",
        "created_at",
        "processed_at",
        "restock",
        "note",
        "order_adjustments",
        "refund_line_items",
        "transactions",
        "shop_url",
    ),
)
CUSTOMER_COLUMNS = declare(
    __name__,
    {"shopify_customers": 3},
    (
        "id",
        "email",
        "first_name",
        "last_name",
        "phone",
        "created_at",
        "updated_at",
        "orders_count",
        "total_spent",
        "state",
        "verified_email",
        "tags",
        "currency",
        "accepts_marketing",
        "email_marketing_consent",
        "sms_marketing_consent",
        "default_address",
        "shop_url",
    ),
)
SHOP_COLUMNS = declare(
    __name__,
    {"shopify_shop": 4},
    (
        "id",
        "name",
        "domain",
        "myshopify_domain",
        "currency",
        "enabled_presentment_currencies",
        "iana_timezone",
        "timezone",
        "plan_name",
        "country_code",
        "created_at",
        "updated_at",
        "shop_url",
    ),
)


class ShopifyEmitter:
    """Mixed into ``simulation._Generator``, whose random stream, clock and ``emit`` it uses (as every emitter)."""

    def setup_shopify(self, created: str, first_sync: int) -> None:
        shop_id = 60_000_000 + self.mh % 1_000_000
        name = self.store_name
        shop = (
            f"{shop_id}\t{name}\t{self.shop}\t{self.shop}\t{self.currency}\t"
            f'["{self.currency}"]\t{self.tzname}\t(GMT) {self.tzname}\tShopify\tUS\t{created}\t{created}\t'
            f"{self.shop}"
        )
        self.emit("shopify_shop", first_sync, shop)
        self.emit("shopify_shop", first_sync + 7 * DAY, shop)  # re-emitted by a later full sync

    def order(self, p: int, t: int, touches: list[tuple[int, str]]) -> None:
        rng = self.rng
        person = self.people[p]
        new = person[1] is None
        if new:
            self.customer_seq += 1
            person[1] = 6_000_000_000 + self.mh % 1000 * 1_000_000 + self.customer_seq
        cust_id = person[1]
        # the journey's sessions: the final one is identified (checkout), earlier ones only carry the cookie
        second_device = f"x{self.mh % 100_000:05d}{rng.getrandbits(40):012x}"
        for i, (st, ch) in enumerate(touches):
            last = i == len(touches) - 1
            if ch == "email":
                self.flow("Browse Abandonment", p, st - 3600 - 60, open_rate=1.0, click_rate=0.0)
                self.kev("Clicked Email", p, st - 1, self.flow_props("Browse Abandonment", 0))
                self.session(p, st, ch, identified=last, campaign="browse_abandonment")
            elif ch == "sms":
                mid = f"AJ{self.mh % 1000:03d}01"  # the journey's message
                self.attentive("attentive_sms_sent", p, st - 1800, mid, "Browse journey", "JOURNEY", "TEXT")
                self.attentive(
                    "attentive_sms_message_link_click",
                    p,
                    st - 1,
                    mid,
                    "Browse journey",
                    "JOURNEY",
                    "TEXT",
                    f"https://{self.shop}/?utm_source=attentive",
                )
                self.session(p, st, ch, identified=last, campaign="browse_journey")
            else:
                anon = second_device if (not last and rng.random() < 0.15) else None
                self.session(p, st, ch, identified=last, anon=anon)
        self.order_seq += 1
        oid = 5_000_000_000 + self.mh % 1000 * 10_000_000 + self.order_seq
        number = 1000 + self.order_seq
        lines, gross, li = [], 0.0, []
        for j in range(1 + min(3, int(rng.expovariate(1.2)))):
            pid, title, price = PRODUCTS[int(rng.random() * len(PRODUCTS))]
            qty = 1 if rng.random() < 0.8 else 2
            lid = oid * 10 + j
            gross += price * qty
            li.append((lid, price * qty, pid))
            lines.append(
                f'{{"id":{lid},"product_id":{pid},"variant_id":{pid + 1},"title":"{title}",'
                f'"quantity":{qty},"price":"{price:.2f}","sku":"SKU-{pid % 1000}"}}'
            )
        discount, codes = 0.0, "[]"
        if rng.random() < 0.22:
            pct = (10, 15, 20)[int(rng.random() * 3)]
            discount = round(gross * pct / 100, 2)
            codes = f'[{{"code":"SAVE{pct}","amount":"{discount:.2f}","type":"percentage"}}]'
        subtotal = round(gross - discount, 2)
        shipping = 0.0 if subtotal >= 75 else 6.95
        tax = round(subtotal * 0.08, 2)
        total = round(subtotal + shipping + tax, 2)
        test = rng.random() < 0.004
        cancelled = not test and rng.random() < 0.02
        cur = self.currency
        ship_set = (
            f'{{"shop_money":{{"amount":"{shipping:.2f}","currency_code":"{cur}"}},'
            f'"presentment_money":{{"amount":"{shipping:.2f}","currency_code":"{cur}"}}}}'
        )
        email = self.email(p)
        customer_json = f'{{"id":{cust_id},"email":"{email}","accepts_marketing":true}}'
        landing = f"/?utm_source={touches[-1][1]}" if touches else "/"
        line_json = "[" + ",".join(lines) + "]"

        def version(updated: int, financial: str, fulfillment: str, cancelled_at: str = N, closed: str = N) -> str:
            return (
                f"{oid}\t#{number}\t{number}\t{email}\t{self.ts(t)}\t{self.ts(updated)}\t{self.ts(t)}\t{cancelled_at}"
                f"\t{'customer' if cancelled_at != N else N}\t{closed}\t{cur}\t{cur}\t{financial}\t{fulfillment}"
                f"\t{total:.2f}\t{subtotal:.2f}\t{tax:.2f}\t{discount:.2f}\t{gross:.2f}\t{ship_set}\tf"
                f"\t{'t' if test else 'f'}\tweb\t{landing}\t{N}\t10.0.{p % 250}.{number % 250}\tt"
                f"\tc{oid:x}\t{'test' if test else N}\t{codes}\t{customer_json}\t{line_json}\t{self.shop}"
            )

        v1 = version(t, "paid", N)
        self.emit("shopify_orders", self.sync_after(t), v1)
        if rng.random() < 0.04:  # Airbyte's inclusive cursor re-emits the same record
            self.emit("shopify_orders", self.sync_after(t) + 3600 * rng.randrange(1, 30), v1)
        if cancelled:
            tc = t + rng.randrange(1800, 20 * 3600)
            self.emit("shopify_orders", self.sync_after(tc), version(tc, "voided", N, self.ts(tc), self.ts(tc)))
        else:
            tf = t + rng.randrange(DAY, 3 * DAY)
            if rng.random() < 0.7:
                self.emit(
                    "shopify_orders",
                    self.sync_after(tf),
                    version(tf, "paid", "fulfilled", closed=self.ts(tf)),
                )
            if not test and rng.random() < 0.08:
                self.refund(oid, t, li, discount / gross if gross else 0.0, shipping, version)
        # customer record: created with the first order, a later version after each order
        person[2] += 1
        person[3] += total
        when = self.ts(t)
        self.emit(
            "shopify_customers",
            self.sync_after(t),
            f"{cust_id}\t{email}\tFirst{p}\tLast{p}\t+1555{p:07d}\t{self.ts(t - 60) if new else self.ts(t - DAY)}"
            f"\t{when}\t{person[2]}\t{person[3]:.2f}\tenabled\tt\t{N}\t{cur}\tt"
            f'\t{{"state":"subscribed","opt_in_level":"single_opt_in"}}\t{{"state":"not_subscribed"}}'
            f'\t{{"country_code":"US","city":"Springfield"}}\t{self.shop}',
        )
        # Klaviyo: Placed Order / Ordered Product, then the post-purchase flow
        self.kev("Placed Order", p, t + 30, f'{{"$value":{total:.2f},"$event_id":"{oid}","OrderId":{oid}}}')
        for lid, amount, pid in li:
            self.kev(
                "Ordered Product",
                p,
                t + 31,
                f'{{"$value":{amount:.2f},"$event_id":"{lid}","ProductID":{pid}}}',
            )
        self.flow("Post-Purchase", p, t, open_rate=0.5, click_rate=0.06)

    def refund(self, oid: int, t: int, li: list, disc_ratio: float, shipping: float, version) -> None:
        rng = self.rng
        # 45 % within two weeks, the rest weeks later (often in a later month than the order)
        delay = rng.randrange(2 * DAY, 14 * DAY) if rng.random() < 0.45 else rng.randrange(15 * DAY, 75 * DAY)
        tr = t + delay
        full = rng.random() < 0.4
        refunded = li if full else [li[int(rng.random() * len(li))]]
        items, sub, tax = [], 0.0, 0.0
        for lid, amount, _ in refunded:
            s = round(amount * (1 - disc_ratio), 2)
            x = round(s * 0.08, 2)
            sub += s
            tax += x
            items.append(
                f'{{"line_item_id":{lid},"quantity":1,"subtotal":{s:.2f},"total_tax":{x:.2f},"restock_type":"return"}}'
            )
        adjustments = "[]"
        ship_refund = 0.0
        if full and shipping:
            ship_refund = shipping
            adjustments = (
                f'[{{"amount":"{-shipping:.2f}","tax_amount":"0.00","kind":"shipping_refund",'
                f'"reason":"Shipping refund"}}]'
            )
        amount = round(sub + tax + ship_refund, 2)
        rid = oid * 10 + 9
        self.emit(
            "shopify_order_refunds",
            self.sync_after(tr),
            f"{rid}\t{oid}\t{self.ts(tr)}\t{self.ts(tr)}\tt\t{'Full refund' if full else 'Returned item'}"
            f"\t{adjustments}\t[{','.join(items)}]"
            f'\t[{{"amount":"{amount:.2f}","kind":"refund","status":"success","gateway":"shopify_payments",'
            f'"processed_at":"{self.ts(tr)}"}}]\t{self.shop}',
        )
        status = "refunded" if full else "partially_refunded"
        self.emit("shopify_orders", self.sync_after(tr), version(tr, status, "fulfilled", closed=self.ts(tr)))
