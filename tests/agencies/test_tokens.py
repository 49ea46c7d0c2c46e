"""Agency tokens, below HTTP: the format and checksum, the keyed digest, issue rules, what makes a token dead,
last use, and revocation when a member, a grant or the agency ends."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import re
import zlib

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.http import Http404
from django.utils import timezone

from agencies import signals, token_format
from agencies.choices import GrantStatus, TokenScope
from agencies.models import AgencyToken
from agencies.tokens import (
    EXPIRY_TOO_LONG,
    EXPIRY_TOO_SHORT,
    NOT_AN_ADMIN,
    REVOKED_AGENCY_SUSPENDED,
    REVOKED_BY_ADMIN,
    REVOKED_CREATOR_LEFT,
    REVOKED_NO_STORE_LEFT,
    SCOPES_REQUIRED,
    STORE_NOT_GRANTED,
    STORES_REQUIRED,
    TOKEN_MALFORMED,
    TOKEN_REFUSED,
    USED_FROM_NEW_IP,
    TokenRejected,
    agency_token_authenticate,
    agency_token_revoke,
    token_store_access_get,
)
from compliance.models import AuditEvent
from tests.accounts.factories import MerchantFactory
from tests.agencies.tokens_support import agency_make, grant_make, member_make, token_make

pytestmark = pytest.mark.django_db

IP = "203.0.113.7"


@pytest.fixture
def agency():
    return agency_make()


@pytest.fixture
def store(agency):
    return grant_make(agency).merchant


def audit(action: str, token: AgencyToken) -> list[AuditEvent]:
    return list(AuditEvent.objects.filter(action=action, target_id=str(token.pk)).order_by("pk"))


# --- format ---------------------------------------------------------------------------------------------


def test_a_token_is_prefix_43_base62_then_a_6_character_crc32():
    tokens = {token_format.token_generate() for _ in range(50)}
    assert len(tokens) == 50
    for token in tokens:
        assert re.fullmatch(r"mkt_at_[0-9A-Za-z]{49}", token)
        head, checksum = token[:-6], token[-6:]
        value = 0
        for c in checksum:
            value = value * 62 + token_format._INDEX[c]
        assert value == zlib.crc32(head.encode())
        assert token_format.token_well_formed(token)


def test_the_prefix_is_none_of_clerks():
    assert not token_format.PREFIX.startswith(("ak_", "mt_", "m2m_", "oat_", "sk_", "pk_", "eyJ"))


@pytest.mark.parametrize(
    "mangle",
    [
        lambda t: t[:-1] + ("A" if t[-1] != "A" else "B"),  # checksum changed
        lambda t: t[:10] + ("x" if t[10] != "x" else "y") + t[11:],  # body changed, checksum kept
        lambda t: t[:-1],  # truncated
        lambda t: t + "0",  # too long
        lambda t: t[:20] + "-" + t[21:],  # not base62
        lambda t: "mkt_xx_" + t[7:],  # another prefix
    ],
    ids=["checksum", "body", "truncated", "long", "alphabet", "prefix"],
)
def test_a_mangled_token_is_refused_before_any_database_work(django_assert_num_queries, mangle):
    bad = mangle(token_format.token_generate())
    assert not token_format.token_well_formed(bad)
    with django_assert_num_queries(0), pytest.raises(TokenRejected) as refused:
        agency_token_authenticate(raw=bad, ip=IP)
    assert refused.value.public == TOKEN_MALFORMED


# --- digest ---------------------------------------------------------------------------------------------


def test_only_a_keyed_digest_is_stored_and_the_token_is_found_by_it(settings, agency, store):
    issued = token_make(agency, [store])
    row = AgencyToken.objects.get(pk=issued.token.pk)
    expected = hmac.new(settings.AGENCY_TOKEN_PEPPER.encode(), issued.plaintext.encode(), hashlib.sha256).hexdigest()
    assert row.digest == expected
    assert row.digest != hashlib.sha256(issued.plaintext.encode()).hexdigest()  # keyed, not a bare hash
    assert row.display_hint == issued.plaintext[-4:]
    assert row.pepper_version == settings.AGENCY_TOKEN_PEPPER_VERSION
    # The token is nowhere in the database: not in its row, not in the audit log.
    with connection.cursor() as cursor:
        cursor.execute("select row_to_json(t)::text from agencies_agencytoken t")
        rows = [r[0] for r in cursor.fetchall()]
        cursor.execute("select row_to_json(e)::text from compliance_auditevent e")
        rows += [r[0] for r in cursor.fetchall()]
    assert rows and not any(issued.plaintext in r or issued.plaintext[7:-6] in r for r in rows)

    assert agency_token_authenticate(raw=issued.plaintext, ip=IP).pk == row.pk


def test_a_retired_pepper_still_finds_its_tokens_and_a_lost_one_does_not(settings, agency, store):
    issued = token_make(agency, [store])
    old = settings.AGENCY_TOKEN_PEPPER
    settings.AGENCY_TOKEN_PEPPER, settings.AGENCY_TOKEN_PEPPER_VERSION = "n" * 40, 2
    settings.AGENCY_TOKEN_RETIRED_PEPPERS = {1: old}
    assert agency_token_authenticate(raw=issued.plaintext, ip=IP).pk == issued.token.pk
    settings.AGENCY_TOKEN_RETIRED_PEPPERS = {}
    with pytest.raises(TokenRejected, match="unknown"):
        agency_token_authenticate(raw=issued.plaintext, ip=IP)


def test_an_unknown_well_formed_token_is_refused_with_the_common_message(agency):
    with pytest.raises(TokenRejected) as refused:
        agency_token_authenticate(raw=token_format.token_generate(), ip=IP)
    assert (refused.value.public, refused.value.reason) == (TOKEN_REFUSED, "unknown")


# --- issue ----------------------------------------------------------------------------------------------


def test_the_expiry_defaults_to_90_days_and_the_issue_is_audited(settings, agency, store):
    before = timezone.now()
    issued = token_make(agency, [store])
    token = issued.token
    assert before + dt.timedelta(days=90) <= token.expires_at <= timezone.now() + dt.timedelta(days=90)
    assert sorted(token.scopes) == [TokenScope.METRICS_READ, TokenScope.REPORTS_READ]
    assert list(token.merchants.all()) == [store]
    [event] = audit("agency_token.issued", token)
    assert event.actor_id == "user_ada"
    assert event.metadata == {
        "agency_id": agency.pk,
        "name": "Looker pull",
        "hint": token.display_hint,
        "scopes": ["metrics:read", "reports:read"],
        "merchant_ids": [store.pk],
        "expires_at": token.expires_at.isoformat(),
    }


def test_at_most_365_days(agency, store):
    assert token_make(agency, [store], expires_in_days=365).token.expires_at > timezone.now() + dt.timedelta(days=364)
    with pytest.raises(ValidationError) as too_long:
        token_make(agency, [store], expires_in_days=366)
    assert too_long.value.message_dict == {"expires_in_days": [EXPIRY_TOO_LONG.format(days=365)]}
    with pytest.raises(ValidationError) as too_short:
        token_make(agency, [store], expires_in_days=0)
    assert too_short.value.message_dict == {"expires_in_days": [EXPIRY_TOO_SHORT]}
    assert AgencyToken.objects.count() == 1


def test_every_store_needs_an_active_grant_and_a_scope_is_required(agency, store):
    ended = grant_make(agency, status=GrantStatus.ENDED).merchant
    elsewhere = grant_make(agency_make("Other")).merchant
    with pytest.raises(ValidationError) as refused:
        token_make(agency, [store, ended, elsewhere], scopes=())
    missing = sorted([ended.pk, elsewhere.pk])
    assert refused.value.message_dict == {
        "scopes": [SCOPES_REQUIRED],
        "merchants": [STORE_NOT_GRANTED.format(merchant_id=pk) for pk in missing],
    }
    with pytest.raises(ValidationError) as empty:
        token_make(agency, [])
    assert empty.value.message_dict == {"merchants": [STORES_REQUIRED]}
    assert AgencyToken.objects.count() == 0


def test_only_an_active_admin_issues_tokens(agency, store):
    member_make(agency, "user_mo")
    with pytest.raises(PermissionError, match=NOT_AN_ADMIN):
        token_make(agency, [store], created_by="user_mo")
    with pytest.raises(PermissionError):
        token_make(agency, [store], created_by="user_stranger")
    assert AgencyToken.objects.count() == 0


# --- dead tokens ----------------------------------------------------------------------------------------


def test_an_expired_token_is_refused(agency, store):
    issued = token_make(agency, [store])
    AgencyToken.objects.filter(pk=issued.token.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    with pytest.raises(TokenRejected) as refused:
        agency_token_authenticate(raw=issued.plaintext, ip=IP)
    assert (refused.value.public, refused.value.reason) == (TOKEN_REFUSED, "expired")


def test_a_revoked_token_is_refused_and_revoking_is_audited_once(agency, store):
    issued = token_make(agency, [store])
    agency_token_revoke(token=issued.token, clerk_user_id="user_ada")
    agency_token_revoke(token=issued.token, clerk_user_id="user_ada")  # idempotent
    token = AgencyToken.objects.get(pk=issued.token.pk)
    assert (token.revoked_by, token.revoke_reason) == ("user_ada", REVOKED_BY_ADMIN)
    assert len(audit("agency_token.revoked", token)) == 1
    with pytest.raises(TokenRejected) as refused:
        agency_token_authenticate(raw=issued.plaintext, ip=IP)
    assert (refused.value.public, refused.value.reason) == (TOKEN_REFUSED, "revoked")


def test_a_token_dies_when_its_creator_leaves_even_if_no_signal_arrived(agency, store):
    issued = token_make(agency, [store])
    agency.members.filter(clerk_user_id="user_ada").update(removed_at=timezone.now())
    with pytest.raises(TokenRejected) as refused:
        agency_token_authenticate(raw=issued.plaintext, ip=IP)
    assert (refused.value.public, refused.value.reason) == (TOKEN_REFUSED, "creator left")


def test_a_token_reaches_only_listed_stores_with_an_active_grant(agency, store):
    other_granted = grant_make(agency).merchant
    issued = token_make(agency, [store])
    token = agency_token_authenticate(raw=issued.plaintext, ip=IP)
    assert token_store_access_get(token=token, merchant_id=store.pk).merchant == store
    with pytest.raises(Http404):
        token_store_access_get(token=token, merchant_id=other_granted.pk)  # granted, but not listed
    with pytest.raises(Http404):
        token_store_access_get(token=token, merchant_id=MerchantFactory().pk)
    # The grant ends without anyone telling the tokens: the store is out of reach at once.
    agency.grants.filter(merchant=store).update(status=GrantStatus.ENDED)
    with pytest.raises(Http404):
        token_store_access_get(token=token, merchant_id=store.pk)
    # So is a grant past its own expiry.
    agency.grants.filter(merchant=store).update(status=GrantStatus.ACTIVE, expires_at=timezone.now())
    with pytest.raises(Http404):
        token_store_access_get(token=token, merchant_id=store.pk)


# --- last use -------------------------------------------------------------------------------------------


def test_last_use_is_written_at_most_every_five_minutes(agency, store, django_assert_num_queries):
    issued = token_make(agency, [store])
    agency_token_authenticate(raw=issued.plaintext, ip=IP)
    first = AgencyToken.objects.get(pk=issued.token.pk)
    assert first.last_used_ip == IP and first.last_used_at is not None
    with django_assert_num_queries(1):  # the lookup alone: no write within five minutes from the same address
        agency_token_authenticate(raw=issued.plaintext, ip=IP)
    assert AgencyToken.objects.get(pk=issued.token.pk).last_used_at == first.last_used_at
    AgencyToken.objects.filter(pk=first.pk).update(last_used_at=timezone.now() - dt.timedelta(minutes=6))
    with django_assert_num_queries(2):  # lookup + one conditional UPDATE
        agency_token_authenticate(raw=issued.plaintext, ip=IP)
    assert AgencyToken.objects.get(pk=first.pk).last_used_at > first.last_used_at


def test_the_first_use_from_each_new_address_is_audited_once(agency, store):
    issued = token_make(agency, [store])
    for ip in [IP, IP, "198.51.100.2", IP, "198.51.100.2", "2001:db8::1"]:
        agency_token_authenticate(raw=issued.plaintext, ip=ip)
    events = audit(USED_FROM_NEW_IP, issued.token)
    assert [e.ip for e in events] == [IP, "198.51.100.2", "2001:db8::1"]
    assert events[0].actor_type == "agency_token" and events[0].actor_id == str(issued.token.pk)
    assert AgencyToken.objects.get(pk=issued.token.pk).last_used_ip == "2001:db8::1"


# --- automatic revocation -------------------------------------------------------------------------------


def test_member_removed_revokes_the_tokens_that_member_created_only(agency, store):
    member_make(agency, "user_bea", role="admin")
    ada = token_make(agency, [store]).token
    bea = token_make(agency, [store], created_by="user_bea").token
    signals.member_removed.send(sender=None, agency=agency, clerk_user_id="user_ada")
    ada.refresh_from_db()
    bea.refresh_from_db()
    assert ada.revoke_reason == REVOKED_CREATOR_LEFT and ada.revoked_at is not None
    assert bea.revoked_at is None
    assert [e.actor_type for e in audit("agency_token.revoked", ada)] == ["system"]


def test_grant_ended_drops_the_store_and_revokes_a_token_left_with_none(agency, store):
    second = grant_make(agency).merchant
    both = token_make(agency, [store, second]).token
    only = token_make(agency, [store]).token
    grant = agency.grants.get(merchant=store)
    grant.status = GrantStatus.ENDED
    grant.save()
    signals.grant_ended.send(sender=None, grant=grant)
    both.refresh_from_db()
    only.refresh_from_db()
    assert list(both.merchants.all()) == [second] and both.revoked_at is None
    assert list(only.merchants.all()) == [] and only.revoke_reason == REVOKED_NO_STORE_LEFT
    assert len(audit("agency_token.store_removed", both)) == 1
    assert len(audit("agency_token.revoked", only)) == 1


def test_agency_suspended_revokes_every_token_of_that_agency(agency, store):
    tokens = [token_make(agency, [store]).token for _ in range(2)]
    other = agency_make("Other", admin="user_oz")
    theirs = token_make(other, [grant_make(other).merchant], created_by="user_oz").token
    signals.agency_suspended.send(sender=None, agency=agency)
    assert {t.revoke_reason for t in AgencyToken.objects.filter(pk__in=[t.pk for t in tokens])} == {
        REVOKED_AGENCY_SUSPENDED
    }
    theirs.refresh_from_db()
    assert theirs.revoked_at is None


def test_the_written_out_grant_query_answers_as_the_orm_would(agency, store):
    from agencies.tokens import _active_grants, _effective_grant

    other = grant_make(agency, status=GrantStatus.ENDED).merchant
    inactive = grant_make(agency).merchant
    type(inactive).objects.filter(pk=inactive.pk).update(is_active=False)
    for merchant_id in [store.pk, other.pk, inactive.pk, MerchantFactory().pk]:
        orm = (
            _active_grants(agency.pk)
            .filter(merchant_id=merchant_id, merchant__is_active=True)
            .select_related("merchant", "agency")
            .first()
        )
        raw = _effective_grant(agency_id=agency.pk, merchant_id=merchant_id)
        if orm is None:
            assert raw is None
            continue
        for field in type(orm)._meta.concrete_fields:
            assert getattr(raw, field.attname) == getattr(orm, field.attname), field.name
        for related in ("merchant", "agency"):
            a, b = getattr(raw, related), getattr(orm, related)
            assert [getattr(a, f.attname) for f in type(a)._meta.concrete_fields] == [
                getattr(b, f.attname) for f in type(b)._meta.concrete_fields
            ]
