"""Agency tokens over HTTP: the same metrics as a store's own member sees, 401/403/404/429 where they belong,
Clerk never asked about a token of ours, and the token in no log line or error report."""

from __future__ import annotations

import datetime as dt
import logging
import sys

import pytest
from django.core.cache import cache
from django.test import RequestFactory
from django.utils import timezone
from django.views.debug import get_exception_reporter_class

import accounts.clerk
from accounts.api.permissions import IsClerkUser
from agencies import token_format
from agencies.authentication import NOT_FOR_TOKENS, SCOPE_MISSING
from agencies.choices import GrantStatus, TokenScope
from agencies.models import AgencyToken
from agencies.tokens import STORE_NOT_FOUND, TOKEN_MALFORMED, TOKEN_REFUSED
from tests.accounts.factories import MerchantFactory
from tests.accounts.test_clerk_auth import clerk_api_via_sandbox  # noqa: F401 (a fixture)
from tests.agencies.tokens_support import agency_make, bearer, grant_make, member_make, token_make
from tests.dashboards.conftest import alpine, beach, marts, owner  # noqa: F401 (fixtures)

pytestmark = pytest.mark.django_db(databases=["default", "warehouse"])


@pytest.fixture(autouse=True)
def _fresh_throttles():
    # DRF's throttles count in the default cache, which outlives a test's transaction.
    cache.clear()


@pytest.fixture
def agency():
    return agency_make()


@pytest.fixture
def store(agency):
    return grant_make(agency).merchant


@pytest.fixture
def issued(agency, store):
    return token_make(agency, [store])


def starters(client, merchant_id: int, plaintext: str):
    return client.get(f"/api/merchants/{merchant_id}/dashboard-templates/starters/", **bearer(plaintext))


# --- the metrics, as the store's owner sees them -----------------------------------------------------------


def test_a_token_reads_the_metrics_its_store_owner_reads(client, clerk, owner, beach):  # noqa: F811 (fixtures)
    agency = agency_make()
    grant_make(agency, owner.merchant, can_see_costs=True)  # nothing masked: exactly the owner's numbers
    grant_make(agency, beach)
    issued = token_make(agency, [owner.merchant])
    for endpoint in ["overview", "ltv", "attribution", "attribution/compare", "engagement"]:
        url = f"/api/merchants/{owner.merchant.pk}/metrics/{endpoint}/?preset=last_7_days"
        as_owner = client.get(url, **clerk.auth_header(owner.clerk_user_id))
        as_token = client.get(url, **bearer(issued.plaintext))
        assert as_token.status_code == 200, (endpoint, as_token.content[:300])
        assert as_token.json() == as_owner.json()
    # Granted to the agency, but not listed in this token.
    unlisted = client.get(f"/api/merchants/{beach.pk}/metrics/overview/", **bearer(issued.plaintext))
    assert (unlisted.status_code, unlisted.json()) == (404, {"detail": STORE_NOT_FOUND})


def test_a_token_on_a_grant_without_costs_reads_them_masked(client, clerk, owner):  # noqa: F811 (fixtures)
    agency = agency_make()
    grant_make(agency, owner.merchant, can_see_costs=False)
    issued = token_make(agency, [owner.merchant])
    url = f"/api/merchants/{owner.merchant.pk}/metrics/overview/?preset=last_7_days"
    as_owner = client.get(url, **clerk.auth_header(owner.clerk_user_id)).json()["kpis"]["current"]
    as_token = client.get(url, **bearer(issued.plaintext)).json()["kpis"]["current"]
    assert as_owner["ad_spend"] is not None and as_token["ad_spend"] is None
    assert as_token["net_revenue"] == as_owner["net_revenue"]


def test_a_token_without_the_scope_gets_403(client, agency, store):
    reports_only = token_make(agency, [store], scopes=(TokenScope.REPORTS_READ,))
    response = client.get(f"/api/merchants/{store.pk}/metrics/overview/", **bearer(reports_only.plaintext))
    assert (response.status_code, response.json()) == (403, {"detail": SCOPE_MISSING.format(scope="metrics:read")})
    metrics_only = token_make(agency, [store], scopes=(TokenScope.METRICS_READ,))
    response = starters(client, store.pk, metrics_only.plaintext)
    assert (response.status_code, response.json()) == (403, {"detail": SCOPE_MISSING.format(scope="reports:read")})
    assert starters(client, store.pk, reports_only.plaintext).status_code == 200


def test_a_token_cannot_write_templates_whatever_its_scopes(client, agency, store):
    everything = token_make(agency, [store], scopes=tuple(TokenScope.values))
    response = client.post(
        f"/api/merchants/{store.pk}/dashboard-templates/",
        {"name": "x", "layout": []},
        content_type="application/json",
        **bearer(everything.plaintext),
    )
    assert (response.status_code, response.json()) == (403, {"detail": NOT_FOR_TOKENS})


# --- 401 and 404 ----------------------------------------------------------------------------------------


def test_dead_tokens_answer_401_with_one_message(client, agency, store):
    expired, revoked, orphan = (token_make(agency, [store]) for _ in range(3))
    AgencyToken.objects.filter(pk=expired.token.pk).update(expires_at=timezone.now() - dt.timedelta(seconds=1))
    AgencyToken.objects.filter(pk=revoked.token.pk).update(revoked_at=timezone.now())
    member_make(agency, "user_gone", role="admin")
    AgencyToken.objects.filter(pk=orphan.token.pk).update(created_by="user_gone")
    agency.members.filter(clerk_user_id="user_gone").update(removed_at=timezone.now())
    for plaintext in [expired.plaintext, revoked.plaintext, orphan.plaintext, token_format.token_generate()]:
        response = starters(client, store.pk, plaintext)
        assert (response.status_code, response.json()) == (401, {"detail": TOKEN_REFUSED})
        assert response["WWW-Authenticate"] == 'Bearer realm="api"'


def test_a_mangled_token_answers_401_saying_so(client, store, issued, django_assert_num_queries):
    mangled = issued.plaintext[:-1] + ("0" if issued.plaintext[-1] != "0" else "1")
    with django_assert_num_queries(0):
        response = starters(client, store.pk, mangled)
    assert (response.status_code, response.json()) == (401, {"detail": TOKEN_MALFORMED})


def test_a_token_request_costs_one_statement_like_a_members(client, store, issued):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    assert starters(client, store.pk, issued.plaintext).status_code == 200  # records the first use
    with CaptureQueriesContext(connection) as queries:
        assert starters(client, store.pk, issued.plaintext).status_code == 200
    # Without Redis (tests) the throttle counts in the database cache: those statements are not the token's.
    ours = [
        q["sql"] for q in queries.captured_queries if "django_cache" not in q["sql"] and "SAVEPOINT" not in q["sql"]
    ]
    assert len(ours) == 1  # the token, its creator, its stores and the grant on this store
    assert "agencies_agencytoken" in ours[0] and "LATERAL" in ours[0]


def test_a_store_not_listed_or_whose_grant_ended_answers_404_like_any_other(client, agency, store, issued):
    assert starters(client, store.pk, issued.plaintext).status_code == 200
    stranger = MerchantFactory()
    assert starters(client, stranger.pk, issued.plaintext).json() == {"detail": STORE_NOT_FOUND}
    agency.grants.filter(merchant=store).update(status=GrantStatus.ENDED)
    response = starters(client, store.pk, issued.plaintext)
    assert (response.status_code, response.json()) == (404, {"detail": STORE_NOT_FOUND})
    assert starters(client, 999_999_999, issued.plaintext).status_code == 404


def test_clerk_never_sees_our_tokens(client, clerk, store, issued, clerk_api_via_sandbox, monkeypatch):  # noqa: F811
    judged = []
    real = accounts.clerk.authenticate_request
    monkeypatch.setattr(
        accounts.clerk, "authenticate_request", lambda request, options: judged.append(1) or real(request, options)
    )
    merchants = client.get("/api/merchants/", **bearer(issued.plaintext))
    assert (merchants.status_code, merchants.json()) == (403, {"detail": IsClerkUser.message})
    assert starters(client, store.pk, issued.plaintext).status_code == 200
    assert starters(client, store.pk, token_format.token_generate()).status_code == 401
    # Tokens are API-only: a page sees nobody signed in.
    page = client.get(f"/m/{store.pk}/", **bearer(issued.plaintext))
    assert page.status_code == 302
    assert judged == []  # Clerk's SDK never saw one of our tokens...
    assert clerk_api_via_sandbox() == []  # ...and nothing was sent to Clerk


# --- throttles ------------------------------------------------------------------------------------------


def test_the_per_token_throttle_answers_429_with_retry_after(client, settings, agency, store, issued):
    settings.AGENCY_TOKEN_RATE = "2/minute"
    assert [starters(client, store.pk, issued.plaintext).status_code for _ in range(2)] == [200, 200]
    refused = starters(client, store.pk, issued.plaintext)
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 60
    assert "throttled" in refused.json()["detail"].lower()
    # Another token of the same agency has a window of its own.
    assert starters(client, store.pk, token_make(agency, [store]).plaintext).status_code == 200


def test_the_per_agency_throttle_counts_all_its_tokens(client, settings, agency, store):
    settings.AGENCY_TOKEN_AGENCY_RATE = "3/hour"
    tokens = [token_make(agency, [store]).plaintext for _ in range(4)]
    assert [starters(client, store.pk, t).status_code for t in tokens] == [200, 200, 200, 429]
    refused = starters(client, store.pk, tokens[0])
    assert refused.status_code == 429
    assert 1 <= int(refused["Retry-After"]) <= 3600  # to the end of the hour's window
    # Other agencies are not held back by this one.
    other = agency_make("Other", admin="user_oz")
    theirs = token_make(other, [grant_make(other).merchant], created_by="user_oz")
    assert starters(client, theirs.token.merchants.get().pk, theirs.plaintext).status_code == 200


def _redis_reachable() -> bool:
    import redis

    try:
        return bool(redis.Redis.from_url(REDIS_TEST_URL, socket_timeout=0.2).ping())
    except redis.RedisError:
        return False


REDIS_TEST_URL = "redis://127.0.0.1:6379/15"


@pytest.mark.skipif(not _redis_reachable(), reason="no Redis on 127.0.0.1:6379")
def test_the_throttle_counts_in_redis_across_processes(client, settings, agency, store, issued):
    import secrets

    import redis

    settings.REDIS_URL = REDIS_TEST_URL
    settings.AGENCY_TOKEN_THROTTLE_PREFIX = prefix = f"test-agency-token:{secrets.token_hex(6)}:"
    settings.AGENCY_TOKEN_RATE = "2/minute"
    try:
        assert [starters(client, store.pk, issued.plaintext).status_code for _ in range(3)] == [200, 200, 429]
        keys = redis.Redis.from_url(REDIS_TEST_URL).keys(prefix + "*")
        # One counter per window: the token's (3 requests) and the agency's; both expire with their window.
        assert sorted(k.decode().split(":")[2] for k in keys) == ["agency", "token"]
        assert all(0 < redis.Redis.from_url(REDIS_TEST_URL).ttl(k) <= 61 for k in keys)
    finally:
        for key in redis.Redis.from_url(REDIS_TEST_URL).keys(prefix + "*"):
            redis.Redis.from_url(REDIS_TEST_URL).delete(key)


def test_an_unreachable_redis_lets_requests_through(client, settings, caplog, store, issued):
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nothing listens there
    settings.AGENCY_TOKEN_RATE = "1/minute"
    with caplog.at_level(logging.WARNING, logger="agencies.throttles"):
        assert [starters(client, store.pk, issued.plaintext).status_code for _ in range(2)] == [200, 200]
    assert "agency token throttle not checked: ConnectionError" in caplog.text


def test_clerk_sessions_are_not_counted_by_the_token_throttles(client, clerk, settings):
    from tests.accounts.factories import MembershipFactory

    settings.AGENCY_TOKEN_RATE = settings.AGENCY_TOKEN_AGENCY_RATE = "1/hour"
    member = MembershipFactory(clerk_user_id=clerk.user("user_carl"))
    url = f"/api/merchants/{member.merchant.pk}/dashboard-templates/starters/"
    assert [client.get(url, **clerk.auth_header("user_carl")).status_code for _ in range(3)] == [200] * 3


# --- secrets --------------------------------------------------------------------------------------------


def test_the_token_is_in_no_log_record(client, caplog, agency, store, issued):
    revoked = token_make(agency, [store])
    AgencyToken.objects.filter(pk=revoked.token.pk).update(revoked_at=timezone.now())
    with caplog.at_level(logging.DEBUG):
        starters(client, store.pk, issued.plaintext)
        starters(client, store.pk, revoked.plaintext)
        starters(client, MerchantFactory().pk, issued.plaintext)
        client.get("/api/merchants/", **bearer(issued.plaintext))
    assert caplog.records
    assert any(r.getMessage() == "agency token refused" for r in caplog.records)
    for record in caplog.records:
        text = repr(record.__dict__) + record.getMessage()
        for secret in (issued.plaintext, revoked.plaintext):
            assert secret not in text and secret[7:-6] not in text, record.name


def test_the_token_is_in_no_error_report(settings, issued):
    settings.DEBUG = False
    request = RequestFactory().get("/api/merchants/1/metrics/overview/", **bearer(issued.plaintext))
    try:
        raise RuntimeError("the view failed")
    except RuntimeError:
        reporter = get_exception_reporter_class(request)(request, *sys.exc_info())
        bodies = [reporter.get_traceback_text(), reporter.get_traceback_html()]
    for body in bodies:
        assert issued.plaintext not in body
    assert "HTTP_AUTHORIZATION" in bodies[0]


def test_the_log_redaction_hides_a_token_anywhere_in_a_line(issued):
    from config.logging import REDACTED, redact

    assert redact(f"pasted {issued.plaintext} by mistake") == f"pasted {REDACTED} by mistake"
