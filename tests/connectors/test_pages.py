"""The merchant's connections page, the API-key form and disconnect."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from django.db import connections
from django.utils.html import escape

from accounts.choices import Role
from connectors.choices import AuthKind, CredentialStatus, Provider
from connectors.models import ConnectorCredential
from connectors.selectors import (
    NEXT_CONNECT_API_KEY,
    NEXT_CONNECT_OAUTH,
    NEXT_ERROR,
    NEXT_NONE,
    NEXT_REAUTH,
    NEXT_WAIT_FOR_DATA,
    PROBLEM_ACCESS_LOST,
    PROBLEM_OTHER,
    PROBLEM_PERMISSION,
    PROBLEM_RATE_LIMITED,
    PROBLEM_UNREACHABLE,
    SYNC_FAILED_ALERTED,
    SYNC_FAILED_MANY,
    SYNC_FAILED_ONCE,
    SYNC_PAUSED,
    SYNC_SERVICE_MANY,
    SYNC_SERVICE_ONCE,
    SyncState,
    connection_sync,
    credential_problem,
)
from ingestion.choices import JobStatus, PipelineStatus
from ingestion.models import Pipeline, SyncJob
from tests.accounts.factories import MembershipFactory
from tests.connectors.factories import CredentialFactory, google_credential
from tests.ingestion import conftest as ingestion_conftest

airbyte = ingestion_conftest.airbyte  # the sandbox's Airbyte fixture, reused: ingestion's own services run a sync

pytestmark = pytest.mark.django_db(databases=["default", "warehouse"])


@pytest.fixture
def owner(clerk):
    return MembershipFactory(clerk_user_id=clerk.user("user_owner"), role=Role.OWNER)


def test_list_shows_status_and_masked_secret_only(client, clerk, owner, providers):
    CredentialFactory(
        merchant=owner.merchant, access_token="ya29.abcdefghijklmnopqrstuvwxyz", secret_last4="wxyz",
        status=CredentialStatus.NEEDS_REAUTH,
    )  # fmt: skip
    response = client.get(f"/m/{owner.merchant_id}/connectors/", **clerk.auth_header("user_owner"))
    html = response.content.decode()
    assert response.status_code == 200
    assert 'data-status="needs_reauth"' in html and "••••wxyz" in html and "Reconnect Google Ads" in html
    assert "ya29" not in html


@pytest.mark.parametrize(
    "path",
    [
        "/m/{m}/connectors/",
        "/m/{m}/connectors/api-key/",
        "/m/{m}/connectors/meta/connect/",
        "/m/{m}/connectors/{c}/disconnect/",
    ],
)
def test_another_merchants_pages_are_404(client, clerk, owner, providers, path):
    stranger = MembershipFactory(clerk_user_id=clerk.user("user_stranger"))
    credential = CredentialFactory(merchant=owner.merchant)
    method = client.get if path.endswith("connectors/") else client.post
    response = method(path.format(m=owner.merchant_id, c=credential.pk), **clerk.auth_header(stranger.clerk_user_id))
    assert response.status_code == 404
    assert ConnectorCredential.objects.get().status == CredentialStatus.ACTIVE


def test_disconnect_of_another_merchants_credential_is_404(client, clerk, owner, providers):
    foreign = CredentialFactory()
    response = client.post(
        f"/m/{owner.merchant_id}/connectors/{foreign.pk}/disconnect/", **clerk.auth_header("user_owner")
    )
    assert response.status_code == 404


def test_api_key_form_connects(client, clerk, owner, providers):
    key = providers.klaviyo_key()
    response = client.post(
        f"/m/{owner.merchant_id}/connectors/api-key/",
        {"provider": "klaviyo", "api_key": key},
        **clerk.auth_header("user_owner"),
    )
    assert response.status_code == 302
    assert ConnectorCredential.objects.get().provider == "klaviyo"


def test_api_key_form_shows_field_errors(client, clerk, owner, providers):
    response = client.post(
        f"/m/{owner.merchant_id}/connectors/api-key/",
        {"provider": "klaviyo", "api_key": "pk_nope"},
        **clerk.auth_header("user_owner"),
    )
    assert response.status_code == 400
    assert "34 letters and digits" in response.content.decode()
    response = client.post(
        f"/m/{owner.merchant_id}/connectors/api-key/",
        {"provider": "klaviyo", "api_key": "pk_" + "b" * 34},
        **clerk.auth_header("user_owner"),
    )
    assert response.status_code == 422 and "invalid key" in response.content.decode()
    assert not ConnectorCredential.objects.exists()


def test_disconnect_forgets_secrets_and_revokes_at_google_after_commit(
    client, clerk, owner, providers, django_capture_on_commit_callbacks, settings
):
    settings.CELERY_TASK_ALWAYS_EAGER = True
    from config.celery import app

    app.conf.task_always_eager = True
    try:
        credential = google_credential(providers, merchant=owner.merchant)
        with django_capture_on_commit_callbacks(execute=True) as callbacks:
            response = client.post(
                f"/m/{owner.merchant_id}/connectors/{credential.pk}/disconnect/", **clerk.auth_header("user_owner")
            )
    finally:
        app.conf.task_always_eager = False
    assert response.status_code == 302
    credential.refresh_from_db()
    assert credential.status == CredentialStatus.REVOKED
    assert (credential.access_token_enc, credential.refresh_token_enc) == ("", "")
    assert len(callbacks) == 2  # the revoke at Google, and ingestion following the credential (its pipeline)
    assert [c["status"] for c in providers.control.calls("google.oauth.revoke")] == [200]


def _form_action(response) -> str:
    directives = [d.strip() for d in response["Content-Security-Policy"].split(";")]
    return next(d for d in directives if d.startswith("form-action"))


def test_connect_page_lets_forms_reach_exactly_the_consent_origins(client, clerk, owner, settings):
    settings.META_DIALOG_URL = "https://www.facebook.com"
    settings.GOOGLE_OAUTH_AUTHORIZE_URL = "https://accounts.google.com/o/oauth2/v2/auth"
    response = client.get(f"/m/{owner.merchant_id}/connectors/", **clerk.auth_header("user_owner"))
    assert _form_action(response) == "form-action 'self' https://www.facebook.com https://accounts.google.com"
    # The rest of the policy is the production one, untouched.
    others = response["Content-Security-Policy"].replace(_form_action(response), "form-action 'self'")
    assert others == settings.CSP_POLICY


def test_consent_origins_follow_the_settings_and_are_listed_once(client, clerk, owner, providers):
    response = client.get(f"/m/{owner.merchant_id}/connectors/", **clerk.auth_header("user_owner"))
    assert _form_action(response) == f"form-action 'self' {providers.url}"


def test_a_failed_api_key_form_keeps_the_connect_buttons_working(client, clerk, owner, providers):
    response = client.post(
        f"/m/{owner.merchant_id}/connectors/api-key/",
        {"provider": "klaviyo", "api_key": "pk_nope"},
        **clerk.auth_header("user_owner"),
    )
    assert response.status_code == 400 and _form_action(response) == f"form-action 'self' {providers.url}"


def test_pages_without_connect_buttons_keep_form_action_self(client, clerk, owner, providers):
    viewer = MembershipFactory(clerk_user_id=clerk.user("user_viewer"), merchant=owner.merchant, role=Role.VIEWER)
    response = client.get(f"/m/{owner.merchant_id}/connectors/", **clerk.auth_header(viewer.clerk_user_id))
    assert response.status_code == 200 and "Connect Meta Ads" not in response.content.decode()
    assert _form_action(response) == "form-action 'self'"
    response = client.get(f"/m/{owner.merchant_id}/", **clerk.auth_header("user_owner"))
    assert _form_action(response) == "form-action 'self'"


def test_operator_policy_without_form_action_or_with_none_is_not_widened():
    from dashboards.middleware import with_form_action

    assert with_form_action("default-src 'self'", ["https://a.example"]) == "default-src 'self'"
    assert with_form_action("form-action 'none'", ["https://a.example"]) == "form-action 'none'"
    assert with_form_action("form-action 'self'; base-uri 'self'", []) == "form-action 'self'; base-uri 'self'"


# --- the checklist and the connections table -----------------------------------------------------------


def _page(client, clerk, membership) -> str:
    response = client.get(f"/m/{membership.merchant_id}/connectors/", **clerk.auth_header(membership.clerk_user_id))
    assert response.status_code == 200
    return response.content.decode()


def _checklist(html: str) -> list[tuple[str, str]]:
    return re.findall(r'<li class="source" data-source="([a-z_]+)" data-state="([a-z_]+)">', html)


def _create_raw_table(schema: str, table: str, extracted: list[dt.datetime]) -> None:
    """Just enough of a raw table for the freshness read (the DDL rolls back with the test's transaction)."""
    with connections["warehouse"].cursor() as cursor:
        cursor.execute(f'create schema if not exists "{schema}"')
        cursor.execute(f'create table "{schema}"."{table}" (id bigint, _airbyte_extracted_at timestamptz)')
        for i, at in enumerate(extracted):
            cursor.execute(f'insert into "{schema}"."{table}" values (%s, %s)', [i, at])


def test_a_new_store_lists_every_provider_in_order_not_connected_with_no_data(client, clerk, settings):
    membership = MembershipFactory(
        clerk_user_id=clerk.user("user_new"), merchant__key="pages_no_schema_yet", role=Role.OWNER
    )
    html = _page(client, clerk, membership)
    assert _checklist(html) == [(p.value, "not_connected") for p in Provider]
    assert html.count("No data yet") == len(Provider)
    assert "Nothing connected yet" in html
    assert "Connect Meta Ads</button>" in html and "Connect Google Ads</button>" in html
    assert "Add Klaviyo API key</a>" in html and "Add Attentive API key</a>" in html
    assert NEXT_CONNECT_OAUTH.format(provider="Meta Ads") in html
    assert NEXT_CONNECT_API_KEY.format(provider="Klaviyo") in html


def test_each_source_shows_its_state_and_problem_in_plain_words(client, clerk, owner):
    m = owner.merchant
    CredentialFactory(merchant=m, provider=Provider.META, status=CredentialStatus.ACTIVE, account_label="Alpine Ads")
    CredentialFactory(
        merchant=m, provider=Provider.GOOGLE_ADS, status=CredentialStatus.NEEDS_REAUTH,
        last_error_code="invalid_grant", last_error_message="Token has been expired or revoked. (req 1234)",
    )  # fmt: skip
    CredentialFactory(
        merchant=m, provider=Provider.KLAVIYO, auth_kind=AuthKind.API_KEY, access_token="", api_key="pk_" + "k" * 34,
        secret_last4="kkkk", expires_at=None, status=CredentialStatus.ERROR, last_error_code="timeout",
    )  # fmt: skip
    CredentialFactory(merchant=m, provider=Provider.ATTENTIVE, status=CredentialStatus.REVOKED, access_token="")
    html = _page(client, clerk, owner)

    assert _checklist(html) == [
        ("shopify", "not_connected"), ("meta", "connected"), ("google_ads", "needs_reauth"), ("klaviyo", "error"),
        ("attentive", "not_connected"),
    ]  # fmt: skip
    assert escape(PROBLEM_ACCESS_LOST.format(provider="Google Ads")) in html
    assert PROBLEM_UNREACHABLE.format(provider="Klaviyo") in html
    assert NEXT_REAUTH.format(provider="Google Ads") in html and NEXT_ERROR.format(provider="Klaviyo") in html
    assert NEXT_WAIT_FOR_DATA in html
    # The provider's own message and every secret stay off the page; the revoked Attentive row is not listed.
    assert "req 1234" not in html and "pk_kkk" not in html and "ya29" not in html
    assert "••••kkkk" in html and "Does not expire" in html
    assert re.findall(r'<tr data-credential="\d+" data-status="(\w+)" data-source="(\w+)"', html) == [
        ("active", "meta"), ("needs_reauth", "google_ads"), ("error", "klaviyo"),
    ]  # fmt: skip
    assert "Reconnect Google Ads</button>" in html and "Enter a new Klaviyo key</a>" in html
    assert "Reconnect Meta Ads" not in html  # healthy: nothing to reconnect


def test_last_data_comes_from_the_latest_extracted_at_of_the_providers_raw_tables(client, clerk):
    membership = MembershipFactory(
        clerk_user_id=clerk.user("user_fresh"), merchant__key="pages_fresh", merchant__timezone="UTC"
    )
    schema = "raw_pages_fresh"
    _create_raw_table(schema, "facebook_marketing_ads_insights", [dt.datetime(2026, 11, 30, 8, 15, tzinfo=dt.UTC)])
    _create_raw_table(schema, "facebook_marketing_campaigns", [dt.datetime(2026, 12, 1, 9, 30, tzinfo=dt.UTC)])
    _create_raw_table(schema, "klaviyo_events", [])  # the table exists, nothing landed yet
    CredentialFactory(merchant=membership.merchant, provider=Provider.META)

    html = _page(client, clerk, membership)

    assert re.search(r'data-testid="last-data-meta">Data last arrived Dec 1, 2026 09:30<', html)
    assert 'data-testid="last-data-klaviyo">No data yet<' in html
    assert 'data-testid="last-data-google_ads">No data yet<' in html
    assert NEXT_NONE in html  # Meta: connected and its data is arriving


def test_raw_freshness_of_a_schema_without_the_metadata_column_is_no_data(clerk):
    from analytics.selectors import raw_last_extracted_list

    merchant = MembershipFactory(merchant__key="pages_odd").merchant
    with connections["warehouse"].cursor() as cursor:
        cursor.execute('create schema "raw_pages_odd"')
        cursor.execute('create table "raw_pages_odd"."klaviyo_events" (id text)')
        cursor.execute('create table "raw_pages_odd"."not_a_raw_table" (_airbyte_extracted_at timestamptz)')
    assert raw_last_extracted_list(merchant=merchant) == {}


def test_viewers_see_states_but_no_connect_or_disconnect_buttons(client, clerk, owner):
    CredentialFactory(merchant=owner.merchant, status=CredentialStatus.NEEDS_REAUTH)
    viewer = MembershipFactory(clerk_user_id=clerk.user("user_viewer"), merchant=owner.merchant, role=Role.VIEWER)
    html = _page(client, clerk, viewer)
    assert ("google_ads", "needs_reauth") in _checklist(html)
    assert "<button" not in html.split("</header>")[1]  # only the top bar's sign-out
    assert "Only the store's owners and admins can connect" in html


def test_enter_a_new_key_preselects_the_source(client, clerk, owner):
    response = client.get(f"/m/{owner.merchant_id}/connectors/?provider=attentive", **clerk.auth_header("user_owner"))
    assert '<option value="attentive" selected>' in response.content.decode()
    response = client.get(f"/m/{owner.merchant_id}/connectors/?provider=meta\x00", **clerk.auth_header("user_owner"))
    assert response.status_code == 200 and " selected>" not in response.content.decode()


def test_a_member_of_store_a_gets_404_on_store_bs_connectors_page(client, clerk, owner):
    other = MembershipFactory(clerk_user_id=clerk.user("user_b"))
    CredentialFactory(merchant=other.merchant, account_label="B's secret ad account")
    response = client.get(f"/m/{other.merchant_id}/connectors/", **clerk.auth_header("user_owner"))
    assert response.status_code == 404
    assert "B&#x27;s secret ad account" not in response.content.decode()
    assert "B's secret ad account" not in _page(client, clerk, owner)


@pytest.mark.parametrize(
    ("code", "status", "expected"),
    [
        ("invalid_grant", CredentialStatus.NEEDS_REAUTH, PROBLEM_ACCESS_LOST),
        ("meta_190_463", CredentialStatus.NEEDS_REAUTH, PROBLEM_ACCESS_LOST),
        ("whatever", CredentialStatus.NEEDS_REAUTH, PROBLEM_ACCESS_LOST),
        ("permission_denied", CredentialStatus.NEEDS_REAUTH, PROBLEM_PERMISSION),
        ("meta_200", CredentialStatus.NEEDS_REAUTH, PROBLEM_PERMISSION),
        ("rate_limited", CredentialStatus.ERROR, PROBLEM_RATE_LIMITED),
        ("meta_17", CredentialStatus.ERROR, PROBLEM_RATE_LIMITED),
        ("http_503", CredentialStatus.ERROR, PROBLEM_UNREACHABLE),
        ("non_json_502", CredentialStatus.ERROR, PROBLEM_UNREACHABLE),
        ("unsupported_grant_type", CredentialStatus.ERROR, PROBLEM_OTHER),
        ("timeout", CredentialStatus.ACTIVE, PROBLEM_UNREACHABLE),  # a failed try the retries may still outrun
    ],
)
def test_error_codes_read_as_plain_words(code, status, expected):
    credential = ConnectorCredential(provider=Provider.GOOGLE_ADS, status=status, last_error_code=code)
    assert credential_problem(credential) == expected.format(provider="Google Ads")


def test_a_healthy_credential_has_no_problem():
    assert credential_problem(ConnectorCredential(provider=Provider.META, status=CredentialStatus.ACTIVE)) == ""


def test_last_data_is_read_from_the_raw_tables_once_per_cache_window(client, clerk):
    from django.test.utils import CaptureQueriesContext

    membership = MembershipFactory(clerk_user_id=clerk.user("user_cached"), merchant__key="pages_cached")
    _create_raw_table("raw_pages_cached", "klaviyo_events", [dt.datetime(2026, 12, 2, 10, 0, tzinfo=dt.UTC)])
    with CaptureQueriesContext(connections["warehouse"]) as first:
        assert "Data last arrived Dec 2, 2026" in _page(client, clerk, membership)
    with CaptureQueriesContext(connections["warehouse"]) as second:
        assert "Data last arrived Dec 2, 2026" in _page(client, clerk, membership)
    assert any("_airbyte_extracted_at" in q["sql"] for q in first.captured_queries)
    assert not any("_airbyte_extracted_at" in q["sql"] for q in second.captured_queries)
    # Only the tables of sources that are providers are scanned (not a year of web sessions or orders).
    assert all("web_sessions" not in str(q["sql"]) for q in first.captured_queries)


# --- each connection's last and next sync (ingestion's Pipeline and SyncJob rows) -------------------------


def _pipeline(credential, *, status=PipelineStatus.ACTIVE, job=None, **fields):
    """A pipeline as ingestion leaves it; `job`: the last SyncJob's fields (the state here is just data)."""
    pipeline = Pipeline.objects.create(
        credential=credential, merchant=credential.merchant, source_type="source-type", source_id="src-1",
        connection_id=f"conn-{credential.pk}", status=status, start_date=dt.date(2026, 1, 1), **fields,
    )  # fmt: skip
    if job is not None:
        pipeline.last_job = SyncJob.objects.create(
            pipeline=pipeline, connection_id=pipeline.connection_id, airbyte_job_id=credential.pk * 10, **job
        )
        pipeline.save(update_fields=["last_job"])
    return pipeline


def _sync_cell(html: str, credential) -> str:
    match = re.search(rf'data-testid="sync-{credential.pk}">(.*?)</td>\s*<td data-testid="next-sync-{credential.pk}">'
                      rf"(.*?)</td>", html, re.S)  # fmt: skip
    assert match, f"no sync cells for credential {credential.pk}"
    return " ".join(re.sub(r"<[^>]+>", " ", " ".join(match.groups())).split())  # the words, without markup


AT = dt.datetime(2026, 12, 2, 9, 30, tzinfo=dt.UTC)


def test_each_connection_shows_its_last_sync_next_sync_and_problem_in_plain_words(client, clerk):
    membership = MembershipFactory(clerk_user_id=clerk.user("user_sync"), merchant__timezone="UTC", role=Role.OWNER)
    m = membership.merchant
    synced = CredentialFactory(merchant=m, provider=Provider.META)
    _pipeline(
        synced, last_synced_at=AT, next_sync_at=AT + dt.timedelta(hours=1),
        job={"status": JobStatus.SUCCEEDED, "rows_synced": 1234, "started_at": AT - dt.timedelta(minutes=5),
             "finished_at": AT},
    )  # fmt: skip
    syncing = CredentialFactory(merchant=m, provider=Provider.GOOGLE_ADS)
    _pipeline(
        syncing, last_synced_at=AT - dt.timedelta(days=1), next_sync_at=AT + dt.timedelta(hours=2),
        job={"status": JobStatus.RUNNING, "started_at": AT + dt.timedelta(minutes=40)},
    )  # fmt: skip
    failing = CredentialFactory(merchant=m, provider=Provider.KLAVIYO)
    _pipeline(
        failing, last_synced_at=AT - dt.timedelta(days=2), next_sync_at=AT + dt.timedelta(minutes=10),
        consecutive_failures=3, last_error_code="sync_failed",
        last_error_message="Source klaviyo: HTTP 401 for api_key=pk_leaked_in_a_message",
        job={"status": JobStatus.FAILED, "started_at": AT, "finished_at": AT + dt.timedelta(minutes=1),
             "error_type": "sync_failed", "error_message": "Airbyte's raw words: stack trace at io.airbyte"},
    )  # fmt: skip
    paused = CredentialFactory(merchant=m, provider=Provider.META, status=CredentialStatus.NEEDS_REAUTH)
    _pipeline(paused, status=PipelineStatus.PAUSED, last_synced_at=AT, next_sync_at=AT + dt.timedelta(hours=1))
    fresh = CredentialFactory(merchant=m, provider=Provider.ATTENTIVE)
    _pipeline(fresh, status=PipelineStatus.PENDING, next_sync_at=AT + dt.timedelta(minutes=3))
    no_pipeline = CredentialFactory(merchant=m, provider=Provider.GOOGLE_ADS, account_label="Second account")

    html = _page(client, clerk, membership)

    states = dict(re.findall(r'<tr data-credential="(\d+)"[^>]* data-sync="(\w+)"', html))
    assert states == {
        str(synced.pk): "synced", str(syncing.pk): "syncing", str(failing.pk): "failed", str(paused.pk): "paused",
        str(fresh.pk): "not_synced", str(no_pipeline.pk): "none",
    }  # fmt: skip
    assert _sync_cell(html, synced) == "Synced Dec 2, 2026 09:30 · 1234 rows Dec 2, 2026 10:30"
    assert _sync_cell(html, syncing) == "Syncing started Dec 2, 2026 10:10 Dec 2, 2026 11:30"
    assert _sync_cell(html, failing) == (
        f"Failed Dec 2, 2026 09:31 {escape(SYNC_FAILED_MANY.format(n=3))} Dec 2, 2026 09:40"
    )
    assert _sync_cell(html, paused) == (
        f"Paused Dec 2, 2026 09:30 {SYNC_PAUSED.format(provider='Meta Ads')} After you reconnect"
    )
    assert _sync_cell(html, fresh) == "Not yet synced Dec 2, 2026 09:33"
    assert _sync_cell(html, no_pipeline) == "— —"  # no pipeline yet: nothing claimed
    # The checklist: each source's latest successful sync, and a failing sync as the connected source's next step.
    assert 'data-testid="last-sync-meta">Last synced Dec 2, 2026 09:30<' in html
    assert 'data-testid="last-sync-google_ads">Last synced Dec 1, 2026 09:30<' in html
    assert 'data-testid="last-sync-attentive"' not in html and 'data-testid="last-sync-shopify"' not in html
    assert ("klaviyo", "connected") in _checklist(html)
    assert re.search(rf'data-testid="next-klaviyo">{re.escape(escape(SYNC_FAILED_MANY.format(n=3)))}<', html)
    # Airbyte's and the provider's own words, and anything secret in them, stay off the page.
    assert "pk_leaked" not in html and "io.airbyte" not in html and "raw words" not in html
    assert "The sync failed in Airbyte" not in html


@pytest.mark.parametrize(
    ("failures", "code", "alerted", "expected"),
    [
        (1, "sync_failed", False, SYNC_FAILED_ONCE),
        (2, "sync_failed", False, SYNC_FAILED_MANY.format(n=2)),
        (4, "sync_failed", True, SYNC_FAILED_ALERTED.format(n=4)),
        (1, "http_503", False, SYNC_SERVICE_ONCE),
        (5, "AirbyteUnreachable", True, SYNC_SERVICE_MANY.format(n=5)),
    ],
)
def test_sync_failures_read_as_plain_words(failures, code, alerted, expected):
    credential = CredentialFactory(provider=Provider.META)
    _pipeline(
        credential, consecutive_failures=failures, last_error_code=code, last_error_message="raw: secret=abc",
        failure_alerted_at=AT if alerted else None,
    )  # fmt: skip
    credential = ConnectorCredential.objects.select_related("pipeline", "pipeline__last_job").get(pk=credential.pk)
    sync = connection_sync(credential)
    assert (sync.state, sync.problem) == (SyncState.FAILED, expected)
    assert "secret" not in sync.problem


def test_a_cancelled_last_job_reads_as_the_last_good_sync_and_a_deleted_pipeline_as_none():
    cancelled = CredentialFactory(provider=Provider.META)
    _pipeline(cancelled, last_synced_at=AT, job={"status": JobStatus.CANCELLED, "finished_at": AT, "rows_synced": 7})
    deleted = CredentialFactory(provider=Provider.KLAVIYO)
    _pipeline(deleted, status=PipelineStatus.DELETED, last_synced_at=AT)
    rows = ConnectorCredential.objects.select_related("pipeline", "pipeline__last_job").in_bulk()
    sync = connection_sync(rows[cancelled.pk])
    assert (sync.state, sync.rows) == (SyncState.SYNCED, None)
    assert connection_sync(rows[deleted.pk]) is None


def test_the_sync_columns_cost_no_query_per_connection(client, clerk, django_assert_num_queries):
    from django.test.utils import CaptureQueriesContext

    one = MembershipFactory(clerk_user_id=clerk.user("user_one"), merchant__key="pages_q1", role=Role.OWNER)
    credential = CredentialFactory(merchant=one.merchant, provider=Provider.META)
    _pipeline(credential, last_synced_at=AT, job={"status": JobStatus.SUCCEEDED, "finished_at": AT})
    _page(client, clerk, one)  # warms the raw-freshness cache: only the default database is counted below
    with CaptureQueriesContext(connections["default"]) as baseline:
        _page(client, clerk, one)
    expected = len(baseline.captured_queries)  # now: the next request resets the connection's query log

    many = MembershipFactory(clerk_user_id=clerk.user("user_many"), merchant__key="pages_q6", role=Role.OWNER)
    for i, provider in enumerate([Provider.META, Provider.GOOGLE_ADS, Provider.KLAVIYO] * 2):
        c = CredentialFactory(merchant=many.merchant, provider=provider, account_label=f"acct {i}")
        job = {"status": [JobStatus.SUCCEEDED, JobStatus.RUNNING, JobStatus.FAILED][i % 3], "finished_at": AT}
        _pipeline(c, last_synced_at=AT, consecutive_failures=i % 2, last_error_code="sync_failed", job=job)
    CredentialFactory(merchant=many.merchant, provider=Provider.ATTENTIVE)  # and one without a pipeline
    _page(client, clerk, many)
    with django_assert_num_queries(expected, connection=connections["default"]):
        html = _page(client, clerk, many)
    assert html.count('data-sync="') == 7


def test_store_bs_sync_details_never_appear_on_store_as_page(client, clerk, owner):
    mine = CredentialFactory(merchant=owner.merchant, provider=Provider.META)
    _pipeline(mine, last_synced_at=AT, job={"status": JobStatus.SUCCEEDED, "finished_at": AT, "rows_synced": 11})
    other = MembershipFactory(clerk_user_id=clerk.user("user_other_b"))
    theirs = CredentialFactory(merchant=other.merchant, provider=Provider.META, account_label="B ads")
    _pipeline(
        theirs, status=PipelineStatus.PAUSED, consecutive_failures=9, last_error_code="sync_failed",
        job={"status": JobStatus.SUCCEEDED, "finished_at": AT, "rows_synced": 987654},
    )  # fmt: skip
    html = _page(client, clerk, owner)
    assert re.findall(r'data-credential="(\d+)"', html) == [str(mine.pk)]
    assert "987654" not in html and "Paused" not in html and "9 syncs" not in html
    assert "· 11 rows" in html


def test_a_sync_run_by_ingestion_against_the_sandbox_reads_on_the_page(client, clerk, owner, airbyte, providers):
    """The page reads what ingestion's own services record: a job followed to success, then a failed one."""
    from ingestion.services import job_poll, pipeline_follow_credential, pipeline_sync
    from tests.ingestion.factories import credential_for

    credential = credential_for(Provider.KLAVIYO, providers, merchant=owner.merchant)
    pipeline = pipeline_follow_credential(credential_id=credential.pk)
    html = _page(client, clerk, owner)
    assert re.search(rf'data-credential="{credential.pk}"[^>]* data-sync="not_synced"', html)

    airbyte.script_job(rowsSynced=42)
    job = pipeline_sync(pipeline_id=pipeline.pk, force=True)
    airbyte.advance(job.airbyte_job_id)
    job_poll(job_id=job.pk)
    assert _sync_cell(_page(client, clerk, owner), credential).startswith("Syncing started ")
    airbyte.advance(job.airbyte_job_id, "succeeded")
    job_poll(job_id=job.pk)
    html = _page(client, clerk, owner)
    assert re.search(rf'data-credential="{credential.pk}"[^>]* data-sync="synced"', html)
    assert "· 42 rows" in _sync_cell(html, credential)

    airbyte.script_job(status="failed", errorType="system_error", errorMessage="Stack trace: io.airbyte.Worker")
    job = pipeline_sync(pipeline_id=pipeline.pk, force=True)
    airbyte.advance(job.airbyte_job_id, "failed")
    job_poll(job_id=job.pk)
    html = _page(client, clerk, owner)
    assert re.search(rf'data-credential="{credential.pk}"[^>]* data-sync="failed"', html)
    assert SYNC_FAILED_ONCE in _sync_cell(html, credential)
    assert "io.airbyte" not in html and "system_error" not in html and providers.klaviyo_key() not in html
