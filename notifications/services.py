"""Writes: create notifications (the one entry point other apps call), deliver them, and staff actions.

Delivery guarantees, in short: every row ends in a final status with a reason (sent, failed,
undeliverable, suppressed, cancelled); a row is sent at most once by racing workers because a worker
must first win a conditional UPDATE pending -> sending (its claim, a lease); every later write is
conditional on that claim. Once the SMTP server said "250 OK", the claim is finished as `sent` on a fresh
connection if the database dropped ours, and the acceptance is also noted in the cache beforehand, so a
sweeper that finds the claim expired marks the row sent instead of sending again. The duplicate left is
a worker killed, or cache and database both unreachable, between the "250 OK" and those writes
(docs/async.md); the Message-ID is stable per notification so a mail system can drop it.

Recipients are either a merchant's Clerk user (`notification_create`, `merchant_admins_notify`) or a
staff operator (`staff_notify`, for platform-level failures); both go through the same outbox.
"""

from __future__ import annotations

import contextlib
import json
import logging
import smtplib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core import signing
from django.core.cache import cache
from django.core.mail import EmailMultiAlternatives, get_connection
from django.db import InterfaceError, OperationalError, connection, transaction
from django.template.loader import render_to_string
from django.urls import reverse
from django.utils import timezone

from accounts.choices import MANAGING_ROLES
from accounts.models import Merchant
from accounts.selectors import display_name_cache_key, member_list
from compliance.services import Actor, audit_event_record
from config.logging import redact
from config.retry import backoff
from notifications.choices import (
    CRITICAL_KINDS,
    DEDUPE_BLOCKING_STATUSES,
    FINAL_STATUSES,
    STAFF_KINDS,
    STAFF_ONLY_KINDS,
    NotificationKind,
    NotificationStatus,
)
from notifications.clients.clerk import (
    ClerkMisconfigured,
    ClerkPermanentError,
    ClerkRateLimited,
    ClerkTransientError,
    ClerkUserNotFound,
)
from notifications.models import Notification, NotificationOptOut
from notifications.selectors import (
    ClerkUserHasNoEmail,
    email_cache_key,
    email_dropped_key,
    notification_is_muted,
    user_email_get,
)

logger = logging.getLogger(__name__)

DEFAULT_DEDUPE_WINDOW = timedelta(hours=24)
RETRY_FOR = timedelta(days=1)
RETRY_BASE_SECONDS = 30
RETRY_MAX_SECONDS = 2 * 60 * 60
# A claim older than this belongs to a dead worker. Above the delivery task's hard time limit (120 s, after which
# Celery kills it), so a live worker never loses its claim; short, so a dead worker's rows go out within minutes.
SENDING_LEASE = timedelta(minutes=5)
PENDING_GRACE = timedelta(minutes=10)
SWEEP_BATCH = 1000
DROP_MARKER_SECONDS = 120
UNSUBSCRIBE_SALT = "notifications.unsubscribe"
# Pauses before each retry of a write that found the database connection dead (reconnecting in between):
# a killed connection is back at once, a restart or failover takes longer; bounded well within the task's
# soft time limit (90 s).
DB_RETRY_DELAYS = (0.05, 0.25, 1.0, 2.0)
# How long the cache remembers that the mail server accepted a claim the database may not have heard of:
# longer than any outage we would sit out before someone looks.
ACCEPTED_MARKER_SECONDS = 7 * 24 * 60 * 60
DATABASE_UNREACHABLE = (OperationalError, InterfaceError)

UNKNOWN_KIND = "Unknown notification kind {kind!r}."
MISSING_USER = "A notification needs the recipient's Clerk user id."
STAFF_KIND_UNSUPPORTED = "{kind} notifications cannot go to staff (their templates need a merchant)."
STAFF_USER_GONE = "staff user {id} no longer exists"
STAFF_USER_INACTIVE = "staff user {id} is inactive"
STAFF_USER_NOT_STAFF = "user {id} is no longer staff"
STAFF_USER_NO_EMAIL = "staff user {id} has no email address"
CONTEXT_NOT_JSON = "Notification context must hold plain JSON values: {error}"
CONTEXT_SECRET = "Notification context must not carry secrets (a value or key looks like one)."
CRITICAL_NOT_MUTABLE = "{kind} notifications are critical and cannot be muted."
RESEND_IN_FLIGHT = "Notification {id} is {status}; only finished notifications can be resent."
CANCEL_NOT_PENDING = "Notification {id} is {status}; only pending notifications can be cancelled."
BAD_UNSUBSCRIBE_TOKEN = "This unsubscribe link is invalid."
GAVE_UP = "gave up after {attempts} attempts: {reason}"
LOST_WORKER = "the worker sending it stopped before finishing; tried again (the message may arrive twice)"


class NotificationError(ValueError):
    """A caller asked for something the outbox refuses; messages are the constants above."""


class NotificationRetryLater(Exception):  # a signal to the task, not a failure
    def __init__(self, reason: str, countdown: float) -> None:
        super().__init__(reason)
        self.countdown = countdown


# --- creating --------------------------------------------------------------------------------------


def _check_context(context: dict[str, Any]) -> None:
    try:
        encoded = json.dumps(context, sort_keys=True)
    except (TypeError, ValueError) as exc:
        raise NotificationError(CONTEXT_NOT_JSON.format(error=exc)) from exc
    # The log redactor knows every secret shape the project handles; if it would hide something, refuse.
    if redact(encoded) != encoded:
        raise NotificationError(CONTEXT_SECRET)


def unsubscribe_token(*, merchant_id: int, clerk_user_id: str, kind: str) -> str:
    return signing.dumps({"m": merchant_id, "u": clerk_user_id, "k": kind}, salt=UNSUBSCRIBE_SALT, compress=True)


def unsubscribe_url(*, merchant_id: int, clerk_user_id: str, kind: str) -> str:
    token = unsubscribe_token(merchant_id=merchant_id, clerk_user_id=clerk_user_id, kind=kind)
    return settings.APP_BASE_URL.rstrip("/") + reverse("notifications:unsubscribe", args=[token])


def dbt_run_admin_url(dbt_run_id: Any) -> str:
    """The admin page of one dbt run, for staff alerts ("" without a usable id)."""
    try:
        run_id = int(dbt_run_id)
    except (TypeError, ValueError):
        return ""
    return f"{settings.APP_BASE_URL.rstrip('/')}/admin/analytics/dbtrun/{run_id}/change/"


def _render(
    *, merchant: Merchant | None, clerk_user_id: str, kind: str, context: dict[str, Any]
) -> tuple[str, str, str]:
    """Subject, text and HTML. Without a merchant the templates render the staff version (`staff` is true)."""
    critical = kind in CRITICAL_KINDS
    staff = merchant is None
    values = {
        **context,
        "staff": staff,
        "merchant_name": "" if staff else merchant.name,
        "kind_label": NotificationKind(kind).label,
        "critical": critical,
        "app_base_url": settings.APP_BASE_URL.rstrip("/"),
        # Staff manage their alerts in the admin: no unsubscribe link, and no link into the admin for merchants.
        "unsubscribe_url": ""
        if critical or staff
        else unsubscribe_url(merchant_id=merchant.pk, clerk_user_id=clerk_user_id, kind=kind),
        "admin_url": dbt_run_admin_url(context.get("dbt_run_id")) if staff else "",
    }
    subject = " ".join(render_to_string(f"notifications/{kind}.subject.txt", values).split())
    return (
        subject[:255],
        render_to_string(f"notifications/{kind}.txt", values),
        render_to_string(f"notifications/{kind}.html", values),
    )


def _enqueue(notification_id: int) -> None:
    from notifications.tasks import notification_deliver_task  # tasks import services

    # robust: a broker outage must not fail the caller after its commit; the row is pending with
    # next_attempt_at set, so the sweeper enqueues it once the broker is back.
    transaction.on_commit(lambda: notification_deliver_task.delay(notification_id), robust=True)


def notification_create(
    *,
    merchant: Merchant,
    clerk_user_id: str,
    kind: str,
    context: dict[str, Any],
    dedupe_key: str = "",
    dedupe_window: timedelta | None = None,
) -> Notification:
    """Record one email for one user and enqueue its delivery after commit.

    With a dedupe key, an earlier notification for the same merchant, user, kind and key created
    within the window (default 24 h) that is pending, sent or suppressed is returned instead.
    A muted non-critical kind is stored as suppressed and not enqueued.
    """
    if kind not in NotificationKind.values:
        raise NotificationError(UNKNOWN_KIND.format(kind=kind))
    if not clerk_user_id:
        raise NotificationError(MISSING_USER)
    return _create(
        recipient={"merchant": merchant, "clerk_user_id": clerk_user_id},
        lock_key=f"notification:{merchant.pk}:{clerk_user_id}:{kind}:{dedupe_key}",
        is_muted=lambda: notification_is_muted(merchant_id=merchant.pk, clerk_user_id=clerk_user_id, kind=kind),
        merchant=merchant,
        clerk_user_id=clerk_user_id,
        kind=kind,
        context=context,
        dedupe_key=dedupe_key,
        dedupe_window=dedupe_window,
    )


def _create(
    *,
    recipient: dict[str, Any],
    lock_key: str,
    is_muted: Callable[[], bool],
    merchant: Merchant | None,
    clerk_user_id: str,
    kind: str,
    context: dict[str, Any],
    dedupe_key: str,
    dedupe_window: timedelta | None,
) -> Notification:
    """The shared body of notification_create and staff_notify: `recipient` holds the row's recipient fields."""
    _check_context(context)
    now = timezone.now()
    with transaction.atomic():
        if dedupe_key:
            # Two callers raising the same alert at once must not both pass the check: serialise on the key.
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [lock_key])
            window = dedupe_window if dedupe_window is not None else DEFAULT_DEDUPE_WINDOW
            existing = (
                Notification.objects.filter(
                    **recipient,
                    kind=kind,
                    dedupe_key=dedupe_key,
                    status__in=DEDUPE_BLOCKING_STATUSES,
                    created_at__gte=now - window,
                )
                .order_by("-created_at")
                .first()
            )
            if existing is not None:
                return existing
        muted = is_muted()
        subject, body_text, body_html = _render(
            merchant=merchant, clerk_user_id=clerk_user_id, kind=kind, context=context
        )
        notification = Notification.objects.create(
            **recipient,
            kind=kind,
            dedupe_key=dedupe_key,
            context=context,
            subject=subject,
            body_text=body_text,
            body_html=body_html,
            status=NotificationStatus.SUPPRESSED if muted else NotificationStatus.PENDING,
            last_error="the recipient opted out of this kind" if muted else "",
            next_attempt_at=None if muted else now,
            give_up_at=None if muted else now + RETRY_FOR,
        )
        if not muted:
            _enqueue(notification.pk)
    logger.info(
        "notification %s created: %s for %s (%s)",
        notification.pk,
        kind,
        notification.recipient_label,
        notification.status,
    )
    return notification


def merchant_admins_notify(
    *,
    merchant: Merchant,
    kind: str,
    context: dict[str, Any],
    dedupe_key: str = "",
    dedupe_window: timedelta | None = None,
) -> list[Notification]:
    """One notification per owner and admin of the merchant (dedupe applies per recipient)."""
    with transaction.atomic():
        created = [
            notification_create(
                merchant=merchant,
                clerk_user_id=membership.clerk_user_id,
                kind=kind,
                context=context,
                dedupe_key=dedupe_key,
                dedupe_window=dedupe_window,
            )
            for membership in member_list(merchant=merchant).filter(role__in=MANAGING_ROLES)
        ]
    if not created:
        # Nobody to tell is itself worth a line: staff may need to act on the merchant's behalf.
        logger.warning("merchant %s has no owner or admin to notify about %s", merchant.pk, kind)
    return created


def staff_user_list():
    """The operators who receive platform alerts: active staff users with an email address."""
    return get_user_model().objects.filter(is_staff=True, is_active=True).exclude(email="").order_by("pk")


def staff_notify(
    *,
    kind: str,
    context: dict[str, Any],
    dedupe_key: str = "",
    dedupe_window: timedelta | None = None,
) -> list[Notification]:
    """One notification per active staff user with an email, about a platform-level failure.

    Dedupe applies per (staff user, kind, key), as in notification_create. Staff alerts are never
    suppressed by merchant opt-outs and carry no unsubscribe link. With no staff user to tell, one
    WARNING is logged and [] returned: the caller's own record (e.g. the dbt run row) stays the truth.
    """
    if kind not in NotificationKind.values:
        raise NotificationError(UNKNOWN_KIND.format(kind=kind))
    if kind not in STAFF_KINDS:
        raise NotificationError(STAFF_KIND_UNSUPPORTED.format(kind=kind))
    with transaction.atomic():
        created = [
            _create(
                recipient={"merchant": None, "clerk_user_id": "", "staff_user": user},
                lock_key=f"notification:staff:{user.pk}:{kind}:{dedupe_key}",
                is_muted=lambda: False,  # merchant opt-outs never apply to staff
                merchant=None,
                clerk_user_id="",
                kind=kind,
                context=context,
                dedupe_key=dedupe_key,
                dedupe_window=dedupe_window,
            )
            for user in staff_user_list()
        ]
    if not created:
        logger.warning("no active staff user with an email to notify about %s (key %r)", kind, dedupe_key)
    return created


# --- delivering ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Outcome:
    status: str
    reason: str = ""
    retry: bool = False
    min_delay: float = 0.0


def retry_delay(attempts: int, min_delay: float = 0.0) -> float:
    """Exponential backoff with jitter (50-100 % of the step), capped, never below the provider's ask."""
    return backoff(attempts, base=RETRY_BASE_SECONDS, ceiling=RETRY_MAX_SECONDS, jitter=0.5, floor=min_delay)


def _claim(notification_id: int) -> Notification | None:
    """pending -> sending in one statement; only one of any number of racing workers gets the row back."""
    now = timezone.now()
    table = Notification._meta.db_table
    rows = Notification.objects.raw(
        # One round trip instead of UPDATE + SELECT; the table name is ours, every value is a parameter.
        f"UPDATE {table} SET status = %s, claimed_at = %s, updated_at = %s, attempts = attempts + 1 "  # noqa: S608
        "WHERE id = %s AND status = %s RETURNING *",
        [NotificationStatus.SENDING, now, now, notification_id, NotificationStatus.PENDING],
    )
    return next(iter(rows), None)


def _on_a_live_connection(write: Callable[[], Any]) -> Any:
    """Run one idempotent write; if the database connection is dead, reconnect and run it again (bounded).

    Raises the last database error when the database stays unreachable. Inside a transaction there is no
    reconnecting (the transaction is gone with the connection): the error is raised at once.
    """
    delays = iter(DB_RETRY_DELAYS)
    while True:
        try:
            return write()
        except DATABASE_UNREACHABLE as exc:
            delay = next(delays, None)
            if delay is None or connection.in_atomic_block:
                raise
            logger.warning("database connection lost (%s); reconnecting in %.2fs", str(exc).strip(), delay)
            with contextlib.suppress(Exception):
                connection.close()  # the next query opens a new one
            time.sleep(delay)


def _finish(notification: Notification, status: str, reason: str, **fields: Any) -> bool:
    """Move a row out of this worker's claim; False if someone else moved it meanwhile (the lease ran out).

    Conditional on the claim itself (each claim adds one to `attempts`), so it is idempotent and may be retried
    on a fresh connection.
    """
    values = {"status": status, "last_error": reason[:2000], "claimed_at": None, "updated_at": timezone.now()}
    values.update(fields)
    claim = Notification.objects.filter(
        pk=notification.pk, status=NotificationStatus.SENDING, attempts=notification.attempts
    )
    updated = _on_a_live_connection(lambda: claim.update(**values))
    if updated:
        for name, value in values.items():
            setattr(notification, name, value)
    else:
        _on_a_live_connection(notification.refresh_from_db)
    return bool(updated)


def accepted_marker_key(notification_id: int) -> str:
    return f"notifications:smtp-accepted:v1:{notification_id}"


def _accepted_record(notification: Notification, *, to_email: str, sent_at: Any) -> bool:
    """Note outside the database that the mail server accepted this claim's message; False if the cache is down.

    The sweeper reads it before it gives an expired claim back to the queue (notifications_sweep).
    """
    # A claim is told apart by `attempts`: each claim adds one, so no two claims of a row share it.
    marker = {"attempt": notification.attempts, "to_email": to_email, "sent_at": sent_at.isoformat()}
    try:
        cache.set(accepted_marker_key(notification.pk), marker, ACCEPTED_MARKER_SECONDS)
    except Exception as exc:  # any cache backend's failure; the database write below is still tried
        logger.warning("notification %s: could not note the SMTP acceptance in the cache: %s", notification.pk, exc)
        return False
    return True


def _accepted_forget(notification_ids: list[int]) -> None:
    try:
        cache.delete_many([accepted_marker_key(pk) for pk in notification_ids])
    except Exception as exc:  # harmless: a marker only matters for a claim that is still `sending`
        logger.warning("could not drop SMTP-acceptance markers %s: %s", notification_ids, exc)


def _message(notification: Notification, to_email: str) -> EmailMultiAlternatives:
    domain = settings.DEFAULT_FROM_EMAIL.rpartition("@")[2].strip(">") or "localhost"
    headers = {
        # Stable per notification: a resend after a lost worker carries the same id, so it can be deduplicated.
        "Message-ID": f"<notification-{notification.pk}@{domain}>",
        "X-Notification-Kind": notification.kind,
    }
    # Staff manage their alerts in the admin; only merchant members get an unsubscribe link.
    if notification.kind not in CRITICAL_KINDS and notification.staff_user_id is None:
        url = unsubscribe_url(
            merchant_id=notification.merchant_id, clerk_user_id=notification.clerk_user_id, kind=notification.kind
        )
        headers["List-Unsubscribe"] = f"<{url}>"
        headers["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"  # RFC 8058
    message = EmailMultiAlternatives(
        subject=notification.subject,
        body=notification.body_text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to_email],
        headers=headers,
    )
    message.attach_alternative(notification.body_html, "text/html")
    return message


def _resolve_staff(notification: Notification) -> tuple[str | None, _Outcome | None]:
    """The staff user's address as it is now (no Clerk call); inactive, demoted or address-less → undeliverable."""
    user = get_user_model().objects.filter(pk=notification.staff_user_id).first()
    user_id = notification.staff_user_id
    if user is None:  # PROTECT makes this unlikely; kept so a row never stays `sending`
        return None, _Outcome(NotificationStatus.UNDELIVERABLE, STAFF_USER_GONE.format(id=user_id))
    if not user.is_active:
        return None, _Outcome(NotificationStatus.UNDELIVERABLE, STAFF_USER_INACTIVE.format(id=user_id))
    if not user.is_staff:
        return None, _Outcome(NotificationStatus.UNDELIVERABLE, STAFF_USER_NOT_STAFF.format(id=user_id))
    email = (user.email or "").strip()
    if not email:
        return None, _Outcome(NotificationStatus.UNDELIVERABLE, STAFF_USER_NO_EMAIL.format(id=user_id))
    return email, None


def _resolve(notification: Notification) -> tuple[str | None, _Outcome | None]:
    if notification.staff_user_id is not None:
        return _resolve_staff(notification)
    try:
        return user_email_get(notification.clerk_user_id), None
    except (ClerkUserNotFound, ClerkUserHasNoEmail) as exc:
        return None, _Outcome(NotificationStatus.UNDELIVERABLE, str(exc))
    except (ClerkMisconfigured, ClerkPermanentError) as exc:
        return None, _Outcome(NotificationStatus.FAILED, str(exc))
    except ClerkRateLimited as exc:
        return None, _Outcome(NotificationStatus.PENDING, str(exc), retry=True, min_delay=exc.retry_after)
    except ClerkTransientError as exc:
        return None, _Outcome(NotificationStatus.PENDING, str(exc), retry=True)


_smtp = threading.local()


def _smtp_close() -> None:
    backend = getattr(_smtp, "backend", None)
    _smtp.backend = _smtp.key = None
    if backend is not None:
        with contextlib.suppress(Exception):
            backend.close()


def _smtp_backend(key: tuple) -> Any:
    if getattr(_smtp, "backend", None) is None:
        backend = get_connection(fail_silently=False)
        backend.open()
        _smtp.backend, _smtp.key = backend, key
    return _smtp.backend


def _smtp_send(message: EmailMultiAlternatives) -> None:
    """Send on this thread's open connection: a worker reuses one SMTP session instead of one per message.

    A reused session the server closed while idle is reopened once, at once; any failure closes the
    session so the next message starts clean.
    """
    key = (settings.EMAIL_BACKEND, settings.EMAIL_HOST, settings.EMAIL_PORT, settings.EMAIL_HOST_USER)
    if getattr(_smtp, "key", None) != key:
        _smtp_close()
    reused = getattr(_smtp, "backend", None) is not None
    try:
        try:
            _smtp_backend(key).send_messages([message])
        except smtplib.SMTPServerDisconnected:
            if not reused:
                raise
            _smtp_close()
            _smtp_backend(key).send_messages([message])
    except BaseException:
        _smtp_close()
        raise


def _send(notification: Notification, to_email: str) -> _Outcome:
    try:
        _smtp_send(_message(notification, to_email))
    except smtplib.SMTPRecipientsRefused as exc:
        codes = [code for code, _ in exc.recipients.values()]
        reason = f"the mail server refused the recipient ({', '.join(map(str, codes))})"
        if codes and all(code >= 500 for code in codes):
            return _Outcome(NotificationStatus.UNDELIVERABLE, reason)
        return _Outcome(NotificationStatus.PENDING, reason, retry=True)
    except smtplib.SMTPResponseException as exc:
        reason = f"the mail server answered {exc.smtp_code}: {exc.smtp_error!r}"
        if exc.smtp_code >= 500:
            # 5xx on sender, data or auth: our configuration or content; retrying repeats it.
            return _Outcome(NotificationStatus.FAILED, reason)
        return _Outcome(NotificationStatus.PENDING, reason, retry=True)
    except (smtplib.SMTPException, OSError) as exc:
        return _Outcome(NotificationStatus.PENDING, f"mail server unreachable: {type(exc).__name__}: {exc}", retry=True)
    return _Outcome(NotificationStatus.SENT)


def notification_deliver(*, notification_id: int) -> Notification | None:
    """Try to deliver one notification. Safe to call any number of times, from any number of workers.

    Returns None when there was nothing to do (already claimed, finished, or gone). Raises
    NotificationRetryLater after putting the row back to pending when a transient failure leaves
    time before `give_up_at` and the wait fits in the broker (TASK_MAX_COUNTDOWN_SECONDS); a longer wait
    returns the row `pending` with its `next_attempt_at`, for the sweeper. Returns the row still `sending`
    when the mail server accepted the message but the database stayed unreachable (see notifications_sweep).
    Raises the database's error when it is unreachable before anything was sent.
    """
    # Idempotent too: if our claim committed but its answer was lost with the connection, the retry finds the
    # row `sending` and does nothing; the sweeper gives it back after the lease (nothing was sent).
    notification = _on_a_live_connection(lambda: _claim(notification_id))
    if notification is None:
        logger.info("notification %s: nothing to do (not pending)", notification_id)
        return None
    try:
        to_email, outcome = _resolve(notification)
        if outcome is None:
            outcome = _send(notification, to_email)
    except Exception as exc:
        # Whatever broke (cache down, a bug), the row must not stay `sending` silently: retry with the reason.
        logger.exception("notification %s: unexpected error while delivering", notification_id)
        to_email, outcome = None, _Outcome(NotificationStatus.PENDING, redact(f"{type(exc).__name__}: {exc}"), True)

    if outcome.status == NotificationStatus.SENT:
        # The mail server has it: from here on sending again would be a duplicate. Say so in the cache first,
        # then finish the claim, on a fresh connection if ours died.
        sent_at = timezone.now()
        noted = _accepted_record(notification, to_email=to_email, sent_at=sent_at)
        try:
            _finish(notification, NotificationStatus.SENT, "", sent_at=sent_at, to_email=to_email)
        except DATABASE_UNREACHABLE as exc:
            logger.error(
                "notification %s: the mail server accepted it but the database stayed unreachable (%s); %s",
                notification_id,
                str(exc).strip(),
                "the sweeper will record it as sent" if noted else "the sweeper will send it again after the lease",
            )
            return notification  # still `sending` in the database
        if noted:
            _accepted_forget([notification.pk])
    elif outcome.retry:
        delay = retry_delay(notification.attempts, outcome.min_delay)
        next_at = timezone.now() + timedelta(seconds=delay)
        if notification.give_up_at is not None and next_at > notification.give_up_at:
            _finish(
                notification,
                NotificationStatus.FAILED,
                GAVE_UP.format(attempts=notification.attempts, reason=outcome.reason),
            )
        else:
            _finish(notification, NotificationStatus.PENDING, outcome.reason, next_attempt_at=next_at)
            # The broker holds a task for TASK_MAX_COUNTDOWN_SECONDS at most (docs/async.md); a longer wait is
            # kept here, in next_attempt_at, and the sweeper enqueues the row once it is due.
            parked = delay > settings.TASK_MAX_COUNTDOWN_SECONDS
            logger.warning(
                "notification %s: attempt %s failed (%s); next in %.0fs%s",
                notification_id,
                notification.attempts,
                outcome.reason,
                delay,
                " (the sweeper enqueues it)" if parked else "",
            )
            if not parked:
                raise NotificationRetryLater(outcome.reason, delay)
    else:
        _finish(notification, outcome.status, outcome.reason)
    log = logger.error if notification.status == NotificationStatus.FAILED else logger.info
    log("notification %s: %s %s", notification_id, notification.status, notification.last_error)
    return notification


def _accepted_claims(claims: dict[int, int]) -> dict[int, dict] | None:
    """The SMTP-acceptance markers of these expired claims ({id: attempts}); None if the cache is unreadable."""
    if not claims:
        return {}
    try:
        markers = cache.get_many([accepted_marker_key(pk) for pk in claims])
    except Exception as exc:  # any cache backend's failure
        logger.warning("notifications sweep: cannot read SMTP-acceptance markers (%s)", exc)
        return None
    accepted = {}
    for pk, attempts in claims.items():
        marker = markers.get(accepted_marker_key(pk))
        # Only the claim that reached the mail server counts: a marker of an earlier claim (a staff resend since)
        # says nothing about this one.
        if marker and marker.get("attempt") == attempts:
            accepted[pk] = marker
    return accepted


def notifications_sweep() -> list[int]:
    """Give rows that no task will pick up back to the queue: dead workers' `sending`, lost or parked `pending`.

    An expired claim whose message the mail server accepted (the cache remembers it; the worker could not
    tell the database) is finished as `sent`, not sent again; if the cache cannot be read, expired claims
    wait for the next sweep rather than risk a duplicate. Returns the ids enqueued.
    """
    from notifications.selectors import notification_stuck_list

    now = timezone.now()
    with transaction.atomic():
        rows = list(
            notification_stuck_list(sending_lease=SENDING_LEASE, pending_grace=PENDING_GRACE)
            .select_for_update(skip_locked=True)
            .values_list("pk", "status", "attempts")[:SWEEP_BATCH]
        )
        claims = {pk: attempts for pk, status, attempts in rows if status == NotificationStatus.SENDING}
        accepted = _accepted_claims(claims)
        for pk, marker in (accepted or {}).items():
            Notification.objects.filter(pk=pk, status=NotificationStatus.SENDING, attempts=claims[pk]).update(
                status=NotificationStatus.SENT,
                last_error="",
                claimed_at=None,
                sent_at=marker["sent_at"],
                to_email=marker["to_email"],
                updated_at=now,
            )
        skip = set(claims) if accepted is None else set(accepted)
        ids = [pk for pk, _, _ in rows if pk not in skip]
        Notification.objects.filter(pk__in=ids, status=NotificationStatus.SENDING).update(
            status=NotificationStatus.PENDING, claimed_at=None, last_error=LOST_WORKER, updated_at=now
        )
        # Bumping next_attempt_at keeps the next sweep from enqueueing the same rows again while they wait.
        Notification.objects.filter(pk__in=ids).update(next_attempt_at=now)
        for notification_id in ids:
            _enqueue(notification_id)
    if accepted:
        _accepted_forget(list(accepted))
        logger.warning(
            "notifications sweep recorded %s notifications as sent (the mail server had accepted them)", len(accepted)
        )
    if ids:
        logger.warning("notifications sweep re-enqueued %s stuck notifications", len(ids))
    return ids


# --- preferences, cache, staff actions ------------------------------------------------------------


def notification_opt_out_create(*, merchant_id: int, clerk_user_id: str, kind: str) -> NotificationOptOut:
    if kind not in NotificationKind.values:
        raise NotificationError(UNKNOWN_KIND.format(kind=kind))
    if kind in CRITICAL_KINDS:
        raise NotificationError(CRITICAL_NOT_MUTABLE.format(kind=kind))
    opt_out, _ = NotificationOptOut.objects.get_or_create(
        merchant_id=merchant_id, clerk_user_id=clerk_user_id, kind=kind
    )
    return opt_out


def notification_opt_out_delete(*, merchant_id: int, clerk_user_id: str, kind: str) -> None:
    NotificationOptOut.objects.filter(merchant_id=merchant_id, clerk_user_id=clerk_user_id, kind=kind).delete()


def notification_preferences_set(*, merchant_id: int, clerk_user_id: str, enabled_kinds: set[str]) -> None:
    """Mute every non-critical kind not in `enabled_kinds`, unmute the rest; critical kinds are ignored."""
    with transaction.atomic():
        for kind in NotificationKind.values:
            if kind in CRITICAL_KINDS or kind in STAFF_ONLY_KINDS:
                continue
            if kind in enabled_kinds:
                notification_opt_out_delete(merchant_id=merchant_id, clerk_user_id=clerk_user_id, kind=kind)
            else:
                notification_opt_out_create(merchant_id=merchant_id, clerk_user_id=clerk_user_id, kind=kind)


def notification_unsubscribe(*, token: str) -> NotificationOptOut:
    """Opt out from a signed List-Unsubscribe link (no sign-in: the link itself is the proof)."""
    try:
        data = signing.loads(token, salt=UNSUBSCRIBE_SALT)
        merchant_id, clerk_user_id, kind = int(data["m"]), str(data["u"]), str(data["k"])
    except (signing.BadSignature, KeyError, TypeError, ValueError) as exc:
        raise NotificationError(BAD_UNSUBSCRIBE_TOKEN) from exc
    if not Merchant.objects.filter(pk=merchant_id).exists():
        raise NotificationError(BAD_UNSUBSCRIBE_TOKEN)
    return notification_opt_out_create(merchant_id=merchant_id, clerk_user_id=clerk_user_id, kind=kind)


def user_email_cache_drop(*, clerk_user_id: str) -> None:
    # The marker outlives any Clerk call in flight (10 s timeout), so a lookup racing this drop does not re-cache.
    cache.set(email_dropped_key(clerk_user_id), time.time(), DROP_MARKER_SECONDS)
    cache.delete(email_cache_key(clerk_user_id))
    cache.delete(display_name_cache_key(clerk_user_id))  # the same webhook may carry a new name


def notification_resend(
    *, notification: Notification, actor: Actor, audit_context: dict[str, Any] | None = None
) -> Notification:
    """Staff: send a finished notification again, with a fresh day of retries. Audited (`audit_context`: the
    request's ip and user agent, `compliance.services.request_context`)."""
    now = timezone.now()
    with transaction.atomic():
        updated = Notification.objects.filter(pk=notification.pk, status__in=FINAL_STATUSES).update(
            status=NotificationStatus.PENDING,
            last_error="",
            claimed_at=None,
            next_attempt_at=now,
            give_up_at=now + RETRY_FOR,
            updated_at=now,
        )
        if not updated:
            raise NotificationError(RESEND_IN_FLIGHT.format(id=notification.pk, status=notification.status))
        audit_event_record(
            action="notification.resend",
            actor=actor,
            target_type="notification",
            target_id=notification.pk,
            merchant_id=notification.merchant_id,
            metadata={"kind": notification.kind, "previous_status": notification.status},
            **(audit_context or {}),
        )
        _enqueue(notification.pk)
    notification.refresh_from_db()
    return notification


def notification_cancel(
    *, notification: Notification, actor: Actor, audit_context: dict[str, Any] | None = None
) -> Notification:
    """Staff: stop a pending notification; one already being sent cannot be called back. Audited."""
    with transaction.atomic():
        updated = Notification.objects.filter(pk=notification.pk, status=NotificationStatus.PENDING).update(
            status=NotificationStatus.CANCELLED,
            last_error=f"cancelled by {actor.label or actor.type}",
            updated_at=timezone.now(),
        )
        if not updated:
            raise NotificationError(CANCEL_NOT_PENDING.format(id=notification.pk, status=notification.status))
        audit_event_record(
            action="notification.cancel",
            actor=actor,
            target_type="notification",
            target_id=notification.pk,
            merchant_id=notification.merchant_id,
            metadata={"kind": notification.kind},
            **(audit_context or {}),
        )
    notification.refresh_from_db()
    return notification
