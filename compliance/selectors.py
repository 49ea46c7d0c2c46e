"""Reads of the compliance app."""

from __future__ import annotations

import datetime as dt

from django.conf import settings
from django.db.models import QuerySet
from django.utils import timezone

from compliance.choices import PRIVACY_OPEN_STATES
from compliance.models import PrivacyRequest

DEADLINES = ("overdue", "soon", "open")


def privacy_request_list(
    *, merchant=None, deadline: str | None = None, queryset: QuerySet | None = None, now: dt.datetime | None = None
) -> QuerySet[PrivacyRequest]:
    """A store's (or every) privacy request; `deadline`: overdue, due soon (PRIVACY_DUE_SOON_DAYS) or not done."""
    now = now or timezone.now()
    qs = queryset if queryset is not None else PrivacyRequest.objects.all()
    if merchant is not None:
        qs = qs.filter(merchant=merchant)
    if deadline in DEADLINES:
        qs = qs.filter(state__in=PRIVACY_OPEN_STATES)
        if deadline == "overdue":
            qs = qs.filter(due_at__lte=now)
        elif deadline == "soon":
            qs = qs.filter(due_at__gt=now, due_at__lte=now + dt.timedelta(days=settings.PRIVACY_DUE_SOON_DAYS))
    return qs


def privacy_request_is_overdue(request: PrivacyRequest, *, now: dt.datetime | None = None) -> bool:
    return request.state in PRIVACY_OPEN_STATES and request.due_at <= (now or timezone.now())
