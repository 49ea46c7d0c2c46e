"""Reads for merchants and memberships. Every read of merchant data names the merchant explicitly."""

from __future__ import annotations

from django.db import connections, router
from django.db.models import QuerySet
from django.http import Http404

from accounts.models import Membership, Merchant

MERCHANT_NOT_FOUND = "No such merchant."


def _columns(model, alias: str) -> tuple[list[str], str]:
    names = [f.attname for f in model._meta.concrete_fields]
    return names, ", ".join(f'{alias}."{f.column}"' for f in model._meta.concrete_fields)


# Every merchant page and API call starts with this lookup, so it skips the ORM's query compiler (about
# two thirds of its cost on this query) and builds the same instances select_related("merchant") would.
# The columns come from the models, so a new field is read without touching this.
_MEMBERSHIP_FIELDS, _MEMBERSHIP_COLUMNS = _columns(Membership, "ms")
_MERCHANT_FIELDS, _MERCHANT_COLUMNS = _columns(Merchant, "mc")
_MEMBERSHIPS_SQL = f"""
    select {_MEMBERSHIP_COLUMNS}, {_MERCHANT_COLUMNS}
    from {Membership._meta.db_table} ms join {Merchant._meta.db_table} mc on mc.id = ms.merchant_id
    where ms.clerk_user_id = %s and mc.is_active {{and_merchant}}
    order by mc.name, mc.id
"""  # noqa: S608 — table and column names from the models, not from input
_ALL_SQL = _MEMBERSHIPS_SQL.format(and_merchant="")
_ONE_SQL = _MEMBERSHIPS_SQL.format(and_merchant="and ms.merchant_id = %s")


def _memberships(clerk_user_id: str, merchant_id: int | None = None) -> list[Membership]:
    """The user's memberships of active merchants, each with its merchant loaded; ordered by merchant name."""
    sql, params = (_ALL_SQL, [clerk_user_id]) if merchant_id is None else (_ONE_SQL, [clerk_user_id, merchant_id])
    using = router.db_for_read(Membership)
    with connections[using].cursor() as cursor:
        cursor.execute(sql, params)
        rows = cursor.fetchall()
    split = len(_MEMBERSHIP_FIELDS)
    memberships = []
    for row in rows:
        membership = Membership.from_db(using, _MEMBERSHIP_FIELDS, row[:split])
        Membership.merchant.field.set_cached_value(membership, Merchant.from_db(using, _MERCHANT_FIELDS, row[split:]))
        memberships.append(membership)
    return memberships


def membership_list(*, clerk_user_id: str) -> list[Membership]:
    """The user's memberships of active merchants, with the merchant, ordered by merchant name."""
    return _memberships(clerk_user_id)


def merchant_list_for_user(*, clerk_user_id: str) -> QuerySet[Merchant]:
    return Merchant.objects.filter(memberships__clerk_user_id=clerk_user_id, is_active=True).order_by("name")


def membership_get(*, clerk_user_id: str, merchant_id: int) -> Membership:
    """The user's membership of that merchant, or 404 — the same answer whether it exists or not."""
    try:
        merchant_id = int(merchant_id)
    except (ValueError, TypeError):
        raise Http404(MERCHANT_NOT_FOUND) from None
    found = _memberships(clerk_user_id, merchant_id)
    if not found:
        raise Http404(MERCHANT_NOT_FOUND)
    return found[0]


def member_list(*, merchant: Merchant) -> QuerySet[Membership]:
    return Membership.objects.filter(merchant=merchant).order_by("role", "clerk_user_id")
