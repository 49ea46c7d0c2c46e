"""Writes for dashboard templates. Every save, apply and delete is audited."""

from __future__ import annotations

from typing import Any

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction

from accounts.models import Merchant
from compliance.services import Actor, audit_event_record
from config.validators import has_surrogates
from dashboards.layouts import layout_validate
from dashboards.models import DashboardTemplate

NAME_TAKEN = "A dashboard template with this name already exists."
VERSION_STALE = "This template was changed by someone else (now version {current}); reload it and try again."
NAME_REQUIRED = "Give the template a name."
NAME_MAX_LENGTH = 100  # DashboardTemplate.name
NAME_TOO_LONG = f"At most {NAME_MAX_LENGTH} characters."
TEXT_NOT_STORABLE = "Text may not contain NUL characters or lone surrogates."


class DashboardTemplateConflict(Exception):
    """The write cannot happen as asked: the name is taken or the version is stale (HTTP 409)."""

    def __init__(self, message: str, *, field: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


def _storable(field: str, value: str) -> str:
    """The forms and serializers refuse these already; every other caller meets the same rule here, before
    PostgreSQL (which refuses NUL) or the UTF-8 encoder (which refuses lone surrogates) would, with a 500."""
    if "\x00" in value or has_surrogates(value):
        raise ValidationError({field: [TEXT_NOT_STORABLE]})
    return value


def _clean_name(name: str) -> str:
    name = _storable("name", (name or "").strip())
    if not name:
        raise ValidationError({"name": [NAME_REQUIRED]})
    if len(name) > NAME_MAX_LENGTH:
        raise ValidationError({"name": [NAME_TOO_LONG]})
    return name


def _owner(merchant: Merchant | None, agency) -> dict:
    """A template belongs to a store or to an agency, never both (the dashboard_template_one_owner constraint)."""
    if (merchant is None) == (agency is None):
        raise ValueError("a dashboard template has exactly one owner: a merchant or an agency")
    return {"merchant": merchant} if merchant is not None else {"agency": agency}


def _name_taken(owner: dict, name: str, exclude_pk: int | None = None) -> bool:
    qs = DashboardTemplate.objects.filter(**owner, name__iexact=name)
    return qs.exclude(pk=exclude_pk).exists() if exclude_pk else qs.exists()


def _audit(
    action: str, template: DashboardTemplate, actor: Actor, context: dict | None, merchant_id=None, **metadata
) -> None:
    audit_event_record(
        action=action,
        actor=actor,
        target_type="dashboards.dashboardtemplate",
        target_id=template.pk,
        merchant_id=merchant_id or template.merchant_id,
        metadata={
            "name": template.name,
            "version": template.version,
            **({"agency_id": template.agency_id} if template.agency_id else {}),
            **metadata,
        },
        **(context or {}),
    )


def dashboard_template_create(
    *,
    merchant: Merchant | None = None,
    agency=None,
    name: str,
    description: str = "",
    layout: Any,
    actor: Actor,
    request_context: dict | None = None,
) -> DashboardTemplate:
    name = _clean_name(name)
    description = _storable("description", description or "")
    layout = layout_validate(layout)
    owner = _owner(merchant, agency)
    if _name_taken(owner, name):
        raise DashboardTemplateConflict(NAME_TAKEN, field="name")
    try:
        with transaction.atomic():
            template = DashboardTemplate.objects.create(
                **owner,
                name=name,
                description=description or "",
                layout=layout,
                created_by=actor.id,
                updated_by=actor.id,
            )
            _audit("dashboard_template.created", template, actor, request_context, widgets=len(layout))
    except IntegrityError as exc:  # a concurrent create took the name between our check and the insert
        raise DashboardTemplateConflict(NAME_TAKEN, field="name") from exc
    return template


def dashboard_template_update(
    *,
    template: DashboardTemplate,
    version: int,
    actor: Actor,
    name: str | None = None,
    description: str | None = None,
    layout: Any = None,
    request_context: dict | None = None,
) -> DashboardTemplate:
    """Optimistic concurrency: `version` must be the one the caller read, else DashboardTemplateConflict."""
    name = _clean_name(name) if name is not None else None
    description = _storable("description", description) if description is not None else None
    layout = layout_validate(layout) if layout is not None else None
    try:
        with transaction.atomic():
            locked = DashboardTemplate.objects.select_for_update().get(pk=template.pk)
            if locked.version != version:
                raise DashboardTemplateConflict(VERSION_STALE.format(current=locked.version), field="version")
            if (
                name is not None
                and name.lower() != locked.name.lower()
                and _name_taken(_owner(locked.merchant, locked.agency), name)
            ):
                raise DashboardTemplateConflict(NAME_TAKEN, field="name")
            changed = []
            for field, value in (("name", name), ("description", description), ("layout", layout)):
                if value is not None:
                    setattr(locked, field, value)
                    changed.append(field)
            locked.version += 1
            locked.updated_by = actor.id
            locked.save()
            _audit("dashboard_template.updated", locked, actor, request_context, fields=changed)
    except IntegrityError as exc:
        raise DashboardTemplateConflict(NAME_TAKEN, field="name") from exc
    return locked


def dashboard_template_delete(
    *, template: DashboardTemplate, actor: Actor, request_context: dict | None = None
) -> None:
    with transaction.atomic():
        _audit("dashboard_template.deleted", template, actor, request_context)
        template.delete()


def dashboard_template_apply_record(
    *, template: DashboardTemplate, actor: Actor, request_context: dict | None = None, merchant: Merchant | None = None
) -> None:
    """Record that a template was applied (opened with live data) on a store: an agency's is recorded against the
    store it was applied on (`merchant`), so the store's audit trail shows it."""
    merchant_id = merchant.pk if merchant else None
    _audit("dashboard_template.applied", template, actor, request_context, merchant_id=merchant_id)
