"""Writes for saved groups of client stores (MerchantGroup), e.g. "EU fashion". Every write is audited.

A member adds only the stores they may see. Stores already in a group that the member may not see (another
member's clients) stay in it when they edit it: a member limited to some clients cannot empty a colleague's
group by saving it.
"""

from __future__ import annotations

from collections.abc import Iterable

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.http import Http404

from agencies.models import Agency, MerchantGroup
from compliance.services import Actor, audit_event_record
from config.validators import has_surrogates

GROUP_NOT_FOUND = "No such group."
GROUP_NAME_REQUIRED = "Give the group a name."
GROUP_NAME_MAX_LENGTH = 100  # MerchantGroup.name
GROUP_NAME_TOO_LONG = f"At most {GROUP_NAME_MAX_LENGTH} characters."
GROUP_NAME_TAKEN = "A group with this name already exists."
GROUP_NAME_NOT_STORABLE = "Text may not contain NUL characters or lone surrogates."
GROUP_STORE_UNKNOWN = "Choose among your client stores."


def merchant_group_list(*, agency: Agency):
    return MerchantGroup.objects.filter(agency=agency).prefetch_related("merchants")


def merchant_group_get(*, agency: Agency, group_id) -> MerchantGroup:
    """The agency's group, or 404 — the same answer for another agency's group."""
    try:
        return MerchantGroup.objects.get(agency=agency, pk=int(group_id))
    except (TypeError, ValueError, MerchantGroup.DoesNotExist):
        raise Http404(GROUP_NOT_FOUND) from None


def _clean(name: str, merchant_ids: Iterable, visible_ids: set[int]) -> tuple[str, set[int]]:
    errors: dict[str, list[str]] = {}
    name = (name or "").strip()
    if "\x00" in name or has_surrogates(name):
        errors["name"] = [GROUP_NAME_NOT_STORABLE]
    elif not name:
        errors["name"] = [GROUP_NAME_REQUIRED]
    elif len(name) > GROUP_NAME_MAX_LENGTH:
        errors["name"] = [GROUP_NAME_TOO_LONG]
    ids: set[int] = set()
    for raw in merchant_ids:
        try:
            ids.add(int(raw))
        except (TypeError, ValueError):
            errors["merchants"] = [GROUP_STORE_UNKNOWN]
    if ids - visible_ids:
        errors["merchants"] = [GROUP_STORE_UNKNOWN]  # the same answer whether the store exists or not
    if errors:
        raise ValidationError(errors)
    return name, ids


def _audit(action: str, group: MerchantGroup, actor: Actor, context: dict | None, merchant_ids) -> None:
    audit_event_record(
        action=action,
        actor=actor,
        target_type="agencies.merchantgroup",
        target_id=group.pk,
        metadata={"agency_id": group.agency_id, "name": group.name, "merchant_ids": sorted(merchant_ids)},
        **(context or {}),
    )


def merchant_group_create(
    *,
    agency: Agency,
    name: str,
    merchant_ids: Iterable,
    visible_ids: set[int],
    actor: Actor,
    request_context: dict | None = None,
) -> MerchantGroup:
    name, ids = _clean(name, merchant_ids, visible_ids)
    try:
        with transaction.atomic():
            group = MerchantGroup.objects.create(agency=agency, name=name, created_by=actor.id)
            group.merchants.set(ids)
            _audit("merchant_group.created", group, actor, request_context, ids)
    except IntegrityError as exc:  # the unique (agency, lower(name)) constraint
        raise ValidationError({"name": [GROUP_NAME_TAKEN]}) from exc
    return group


def merchant_group_update(
    *,
    group: MerchantGroup,
    name: str,
    merchant_ids: Iterable,
    visible_ids: set[int],
    actor: Actor,
    request_context: dict | None = None,
) -> MerchantGroup:
    name, ids = _clean(name, merchant_ids, visible_ids)
    try:
        with transaction.atomic():
            locked = MerchantGroup.objects.select_for_update().get(pk=group.pk)
            kept = set(locked.merchants.values_list("pk", flat=True)) - visible_ids
            locked.name = name
            locked.save(update_fields=["name"])
            locked.merchants.set(ids | kept)
            _audit("merchant_group.updated", locked, actor, request_context, ids | kept)
    except IntegrityError as exc:
        raise ValidationError({"name": [GROUP_NAME_TAKEN]}) from exc
    return locked


def merchant_group_delete(*, group: MerchantGroup, actor: Actor, request_context: dict | None = None) -> None:
    with transaction.atomic():
        _audit("merchant_group.deleted", group, actor, request_context, group.merchants.values_list("pk", flat=True))
        group.delete()
