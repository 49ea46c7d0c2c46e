"""ingestion.client against the sandbox's Airbyte stand-in, over real HTTP (shared/INGESTION.md §1)."""

from __future__ import annotations

import logging
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from ingestion.client import (
    AirbyteClient,
    Conflict,
    NotFound,
    RateLimited,
    Transient,
    TryLater,
    Unauthorized,
    Unprocessable,
    secret_values,
)
from tests.airbyte_sandbox import WORKSPACE_ID
from tests.ingestion.conftest import CLIENT_SECRET

ACCESS_TOKEN = "shpat_0123456789abcdef0123456789abcdef"
SHOPIFY = {
    "shop": "acme",
    "start_date": "2024-01-01",
    "credentials": {"auth_method": "oauth2.0", "client_id": "shop-app", "client_secret": "shop-app-secret",
                    "access_token": ACCESS_TOKEN},
}  # fmt: skip
POSTGRES = {
    "host": "db.internal",
    "port": 5432,
    "database": "analytics",
    "schema": "public",
    "username": "airbyte",
    "password": "warehouse-password-1",
    "ssl_mode": {"mode": "require"},
}
STREAMS = [
    {
        "name": "orders",
        "syncMode": "incremental_deduped_history",
        "cursorField": ["updated_at"],
        "primaryKey": [["id"]],
    },
    {"name": "customers", "syncMode": "incremental_deduped_history"},
]


def _token_calls(airbyte) -> int:
    return len(airbyte.control.calls("airbyte.token.create"))


def _pipeline(client: AirbyteClient) -> tuple[dict, dict, dict]:
    source = client.create_source(
        name="m_42-shopify", workspace_id=WORKSPACE_ID, source_type="shopify", configuration=SHOPIFY
    )
    destination = client.create_destination(
        name="warehouse", workspace_id=WORKSPACE_ID, destination_type="postgres", configuration=POSTGRES
    )
    connection = client.create_connection(
        source_id=source["sourceId"],
        destination_id=destination["destinationId"],
        streams=STREAMS,
        namespace_format="raw_m_42",
        prefix="shopify_",
    )
    return source, destination, connection


def test_sources_destinations_connections_and_a_sync(airbyte):
    client = AirbyteClient()
    source, destination, connection = _pipeline(client)
    assert source["configuration"]["credentials"]["access_token"] == "**********"
    assert destination["configuration"]["password"] == "**********"
    assert connection["namespaceDefinition"] == "custom_format" and connection["namespaceFormat"] == "raw_m_42"
    assert connection["prefix"] == "shopify_" and connection["schedule"] == {"scheduleType": "manual"}
    assert [s["name"] for s in connection["configurations"]["streams"]] == ["orders", "customers"]

    assert client.get_source(source["sourceId"])["name"] == "m_42-shopify"
    assert [s["sourceId"] for s in client.list_sources(workspace_ids=[WORKSPACE_ID])] == [source["sourceId"]]
    assert client.get_destination(destination["destinationId"])["destinationType"] == "postgres"
    assert client.get_connection(connection["connectionId"]) == connection
    assert [c["connectionId"] for c in client.list_connections()] == [connection["connectionId"]]
    assert "orders" in {s["streamName"] for s in client.streams(source_id=source["sourceId"])}

    client.patch_source(source["sourceId"], configuration={"credentials": {"access_token": "shpat_rotated"}})
    assert airbyte.stored_source_configuration(source["sourceId"])["credentials"]["access_token"] == "shpat_rotated"
    paused = client.patch_connection(connection["connectionId"], status="inactive")
    assert paused["status"] == "inactive"
    client.patch_connection(connection["connectionId"], status="active")

    airbyte.script_job(rowsSynced=7, bytesSynced=700)
    job = client.start_job(connection["connectionId"])
    assert job["status"] == "pending" and job["jobType"] == "sync"
    airbyte.advance(job["jobId"], to="succeeded")
    done = client.get_job(job["jobId"])
    assert (done["status"], done["rowsSynced"], done["bytesSynced"]) == ("succeeded", 7, 700)
    assert [j["jobId"] for j in client.list_jobs(connection_id=connection["connectionId"])] == [job["jobId"]]

    client.delete_connection(connection["connectionId"])
    assert client.get_connection(connection["connectionId"])["status"] == "deprecated"
    client.delete_source(source["sourceId"])
    client.delete_destination(destination["destinationId"])
    with pytest.raises(NotFound) as missing:
        client.get_source(source["sourceId"])
    assert missing.value.detail == {"resourceType": "source", "resourceId": source["sourceId"]}


def test_self_hosted_root(airbyte, settings):
    client = AirbyteClient(base_url=f"{airbyte.url}/airbyte/api/public/v1")
    assert client.list_sources() == []
    assert airbyte.control.calls("airbyte.sources.list")[0]["path"] == "/airbyte/api/public/v1/sources"


def test_the_token_is_cached_across_calls_and_clients(airbyte):
    AirbyteClient().list_sources()
    AirbyteClient().list_connections()
    AirbyteClient().list_jobs()
    assert _token_calls(airbyte) == 1


def test_concurrent_callers_share_one_token_request(airbyte):
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda _: AirbyteClient().list_jobs(), range(16)))
    assert results == [[]] * 16
    assert _token_calls(airbyte) == 1


def test_the_token_is_renewed_once_on_401(airbyte):
    client = AirbyteClient()
    client.list_sources()
    airbyte.expire_tokens()
    assert client.list_sources() == []
    calls = airbyte.control.calls("airbyte.sources.list")
    assert [c["status"] for c in calls] == [200, 401, 200]
    assert _token_calls(airbyte) == 2


def test_a_401_after_renewal_is_unauthorized(airbyte):
    airbyte.control.fault("airbyte.sources.list", 401, times=2)
    with pytest.raises(Unauthorized):
        AirbyteClient().list_sources()
    assert _token_calls(airbyte) == 2


def test_the_token_is_renewed_when_it_expires(airbyte):
    airbyte.configure(token_ttl=1)
    client = AirbyteClient()
    client.list_sources()
    time.sleep(1.0)
    client.list_sources()
    assert [c["status"] for c in airbyte.control.calls("airbyte.sources.list")] == [200, 200]
    assert _token_calls(airbyte) == 2


def test_wrong_application_credentials_are_unauthorized(airbyte):
    with pytest.raises(Unauthorized) as refused:
        AirbyteClient(client_secret="not-the-secret").list_sources()
    assert refused.value.code == "invalid_client"
    with pytest.raises(Unauthorized):
        AirbyteClient(client_id="", client_secret="").list_sources()


def test_409_while_a_sync_runs_is_try_later_and_cancel_of_a_finished_job_a_conflict(airbyte):
    client = AirbyteClient()
    _, _, connection = _pipeline(client)
    job = client.start_job(connection["connectionId"])
    with pytest.raises(TryLater) as busy:
        client.start_job(connection["connectionId"])
    assert str(busy.value) == f"A sync is already running for: {connection['connectionId']}"
    assert busy.value.status == 409 and busy.value.code == "try-again-later"
    running = client.list_jobs(connection_id=connection["connectionId"], status="pending")
    assert [j["jobId"] for j in running] == [job["jobId"]]
    assert client.running_job(connection["connectionId"])["jobId"] == job["jobId"]
    assert client.cancel_job(job["jobId"])["status"] == "cancelled"
    with pytest.raises(Conflict) as conflict:
        client.cancel_job(job["jobId"])
    assert not isinstance(conflict.value, TryLater) and conflict.value.code == "state-conflict"


def test_422_carries_airbytes_message(airbyte):
    client = AirbyteClient()
    with pytest.raises(Unprocessable) as invalid:
        client.create_source(
            name="x", workspace_id=WORKSPACE_ID, source_type="shopify", configuration={"start_date": "2024-01-01"}
        )
    assert "$.shop: is missing but it is required" in str(invalid.value)
    source, destination, _ = _pipeline(client)
    with pytest.raises(Unprocessable) as stream:
        client.create_connection(
            source_id=source["sourceId"],
            destination_id=destination["destinationId"],
            streams=[{"name": "invoices"}],
            namespace_format="raw_m_42",
            prefix="shopify_",
        )
    assert "invoices" in str(stream.value)


@pytest.mark.parametrize(
    ("fault", "error", "code"),
    [
        ({"status": 503}, Transient, "http_503"),
        ({"status": 500}, Transient, "http_500"),
        ({"status": 502, "body": "<html>Bad gateway</html>"}, Transient, "http_502"),
        ({"status": 200, "body": "<html>maintenance</html>"}, Transient, "non_json_200"),
        ({"status": 404, "body": "<html>Not Found</html>"}, Transient, "non_json_404"),
        ({"status": 429}, RateLimited, "rate_limited"),
        ({"delay": 1.5}, Transient, "timeout"),
    ],
    ids=["503", "500", "html-502", "html-200", "html-404", "429", "timeout"],
)
def test_transient_answers(airbyte, fault, error, code):
    airbyte.control.fault("airbyte.jobs.get", **fault)
    with pytest.raises(error) as raised:
        AirbyteClient().get_job(1)
    assert raised.value.code == code


def test_429_honours_retry_after_and_the_token_endpoint_fails_transiently(airbyte):
    airbyte.control.fault("airbyte.jobs.list", 429, headers={"Retry-After": 12})
    with pytest.raises(RateLimited) as limited:
        AirbyteClient().list_jobs()
    assert limited.value.retry_after == 12
    from ingestion.client import TOKENS

    TOKENS.clear()
    airbyte.control.fault("airbyte.token.create", 503)
    with pytest.raises(Transient):
        AirbyteClient().list_jobs()
    assert AirbyteClient().list_jobs() == []


def test_lists_follow_next_pages(airbyte):
    client = AirbyteClient()
    for number in range(101):
        client.create_source(
            name=f"s{number}", workspace_id=WORKSPACE_ID, source_type="klaviyo", configuration={"api_key": "pk_x"}
        )
    names = [s["name"] for s in client.list_sources()]
    assert names == [f"s{number}" for number in range(101)]
    assert len(airbyte.control.calls("airbyte.sources.list")) == 2


def test_secrets_never_in_logs_or_exceptions(airbyte, caplog):
    caplog.set_level(logging.DEBUG)
    client = AirbyteClient()
    source, _, connection = _pipeline(client)
    airbyte.expire_tokens()
    client.patch_source(source["sourceId"], configuration={"credentials": {"access_token": "shpat_rotated_secret"}})
    errors = []
    # Airbyte echoing a value back in a message must not put it in our exception.
    airbyte.control.fault(
        "airbyte.sources.patch",
        422,
        body={"status": 422, "title": "unprocessable-entity", "detail": "bad",
              "data": {"message": f"token {ACCESS_TOKEN} is not valid"}},
    )  # fmt: skip
    with pytest.raises(Unprocessable) as echoed:
        client.patch_source(source["sourceId"], configuration={"credentials": {"access_token": ACCESS_TOKEN}})
    errors.append(echoed.value)
    airbyte.control.fault("airbyte.token.create", 401)
    from ingestion.client import TOKENS

    TOKENS.clear()
    with pytest.raises(Unauthorized) as refused:
        client.start_job(connection["connectionId"])
    errors.append(refused.value)
    airbyte.control.fault("airbyte.jobs.get", delay=1.5)
    with pytest.raises(Transient) as timeout:
        client.get_job(1)
    errors.append(timeout.value)

    tokens = airbyte.issued_tokens()
    assert len(tokens) >= 2
    secrets = [CLIENT_SECRET, ACCESS_TOKEN, "shpat_rotated_secret", "shop-app-secret", "warehouse-password-1", *tokens]
    texts = [caplog.text, repr(client), *(f"{e!s} {e!r} {e.detail!r} {e.__cause__!r}" for e in errors)]
    for secret in secrets:
        for text in texts:
            assert secret not in text
    assert "[REDACTED] is not valid" in str(echoed.value)
    assert "/airbyte/v1/applications/token -> 200" in caplog.text


def test_running_job_attaches_across_incomplete_and_is_none_once_terminal(airbyte):
    client = AirbyteClient()
    _, _, connection = _pipeline(client)
    assert client.running_job(connection["connectionId"]) is None
    first = client.start_job(connection["connectionId"])
    airbyte.advance(first["jobId"], to="succeeded")
    airbyte.script_job(status="succeeded", incomplete=True)
    second = client.start_job(connection["connectionId"])
    airbyte.advance(second["jobId"])
    airbyte.advance(second["jobId"], to="incomplete")
    attached = client.running_job(connection["connectionId"])
    assert (attached["jobId"], attached["status"]) == (second["jobId"], "incomplete")
    airbyte.advance(second["jobId"], to="failed")
    assert client.running_job(connection["connectionId"]) is None


@pytest.mark.parametrize("cached_token", [False, True], ids=["token-request", "api-call"])
def test_an_error_report_from_inside_a_call_carries_no_secret(airbyte, settings, cached_token):
    """Raised inside the HTTP layer (requests refuses the configured timeout) while the client secret, the
    bearer token and the source's credentials are all in the frames."""
    from django.views.debug import ExceptionReporter

    settings.DEBUG = False  # the filter hides nothing in debug mode, by design
    client = AirbyteClient()
    if cached_token:
        client.list_sources()
    settings.CONNECTORS_HTTP_TIMEOUT = ("not-a-number", 1.0)
    with pytest.raises(ValueError) as caught:
        client.create_source(name="s", workspace_id=WORKSPACE_ID, source_type="shopify", configuration=SHOPIFY)
    reporter = ExceptionReporter(None, caught.type, caught.value, caught.tb.tb_next)  # from the client down
    text, html = reporter.get_traceback_text(), reporter.get_traceback_html()
    assert "create_source" in text and "_request" in text
    # (Not spelled out here: the report quotes this test's source around the call.)
    secrets = [CLIENT_SECRET, *secret_values(SHOPIFY), *airbyte.issued_tokens()]
    assert len(secrets) == 3 + cached_token  # no token is issued when the token request itself fails
    for secret in secrets:
        assert secret not in text and secret not in html
