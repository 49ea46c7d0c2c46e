"""Shopify's mandatory privacy webhooks: customers/data_request, customers/redact, shop/redact.

A delivery (HMAC checked, deduplicated by connectors.shopify) becomes one PrivacyRequest with Shopify's 30-day
deadline, and a task does the work (shared/PROVIDERS.md §7.3):

- customers/data_request: one JSON file of every row the product holds about the customer (raw_<key>, landed,
  the dbt schemas: staging, canonical and marts; web events and email/SMS messages are among those tables),
  stored for the store's owners (`/m/<id>/privacy/`, a signed 10-minute link) and announced to them;
- customers/redact: the customer pseudonymised everywhere now (compliance.redaction), their identifiers kept
  only as salted digests so rows Airbyte lands later are rewritten by the load step before any build;
- shop/redact: 48 hours after the uninstall the store's warehouse data is erased (raw schema dropped, landed
  and dbt rows deleted), its web-event counts and notifications deleted; the Merchant row stays, as a tombstone.

Legal holds win (compliance.holds): held data is skipped, the exemption recorded on the request and with the
hold, and the request ends `partially_exempt`. Every outcome is audited. Processing is idempotent: the row is
locked and only an open request is worked, and the SQL it runs matches nothing the second time.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import psycopg
from django.conf import settings
from django.core.cache import caches
from django.core.files.base import ContentFile
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from accounts.models import Merchant
from compliance import redaction, storage
from compliance.choices import PRIVACY_OPEN_STATES, PrivacyState, PrivacyTopic
from compliance.models import PrivacyRequest
from compliance.services import Actor, audit_event_record

logger = logging.getLogger(__name__)

ACTOR = Actor.system("privacy")
TOPICS = frozenset(PrivacyTopic.values)
NO_MERCHANT = "no store of ours has this shop domain"
REINSTALLED = "the store installed the app again before its data was erased; nothing was erased"
NO_IDENTIFIERS = "the request names no customer id, email or phone"

# What a legal hold's category is for each kind of data this touches (compliance.holds).
CATEGORY_RAW = "raw"
CATEGORY_EVENTS = "events"
CATEGORY_NOTIFICATIONS = "messages"
CATEGORY_EXPORTS = "exports"


class PrivacyError(Exception):
    pass


# --- the seams to legal holds and file storage: one call each ---------------------------------------------


def _holds_covering(*, merchant_id: int, category: str, customer_ids=None, emails=None) -> list:
    """The active holds covering this data (compliance.holds); none while that module is not installed."""
    try:
        from compliance.holds import holds_covering
    except ImportError:
        return []
    return list(
        holds_covering(merchant_id=merchant_id, category=category, customer_ids=customer_ids or (), emails=emails or ())
    )


def _exemption(request: PrivacyRequest, *, hold, category: str, work: str, target: str) -> dict:
    try:
        from compliance.holds import exemption_record
    except ImportError:  # pragma: no cover - holds always come with exemption_record
        exemption_record = None
    if exemption_record is not None:
        exemption_record(hold=hold, work=work, target=target)
    return {"hold_id": getattr(hold, "pk", None), "category": category, "work": work, "target": target}


def _held_categories(
    request: PrivacyRequest, *, work: str, target: str, customer: redaction.Identifiers | None
) -> set[str]:
    """Which categories a hold keeps for this work; each recorded (with the hold, and on the request)."""
    held: set[str] = set()
    for category in (CATEGORY_RAW, CATEGORY_EVENTS, CATEGORY_NOTIFICATIONS, CATEGORY_EXPORTS):
        holds = _holds_covering(
            merchant_id=request.merchant_id,
            category=category,
            customer_ids=sorted(customer.customer_ids) if customer else None,
            emails=sorted(customer.emails) if customer else None,
        )
        for hold in holds:
            request.exemptions.append(_exemption(request, hold=hold, category=category, work=work, target=target))
        if holds:
            held.add(category)
    return held


def _file_store(*, name: str, content: bytes) -> str:
    return storage.file_save(kind="privacy", name=name, content=ContentFile(content, name=name))


def _file_delete(key: str) -> None:
    storage.file_delete(key)


# --- receiving --------------------------------------------------------------------------------------------


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None


def _text(value: Any, limit: int) -> str:
    return str(value)[:limit] if isinstance(value, str | int) and not isinstance(value, bool) else ""


def privacy_request_record(*, delivery, merchant: Merchant | None) -> PrivacyRequest:
    """Store the compliance request a delivery carries (once per delivery), enqueue its work after commit, and
    strip the customer's identifiers from the delivery's stored body (they now live on the request only)."""
    body: Mapping[str, Any] = delivery.body if isinstance(delivery.body, dict) else {}
    customer = body.get("customer") if isinstance(body.get("customer"), dict) else {}
    orders = body.get("orders_requested") or body.get("orders_to_redact") or []
    data_request = body.get("data_request") if isinstance(body.get("data_request"), dict) else {}
    now = timezone.now()
    request, created = PrivacyRequest.objects.get_or_create(
        delivery=delivery,
        defaults={
            "topic": delivery.topic,
            "merchant": merchant,
            "shop_domain": delivery.shop_domain,
            "shop_id": _int_or_none(body.get("shop_id")),
            "shopify_request_id": _text(data_request.get("id"), 64),
            "customer_id": _int_or_none(customer.get("id")),
            "customer_email": _text(customer.get("email"), 320),
            "customer_phone": _text(customer.get("phone"), 64),
            "orders": [o for o in (_int_or_none(x) for x in orders if not isinstance(x, bool)) if o is not None][:1000]
            if isinstance(orders, list)
            else [],
            "received_at": now,
            "due_at": now + dt.timedelta(days=settings.PRIVACY_DUE_DAYS),
            "state": PrivacyState.RECEIVED if merchant is not None else PrivacyState.IGNORED,
            "error": "" if merchant is not None else NO_MERCHANT,
            "handled_at": None if merchant is not None else now,
        },
    )
    if created and request.topic == PrivacyTopic.SHOP_REDACT and merchant is not None:
        uninstalled = merchant.uninstalled_at or now
        request.not_before = max(now, uninstalled + dt.timedelta(hours=settings.PRIVACY_SHOP_REDACT_DELAY_HOURS))
        request.save(update_fields=["not_before"])
    delivery.body = {k: body[k] for k in ("shop_id", "shop_domain") if k in body} | {"privacy_request": request.pk}
    if created:
        audit_event_record(
            action="privacy.request_received", actor=Actor.system("shopify-webhook"),
            target_type="compliance.privacyrequest", target_id=request.pk, merchant=merchant,
            metadata={"topic": request.topic, "due_at": request.due_at.isoformat()},
        )  # fmt: skip
        if request.state == PrivacyState.RECEIVED:
            _enqueue(request.pk)
    return request


def _enqueue(request_id: int) -> None:
    from compliance.tasks_privacy import privacy_request_process_task

    privacy_request_process_task.delay_on_commit(request_id)


# --- processing -------------------------------------------------------------------------------------------


def _warehouse(db: dict | None) -> psycopg.Connection:
    from analytics.selectors import warehouse_connection_params

    return psycopg.connect(**(db or warehouse_connection_params()))


def _seed(request: PrivacyRequest) -> redaction.Identifiers:
    seed = redaction.Identifiers()
    seed.add(customer_id=request.customer_id, email=request.customer_email, phone=request.customer_phone)
    seed.order_ids = {o for o in request.orders if isinstance(o, int)}
    return seed


def privacy_request_process(*, request_id: int, db: dict | None = None, now: dt.datetime | None = None) -> str:
    """Do one request's work, once: under its row lock, only an open request is worked. Returns its state.

    `db`: the warehouse's connection parameters (default: the `warehouse` alias)."""
    now = now or timezone.now()
    with transaction.atomic():
        request = PrivacyRequest.objects.select_for_update(of=("self",)).select_related("merchant").get(pk=request_id)
        if request.state not in PRIVACY_OPEN_STATES:
            return request.state
        if request.topic == PrivacyTopic.SHOP_REDACT and request.not_before and request.not_before > now:
            if request.state != PrivacyState.SCHEDULED:
                request.state = PrivacyState.SCHEDULED
                request.save(update_fields=["state"])
            return request.state
        request.attempts += 1
        request.exemptions = []
        try:
            with transaction.atomic():
                if request.topic == PrivacyTopic.CUSTOMERS_DATA_REQUEST:
                    _data_request_fulfil(request, db)
                elif request.topic == PrivacyTopic.CUSTOMERS_REDACT:
                    _customer_redact(request, db)
                elif request.topic == PrivacyTopic.SHOP_REDACT:
                    _shop_redact(request, db)
                else:
                    raise PrivacyError(f"topic {request.topic} is not a privacy topic")
        except (PrivacyError, psycopg.Error) as exc:
            request.state, request.error = PrivacyState.FAILED, f"{type(exc).__name__}: {exc}"[:500]
            logger.error("privacy request %s failed: %s", request.pk, type(exc).__name__)
            audit_event_record(
                action="privacy.request_failed", actor=ACTOR, target_type="compliance.privacyrequest",
                target_id=request.pk, merchant_id=request.merchant_id, metadata={"topic": request.topic},
            )  # fmt: skip
        else:
            if request.state not in (PrivacyState.IGNORED,):
                request.state = PrivacyState.PARTIALLY_EXEMPT if request.exemptions else PrivacyState.DONE
                request.error = ""
            audit_event_record(
                action="privacy.request_done", actor=ACTOR, target_type="compliance.privacyrequest",
                target_id=request.pk, merchant_id=request.merchant_id,
                metadata={"topic": request.topic, "state": request.state, "exemptions": len(request.exemptions)},
            )  # fmt: skip
        request.handled_at = timezone.now()
        request.save()
        return request.state


class _Encoder(json.JSONEncoder):
    def default(self, o: Any) -> Any:
        if isinstance(o, dt.datetime | dt.date):
            return o.isoformat()
        if isinstance(o, Decimal):
            return str(o)
        return str(o)


def data_request_document(*, request: PrivacyRequest, db: dict | None = None) -> dict:
    """Everything the warehouse holds about the request's customer, as one JSON-ready document."""
    merchant = request.merchant
    with _warehouse(db) as conn:
        identifiers = redaction.identifiers_discover(
            conn, merchant_id=merchant.pk, key=merchant.key, seed=_seed(request)
        )
        rows = redaction.customer_rows_collect(conn, merchant_id=merchant.pk, key=merchant.key, identifiers=identifiers)
    return {
        "request": {
            "id": request.pk,
            "topic": request.topic,
            "shop_domain": request.shop_domain,
            "shopify_request_id": request.shopify_request_id,
            "customer": {"id": request.customer_id, "email": request.customer_email, "phone": request.customer_phone},
            "orders_requested": request.orders,
            "received_at": request.received_at,
            "generated_at": timezone.now(),
        },
        "identifiers_found": {
            "customer_ids": sorted(identifiers.customer_ids),
            "emails": sorted(identifiers.emails),
            "phones": sorted(identifiers.phones),
            "provider_ids": sorted(identifiers.text_ids),
        },
        # raw: as the providers sent it (raw_<key>); landed: the copy dbt reads; models: staging, canonical and
        # marts rows (analytics_staging.*, analytics.*). Web events are web_events/web_sessions; email and SMS
        # messages are attentive_* and klaviyo_events, and analytics.fct_messages.
        "raw": rows["raw"],
        "landed": rows["landed"],
        "models": rows["models"],
    }


def _data_request_fulfil(request: PrivacyRequest, db: dict | None) -> None:
    from notifications.choices import NotificationKind
    from notifications.services import merchant_admins_notify

    if not _seed(request):
        raise PrivacyError(NO_IDENTIFIERS)
    document = data_request_document(request=request, db=db)
    content = json.dumps(document, cls=_Encoder, indent=1, sort_keys=True).encode()
    if request.file_key:
        _file_delete(request.file_key)  # a retry replaces the file it may have stored
    request.file_name = f"customer-data-request-{request.pk}.json"
    request.file_key = _file_store(name=request.file_name, content=content)
    request.result = {
        "rows": sum(len(v) for layer in ("raw", "landed", "models") for v in document[layer].values()),
        "bytes": len(content),
    }
    merchant_admins_notify(
        merchant=request.merchant,
        kind=NotificationKind.PRIVACY_DATA_READY,
        context={
            "merchant_name": request.merchant.name,
            "request_id": request.pk,
            "due_on": request.due_at.strftime("%Y-%m-%d"),
            "privacy_url": f"{settings.APP_BASE_URL.rstrip('/')}"
            f"{reverse('compliance:privacy_requests', kwargs={'merchant_id': request.merchant_id})}",
        },
        dedupe_key=f"privacy-data:{request.pk}",
    )


def _customer_redact(request: PrivacyRequest, db: dict | None) -> None:
    merchant = request.merchant
    seed = _seed(request)
    if not seed:
        raise PrivacyError(NO_IDENTIFIERS)
    with _warehouse(db) as conn:
        identifiers = redaction.identifiers_discover(conn, merchant_id=merchant.pk, key=merchant.key, seed=seed)
        held = _held_categories(request, work="customers/redact", target=f"customer:{request.pk}", customer=identifiers)
        outcome = redaction.customer_redact(
            conn, merchant_id=merchant.pk, key=merchant.key, identifiers=identifiers,
            held_categories=held, request_id=request.pk,
        )  # fmt: skip
        conn.commit()
    files_deleted = 0
    if CATEGORY_EXPORTS not in held:
        files_deleted = _earlier_requests_scrub(request, identifiers)
    request.result = {"rows": outcome.rows, "skipped": outcome.skipped_tables, "files_deleted": files_deleted}
    _caches_clear()
    if not held:
        _identifiers_drop(request)


def _earlier_requests_scrub(request: PrivacyRequest, identifiers: redaction.Identifiers) -> int:
    """The store's earlier data-request files about this customer hold their data too: deleted, and those
    requests' identifiers dropped."""
    from django.db.models import Q

    match = Q(customer_id__in=identifiers.customer_ids) if identifiers.customer_ids else Q(pk__in=[])
    for email in identifiers.emails:
        match |= Q(customer_email__iexact=email)
    deleted = 0
    for earlier in PrivacyRequest.objects.filter(merchant=request.merchant).exclude(pk=request.pk).filter(match):
        if earlier.file_key:
            _file_delete(earlier.file_key)
            earlier.file_key = ""
            deleted += 1
        _identifiers_drop(earlier)
        earlier.save(update_fields=["file_key", "customer_id", "customer_email", "customer_phone", "orders",
                                    "identifiers_redacted"])  # fmt: skip
    return deleted


def _identifiers_drop(request: PrivacyRequest) -> None:
    request.customer_id, request.customer_email, request.customer_phone, request.orders = None, "", "", []
    request.identifiers_redacted = True


def _caches_clear() -> None:
    """Dashboard entries computed from the marts as they were (this process's; others expire within their
    DASHBOARD_CACHE_SECONDS and are keyed by the marts' version)."""
    from dashboards.cache import CACHE_ALIAS

    caches[CACHE_ALIAS].clear()


def _shop_redact(request: PrivacyRequest, db: dict | None) -> None:
    from collector.models import EventCount
    from notifications.models import Notification, NotificationOptOut

    merchant = Merchant.objects.select_for_update().get(pk=request.merchant_id)
    if merchant.is_active:
        request.state, request.error = PrivacyState.IGNORED, REINSTALLED
        return
    held = _held_categories(request, work="shop/redact", target=f"merchant:{merchant.pk}", customer=None)
    with _warehouse(db) as conn:
        done = redaction.store_erase(conn, merchant_id=merchant.pk, key=merchant.key, held_categories=held)
        conn.commit()
    counts: dict[str, int] = {"warehouse_objects": len(done)}
    if CATEGORY_EVENTS not in held:
        counts["event_counts"] = EventCount.objects.filter(merchant=merchant).delete()[0]
    if CATEGORY_NOTIFICATIONS not in held:
        counts["notifications"] = Notification.objects.filter(merchant=merchant).delete()[0]
        NotificationOptOut.objects.filter(merchant=merchant).delete()
    if CATEGORY_EXPORTS not in held:
        for earlier in PrivacyRequest.objects.filter(merchant=merchant).exclude(pk=request.pk):
            if earlier.file_key:
                _file_delete(earlier.file_key)
            _identifiers_drop(earlier)
            earlier.file_key = ""
            earlier.save()
    request.result = {"erased": done, **counts}
    _caches_clear()


# --- sweeping and alerting --------------------------------------------------------------------------------


@dataclass
class SweepOutcome:
    enqueued: list[int]
    alerted: list[int]


def privacy_requests_sweep(*, now: dt.datetime | None = None) -> SweepOutcome:
    """Periodic: start what is due (shop/redact past its 48 h, a received request whose task was lost) and tell
    staff, once per request, about every open request overdue or due within PRIVACY_DUE_SOON_DAYS."""
    from notifications.choices import NotificationKind
    from notifications.services import staff_notify

    now = now or timezone.now()
    lost_before = now - dt.timedelta(minutes=15)
    enqueued = []
    for request in PrivacyRequest.objects.filter(state__in=PRIVACY_OPEN_STATES).exclude(state=PrivacyState.FAILED):
        due_to_start = (
            request.state == PrivacyState.SCHEDULED and request.not_before and request.not_before <= now
        ) or (request.state == PrivacyState.RECEIVED and request.received_at <= lost_before)
        if due_to_start:
            with transaction.atomic():
                _enqueue(request.pk)
            enqueued.append(request.pk)
    alerted = []
    soon = now + dt.timedelta(days=settings.PRIVACY_DUE_SOON_DAYS)
    for request in PrivacyRequest.objects.filter(
        state__in=PRIVACY_OPEN_STATES, due_at__lte=soon, alerted_at__isnull=True
    ):
        with transaction.atomic():
            claimed = PrivacyRequest.objects.filter(pk=request.pk, alerted_at__isnull=True).update(alerted_at=now)
            if not claimed:
                continue
            staff_notify(
                kind=NotificationKind.PRIVACY_REQUEST_DUE,
                context={
                    "request_id": request.pk,
                    "topic": request.topic,
                    "shop_domain": request.shop_domain,
                    "state": request.state,
                    "due_on": request.due_at.strftime("%Y-%m-%d %H:%M UTC"),
                    "overdue": request.due_at <= now,
                    "admin_url": f"{settings.APP_BASE_URL.rstrip('/')}"
                    f"{reverse('admin:compliance_privacyrequest_change', args=[request.pk])}",
                },
                dedupe_key=f"privacy-due:{request.pk}",
            )
        alerted.append(request.pk)
    return SweepOutcome(enqueued=enqueued, alerted=alerted)


def privacy_request_retry(*, request_id: int, actor: Actor) -> PrivacyRequest:
    """Staff: a failed request back to received, and its task enqueued again."""
    with transaction.atomic():
        request = PrivacyRequest.objects.select_for_update().get(pk=request_id)
        if request.state == PrivacyState.FAILED:
            request.state = PrivacyState.RECEIVED
            request.save(update_fields=["state"])
            audit_event_record(
                action="privacy.request_retried", actor=actor, target_type="compliance.privacyrequest",
                target_id=request.pk, merchant_id=request.merchant_id, metadata={"topic": request.topic},
            )  # fmt: skip
            _enqueue(request.pk)
    return request
