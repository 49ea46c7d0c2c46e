"""Legal holds: place, change and release them (audited), ask which cover some data, record the work they stopped.

A hold beats retention and erasure (docs/retention.md, PROVIDERS.md §7.1): code that deletes or redacts asks
`holds_covering` first, skips what is held and records that with `exemption_record`. The database enforces the
same rule whatever the code does — the trigger `compliance_hold_guard` (compliance/guards.py) refuses to delete or
rewrite a covered row with SQLSTATE `HL001` (`hold_refusal` reads the hold's id from such an error) — so a
forgotten check fails loudly instead of destroying held data. Releasing deletes nothing: the data becomes
eligible again under the normal retention.

Scope semantics, the same here and in the database (`compliance_hold_blocks`, migration 0003):
- a hold's empty customers, categories or date bound mean "all";
- work over a whole store (no `customer_ids` or `emails` passed) is covered by every hold of that store, a
  customer-scoped one included: part of what it would touch is held;
- `at` is the date of the data; None (unknown, or a range) is covered by any date range.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from compliance.choices import DataCategory
from compliance.guards import HOLD_SQLSTATE
from compliance.models import HoldExemption, LegalHold
from compliance.services import Actor, audit_event_record

MATTER_REQUIRED = "Name the matter this hold belongs to."
REASON_REQUIRED = "Say why the data must be preserved."
RELEASE_REASON_REQUIRED = "Say why the hold is released."
UNKNOWN_CATEGORY = "Unknown data category {value!r}; choose from: {choices}."
BAD_EMAIL = "{value!r} is not an e-mail address."
BAD_CUSTOMER_ID = "{value!r} is not a customer id."
BAD_DATE_RANGE = "The date range must end after it starts."
ALREADY_RELEASED = "This hold was released on {at:%Y-%m-%d %H:%M} UTC; place a new one instead."
WORK_REQUIRED = "Say what work was skipped and what it would have touched."

EDITABLE_FIELDS = ("matter", "reason", "customer_ids", "emails", "categories", "date_from", "date_to")


def _emails(values: Iterable[str], errors: dict[str, list[str]]) -> list[str]:
    out: list[str] = []
    for value in values:
        email = str(value).strip().lower()
        try:
            validate_email(email)
        except ValidationError:
            errors.setdefault("emails", []).append(BAD_EMAIL.format(value=value))
            continue
        if email not in out:
            out.append(email)
    return out


def _customer_ids(values: Iterable[str | int], errors: dict[str, list[str]]) -> list[str]:
    out: list[str] = []
    for value in values:
        text = str(value).strip()
        if not text or len(text) > 64 or isinstance(value, bool):
            errors.setdefault("customer_ids", []).append(BAD_CUSTOMER_ID.format(value=value))
            continue
        if text not in out:
            out.append(text)
    return out


def _categories(values: Iterable[str], errors: dict[str, list[str]]) -> list[str]:
    out: list[str] = []
    for value in values:
        if value not in DataCategory.values:
            choices = ", ".join(DataCategory.values)
            errors.setdefault("categories", []).append(UNKNOWN_CATEGORY.format(value=value, choices=choices))
        elif value not in out:
            out.append(value)
    return out


def _clean(fields: dict[str, Any]) -> dict[str, Any]:
    """The scope normalised (e-mails lower-cased, duplicates dropped) or a ValidationError per field."""
    errors: dict[str, list[str]] = {}
    cleaned = dict(fields)
    cleaned["matter"] = (fields.get("matter") or "").strip()
    cleaned["reason"] = (fields.get("reason") or "").strip()
    if not cleaned["matter"]:
        errors["matter"] = [MATTER_REQUIRED]
    if not cleaned["reason"]:
        errors["reason"] = [REASON_REQUIRED]
    cleaned["emails"] = _emails(fields.get("emails") or (), errors)
    cleaned["customer_ids"] = _customer_ids(fields.get("customer_ids") or (), errors)
    cleaned["categories"] = _categories(fields.get("categories") or (), errors)
    date_from, date_to = fields.get("date_from"), fields.get("date_to")
    if date_from and date_to and date_from >= date_to:
        errors["date_to"] = [BAD_DATE_RANGE]
    if errors:
        raise ValidationError(errors)
    return cleaned


def _scope(hold: LegalHold) -> dict[str, Any]:
    """What the audit log keeps of a hold's scope: its shape, not the customers' e-mails (the log outlives them)."""
    return {
        "matter": hold.matter,
        "customers": len(hold.customer_ids),
        "emails": len(hold.emails),
        "categories": list(hold.categories),
        "date_from": hold.date_from.isoformat() if hold.date_from else None,
        "date_to": hold.date_to.isoformat() if hold.date_to else None,
    }


@transaction.atomic
def hold_place(
    *,
    merchant_id: int,
    matter: str,
    reason: str,
    actor: Actor,
    customer_ids: Iterable[str | int] = (),
    emails: Iterable[str] = (),
    categories: Iterable[str] = (),
    date_from: dt.datetime | None = None,
    date_to: dt.datetime | None = None,
) -> LegalHold:
    """Place a hold on a store's data (narrowed by the optional scope); audited as `legal_hold.placed`."""
    cleaned = _clean(
        {
            "matter": matter,
            "reason": reason,
            "customer_ids": customer_ids,
            "emails": emails,
            "categories": categories,
            "date_from": date_from,
            "date_to": date_to,
        }
    )
    hold = LegalHold.objects.create(
        merchant_id=merchant_id,
        placed_at=timezone.now(),
        placed_by_type=actor.type,
        placed_by_id=str(actor.id)[:128],
        placed_by_label=actor.label[:255],
        **cleaned,
    )
    audit_event_record(
        action="legal_hold.placed",
        actor=actor,
        target_type="legal_hold",
        target_id=hold.pk,
        merchant_id=merchant_id,
        metadata=_scope(hold),
    )
    return hold


@transaction.atomic
def hold_update(*, hold: LegalHold, actor: Actor, **changes: Any) -> LegalHold:
    """Change an active hold's matter, reason or scope; audited as `legal_hold.changed` with before and after.

    Narrowing a hold releases the data it no longer covers, exactly as a release would (nothing is deleted)."""
    unknown = set(changes) - set(EDITABLE_FIELDS)
    if unknown:
        raise ValidationError({name: ["This field cannot be changed."] for name in sorted(unknown)})
    hold = LegalHold.objects.select_for_update().get(pk=hold.pk)
    if hold.released_at is not None:
        raise ValidationError(ALREADY_RELEASED.format(at=hold.released_at))
    before = _scope(hold)
    current = {name: getattr(hold, name) for name in EDITABLE_FIELDS}
    cleaned = _clean({**current, **changes})
    changed = [name for name in EDITABLE_FIELDS if cleaned[name] != current[name]]
    if not changed:
        return hold
    for name in changed:
        setattr(hold, name, cleaned[name])
    hold.save(update_fields=changed)
    audit_event_record(
        action="legal_hold.changed",
        actor=actor,
        target_type="legal_hold",
        target_id=hold.pk,
        merchant_id=hold.merchant_id,
        metadata={"fields": changed, "before": before, "after": _scope(hold)},
    )
    return hold


@transaction.atomic
def hold_release(*, hold: LegalHold, actor: Actor, reason: str) -> LegalHold:
    """Release a hold; audited as `legal_hold.released`. Deletes nothing: what it covered is eligible again
    under the normal retention (the next purge), unless another hold still covers it."""
    reason = (reason or "").strip()
    if not reason:
        raise ValidationError({"release_reason": [RELEASE_REASON_REQUIRED]})
    hold = LegalHold.objects.select_for_update().get(pk=hold.pk)
    if hold.released_at is not None:
        raise ValidationError(ALREADY_RELEASED.format(at=hold.released_at))
    hold.released_at = timezone.now()
    hold.released_by_type = actor.type
    hold.released_by_id = str(actor.id)[:128]
    hold.released_by_label = actor.label[:255]
    hold.release_reason = reason
    hold.save(
        update_fields=["released_at", "released_by_type", "released_by_id", "released_by_label", "release_reason"]
    )
    audit_event_record(
        action="legal_hold.released",
        actor=actor,
        target_type="legal_hold",
        target_id=hold.pk,
        merchant_id=hold.merchant_id,
        metadata={**_scope(hold), "reason": reason},
    )
    return hold


def holds_covering(
    *,
    merchant_id: int,
    category: str,
    customer_ids: Iterable[str | int] = (),
    emails: Iterable[str] = (),
    at: dt.datetime | None = None,
) -> list[LegalHold]:
    """The active holds covering the store's data of `category` — of those customers (by id or e-mail) if any
    are given, else of the whole store — dated `at` (None: of any date). Oldest first; empty: nothing held."""
    if category not in DataCategory.values:
        raise ValueError(UNKNOWN_CATEGORY.format(value=category, choices=", ".join(DataCategory.values)))
    holds = LegalHold.objects.filter(merchant_id=merchant_id, released_at__isnull=True).filter(
        Q(categories=[]) | Q(categories__contains=[category])
    )
    if at is not None:
        holds = holds.filter(Q(date_from__isnull=True) | Q(date_from__lte=at)).filter(
            Q(date_to__isnull=True) | Q(date_to__gt=at)
        )
    ids = [str(c).strip() for c in customer_ids if str(c).strip()]
    mails = [str(e).strip().lower() for e in emails if str(e).strip()]
    if ids or mails:
        holds = holds.filter(
            Q(customer_ids=[], emails=[]) | Q(customer_ids__overlap=ids or [""]) | Q(emails__overlap=mails or [""])
        )
    return list(holds.order_by("id"))


def exemption_record(*, hold: LegalHold, work: str, target: str, detail: dict | None = None) -> HoldExemption:
    """Record that `work` (e.g. "customers/redact") skipped `target` (e.g. "customer 123") because of `hold`."""
    if not (work or "").strip() or not (target or "").strip():
        raise ValidationError(WORK_REQUIRED)
    return HoldExemption.objects.create(
        hold=hold,
        merchant_id=hold.merchant_id,
        work=work.strip()[:100],
        target=target.strip()[:500],
        detail=detail or {},
    )


def hold_refusal(error: BaseException) -> int | None:
    """The id of the hold whose trigger refused a statement, from the error it raised (Django's wrapper or
    psycopg's); None for any other error."""
    cause = error if getattr(error, "sqlstate", None) else error.__cause__
    if cause is None or getattr(cause, "sqlstate", None) != HOLD_SQLSTATE:
        return None
    detail = getattr(getattr(cause, "diag", None), "message_detail", "") or ""
    _, _, value = detail.partition("hold_id=")
    return int(value) if value.isdigit() else None
