"""POST /collect/v1/batch: validation, CORS, consent and bot drops, dedupe, limits, keys, the rows it writes."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import uuid

import pytest
from django.utils import timezone

from collector import events as ev
from collector import intake
from collector.models import EventCount, WriteKey
from collector.services import write_key_rotate
from tests.collector.conftest import CHROME, GOOGLEBOT, IPHONE, batch, event, iso, stored, wsgi_call

pytestmark = pytest.mark.django_db(databases=["default", "warehouse"])


def test_a_batch_is_stored_in_the_web_events_columns(store, write_key):
    email = hashlib.sha256(b"ada@example.com").hexdigest()
    sent = [
        event(1),
        event(2, name="checkout_completed", customer_id="7001", order_id=9001, checkout_token="tok-1",
              email_sha256=email, value=42.5, currency="USD", product_id="gid://shopify/ProductVariant/5",
              properties={"title": "Thanks"}, user_agent=IPHONE),
    ]  # fmt: skip
    status, _, body, _ = wsgi_call(batch(write_key, sent))
    assert (status, body) == (200, {"accepted": 2, "duplicate": 0, "no_consent": 0, "bot": 0})
    rows = stored(store)
    assert [r["event_id"] for r in rows] == [sent[0]["event_id"], sent[1]["event_id"]]
    first, second = rows
    assert first["event_name"] == "page_viewed" and first["client_id"] == "client-1" and first["seq"] == 1
    assert first["page_url"] == sent[0]["url"] and first["page_path"] == "/products/mug"
    assert (first["utm_source"], first["utm_medium"], first["utm_campaign"], first["fbclid"], first["gclid"]) == (
        "fb", "paid", None, "FB1", None,
    )  # fmt: skip
    assert first["referrer"] == "https://www.facebook.com/" and first["device"] == "desktop"
    assert first["ip_prefix"] == "203.0.113.0/24" and first["shop_url"] == "hudson-ivy.myshopify.com"
    assert first["user_agent"] == CHROME and first["customer_id"] is None and first["properties"] is None
    assert first["_airbyte_meta"] == {"changes": [], "sync_id": None} and first["_airbyte_generation_id"] == 0
    assert isinstance(first["_airbyte_raw_id"], uuid.UUID)
    assert first["_airbyte_extracted_at"] == first["received_at"]
    # the pixel's clock, corrected by the batch's skew (received_at - sent_at)
    skew = first["received_at"] - first["sent_at"]
    assert first["occurred_at"] == dt.datetime.fromisoformat(sent[0]["occurred_at"]) + skew
    assert (second["customer_id"], second["order_id"], second["checkout_token"]) == (7001, 9001, "tok-1")
    assert (second["email_sha256"], float(second["value"]), second["currency"]) == (email, 42.5, "USD")
    assert second["product_id"] == "gid://shopify/ProductVariant/5" and second["properties"] == {"title": "Thanks"}
    assert second["device"] == "mobile"


def test_the_raw_ip_is_never_stored_only_its_prefix(store, write_key):
    wsgi_call(batch(write_key, [event(1)]), headers={"REMOTE_ADDR": "2001:db8:1234:5678::9"})
    wsgi_call(batch(write_key, [event(2)]), headers={"REMOTE_ADDR": "::ffff:198.51.100.23"})
    rows = stored(store)
    assert [r["ip_prefix"] for r in rows] == ["2001:db8:1234::/48", "198.51.100.0/24"]
    text = json.dumps([{k: str(v) for k, v in r.items()} for r in rows])
    assert "5678" not in text and "198.51.100.23" not in text


def test_the_same_batch_sent_twice_is_stored_once(store, write_key):
    body = batch(write_key, [event(n) for n in range(20)])
    assert wsgi_call(body)[2] == {"accepted": 20, "duplicate": 0, "no_consent": 0, "bot": 0}
    assert wsgi_call(body)[2] == {"accepted": 0, "duplicate": 20, "no_consent": 0, "bot": 0}
    assert len(stored(store)) == 20


def test_events_without_analytics_consent_are_dropped_and_counted(store, write_key, settings):
    settings.COLLECTOR_COUNTS_FLUSH_SECONDS = 0
    sent = [
        event(1),
        event(2, consent={"analytics": False, "marketing": True}),
        event(3, consent=None),
        event(4, consent={}),
    ]
    status, _, body, _ = wsgi_call(batch(write_key, sent))
    assert (status, body) == (200, {"accepted": 1, "duplicate": 0, "no_consent": 3, "bot": 0})
    assert [r["seq"] for r in stored(store)] == [1]
    counts = EventCount.objects.get(merchant=store)
    assert (counts.accepted, counts.no_consent, counts.bot, counts.duplicate, counts.rejected) == (1, 3, 0, 0, 0)


@pytest.mark.parametrize("agent", [GOOGLEBOT, "Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome/120.0 Safari/537.36"])
def test_bot_user_agents_are_dropped_and_counted(store, write_key, settings, agent):
    settings.COLLECTOR_COUNTS_FLUSH_SECONDS = 0
    status, _, body, _ = wsgi_call(batch(write_key, [event(1), event(2, user_agent=agent)]),
                                   headers={"HTTP_USER_AGENT": agent})  # fmt: skip
    # event 1 claims Chrome in its payload, but the request itself came from the bot
    assert (status, body) == (200, {"accepted": 0, "duplicate": 0, "no_consent": 0, "bot": 2})
    assert stored(store) == []
    assert EventCount.objects.get(merchant=store).bot == 2


def test_an_event_with_no_user_agent_at_all_is_a_bot(store, write_key):
    status, _, body, _ = wsgi_call(batch(write_key, [event(1, user_agent=None)]), headers={"HTTP_USER_AGENT": ""})
    assert (status, body) == (200, {"accepted": 0, "duplicate": 0, "no_consent": 0, "bot": 1})
    # the request's header stands in for an event that carries none
    status, _, body, _ = wsgi_call(batch(write_key, [event(2, user_agent=None)]), headers={"HTTP_USER_AGENT": IPHONE})
    assert body["accepted"] == 1 and stored(store)[0]["device"] == "mobile"


def test_every_example_of_the_vendored_bot_list_is_a_bot_and_browsers_are_not():
    from collector import bots

    examples = bots.pattern_instances()
    assert len(examples) > 1000 and all(bots.is_bot(agent) for agent in examples)
    assert not any(bots.is_bot(agent) for agent in (CHROME, IPHONE))


def test_cors_preflight_and_no_cookies(write_key):
    status, headers, body, raw = wsgi_call(method="OPTIONS", headers={"HTTP_ORIGIN": "null"}, length="")
    assert status == 204 and body is None
    assert headers["Access-Control-Allow-Origin"] == "*"
    assert headers["Access-Control-Allow-Methods"] == "POST, OPTIONS"
    assert headers["Access-Control-Allow-Headers"] == "Content-Type"
    assert "Access-Control-Allow-Credentials" not in headers
    for origin in ("null", "https://hudson-ivy.myshopify.com"):
        status, headers, _, raw = wsgi_call(batch(write_key, [event(1)]), headers={"HTTP_ORIGIN": origin})
        assert status == 200 and headers["Access-Control-Allow-Origin"] == "*"
        assert not [name for name, _ in raw if name.lower() == "set-cookie"]
    # refusals carry CORS too, or the pixel could not read why
    status, headers, _, raw = wsgi_call("{", headers={"HTTP_ORIGIN": "null"})
    assert status == 400 and headers["Access-Control-Allow-Origin"] == "*"
    assert not [name for name, _ in raw if name.lower() == "set-cookie"]


def test_the_django_view_answers_like_the_fast_path(client, store, write_key):
    body = json.dumps(batch(write_key, [event(1)]))
    response = client.post("/collect/v1/batch", body, content_type="text/plain", REMOTE_ADDR="203.0.113.9")
    assert response.status_code == 200 and response.json()["accepted"] == 1
    assert response["Access-Control-Allow-Origin"] == "*" and not response.cookies
    assert client.options("/collect/v1/batch").status_code == 204
    assert client.get("/collect/v1/batch").status_code == 405


# --- refusals: every one a 4xx with its reason, nothing stored ------------------------------------------------


def _refused(store, body, status=400, **kwargs):
    code, _, answer, _ = wsgi_call(body, **kwargs)
    assert code == status, answer
    assert stored(store) == []
    return answer


def test_malformed_bodies_are_400_with_the_reason(store, write_key):
    assert _refused(store, "{not json")["errors"]["body"][0].startswith("The body is not JSON")
    assert _refused(store, b"\xff\xfe")["errors"]["body"][0].startswith("The body is not JSON")
    assert _refused(store, "[1, 2]") == {"errors": {"body": [ev.NOT_OBJECT]}}
    assert _refused(store, "")["errors"]["body"][0].startswith("The body is not JSON")
    assert _refused(store, "[" * 5000 + "]" * 5000)["errors"]["body"][0].startswith("The body is not JSON")
    assert _refused(store, '{"write_key": NaN}')["errors"]["body"][0].startswith("The body is not JSON")


def test_nul_and_lone_surrogates_are_400_and_other_unicode_is_stored(store, write_key):
    nul = json.dumps(batch(write_key, [event(1, client_id="a\u0000b")]))
    assert _refused(store, nul) == {"errors": {"body": [ev.UNSTORABLE]}}
    lone = json.dumps(batch(write_key, [event(1)])).replace('"client-1"', '"\\ud800x"')
    assert _refused(store, lone) == {"errors": {"body": [ev.UNSTORABLE]}}
    fancy = event(1, client_id="客户-🛒", url="https://hudson-ivy.myshopify.com/products/tasse-café?utm_source=naïve")
    assert wsgi_call(batch(write_key, [fancy]))[0] == 200
    [row] = stored(store)
    assert row["client_id"] == "客户-🛒" and row["utm_source"] == "naïve"


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"event_id": None}, "event_id", ev.REQUIRED),
        ({"event_id": 5}, "event_id", ev.NOT_STRING),
        ({"event_id": "x" * 129}, "event_id", ev.TOO_LONG.format(limit=128)),
        ({"client_id": ""}, "client_id", ev.REQUIRED),
        ({"name": "order_refunded"}, "name", ev.UNKNOWN_NAME.format(names=", ".join(sorted(ev.EVENT_NAMES)))),
        ({"name": None}, "name", ev.REQUIRED),
        ({"seq": "3"}, "seq", ev.NOT_INTEGER),
        ({"seq": True}, "seq", ev.NOT_INTEGER),
        ({"seq": -1}, "seq", ev.OUT_OF_RANGE),
        ({"seq": 2**60}, "seq", ev.OUT_OF_RANGE),
        ({"occurred_at": "yesterday"}, "occurred_at", ev.BAD_TIME),
        ({"occurred_at": "2026-01-01T00:00:00"}, "occurred_at", ev.BAD_TIME),  # no time zone
        ({"occurred_at": 1700000000000}, "occurred_at", ev.BAD_TIME),
        ({"url": "javascript:alert(1)"}, "url", ev.BAD_URL),
        ({"url": "https://x/" + "a" * 2048}, "url", ev.TOO_LONG.format(limit=2048)),
        ({"url": None}, "url", ev.REQUIRED),
        ({"referrer": "r" * 2049}, "referrer", ev.TOO_LONG.format(limit=2048)),
        ({"user_agent": "u" * 513}, "user_agent", ev.TOO_LONG.format(limit=512)),
        ({"user_agent": ["Chrome"]}, "user_agent", ev.NOT_STRING),
        ({"customer_id": "gid://shopify/Customer/1"}, "customer_id", ev.NOT_INTEGER),
        ({"customer_id": 0}, "customer_id", ev.OUT_OF_RANGE),
        ({"order_id": 2**63}, "order_id", ev.OUT_OF_RANGE),
        ({"email_sha256": "ada@example.com"}, "email_sha256", ev.BAD_SHA256),
        ({"email_sha256": "A" * 64}, "email_sha256", ev.BAD_SHA256),
        ({"value": "12.50"}, "value", ev.NOT_NUMBER),
        ({"value": 1e13}, "value", ev.OUT_OF_RANGE),
        ({"currency": "usd"}, "currency", ev.BAD_CURRENCY),
        ({"consent": "yes"}, "consent", ev.NOT_AN_OBJECT),
        ({"consent": {"analytics": "true"}}, "consent.analytics", ev.NOT_BOOLEAN),
        ({"properties": [1]}, "properties", ev.NOT_AN_OBJECT),
        ({"properties": {"x": "y" * 5000}}, "properties", ev.PROPERTIES_TOO_BIG.format(limit=ev.MAX_PROPERTIES_BYTES)),
    ],
)
def test_each_invalid_field_is_400_naming_it_and_the_batch_is_not_stored(store, write_key, change, field, message):
    answer = _refused(store, batch(write_key, [event(0), event(1, **change)]))
    assert answer == {"errors": {f"events.1.{field}": [message]}}


def test_times_out_of_bounds_are_refused(store, write_key, settings):
    now = timezone.now()
    days_ago = now - dt.timedelta(days=2)
    skewed = batch(write_key, [event(1, occurred_at=iso(days_ago))], sent_at=iso(days_ago))
    limit = settings.COLLECTOR_MAX_CLOCK_SKEW_SECONDS
    assert _refused(store, skewed) == {"errors": {"sent_at": [ev.CLOCK_SKEW.format(limit=limit)]}}
    assert _refused(store, batch(write_key, [event(1)], sent_at="soon")) == {"errors": {"sent_at": [ev.BAD_TIME]}}
    assert _refused(store, batch(write_key, [event(1)], sent_at=None)) == {"errors": {"sent_at": [ev.REQUIRED]}}
    future = event(1, occurred_at=iso(now + dt.timedelta(minutes=5)))
    assert _refused(store, batch(write_key, [future])) == {"errors": {"events.0.occurred_at": [ev.IN_FUTURE]}}
    old = event(1, occurred_at=iso(now - dt.timedelta(days=8)))
    age = settings.COLLECTOR_MAX_EVENT_AGE_SECONDS
    assert _refused(store, batch(write_key, [old])) == {
        "errors": {"events.0.occurred_at": [ev.TOO_OLD.format(limit=age)]}
    }


def test_batch_shape_limits(store, write_key, settings):
    assert _refused(store, batch(write_key, [])) == {"errors": {"events": [ev.EMPTY_BATCH]}}
    assert _refused(store, batch(write_key, "all")) == {"errors": {"events": [ev.NOT_A_LIST]}}
    assert _refused(store, {"write_key": write_key, "sent_at": iso(timezone.now())}) == {
        "errors": {"events": [ev.REQUIRED]}
    }
    assert _refused(store, batch(write_key, [event(1), 7])) == {"errors": {"events.1": [ev.NOT_AN_OBJECT]}}
    twice = event(1)
    assert _refused(store, batch(write_key, [twice, dict(twice)])) == {
        "errors": {"events.1.event_id": [ev.DUPLICATE_IN_BATCH]}
    }
    many = batch(write_key, [event(n) for n in range(501)])
    assert _refused(store, many) == {"errors": {"events": [ev.TOO_MANY.format(limit=500)]}}
    assert wsgi_call(batch(write_key, [event(n) for n in range(500)]))[0] == 200  # exactly the limit is fine


def test_bodies_over_512_kb_are_413_without_being_read(store, write_key, settings):
    huge = batch(write_key, [event(1, properties={"x": "y" * 600_000})])
    answer = _refused(store, huge, status=413)
    assert answer == {"errors": {"body": [intake.BODY_TOO_LARGE.format(limit=512 * 1024)]}}
    assert _refused(store, b"{}", status=413, length=10_000_000)["errors"]["body"]
    assert _refused(store, b"{}", status=411, length="") == {"error": intake.LENGTH_REQUIRED}
    assert _refused(store, b"{}", status=411, length="abc") == {"error": intake.LENGTH_REQUIRED}


def test_wrong_keys_are_401(store, write_key):
    assert _refused(store, batch("wk_" + "x" * 30, [event(1)]), status=401) == {
        "errors": {"write_key": [intake.UNKNOWN_KEY]}
    }
    assert _refused(store, batch("secret", [event(1)]), status=401) == {"errors": {"write_key": [intake.BAD_KEY]}}
    assert _refused(store, batch(None, [event(1)])) == {"errors": {"write_key": [ev.REQUIRED]}}
    assert _refused(store, batch(12, [event(1)])) == {"errors": {"write_key": [ev.NOT_STRING]}}
    assert _refused(store, batch("k" * 65, [event(1)])) == {"errors": {"write_key": [ev.TOO_LONG.format(limit=64)]}}


def test_a_rotated_key_is_accepted_for_the_grace_period_then_refused(
    store, write_key, django_capture_on_commit_callbacks
):
    with django_capture_on_commit_callbacks():
        new = write_key_rotate(merchant=store, grace=dt.timedelta(hours=1)).key
    assert new != write_key
    assert wsgi_call(batch(write_key, [event(1)]))[0] == 200  # the old one, within its grace
    assert wsgi_call(batch(new, [event(2)]))[0] == 200
    WriteKey.objects.filter(key=write_key).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    intake.write_keys_forget()  # another process, or this one LOOKUP_CACHE_SECONDS later
    assert wsgi_call(batch(write_key, [event(3)]))[0] == 401
    assert [r["seq"] for r in stored(store)] == [1, 2]


def test_an_inactive_stores_key_is_refused(store, write_key):
    store.is_active = False
    store.save()
    assert _refused(store, batch(write_key, [event(1)]), status=401) == {"errors": {"write_key": [intake.UNKNOWN_KEY]}}


def test_rate_limits_per_ip_and_per_key_answer_429_with_retry_after(store, write_key, settings):
    settings.COLLECTOR_IP_BATCHES_PER_WINDOW = 3
    for n in range(3):
        assert wsgi_call(batch(write_key, [event(n)]))[0] == 200
    status, headers, body, _ = wsgi_call(batch(write_key, [event(9)]))
    assert status == 429 and 1 <= int(headers["Retry-After"]) <= settings.COLLECTOR_RATE_WINDOW_SECONDS
    assert body["error"].startswith("Too many batches from this address")
    assert wsgi_call(batch(write_key, [event(9)]), headers={"REMOTE_ADDR": "198.51.100.1"})[0] == 200  # another IP

    settings.COLLECTOR_KEY_EVENTS_PER_WINDOW = 12  # 4 already counted against the store this window
    assert (
        wsgi_call(batch(write_key, [event(n) for n in range(10, 18)]), headers={"REMOTE_ADDR": "198.51.100.2"})[0]
        == 200
    )
    status, headers, body, _ = wsgi_call(batch(write_key, [event(20)]), headers={"REMOTE_ADDR": "198.51.100.3"})
    assert status == 429 and int(headers["Retry-After"]) >= 1
    assert body["error"].startswith("Too many events for this store")
    assert len(stored(store)) == 12


def test_rate_limits_hold_across_processes_with_redis(store, write_key, settings):
    import redis

    url = "redis://127.0.0.1:6379/15"
    try:
        redis.Redis.from_url(url, socket_timeout=0.5).ping()
    except redis.RedisError:
        pytest.skip("no Redis on 127.0.0.1:6379")
    from collector import ratelimit

    settings.REDIS_URL = url
    settings.COLLECTOR_IP_BATCHES_PER_WINDOW = 2
    ip = f"192.0.2.{uuid.uuid4().int % 250}"
    first, second = ratelimit.Limiter(window=60, redis_url=url), ratelimit.Limiter(window=60, redis_url=url)
    key = f"test:{uuid.uuid4().hex}:{ip}"
    assert first.hit(key, 1, 2) is None and second.hit(key, 1, 2) is None
    assert first.hit(key, 1, 2) is not None  # the other "process" already used the window's allowance
    # and a Redis that does not answer lets batches through rather than losing them
    dead = ratelimit.Limiter(window=60, redis_url="redis://127.0.0.1:1/0")
    assert dead.hit(key, 10, 1) is None


def test_new_events_mark_one_web_change_for_the_build(store, write_key, django_capture_on_commit_callbacks):
    from analytics.models import RawDataChange

    with django_capture_on_commit_callbacks():
        wsgi_call(batch(write_key, [event(1)]))
        wsgi_call(batch(write_key, [event(2)]))
        wsgi_call(batch(write_key, [event(1)]))  # a duplicate only: nothing new
    changes = RawDataChange.objects.filter(merchant=store)
    assert [(c.source, c.consumed_by_run_id) for c in changes] == [("web", None)]
    from analytics.services import SOURCE_RAW_TABLES

    assert SOURCE_RAW_TABLES["web"] == "source:raw.web_*+"


def test_counts_are_kept_per_store_and_hour(store, write_key, settings):
    settings.COLLECTOR_COUNTS_FLUSH_SECONDS = 0
    body = batch(write_key, [event(1), event(2, consent={"analytics": False})])
    wsgi_call(body)
    wsgi_call(body)
    wsgi_call(batch(write_key, [event(3, seq="x")]))
    counts = EventCount.objects.get(merchant=store)
    assert counts.hour == timezone.now().replace(minute=0, second=0, microsecond=0)
    assert (counts.accepted, counts.duplicate, counts.no_consent, counts.bot, counts.rejected) == (1, 1, 2, 0, 1)


def test_a_table_made_without_the_event_id_index_gets_it(store, write_key):
    """Another writer that knows only the columns (the sandbox's demo seed) may have made the table first."""
    from django.db import connections

    from analytics.raw_schema import table_columns

    columns = ", ".join(f"{name} {pg_type}" for name, pg_type in table_columns("web_events"))
    with connections[intake._raw_alias()].cursor() as cursor:
        cursor.execute(f"create schema raw_{store.key}")
        cursor.execute(f"create table raw_{store.key}.web_events ({columns})")
    body = batch(write_key, [event(1)])
    assert wsgi_call(body)[2]["accepted"] == 1
    assert wsgi_call(body)[2]["duplicate"] == 1
    assert len(stored(store)) == 1
