"""Agency API tokens: issue, authenticate, reach a store, revoke (by hand and when access behind them ends).

A token is shown once (agencies/token_format.py has its text); the database keeps HMAC-SHA256(pepper, token),
looked up by that digest through its unique index. A token reaches a store only while all of these hold on
the request itself, not only when it was issued:

- the token is not revoked, not expired, and its agency is not suspended;
- the member who created it is still in the agency (leaving revokes it too, but a missed webhook must not
  leave a live token behind);
- the store is in the token's list, and the agency's grant on it is active (the grant's level and masking
  apply, as for the agency's people);
- the token holds the scope of the endpoint (agencies/authentication.py, TokenScopeRequired).

What a refused token is told: a malformed one (wrong length, alphabet or checksum) is told so, which helps
whoever pasted half of it and says nothing about any real token. Every other refusal (unknown, revoked, expired,
creator gone, agency suspended) answers the same 401 message, so a caller cannot learn which tokens exist or
why one died; the precise reason is logged with the token's id and hint (never the token).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import logging
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import connection, transaction
from django.db.models import Q, QuerySet
from django.dispatch import receiver
from django.http import Http404
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from accounts.access import StoreAccess, store_access_from_grant
from accounts.models import Merchant
from accounts.selectors import MERCHANT_NOT_FOUND
from agencies import signals
from agencies.choices import AgencyRole, AgencyStatus, GrantStatus, TokenScope
from agencies.models import AccessGrant, Agency, AgencyMember, AgencyToken
from agencies.token_format import display_hint, token_generate, token_well_formed
from compliance.choices import ActorType
from compliance.models import AuditEvent
from compliance.services import Actor, audit_event_record

logger = logging.getLogger(__name__)

NAME_REQUIRED = "Give the token a name, so you can tell it apart later."
SCOPES_REQUIRED = "Choose at least one scope."
SCOPE_UNKNOWN = "Unknown scope {scope!r}; choose from: {choices}."
STORES_REQUIRED = "Choose at least one store."
STORE_NOT_GRANTED = "Your agency has no active grant on store {merchant_id}."
EXPIRY_TOO_SHORT = "A token must be valid for at least 1 day."
EXPIRY_TOO_LONG = "A token may be valid for at most {days} days."
NOT_AN_ADMIN = "Only the agency's admins create and revoke tokens."
TOKEN_MALFORMED = "Malformed agency token: check that it was copied whole."
TOKEN_REFUSED = "Agency token invalid, expired or revoked."
STORE_NOT_FOUND = MERCHANT_NOT_FOUND  # what a store member gets for a store not theirs: nothing to tell apart

# Revocation reasons (AgencyToken.revoke_reason, and the audit event's metadata).
REVOKED_BY_ADMIN = "revoked by an agency admin"
REVOKED_CREATOR_LEFT = "its creator left the agency"
REVOKED_AGENCY_SUSPENDED = "the agency was suspended"
REVOKED_NO_STORE_LEFT = "the grants of all its stores ended"

# last_used_at/ip are written at most this often per token (and when the address changes).
LAST_USED_EVERY = dt.timedelta(minutes=5)
USED_FROM_NEW_IP = "agency_token.used_from_new_ip"


class TokenRejected(Exception):
    """Authentication failed; `public` is what the caller is told, `reason` what the log says."""

    def __init__(self, public: str, reason: str) -> None:
        super().__init__(reason)
        self.public = public
        self.reason = reason


def token_actor(token: AgencyToken) -> Actor:
    return Actor(type=ActorType.AGENCY_TOKEN, id=str(token.pk), label=f"{token.name} (…{token.display_hint})")


# --- digests --------------------------------------------------------------------------------------------


@sensitive_variables("token", "pepper")
def token_digest(token: str, pepper: str) -> str:
    return hmac.new(pepper.encode(), token.encode("ascii"), hashlib.sha256).hexdigest()


def _peppers() -> dict[int, str]:
    """Current pepper first; retired ones until every token issued under them has expired."""
    return {settings.AGENCY_TOKEN_PEPPER_VERSION: settings.AGENCY_TOKEN_PEPPER, **settings.AGENCY_TOKEN_RETIRED_PEPPERS}


# --- issue ----------------------------------------------------------------------------------------------


def _admin_member(agency: Agency, clerk_user_id: str) -> AgencyMember | None:
    return AgencyMember.objects.filter(
        agency=agency, clerk_user_id=clerk_user_id, removed_at__isnull=True, role=AgencyRole.ADMIN
    ).first()


def agency_admin_check(*, agency: Agency, clerk_user_id: str) -> None:
    """PermissionError unless the user is an active admin of the agency (and the agency is not suspended)."""
    if agency.status != AgencyStatus.ACTIVE or _admin_member(agency, clerk_user_id) is None:
        raise PermissionError(NOT_AN_ADMIN)


def _active_grants(agency: Agency | int) -> QuerySet[AccessGrant]:
    now = timezone.now()
    return AccessGrant.objects.filter(agency=agency, status=GrantStatus.ACTIVE).filter(
        Q(expires_at__isnull=True) | Q(expires_at__gt=now)
    )


def agency_token_store_choices(*, agency: Agency) -> QuerySet[Merchant]:
    """The stores a new token of the agency may list: those with an active grant."""
    granted = _active_grants(agency).values("merchant_id")
    return Merchant.objects.filter(pk__in=granted).order_by("name")


def _validate(agency: Agency, name: str, scopes: list[str], merchant_ids: list[int], days: int | None) -> dict:
    errors: dict[str, list[str]] = {}
    if not name.strip():
        errors["name"] = [NAME_REQUIRED]
    if not scopes:
        errors["scopes"] = [SCOPES_REQUIRED]
    unknown = [s for s in scopes if s not in TokenScope.values]
    if unknown:
        errors["scopes"] = [SCOPE_UNKNOWN.format(scope=s, choices=", ".join(TokenScope.values)) for s in unknown]
    if not merchant_ids:
        errors["merchants"] = [STORES_REQUIRED]
    else:
        granted = set(_active_grants(agency).filter(merchant_id__in=merchant_ids).values_list("merchant_id", flat=True))
        missing = [m for m in merchant_ids if m not in granted]
        if missing:
            errors["merchants"] = [STORE_NOT_GRANTED.format(merchant_id=m) for m in missing]
    if days is not None and days < 1:
        errors["expires_in_days"] = [EXPIRY_TOO_SHORT]
    elif days is not None and days > settings.AGENCY_TOKEN_MAX_DAYS:
        errors["expires_in_days"] = [EXPIRY_TOO_LONG.format(days=settings.AGENCY_TOKEN_MAX_DAYS)]
    return errors


@dataclass(frozen=True)
class IssuedToken:
    token: AgencyToken
    # The token itself, for the one response that shows it; it is stored nowhere.
    plaintext: str = field(repr=False)


@sensitive_variables("plaintext")
def agency_token_create(
    *,
    agency: Agency,
    created_by: str,
    name: str,
    scopes: list[str],
    merchant_ids: list[int],
    expires_in_days: int | None = None,
    request_context: dict[str, Any] | None = None,
) -> IssuedToken:
    """Issue a token (ValidationError with field errors on bad input; PermissionError for a non-admin).

    The expiry is required: None takes the default (AGENCY_TOKEN_DEFAULT_DAYS), beyond AGENCY_TOKEN_MAX_DAYS is
    refused. Every listed store needs an active grant now, and will need it again on every request.
    """
    agency_admin_check(agency=agency, clerk_user_id=created_by)
    scopes = sorted(set(scopes))
    merchant_ids = sorted(set(merchant_ids))
    errors = _validate(agency, name, scopes, merchant_ids, expires_in_days)
    if errors:
        raise ValidationError(errors)
    days = settings.AGENCY_TOKEN_DEFAULT_DAYS if expires_in_days is None else expires_in_days
    plaintext = token_generate()
    with transaction.atomic():
        token = AgencyToken.objects.create(
            agency=agency,
            created_by=created_by,
            name=name.strip()[:100],
            display_hint=display_hint(plaintext),
            digest=token_digest(plaintext, settings.AGENCY_TOKEN_PEPPER),
            pepper_version=settings.AGENCY_TOKEN_PEPPER_VERSION,
            scopes=scopes,
            expires_at=timezone.now() + dt.timedelta(days=days),
        )
        token.merchants.set(merchant_ids)
        audit_event_record(
            action="agency_token.issued",
            actor=Actor(type=ActorType.CLERK_USER, id=created_by, label=created_by),
            target_type="agencies.agencytoken",
            target_id=token.pk,
            metadata={
                "agency_id": agency.pk,
                "name": token.name,
                "hint": token.display_hint,
                "scopes": scopes,
                "merchant_ids": merchant_ids,
                "expires_at": token.expires_at.isoformat(),
            },
            **(request_context or {}),
        )
    return IssuedToken(token=token, plaintext=plaintext)


# --- authenticate ---------------------------------------------------------------------------------------

_LOOKUP_SQL: dict[bool, str] = {}


def _lookup_sql(*, with_store: bool) -> str:
    """The token by digest, with what every request needs of it: its agency's status, whether its creator is
    still a member, and the stores it lists — one statement through the digest's unique index. With a store
    (the merchant id in the URL), the agency's effective grant on it too (`_grant_sql`), as columns eg0…egN,
    so that a token request costs one statement, as a store member's does.

    Written out rather than built with the ORM: it runs on every token request, and compiling the ORM's
    version (an EXISTS and an ARRAY subquery) cost several times what PostgreSQL takes to answer it.
    """
    if with_store not in _LOOKUP_SQL:
        token, agency, member = AgencyToken._meta.db_table, Agency._meta.db_table, AgencyMember._meta.db_table
        through = AgencyToken.merchants.through._meta.db_table
        grant_columns, grant_join = "", ""
        if with_store:
            width = sum(len(model._meta.concrete_fields) for model in _GRANT_MODELS)
            grant_columns = "".join(f", eg.c{i} AS eg{i}" for i in range(width))
            grant_join = f" LEFT JOIN LATERAL ({_grant_sql(agency='t.agency_id')}) eg ON true"
        # Table names from our own models' metadata, never from input; the digests are a bound parameter.
        _LOOKUP_SQL[with_store] = (
            f"SELECT t.*, a.status AS agency_status,"  # noqa: S608 (table names only; see above)
            f" EXISTS (SELECT 1 FROM {member} m WHERE m.agency_id = t.agency_id"
            f"  AND m.clerk_user_id = t.created_by AND m.removed_at IS NULL) AS creator_active,"
            f" ARRAY(SELECT tm.merchant_id FROM {through} tm WHERE tm.agencytoken_id = t.id) AS store_ids"
            f"{grant_columns}"
            f" FROM {token} t JOIN {agency} a ON a.id = t.agency_id{grant_join}"
            f" WHERE t.digest = ANY(%s) LIMIT 1"
        )
    return _LOOKUP_SQL[with_store]


@sensitive_variables("raw")
def agency_token_authenticate(*, raw: str, ip: str | None, merchant_id: int | None = None) -> AgencyToken:
    """The live token for `raw`, or TokenRejected. One query; a second only to record use (≤ every 5 min).

    The returned token carries `store_ids` (the stores it lists); whether each grant is still active is
    checked when a store is reached (token_store_access_get).
    """
    if not token_well_formed(raw):
        raise TokenRejected(TOKEN_MALFORMED, "malformed")
    digests = [token_digest(raw, pepper) for pepper in _peppers().values()]
    if merchant_id is None:
        token = next(iter(AgencyToken.objects.raw(_lookup_sql(with_store=False), [digests])), None)
    else:
        params = [merchant_id, GrantStatus.ACTIVE, timezone.now(), digests]
        token = next(iter(AgencyToken.objects.raw(_lookup_sql(with_store=True), params)), None)
        if token is not None:
            width = sum(len(model._meta.concrete_fields) for model in _GRANT_MODELS)
            row = [getattr(token, f"eg{i}") for i in range(width)]
            token.store_grant = (merchant_id, _grant_from_row(row) if row[0] is not None else None)
    now = timezone.now()
    problem = None
    if token is None:
        problem = "unknown"
    elif token.revoked_at is not None:
        problem = "revoked"
    elif token.expires_at <= now:
        problem = "expired"
    elif token.agency_status != AgencyStatus.ACTIVE:
        problem = "agency suspended"
    elif not token.creator_active:
        problem = "creator left"
    if problem:
        known = {"token_id": token.pk, "hint": token.display_hint} if token else {}
        logger.info("agency token refused", extra={"reason": problem, **known})
        raise TokenRejected(TOKEN_REFUSED, problem)
    agency_token_touch(token=token, ip=ip, now=now)
    return token


def agency_token_touch(*, token: AgencyToken, ip: str | None, now: dt.datetime) -> None:
    """Record last use: at most every LAST_USED_EVERY per token, or when the address changes.

    One conditional UPDATE, so concurrent requests of one token write once; the first use from an address the
    token was never used from is audited (its AuditEvent is the record of the addresses seen).
    """
    new_ip = ip is not None and ip != token.last_used_ip
    stale = token.last_used_at is None or token.last_used_at < now - LAST_USED_EVERY
    if not (stale or new_ip):
        return
    due = Q(last_used_at__isnull=True) | Q(last_used_at__lt=now - LAST_USED_EVERY)
    if new_ip:
        due |= ~Q(last_used_ip=ip) | Q(last_used_ip__isnull=True)
    updated = AgencyToken.objects.filter(due, pk=token.pk).update(last_used_at=now, last_used_ip=ip)
    token.last_used_at, token.last_used_ip = now, ip
    if updated and new_ip:
        seen = AuditEvent.objects.filter(
            action=USED_FROM_NEW_IP, target_type="agencies.agencytoken", target_id=str(token.pk), ip=ip
        ).exists()
        if not seen:
            audit_event_record(
                action=USED_FROM_NEW_IP,
                actor=token_actor(token),
                target_type="agencies.agencytoken",
                target_id=token.pk,
                ip=ip,
                metadata={"agency_id": token.agency_id, "hint": token.display_hint},
            )


# --- reach a store --------------------------------------------------------------------------------------


def token_store_access_get(*, token: AgencyToken, merchant_id: int) -> StoreAccess:
    """The token's access to the store, or Http404 (the same answer whether the store exists or not).

    The store must be in the token's list and the agency's grant on it effective right now (active, not past
    its expiry, the store active); the access is then the grant's (store_access_from_grant: its level and
    masking), as for the agency's own people. The token's scopes are checked by the view's permission.
    """
    try:
        merchant_id = int(merchant_id)
    except (TypeError, ValueError):
        raise Http404(STORE_NOT_FOUND) from None
    store_ids = getattr(token, "store_ids", None)
    if store_ids is None:
        store_ids = list(token.merchants.values_list("pk", flat=True))
    if merchant_id not in store_ids:
        raise Http404(STORE_NOT_FOUND)
    prefetched = getattr(token, "store_grant", None)  # read with the token (agency_token_authenticate)
    if prefetched is not None and prefetched[0] == merchant_id:
        grant = prefetched[1]
    else:
        grant = _effective_grant(agency_id=token.agency_id, merchant_id=merchant_id)
    if grant is None:
        raise Http404(STORE_NOT_FOUND)
    return store_access_from_grant(grant)


_GRANT_MODELS = (AccessGrant, Merchant, Agency)


def _grant_sql(*, agency: str = "%s") -> str:
    """The agency's effective grant on one store, its merchant and agency beside it as columns c0…cN.

    What `_active_grants(...).filter(merchant__is_active=True).select_related("merchant", "agency")` asks,
    written out for the same reason as `_lookup_sql`; tests/agencies/test_tokens.py checks the two agree.
    Parameters: (agency id unless `agency` names a column), merchant id, the active status, now.
    """
    aliases = dict(zip(_GRANT_MODELS, ("g", "m", "a"), strict=True))
    fields = [(aliases[model], f.column) for model in _GRANT_MODELS for f in model._meta.concrete_fields]
    columns = ", ".join(f"{alias}.{column} AS c{i}" for i, (alias, column) in enumerate(fields))
    grant, merchant, agency_table = (model._meta.db_table for model in _GRANT_MODELS)
    return (
        f"SELECT {columns} FROM {grant} g"  # noqa: S608 (columns and tables from our models' metadata only)
        f" JOIN {merchant} m ON m.id = g.merchant_id JOIN {agency_table} a ON a.id = g.agency_id"
        f" WHERE g.agency_id = {agency} AND g.merchant_id = %s AND g.status = %s"
        f" AND (g.expires_at IS NULL OR g.expires_at > %s) AND m.is_active"
        f" ORDER BY g.created_at, g.id LIMIT 1"
    )


def _grant_from_row(row) -> AccessGrant:
    instances, at = [], 0
    for model in _GRANT_MODELS:
        fields = model._meta.concrete_fields
        values = list(row[at : at + len(fields)])
        for i, f in enumerate(fields):  # what the ORM would apply (a JSONField's parse, say)
            if hasattr(f, "from_db_value"):
                values[i] = f.from_db_value(values[i], None, connection)
        instances.append(model.from_db(connection.alias, [f.attname for f in fields], values))
        at += len(fields)
    grant, merchant, agency = instances
    grant.merchant, grant.agency = merchant, agency
    return grant


def _effective_grant(*, agency_id: int, merchant_id: int) -> AccessGrant | None:
    with connection.cursor() as cursor:
        cursor.execute(_grant_sql(), [agency_id, merchant_id, GrantStatus.ACTIVE, timezone.now()])
        row = cursor.fetchone()
    return None if row is None else _grant_from_row(row)


# --- list and revoke ------------------------------------------------------------------------------------


def agency_token_list(*, agency: Agency) -> QuerySet[AgencyToken]:
    """The agency's tokens, newest first, live and dead (a revoked token stays listed as the record of it)."""
    return AgencyToken.objects.filter(agency=agency).prefetch_related("merchants").order_by("-created_at")


def agency_token_get(*, agency: Agency, token_id: int) -> AgencyToken:
    token = AgencyToken.objects.filter(agency=agency, pk=token_id).first()
    if token is None:
        raise Http404("No such token.")
    return token


def _revoke(tokens: QuerySet[AgencyToken], *, actor: Actor, reason: str, request_context: dict | None = None) -> int:
    """Revoke the live ones among `tokens`, one audit event each; already revoked ones are left as they were."""
    now = timezone.now()
    with transaction.atomic():
        live = list(tokens.filter(revoked_at__isnull=True).select_for_update())
        for token in live:
            token.revoked_at, token.revoked_by, token.revoke_reason = now, actor.id or actor.label, reason
            token.save(update_fields=["revoked_at", "revoked_by", "revoke_reason"])
            audit_event_record(
                action="agency_token.revoked",
                actor=actor,
                target_type="agencies.agencytoken",
                target_id=token.pk,
                metadata={"agency_id": token.agency_id, "hint": token.display_hint, "reason": reason},
                **(request_context or {}),
            )
    return len(live)


def agency_token_revoke(
    *, token: AgencyToken, clerk_user_id: str, request_context: dict[str, Any] | None = None
) -> AgencyToken:
    """An agency admin revokes a token (idempotent: revoking a revoked token changes nothing)."""
    agency_admin_check(agency=token.agency, clerk_user_id=clerk_user_id)
    _revoke(
        AgencyToken.objects.filter(pk=token.pk),
        actor=Actor(type=ActorType.CLERK_USER, id=clerk_user_id, label=clerk_user_id),
        reason=REVOKED_BY_ADMIN,
        request_context=request_context,
    )
    token.refresh_from_db()
    return token


def agency_tokens_revoke_for_member(*, agency: Agency, clerk_user_id: str) -> int:
    """The member left: every token they created dies with their access."""
    return _revoke(
        AgencyToken.objects.filter(agency=agency, created_by=clerk_user_id),
        actor=Actor.system("agency member removed"),
        reason=REVOKED_CREATOR_LEFT,
    )


def agency_tokens_revoke_for_agency(*, agency: Agency) -> int:
    return _revoke(
        AgencyToken.objects.filter(agency=agency),
        actor=Actor.system("agency suspended"),
        reason=REVOKED_AGENCY_SUSPENDED,
    )


def agency_tokens_drop_store(*, grant: AccessGrant) -> int:
    """A grant ended: the agency's tokens lose that store; a token left with no store is revoked.

    Returns how many tokens were revoked. Dropping the store is audited per token, so the record says why a
    token that still works stopped reaching one store.
    """
    actor = Actor.system("access grant ended")
    revoked = 0
    with transaction.atomic():
        tokens = list(
            AgencyToken.objects.filter(agency_id=grant.agency_id, merchants=grant.merchant_id).select_for_update()
        )
        for token in tokens:
            token.merchants.remove(grant.merchant_id)
            audit_event_record(
                action="agency_token.store_removed",
                actor=actor,
                target_type="agencies.agencytoken",
                target_id=token.pk,
                merchant_id=grant.merchant_id,
                metadata={"agency_id": token.agency_id, "hint": token.display_hint, "grant_id": grant.pk},
            )
        empty = [t.pk for t in tokens if not t.merchants.exists()]
        if empty:
            revoked = _revoke(AgencyToken.objects.filter(pk__in=empty), actor=actor, reason=REVOKED_NO_STORE_LEFT)
    return revoked


# --- signal receivers (connected by importing this module: agencies/apps.py) ----------------------------------


@receiver(signals.member_removed, dispatch_uid="agency_tokens_member_removed")
def _on_member_removed(sender, *, agency: Agency, clerk_user_id: str, **kwargs) -> None:
    agency_tokens_revoke_for_member(agency=agency, clerk_user_id=clerk_user_id)


@receiver(signals.agency_suspended, dispatch_uid="agency_tokens_agency_suspended")
def _on_agency_suspended(sender, *, agency: Agency, **kwargs) -> None:
    agency_tokens_revoke_for_agency(agency=agency)


@receiver(signals.grant_ended, dispatch_uid="agency_tokens_grant_ended")
def _on_grant_ended(sender, *, grant: AccessGrant, **kwargs) -> None:
    agency_tokens_drop_store(grant=grant)
