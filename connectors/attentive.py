"""Attentive data arrives only by webhook (no bulk read API, no Airbyte source; INGESTION.md §5).

At API-key connect we register one webhook per credential for the event types the marts read, pointing at
``/webhooks/attentive/<public id>/``; disconnect deletes it at Attentive. Each delivery is checked against that
webhook's signing key (``x-attentive-hmac-sha256``: hex HMAC-SHA256 of the raw body; base64 accepted too) and
written as one row of the merchant's raw table, in the columns staging reads (analytics/raw_schema.py), so dbt has
one code path whatever wrote the row.

Idempotency: Attentive sends no event id and retries for days, in no order. A row's ``_airbyte_raw_id`` is the
first 128 bits of sha256(raw body), and each Attentive raw table has a unique index on it: a redelivery is an
``INSERT ... ON CONFLICT DO NOTHING`` that changes nothing. The write is that one statement, so there is never a
half-written event; any database error answers 503 and Attentive delivers again.

The intake is on the hot path of a burst (thousands of events a second): one indexed read of the webhook, one
insert, no ORM objects, no session, no CSRF.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import logging
import re
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any

import psycopg
from django.conf import settings
from django.db import DatabaseError, ProgrammingError, connections, transaction
from django.urls import reverse
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables
from psycopg import sql

from analytics.raw_schema import WEBHOOK_TABLES, raw_schema_name, raw_table_statements, table_columns
from connectors.clients.attentive import AttentiveClient
from connectors.crypto import decrypt_secret, encrypt_secret
from connectors.models import AttentiveWebhook, ConnectorCredential

logger = logging.getLogger(__name__)

SIGNATURE_HEADER = "HTTP_X_ATTENTIVE_HMAC_SHA256"
OTHER_EVENTS_TABLE = "attentive_other_events"

# Event type -> (raw table, channel). Subscription events of both channels share one table, as staging reads
# them (subscription_channel tells them apart); `phone.*` are the older UI docs' names for the SMS ones.
EVENT_TABLES: dict[str, tuple[str, str]] = {
    "sms.sent": ("attentive_sms_sent", "TEXT"),
    "sms.message_link_click": ("attentive_sms_message_link_click", "TEXT"),
    "email.sent": ("attentive_email_sent", "EMAIL"),
    "email.opened": ("attentive_email_opened", "EMAIL"),
    "email.message_link_click": ("attentive_email_message_link_click", "EMAIL"),
    "sms.subscribed": ("attentive_subscribed", "TEXT"),
    "phone.subscribed": ("attentive_subscribed", "TEXT"),
    "email.subscribed": ("attentive_subscribed", "EMAIL"),
    "sms.unsubscribed": ("attentive_unsubscribed", "TEXT"),
    "phone.unsubscribed": ("attentive_unsubscribed", "TEXT"),
    "email.unsubscribed": ("attentive_unsubscribed", "EMAIL"),
}
# What we subscribe to: every type with a table the marts read (not the legacy `phone.*` aliases).
SUBSCRIBED_EVENTS = [name for name in EVENT_TABLES if not name.startswith("phone.")]

# Error messages (answered to Attentive, and kept here so tests can assert them).
UNKNOWN_WEBHOOK = "unknown webhook"
MISSING_SIGNATURE = "missing x-attentive-hmac-sha256 signature"
INVALID_SIGNATURE = "invalid signature"
NOT_JSON = "body is not JSON: {reason}"
NOT_OBJECT = "body must be a JSON object"
MISSING_TYPE = "missing event type: `type` must be a non-empty string"
BAD_TIMESTAMP = "`timestamp` must be milliseconds since 1970 (an integer)"
NOT_AN_OBJECT = "`{field}` must be an object"
NOT_A_VALUE = "`{field}` must be a string or a number"
NOT_STORABLE = "text in the event may not contain NUL characters or lone surrogates"
STORE_FAILED = "the event could not be stored; deliver it again"

REGISTRATION_FAILED = "Attentive did not register the webhook its data arrives by; nothing was saved. {reason}"

# 2000-01-01 .. 2100-01-01 in ms: a timestamp outside is seconds (or garbage), not Attentive's milliseconds.
_MIN_MS, _MAX_MS = 946_684_800_000, 4_102_444_800_000


class EventRefused(ValueError):
    """The delivery is not an event we can store (answered 400 with the reason; Attentive will not fix it)."""


# --- registration --------------------------------------------------------------------------------------------


def intake_url(public_id: str) -> str:
    return settings.APP_BASE_URL.rstrip("/") + reverse("connectors:attentive_webhook", kwargs={"public_id": public_id})


@dataclass(frozen=True)
class RegisteredWebhook:
    public_id: str
    attentive_webhook_id: str
    events: list[str]
    signing_key: str = ""

    def __repr__(self) -> str:  # never the signing key
        return f"RegisteredWebhook({self.public_id!r}, {self.attentive_webhook_id!r})"


@sensitive_variables()
def attentive_webhook_register(*, api_key: str) -> RegisteredWebhook:
    """Register the intake webhook at Attentive (a provider call; raises the client's typed errors)."""
    public_id = secrets.token_urlsafe(24)
    body = AttentiveClient().webhook_create(api_key=api_key, url=intake_url(public_id), events=SUBSCRIBED_EVENTS)
    events = body.get("events")
    return RegisteredWebhook(
        public_id=public_id,
        attentive_webhook_id=str(body["id"])[:128],
        events=list(events) if isinstance(events, list) else list(SUBSCRIBED_EVENTS),
        signing_key=body["signingKey"],
    )


@sensitive_variables()
def attentive_webhook_unregister(*, api_key: str, attentive_webhook_id: str) -> None:
    AttentiveClient().webhook_delete(api_key=api_key, webhook_id=attentive_webhook_id)


def attentive_raw_tables_create(*, merchant_key: str) -> None:
    """The merchant's Attentive raw tables (idempotent), in the warehouse where Airbyte lands every other source.

    Made by the intake when its first event finds none (not at connect: the connect touches only the app's
    database, and a store that never received an event reads as empty either way)."""
    alias = _raw_alias()
    with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
        for statement in raw_table_statements(merchant_key, WEBHOOK_TABLES):
            cursor.execute(statement.as_string(None))


@sensitive_variables()
def attentive_webhook_store(*, credential: ConnectorCredential, registered: RegisteredWebhook) -> list[str]:
    """Save the new webhook (inside the connect's transaction) and disable the credential's earlier ones.

    Returns the Attentive ids of the webhooks it replaced, to delete at Attentive after commit.
    """
    replaced = list(
        AttentiveWebhook.objects.select_for_update()
        .filter(credential=credential, disabled_at__isnull=True)
        .values_list("attentive_webhook_id", flat=True)
    )
    AttentiveWebhook.objects.filter(credential=credential, disabled_at__isnull=True).update(disabled_at=timezone.now())
    if replaced:
        transaction.on_commit(webhook_lookup_forget)
    AttentiveWebhook.objects.create(
        merchant_id=credential.merchant_id,
        credential=credential,
        public_id=registered.public_id,
        attentive_webhook_id=registered.attentive_webhook_id,
        signing_key_enc=encrypt_secret(registered.signing_key),
        events=registered.events,
    )
    return replaced


def attentive_webhooks_disable(*, credential: ConnectorCredential) -> list[str]:
    """At disconnect (in its transaction): refuse the credential's events from now on; returns the Attentive ids."""
    live = AttentiveWebhook.objects.filter(credential=credential, disabled_at__isnull=True)
    ids = list(live.values_list("attentive_webhook_id", flat=True))
    live.update(disabled_at=timezone.now())
    transaction.on_commit(webhook_lookup_forget)  # this process at once; the others within LOOKUP_CACHE_SECONDS
    return ids


# --- intake --------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Stored:
    table: str
    inserted: bool  # False: this exact delivery was stored before


@sensitive_variables("signing_key", "digest")
def signature_valid(signing_key: str, body: bytes, signature: str) -> bool:
    """Constant-time check of hex (Attentive's own sample) and, failing that, base64 of HMAC-SHA256(key, body)."""
    digest = hmac.new(signing_key.encode(), body, hashlib.sha256).digest()
    given = signature.strip()
    hex_ok = hmac.compare_digest(digest.hex().encode(), given.lower().encode("ascii", "replace"))
    b64_ok = hmac.compare_digest(base64.b64encode(digest), given.encode("ascii", "replace"))
    return hex_ok or b64_ok


_WEBHOOK_QUERY = (
    "SELECT w.signing_key_enc, m.key, m.id FROM connectors_attentivewebhook w "
    "JOIN accounts_merchant m ON m.id = w.merchant_id "
    "WHERE w.public_id = %s AND w.disabled_at IS NULL"
)


# A burst reads its webhook's row once per process, not once per event: what was read is reused this long. A
# disconnect (disabled_at) is therefore honoured by every process within these seconds; events Attentive sent
# before it deleted the webhook may still land meanwhile, which is harmless.
LOOKUP_CACHE_SECONDS = 5.0
_lookups: dict[str, tuple[float, str, str, int]] = {}  # public id -> (read at, signing key, merchant key, id)
_LOOKUP_CACHE_MAX = 10_000


@sensitive_variables()
def webhook_lookup(public_id: str) -> tuple[str, str, int] | None:
    """(signing key, merchant key, merchant id) of a live webhook; None if unknown or disabled. One indexed read
    at most per LOOKUP_CACHE_SECONDS and process."""
    now = time.monotonic()
    cached = _lookups.get(public_id)
    if cached is not None and now - cached[0] < LOOKUP_CACHE_SECONDS:
        return cached[1], cached[2], cached[3]
    with connections["default"].cursor() as cursor:
        cursor.execute(_WEBHOOK_QUERY, [public_id])
        row = cursor.fetchone()
    if row is None:
        _lookups.pop(public_id, None)
        return None
    if len(_lookups) >= _LOOKUP_CACHE_MAX:
        _lookups.clear()
    signing_key = decrypt_secret(row[0])
    _lookups[public_id] = (now, signing_key, row[1], row[2])
    return signing_key, row[1], row[2]


def webhook_lookup_forget() -> None:
    """Drop what this process read of webhooks (after a disconnect in this process, and between tests)."""
    _lookups.clear()


def _raw_alias() -> str:
    """Where raw rows are written: `warehouse`, or `default` when both aliases name the same database as the same
    role (the usual deployment: WAREHOUSE_DATABASE_URL defaults to DATABASE_URL). One connection then serves the
    lookup and the insert, with one health check per request instead of two."""
    default, warehouse = connections["default"].settings_dict, connections["warehouse"].settings_dict
    same = all(default.get(k) == warehouse.get(k) for k in ("NAME", "HOST", "PORT", "USER"))
    return "default" if same and default.get("OPTIONS") == warehouse.get("OPTIONS") else "warehouse"


# In a JSON text, NUL and surrogates can only be written as \u escapes (raw ones are not valid UTF-8 or JSON), so a
# body without such an escape needs no walk; one with an emoji (a surrogate pair) or a NUL is walked.
_PUBLIC_ID = re.compile(r"[A-Za-z0-9_-]{16,64}")  # secrets.token_urlsafe's alphabet
_MAYBE_UNSTORABLE = re.compile(rb"\\u(?:0000|d[89a-f])", re.IGNORECASE)


def _storable(body: bytes, value: Any) -> None:
    if not _MAYBE_UNSTORABLE.search(body):
        return
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item or any("\ud800" <= ch <= "\udfff" for ch in item):
                raise EventRefused(NOT_STORABLE)
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)


def _object(event: dict, name: str) -> dict:
    value = event.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise EventRefused(NOT_AN_OBJECT.format(field=name))
    return value


def _text(parent: dict, key: str, path: str) -> str | None:
    value = parent.get(key)
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise EventRefused(NOT_A_VALUE.format(field=path))
    return str(value)


def _timestamp(event: dict, *, required: bool) -> dt.datetime | None:
    value = event.get("timestamp")
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not _MIN_MS <= value < _MAX_MS:
        raise EventRefused(BAD_TIMESTAMP)
    return dt.datetime.fromtimestamp(value / 1000, tz=dt.UTC)


def _lenient_timestamp(event: dict) -> dt.datetime | None:
    """An unknown type's timestamp: kept when it reads as Attentive's, else left to the payload (never refused)."""
    try:
        return _timestamp(event, required=False)
    except EventRefused:
        return None


def event_parse(body: bytes) -> dict:
    # The project's bounded JSON reader. config.api cannot be the first module to import DRF's views (their
    # DEFAULT_PARSER_CLASSES setting names config.api itself), and the WSGI fast path may run before any URLconf
    # loaded them: import them first.
    import rest_framework.views  # noqa: F401

    from config.api import json_loads

    try:
        event = json_loads(body)
    except ValueError as exc:  # includes UnicodeDecodeError, JSONDecodeError and over-deep documents
        raise EventRefused(NOT_JSON.format(reason=str(exc)[:200])) from exc
    if not isinstance(event, dict):
        raise EventRefused(NOT_OBJECT)
    if not isinstance(event.get("type"), str) or not event["type"].strip():
        raise EventRefused(MISSING_TYPE)
    _storable(body, event)
    return event


def event_row(event: dict) -> tuple[str, dict[str, Any]]:
    """The raw table and stream columns (by name) for one event, as analytics.raw_schema declares them."""
    event_type = event["type"]
    mapped = EVENT_TABLES.get(event_type)
    company = _object(event, "company")
    if mapped is None:
        return OTHER_EVENTS_TABLE, {
            "type": event_type,
            "timestamp": _lenient_timestamp(event),
            "company_id": _text(company, "company_id", "company.company_id"),
            "payload": json.dumps(event),
        }
    table, channel = mapped
    subscriber = _object(event, "subscriber")
    row: dict[str, Any] = {
        "type": event_type,
        "timestamp": _timestamp(event, required=True),
        "company_id": _text(company, "company_id", "company.company_id"),
        "subscriber_external_id": _text(subscriber, "external_id", "subscriber.external_id"),
        "subscriber_email": _text(subscriber, "email", "subscriber.email"),
        "subscriber_phone": _text(subscriber, "phone", "subscriber.phone"),
    }
    if table in ("attentive_subscribed", "attentive_unsubscribed"):
        subscription, creative = _object(event, "subscription"), _object(event, "creative")
        row.update(
            subscription_type=_text(subscription, "type", "subscription.type"),
            subscription_channel=_text(subscription, "channel", "subscription.channel") or channel,
            creative_name=_text(creative, "name", "creative.name"),
            creative_type=_text(creative, "type", "creative.type"),
        )
    else:
        message = _object(event, "message")
        row.update(
            company_display_name=_text(company, "display_name", "company.display_name"),
            message_id=_text(message, "id", "message.id"),
            message_name=_text(message, "name", "message.name"),
            message_type=_text(message, "type", "message.type"),
            message_channel=_text(message, "channel", "message.channel") or channel,
            message_text=_text(message, "text", "message.text"),
        )
        if table.endswith("_message_link_click"):
            row["message_link_click_url"] = _text(_object(event, "link"), "url", "link.url")
    return table, row


def _insert_sql(schema: str, table: str) -> str:
    cols = [name for name, _ in table_columns(table)]
    return (
        sql.SQL("INSERT INTO {}.{} ({}) VALUES ({}) ON CONFLICT (_airbyte_raw_id) DO NOTHING")
        .format(
            sql.Identifier(schema),
            sql.Identifier(table),
            sql.SQL(", ").join(map(sql.Identifier, cols)),
            sql.SQL(", ").join(sql.Placeholder() * len(cols)),
        )
        .as_string(None)
    )


_INSERTS: dict[tuple[str, str], str] = {}


def attentive_event_record(*, merchant_key: str, body: bytes) -> Stored:
    """Parse and store one verified delivery (EventRefused for a body we cannot store; DatabaseError propagates)."""
    event = event_parse(body)
    table, row = event_row(event)
    digest = hashlib.sha256(body).hexdigest()
    row.update(
        _airbyte_raw_id=uuid.UUID(digest[:32]),
        _airbyte_extracted_at=timezone.now(),
        _airbyte_meta=json.dumps({"sync_id": None, "changes": [], "dedupe_key": f"sha256:{digest}"}),
        _airbyte_generation_id=0,
    )
    key = (merchant_key, table)
    statement = _INSERTS.get(key)
    if statement is None:
        statement = _INSERTS[key] = _insert_sql(raw_schema_name(merchant_key), table)
    values = [row.get(name) for name, _ in table_columns(table)]
    try:
        inserted = _insert(statement, values)
    except ProgrammingError as exc:
        if not isinstance(exc.__cause__, psycopg.errors.UndefinedTable | psycopg.errors.InvalidSchemaName):
            raise
        try:
            attentive_raw_tables_create(merchant_key=merchant_key)  # the merchant's first event
        except DatabaseError:
            # Another process creating them at the same moment (a burst's first events): theirs will do.
            logger.info("attentive raw tables of %s: created concurrently", merchant_key)
        inserted = _insert(statement, values)
    return Stored(table=table, inserted=inserted)


def _insert(statement: str, values: list) -> bool:
    alias = _raw_alias()
    connection = connections[alias]
    if connection.in_atomic_block:
        # Inside someone's transaction (a test's): a savepoint, so a missing table does not abort it. A request
        # runs in autocommit, where the statement alone is the transaction and a failure leaves nothing behind.
        with transaction.atomic(using=alias), connection.cursor() as cursor:
            cursor.execute(statement, values)
            return cursor.rowcount == 1
    with connection.cursor() as cursor:
        cursor.execute(statement, values)
        return cursor.rowcount == 1


@sensitive_variables("signing_key", "found")
def attentive_delivery_receive(*, public_id: str, body: bytes, signature: str | None) -> tuple[int, dict]:
    """One delivery to /webhooks/attentive/<public_id>/ → (status, JSON body). Never raises for bad input."""
    if not _PUBLIC_ID.fullmatch(public_id):
        return 404, {"error": UNKNOWN_WEBHOOK}  # not one we make (a NUL would be a database error, not a 404)
    try:
        found = webhook_lookup(public_id)
    except DatabaseError:
        logger.warning("attentive webhook: database unavailable while looking up the webhook")
        return 503, {"error": STORE_FAILED}
    if found is None:
        return 404, {"error": UNKNOWN_WEBHOOK}
    signing_key, merchant_key, merchant_id = found
    if not signature:
        logger.info("attentive webhook refused: no signature")
        return 401, {"error": MISSING_SIGNATURE}
    if not signature_valid(signing_key, body, signature):
        logger.warning("attentive webhook refused: invalid signature")
        return 401, {"error": INVALID_SIGNATURE}
    try:
        stored = attentive_event_record(merchant_key=merchant_key, body=body)
    except EventRefused as exc:
        logger.info("attentive webhook refused: %s", exc)
        return 400, {"error": str(exc)}
    except DatabaseError as exc:
        logger.warning("attentive webhook: event not stored (%s); Attentive will deliver it again", type(exc).__name__)
        return 503, {"error": STORE_FAILED}
    if stored.inserted:
        attentive_change_mark(merchant_id=merchant_id)
    return 200, {"ok": True, "duplicate": not stored.inserted}


_UNBUILT_ATTENTIVE_CHANGE = (
    "SELECT EXISTS (SELECT 1 FROM analytics_rawdatachange WHERE merchant_id = %s AND source = 'attentive' "
    "AND consumed_by_run_id IS NULL)"
)


def attentive_change_mark(*, merchant_id: int) -> None:
    """A new event is raw data the coalesced build must take in: recorded as a change of `attentive`, unless one
    not yet taken by a build is there already (a burst is one change per build, not thousands; an event that
    lands once a build has taken the change records the next one, so nothing waits for the nightly build).

    Never fails the delivery, whose event is stored: a database refusing the record only logs, and the nightly
    build takes the event in."""
    from analytics.services import raw_data_changed_mark

    try:
        with connections["default"].cursor() as cursor:
            cursor.execute(_UNBUILT_ATTENTIVE_CHANGE, [merchant_id])
            (pending,) = cursor.fetchone()
        if not pending:
            raw_data_changed_mark(merchant_id=merchant_id, source="attentive", at=timezone.now())
    except DatabaseError as exc:
        logger.warning(
            "attentive webhook: the change of merchant %s not recorded (%s); the nightly build takes it in",
            merchant_id, type(exc).__name__,
        )  # fmt: skip


# --- the WSGI fast path --------------------------------------------------------------------------------------

INTAKE_PREFIX = "/webhooks/attentive/"
_STATUS_LINES = {200: "200 OK", 400: "400 Bad Request", 401: "401 Unauthorized", 404: "404 Not Found",
                 411: "411 Length Required", 413: "413 Content Too Large", 500: "500 Internal Server Error",
                 503: "503 Service Unavailable"}  # fmt: skip
BODY_TOO_LARGE = "body larger than {limit} bytes"
LENGTH_REQUIRED = "Content-Length is required"


class AttentiveIntakeDispatch:
    """WSGI middleware (config/wsgi.py): a POST to /webhooks/attentive/<id>/ is answered by the intake service
    directly; every other request goes to Django.

    Why: a burst is thousands of deliveries a second, and Django's request handling (middleware, URL resolution,
    the response object) costs as much CPU as storing the event. What Django's stack would add here does not apply
    to a signed server-to-server POST: no session, cookie, CSRF token, template or redirect. What does apply is
    kept: the request_started/finished signals (so database connections are health-checked and recycled as for
    any request), Django's upload size limit, and the same service and answers as the Django view
    (connectors.views.attentive_webhook, which serves the path under the test client and runserver).
    """

    def __init__(self, django_app: Any) -> None:
        self.django_app = django_app

    def __call__(self, environ: dict, start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if environ.get("REQUEST_METHOD") != "POST" or not path.startswith(INTAKE_PREFIX):
            return self.django_app(environ, start_response)
        public_id = path[len(INTAKE_PREFIX) :]
        if not public_id.endswith("/") or "/" in public_id[:-1]:
            return self.django_app(environ, start_response)  # not this route: Django's 404 (or redirect)
        from django.core import signals

        signals.request_started.send(sender=self.__class__, environ=environ)
        try:
            status, body = self._answer(environ, public_id[:-1])
        except Exception:
            logger.exception("attentive webhook: the intake failed")
            status, body = 500, {"error": "internal error"}
        finally:
            signals.request_finished.send(sender=self.__class__)
        payload = json.dumps(body).encode()
        start_response(
            _STATUS_LINES.get(status, f"{status} Error"),
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(payload))),
                ("X-Content-Type-Options", "nosniff"),
            ],
        )
        return [payload]

    @staticmethod
    def _answer(environ: dict, public_id: str) -> tuple[int, dict]:
        try:
            length = int(environ.get("CONTENT_LENGTH") or "")
        except ValueError:
            return 411, {"error": LENGTH_REQUIRED}
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if length < 0:
            return 411, {"error": LENGTH_REQUIRED}
        if limit is not None and length > limit:
            return 413, {"error": BODY_TOO_LARGE.format(limit=limit)}
        body = environ["wsgi.input"].read(length) if length else b""
        return attentive_delivery_receive(public_id=public_id, body=body, signature=environ.get(SIGNATURE_HEADER))
