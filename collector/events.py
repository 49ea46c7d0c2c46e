"""The batch the pixel posts, checked field by field, and the web_events rows it becomes.

Pure functions (no database): `batch_parse` turns the body into a Batch or raises BatchRefused with field-level
reasons; `event_row` maps one accepted event to the raw table's columns (analytics/raw_schema.py `web_events`).

The body (docs/rfcs/session-tracking.md, "What the pixel posts"):

    {"write_key": "wk_…", "sent_at": "2026-01-01T00:00:00.000Z", "pixel_version": "1",
     "events": [{"event_id": "…", "name": "page_viewed", "client_id": "…", "seq": 3,
                 "occurred_at": "2026-01-01T00:00:00.000Z", "url": "https://…", "referrer": "…",
                 "user_agent": "…", "consent": {"analytics": true, "marketing": false, …},
                 "customer_id": 1, "order_id": 2, "checkout_token": "…", "email_sha256": "…",
                 "value": 12.5, "currency": "USD", "product_id": "…", "properties": {…}}]}

A batch is taken whole or refused whole: one invalid event refuses the batch (400, every reason listed by
`events.<i>.<field>`), so a batch is never half stored and the pixel, which builds every event itself and trims
each field to these limits, only meets a 400 through a bug or a forgery.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

EVENT_NAMES = frozenset(
    {"page_viewed", "product_viewed", "product_added_to_cart", "checkout_started", "checkout_completed"}
)
MAX_ID = 128
MAX_URL = 2048
MAX_USER_AGENT = 512
MAX_PROPERTIES_BYTES = 4096
MAX_SEQ = 2**53  # JavaScript's safe integers: the pixel's counter never passes it
MAX_BIGINT = 2**63 - 1
MAX_VALUE = 10**12

# Messages (answered to the pixel; constants so tests can assert them).
NOT_JSON = "The body is not JSON: {reason}"
NOT_OBJECT = "The body must be a JSON object."
REQUIRED = "This field is required."
NOT_STRING = "Must be a string."
NOT_INTEGER = "Must be an integer."
NOT_NUMBER = "Must be a number."
NOT_BOOLEAN = "Must be true or false."
NOT_AN_OBJECT = "Must be an object."
NOT_A_LIST = "Must be a list of events."
EMPTY_BATCH = "A batch has at least one event."
TOO_MANY = "A batch has at most {limit} events."
TOO_LONG = "At most {limit} characters."
BAD_TIME = "Must be an ISO 8601 time with a time zone, e.g. 2026-01-01T00:00:00.000Z."
CLOCK_SKEW = "More than {limit} s from the collector's clock: the device's clock is wrong."
IN_FUTURE = "Later than sent_at."
TOO_OLD = "More than {limit} s before sent_at."
UNKNOWN_NAME = "Unknown event name; one of: {names}."
BAD_URL = "Must be an http(s) URL."
OUT_OF_RANGE = "Out of range."
BAD_SHA256 = "Must be 64 lower-case hex digits (sha256 of the trimmed, lower-cased email)."
BAD_CURRENCY = "Must be a 3-letter ISO 4217 code."
PROPERTIES_TOO_BIG = "At most {limit} bytes of JSON."
UNSTORABLE = "Text may not contain NUL characters or lone surrogates."
DUPLICATE_IN_BATCH = "The same event_id twice in one batch."

_CURRENCY = re.compile(r"[A-Z]{3}")
_SHA256 = re.compile(r"[0-9a-f]{64}")
_DIGITS = re.compile(r"[0-9]{1,19}")
# NUL and surrogates can only be written as \u escapes in a JSON text (raw ones are not valid UTF-8): a body
# without such an escape needs no walk.
_MAYBE_UNSTORABLE = re.compile(rb"\\u(?:0000|d[89a-f])", re.IGNORECASE)
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
UTM_FIELDS = ("utm_source", "utm_medium", "utm_campaign", "utm_content", "utm_term")
CLICK_IDS = ("fbclid", "gclid", "ttclid")


class BatchRefused(ValueError):
    """The batch cannot be taken: `errors` maps a field path to its reasons (a 400 body)."""

    def __init__(self, errors: dict[str, list[str]]) -> None:
        super().__init__("; ".join(f"{k}: {' '.join(v)}" for k, v in errors.items()))
        self.errors = errors


@dataclass
class Batch:
    write_key: str
    sent_at: dt.datetime
    events: list[dict[str, Any]] = field(default_factory=list)


def _time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not 10 <= len(value) <= 40:
        return None
    try:
        parsed = dt.datetime.fromisoformat(value)  # Python 3.11+: "Z" and fractions as JavaScript writes them
    except ValueError:
        return None
    if parsed.tzinfo is None or not 2000 <= parsed.year <= 2100:
        return None
    return parsed.astimezone(dt.UTC)


def _unstorable(body: bytes, document: Any) -> bool:
    if not _MAYBE_UNSTORABLE.search(body):
        return False
    stack = [document]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if _UNSTORABLE.search(item):
                return True
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False


def body_parse(body: bytes) -> dict[str, Any]:
    """The JSON object of the body (BatchRefused with the reason otherwise)."""
    # The project's bounded JSON reader (nesting depth, no NaN); see connectors.attentive.event_parse for why
    # DRF's views are imported first.
    import rest_framework.views  # noqa: F401

    from config.api import json_loads

    try:
        document = json_loads(body)
    except ValueError as exc:  # UnicodeDecodeError, JSONDecodeError, too deep
        raise BatchRefused({"body": [NOT_JSON.format(reason=str(exc)[:200])]}) from exc
    if not isinstance(document, dict):
        raise BatchRefused({"body": [NOT_OBJECT]})
    if _unstorable(body, document):
        raise BatchRefused({"body": [UNSTORABLE]})
    return document


def write_key_of(document: dict[str, Any]) -> str:
    key = document.get("write_key")
    if not isinstance(key, str) or not key:
        raise BatchRefused({"write_key": [REQUIRED if key is None else NOT_STRING]})
    if len(key) > 64:
        raise BatchRefused({"write_key": [TOO_LONG.format(limit=64)]})
    return key


class _Checker:
    """Collects field errors for one event under its `events.<i>.` prefix."""

    def __init__(self, event: dict[str, Any], prefix: str, errors: dict[str, list[str]]) -> None:
        self.event, self.prefix, self.errors = event, prefix, errors

    def fail(self, name: str, message: str) -> None:
        self.errors.setdefault(f"{self.prefix}{name}", []).append(message)

    def text(self, name: str, limit: int, *, required: bool = False) -> str | None:
        value = self.event.get(name)
        if value is None or value == "":
            if required:
                self.fail(name, REQUIRED)
            return None
        if not isinstance(value, str):
            self.fail(name, NOT_STRING)
            return None
        if len(value) > limit:
            self.fail(name, TOO_LONG.format(limit=limit))
            return None
        return value

    def integer(self, name: str, low: int, high: int, *, required: bool = False, digits: bool = False) -> int | None:
        value = self.event.get(name)
        if value is None:
            if required:
                self.fail(name, REQUIRED)
            return None
        if digits and isinstance(value, str) and _DIGITS.fullmatch(value):
            value = int(value)  # Shopify's ids arrive as strings of digits
        if isinstance(value, bool) or not isinstance(value, int):
            self.fail(name, NOT_INTEGER)
            return None
        if not low <= value <= high:
            self.fail(name, OUT_OF_RANGE)
            return None
        return value


def batch_parse(
    document: dict[str, Any], *, received_at: dt.datetime, max_events: int, max_skew: float, max_age: float
) -> Batch:
    """Check the batch and every event; BatchRefused with every reason found."""
    errors: dict[str, list[str]] = {}
    key = write_key_of(document)
    sent_at = _time(document.get("sent_at"))
    if sent_at is None:
        errors["sent_at"] = [REQUIRED if document.get("sent_at") is None else BAD_TIME]
    elif abs((received_at - sent_at).total_seconds()) > max_skew:
        errors["sent_at"] = [CLOCK_SKEW.format(limit=int(max_skew))]
    events = document.get("events")
    if not isinstance(events, list):
        errors["events"] = [REQUIRED if events is None else NOT_A_LIST]
        raise BatchRefused(errors)
    if not events:
        errors["events"] = [EMPTY_BATCH]
    elif len(events) > max_events:
        errors["events"] = [TOO_MANY.format(limit=max_events)]
        raise BatchRefused(errors)
    checked: list[dict[str, Any]] = []
    seen: set[str] = set()
    for index, event in enumerate(events):
        prefix = f"events.{index}."
        if not isinstance(event, dict):
            errors[f"events.{index}"] = [NOT_AN_OBJECT]
            continue
        row = _event_check(event, _Checker(event, prefix, errors), sent_at=sent_at, max_age=max_age)
        if row is not None:
            if row["event_id"] in seen:
                errors.setdefault(f"{prefix}event_id", []).append(DUPLICATE_IN_BATCH)
            seen.add(row["event_id"])
            checked.append(row)
    if errors:
        raise BatchRefused(errors)
    assert sent_at is not None
    return Batch(write_key=key, sent_at=sent_at, events=checked)


def _event_check(
    event: dict[str, Any], check: _Checker, *, sent_at: dt.datetime | None, max_age: float
) -> dict[str, Any] | None:
    """The event's fields, checked (None when any is wrong; the reasons are in the checker's errors)."""
    before = len(check.errors)
    out: dict[str, Any] = {
        "event_id": check.text("event_id", MAX_ID, required=True),
        "client_id": check.text("client_id", MAX_ID, required=True),
        "seq": check.integer("seq", 0, MAX_SEQ, required=True),
        "referrer": check.text("referrer", MAX_URL),
        "user_agent": check.text("user_agent", MAX_USER_AGENT),
        "checkout_token": check.text("checkout_token", MAX_ID),
        "product_id": check.text("product_id", MAX_ID),
        "customer_id": check.integer("customer_id", 1, MAX_BIGINT, digits=True),
        "order_id": check.integer("order_id", 1, MAX_BIGINT, digits=True),
    }
    name = event.get("name")
    if name is None:
        check.fail("name", REQUIRED)
    elif not isinstance(name, str) or name not in EVENT_NAMES:
        check.fail("name", UNKNOWN_NAME.format(names=", ".join(sorted(EVENT_NAMES))))
    out["name"] = name
    occurred_at = _time(event.get("occurred_at"))
    if occurred_at is None:
        check.fail("occurred_at", REQUIRED if event.get("occurred_at") is None else BAD_TIME)
    elif sent_at is not None:
        if (occurred_at - sent_at).total_seconds() > 60:
            check.fail("occurred_at", IN_FUTURE)
        elif (sent_at - occurred_at).total_seconds() > max_age:
            check.fail("occurred_at", TOO_OLD.format(limit=int(max_age)))
    out["occurred_at"] = occurred_at
    url = check.text("url", MAX_URL, required=True)
    if url is not None:
        try:
            parts = urlsplit(url)
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.netloc:
            check.fail("url", BAD_URL)
        else:
            out["url"], out["path"], out["query"] = url, parts.path or "/", parts.query
    email = check.text("email_sha256", 64)
    if email is not None and not _SHA256.fullmatch(email):
        check.fail("email_sha256", BAD_SHA256)
    out["email_sha256"] = email
    currency = check.text("currency", 3)
    if currency is not None and not _CURRENCY.fullmatch(currency):
        check.fail("currency", BAD_CURRENCY)
    out["currency"] = currency
    value = event.get("value")
    if value is not None:
        if isinstance(value, bool) or not isinstance(value, int | float):
            check.fail("value", NOT_NUMBER)
            value = None
        elif not math.isfinite(value) or not -MAX_VALUE < value < MAX_VALUE:
            check.fail("value", OUT_OF_RANGE)
            value = None
    out["value"] = value
    consent = event.get("consent")
    if consent is None:
        consent = {}
    elif not isinstance(consent, dict):
        check.fail("consent", NOT_AN_OBJECT)
        consent = {}
    analytics = consent.get("analytics")
    if analytics is not None and not isinstance(analytics, bool):
        check.fail("consent.analytics", NOT_BOOLEAN)
    out["analytics_consent"] = analytics is True
    properties = event.get("properties")
    if properties is not None:
        if not isinstance(properties, dict):
            check.fail("properties", NOT_AN_OBJECT)
            properties = None
        else:
            size = len(json.dumps(properties, separators=(",", ":")))
            if size > MAX_PROPERTIES_BYTES:
                check.fail("properties", PROPERTIES_TOO_BIG.format(limit=MAX_PROPERTIES_BYTES))
                properties = None
    out["properties"] = properties
    return out if len(check.errors) == before else None


# --- derived columns -------------------------------------------------------------------------------------------

_TABLET = re.compile(r"iPad|Tablet|PlayBook|Silk|Kindle|(Android(?!.*Mobile))")
_MOBILE = re.compile(r"Mobi|iPhone|iPod|Android|Windows Phone|BlackBerry|Opera Mini")


@functools.lru_cache(maxsize=4096)
def device_of(user_agent: str) -> str:
    if _TABLET.search(user_agent):
        return "tablet"
    if _MOBILE.search(user_agent):
        return "mobile"
    return "desktop"


def query_fields(query: str) -> dict[str, str | None]:
    """utm_* and click ids of the page URL's query (the first value of each; at most MAX_ID characters)."""
    found: dict[str, str | None] = dict.fromkeys((*UTM_FIELDS, *CLICK_IDS))
    if not query:
        return found
    for name, value in parse_qsl(query, keep_blank_values=False):
        key = name.lower()
        if key in found and found[key] is None:
            found[key] = value[:MAX_ID]
    return found


# Columns the same for every event of a batch: bound once per statement, not repeated in each row's JSON.
BATCH_COLUMNS = ("sent_at", "received_at", "ip_prefix", "shop_url")


def event_row(event: dict[str, Any], *, user_agent: str) -> dict[str, Any]:
    """The web_events columns of one accepted event that vary per event (by name; see analytics/raw_schema.py),
    without those that are NULL. The batch's own (BATCH_COLUMNS), the skew correction of occurred_at and the
    metadata columns are added by the INSERT (collector.intake)."""
    row = {
        "event_id": event["event_id"],
        "event_name": event["name"],
        "client_id": event["client_id"],
        "seq": event["seq"],
        "occurred_at": event["occurred_at"].isoformat(),
        "page_url": event["url"],
        "page_path": event["path"],
        "user_agent": user_agent,
        "device": device_of(user_agent),
    }
    for name in _OPTIONAL:
        value = event[name]
        if value is not None:
            row[name] = value
    if event["query"]:
        for name, value in query_fields(event["query"]).items():
            if value is not None:
                row[name] = value
    return row


_OPTIONAL = (
    "referrer", "customer_id", "order_id", "checkout_token", "email_sha256", "value", "currency", "product_id",
    "properties",
)  # fmt: skip
