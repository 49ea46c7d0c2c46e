"""The sandbox's Airbyte public API stand-in, driven over HTTP without Django (shared/INGESTION.md §1)."""

from __future__ import annotations

import json
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.airbyte_sandbox import WORKSPACE_ID, AirbyteSandbox

SHOPIFY = {
    "sourceType": "shopify",
    "shop": "acme",
    "start_date": "2024-01-01",
    "credentials": {
        "auth_method": "oauth2.0",
        "client_id": "shopify-client",
        "client_secret": "shopify-client-secret",
        "access_token": "shpat_first",
    },
}
POSTGRES = {
    "destinationType": "postgres",
    "host": "db.internal",
    "port": 5432,
    "database": "analytics",
    "schema": "public",
    "username": "airbyte",
    "password": "warehouse-password",
    "ssl_mode": {"mode": "require"},
    "tunnel_method": {"tunnel_method": "NO_TUNNEL"},
}
ORDERS = {"name": "orders", "syncMode": "incremental_deduped_history"}


class Api:
    """A bare HTTP client with a bearer token from the token endpoint."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session = requests.Session()
        body = requests.post(f"{base}/applications/token", json={"client_id": "c", "client_secret": "s"}, timeout=5)
        self.session.headers["Authorization"] = f"Bearer {body.json()['access_token']}"

    def __call__(self, method: str, path: str, **kwargs) -> requests.Response:
        return self.session.request(method, f"{self.base}{path}", timeout=5, **kwargs)


@pytest.fixture
def airbyte(control) -> AirbyteSandbox:
    sandbox = AirbyteSandbox(control)
    sandbox.manual_jobs()
    return sandbox


@pytest.fixture
def api(server, airbyte) -> Api:
    return Api(f"{server.url}/airbyte/v1")


def _source(api: Api, configuration=None, name="m_42-shopify") -> dict:
    answer = api(
        "POST", "/sources", json={"name": name, "workspaceId": WORKSPACE_ID, "configuration": configuration or SHOPIFY}
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def _destination(api: Api) -> dict:
    answer = api(
        "POST", "/destinations", json={"name": "warehouse", "workspaceId": WORKSPACE_ID, "configuration": POSTGRES}
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def _connection(api: Api, **fields) -> dict:
    source, destination = _source(api), _destination(api)
    payload = {
        "sourceId": source["sourceId"],
        "destinationId": destination["destinationId"],
        "namespaceDefinition": "custom_format",
        "namespaceFormat": "raw_m_42",
        "prefix": "shopify_",
        "configurations": {"streams": [ORDERS, {"name": "customers", "syncMode": "incremental_append"}]},
        **fields,
    }
    answer = api("POST", "/connections", json=payload)
    assert answer.status_code == 200, answer.text
    return answer.json()


def _problem(answer: requests.Response, status: int, title: str) -> dict:
    assert answer.status_code == status, answer.text
    assert answer.headers["Content-Type"].startswith("application/json")
    body = answer.json()
    assert body["status"] == status and body["title"] == title
    assert body["type"].startswith("https://reference.airbyte.com/reference/errors#")
    return body


# --- token -------------------------------------------------------------------------------------------


def test_token_from_json_or_form_and_bearer_required(server, airbyte):
    base = f"{server.url}/airbyte/v1"
    answer = requests.post(f"{base}/applications/token", json={"client_id": "id", "client_secret": "secret"}, timeout=5)
    assert answer.status_code == 200
    body = answer.json()
    assert body["token_type"] == "Bearer" and body["expires_in"] == 900 and body["access_token"]
    form = requests.post(
        f"{base}/applications/token",
        data={"client_id": "id", "client_secret": "secret", "grant-type": "client_credentials"},
        timeout=5,
    )
    assert form.status_code == 200 and form.json()["access_token"] != body["access_token"]

    _problem(requests.get(f"{base}/sources", timeout=5), 401, "invalid-api-key")
    _problem(
        requests.get(f"{base}/sources", headers={"Authorization": "Bearer nope"}, timeout=5), 401, "invalid-api-key"
    )
    ok = requests.get(f"{base}/sources", headers={"Authorization": f"Bearer {body['access_token']}"}, timeout=5)
    assert ok.status_code == 200 and ok.json()["data"] == []


def test_token_refused_for_other_credentials_and_expired_after_its_ttl(server, airbyte):
    base = f"{server.url}/airbyte/v1"
    airbyte.configure(client_id="app-id", client_secret="app-secret", token_ttl=60)
    wrong = requests.post(f"{base}/applications/token", json={"client_id": "app-id", "client_secret": "x"}, timeout=5)
    _problem(wrong, 401, "invalid-api-key")
    _problem(requests.post(f"{base}/applications/token", json={"client_id": "app-id"}, timeout=5), 400, "bad-request")
    right = requests.post(
        f"{base}/applications/token", json={"client_id": "app-id", "client_secret": "app-secret"}, timeout=5
    )
    token = right.json()
    assert token["expires_in"] == 60
    headers = {"Authorization": f"Bearer {token['access_token']}"}
    assert requests.get(f"{base}/jobs", headers=headers, timeout=5).status_code == 200
    assert airbyte.expire_tokens() == 1
    _problem(requests.get(f"{base}/jobs", headers=headers, timeout=5), 401, "invalid-api-key")


def test_self_hosted_root_serves_the_same_api(server, airbyte):
    base = f"{server.url}/airbyte/api/public/v1"
    api = Api(base)
    source = _source(api)
    assert api("GET", f"/sources/{source['sourceId']}").json()["sourceId"] == source["sourceId"]
    other = requests.get(f"{server.url}/airbyte/elsewhere/v1/sources", timeout=5)
    assert other.status_code == 404


# --- sources -----------------------------------------------------------------------------------------


def test_source_create_get_list_and_secrets_masked(api):
    source = _source(api)
    assert source["sourceType"] == "shopify"
    assert source["definitionId"] == "9da77001-af33-4bcd-be46-6252bf9342b9"
    assert source["workspaceId"] == WORKSPACE_ID and isinstance(source["createdAt"], int)
    assert source["configuration"] == {
        "shop": "acme",
        "start_date": "2024-01-01",
        "credentials": {
            "auth_method": "oauth2.0",
            "client_id": "**********",
            "client_secret": "**********",
            "access_token": "**********",
        },
    }
    got = api("GET", f"/sources/{source['sourceId']}")
    assert got.json() == source
    listed = api("GET", "/sources", params={"workspaceIds": WORKSPACE_ID})
    assert listed.json() == {"data": [source]}
    everything = json.dumps([got.json(), listed.json()])
    assert "shpat_first" not in everything and "shopify-client-secret" not in everything


def test_source_by_definition_id_and_every_connector_spec(api):
    configs = {
        "facebook-marketing": {
            "account_ids": ["111111111111111"],
            "credentials": {"auth_type": "Service", "access_token": "EAAB-meta-token"},
            "start_date": "2024-01-01T00:00:00Z",
        },
        "google-ads": {
            "credentials": {
                "developer_token": "dev-token",
                "client_id": "cid",
                "client_secret": "google-secret",
                "refresh_token": "1//refresh",
            },
            "customer_id": "1234567890",
        },
        "klaviyo": {"api_key": "pk_klaviyo_key", "start_date": "2024-01-01T00:00:00Z"},
    }
    definitions = {
        "facebook-marketing": "e7778cfc-e97c-4458-9ecb-b4f2bba8946c",
        "google-ads": "253487c0-2246-43ba-a21f-5116b20a2c50",
        "klaviyo": "95e8cffd-b8c4-4039-968e-d32fb4a69bde",
    }
    for source_type, configuration in configs.items():
        answer = api(
            "POST",
            "/sources",
            json={"name": source_type, "workspaceId": WORKSPACE_ID, "definitionId": definitions[source_type],
                  "configuration": configuration},
        )  # fmt: skip
        assert answer.status_code == 200, answer.text
        body = answer.json()
        assert body["sourceType"] == source_type
        for secret in ("EAAB-meta-token", "google-secret", "1//refresh", "dev-token", "pk_klaviyo_key"):
            assert secret not in answer.text
    klaviyo = api("GET", "/sources", params={"limit": 1, "offset": 2}).json()
    assert klaviyo["data"][0]["configuration"] == {"api_key": "**********", "start_date": "2024-01-01T00:00:00Z"}
    assert "offset=1" in klaviyo["previous"] and "next" not in klaviyo


def test_source_create_errors(api):
    missing = api(
        "POST", "/sources", json={"name": "x", "workspaceId": WORKSPACE_ID, "configuration": {"sourceType": "shopify"}}
    )
    body = _problem(missing, 422, "unprocessable-entity")
    assert "$.shop: is missing but it is required" in body["data"]["message"]

    no_type = api("POST", "/sources", json={"name": "x", "workspaceId": WORKSPACE_ID, "configuration": {"shop": "a"}})
    _problem(no_type, 422, "unprocessable-entity")
    unknown = api(
        "POST",
        "/sources",
        json={"name": "x", "workspaceId": WORKSPACE_ID, "configuration": {"sourceType": "mailchimp"}},
    )
    assert _problem(unknown, 400, "bad-request")["data"]["value"] == "mailchimp"
    bad_branch = api(
        "POST",
        "/sources",
        json={"name": "x", "workspaceId": WORKSPACE_ID,
              "configuration": {"sourceType": "google-ads", "credentials": {"developer_token": "d"}}},
    )  # fmt: skip
    message = _problem(bad_branch, 422, "unprocessable-entity")["data"]["message"]
    assert "$.credentials.refresh_token: is missing but it is required" in message
    wrong_type = api(
        "POST",
        "/sources",
        json={"name": "x", "workspaceId": WORKSPACE_ID, "configuration": {**SHOPIFY, "shop": 42}},
    )
    assert (
        "$.shop: integer found, string expected" in _problem(wrong_type, 422, "unprocessable-entity")["data"]["message"]
    )
    _problem(api("POST", "/sources", json={"name": "x", "configuration": SHOPIFY}), 400, "bad-request")
    _problem(
        api("POST", "/sources", data="{not json", headers={"Content-Type": "application/json"}), 400, "bad-request"
    )
    missing_id = str(uuid.uuid4())
    body = _problem(api("GET", f"/sources/{missing_id}"), 404, "resource-not-found")
    assert body["data"] == {"resourceType": "source", "resourceId": missing_id}


def test_source_patch_deep_merges_validates_and_keeps_masked_secrets(server, api, airbyte):
    source = _source(api)
    path = f"/sources/{source['sourceId']}"
    rotated = api("PATCH", path, json={"configuration": {"credentials": {"access_token": "shpat_second"}}})
    assert rotated.status_code == 200
    assert rotated.json()["configuration"]["credentials"]["access_token"] == "**********"
    # What the sandbox stores (what a sync would use): the new token, the rest of the subtree untouched.
    assert airbyte.stored_source_configuration(source["sourceId"])["credentials"] == {
        "auth_method": "oauth2.0",
        "client_id": "shopify-client",
        "client_secret": "shopify-client-secret",
        "access_token": "shpat_second",
    }
    # Sending a masked value back (as a client echoing a GET would) keeps the stored secret.
    api("PATCH", path, json={"name": "renamed", "configuration": {"credentials": {"client_secret": "**********"}}})
    assert airbyte.stored_source_configuration(source["sourceId"])["credentials"]["client_secret"] == (
        "shopify-client-secret"
    )
    assert api("GET", path).json()["name"] == "renamed"

    invalid = api("PATCH", path, json={"configuration": {"start_date": "yesterday"}})
    assert "$.start_date: does not match" in _problem(invalid, 422, "unprocessable-entity")["data"]["message"]
    assert api("GET", path).json()["configuration"]["start_date"] == "2024-01-01"

    echoed = api("GET", path).json()["configuration"]  # masked, as a client would send it back
    put = api("PUT", path, json={"name": "replaced", "configuration": {**echoed, "shop": "other"}})
    assert put.status_code == 200 and put.json()["configuration"]["shop"] == "other"
    assert airbyte.stored_source_configuration(source["sourceId"])["credentials"] == {
        "auth_method": "oauth2.0",
        "client_id": "shopify-client",
        "client_secret": "shopify-client-secret",
        "access_token": "shpat_second",
    }
    replaced = api("PUT", path, json={"name": "replaced", "configuration": {"shop": "other"}})
    assert replaced.status_code == 200 and replaced.json()["configuration"] == {"shop": "other"}
    _problem(api("PUT", path, json={"name": "no configuration"}), 400, "bad-request")


def test_source_delete(api):
    source = _source(api)
    path = f"/sources/{source['sourceId']}"
    assert api("DELETE", path).status_code == 204
    _problem(api("GET", path), 404, "resource-not-found")
    _problem(api("DELETE", path), 404, "resource-not-found")
    assert api("GET", "/sources").json()["data"] == []
    assert len(api("GET", "/sources", params={"includeDeleted": "true"}).json()["data"]) == 1


# --- destinations ------------------------------------------------------------------------------------


def test_postgres_destination_masked_validated_patched_deleted(api, airbyte):
    destination = _destination(api)
    assert destination["destinationType"] == "postgres"
    assert destination["definitionId"] == "25c5221d-dce2-4163-ade9-739ef790f503"
    assert destination["configuration"]["password"] == "**********"
    assert destination["configuration"]["port"] == 5432
    path = f"/destinations/{destination['destinationId']}"
    assert "warehouse-password" not in api("GET", path).text + api("GET", "/destinations").text

    no_host = {k: v for k, v in POSTGRES.items() if k != "host"}
    answer = api("POST", "/destinations", json={"name": "w", "workspaceId": WORKSPACE_ID, "configuration": no_host})
    assert "$.host: is missing" in _problem(answer, 422, "unprocessable-entity")["data"]["message"]
    verify = api("PATCH", path, json={"configuration": {"ssl_mode": {"mode": "verify-ca"}}})
    assert "$.ssl_mode.ca_certificate" in _problem(verify, 422, "unprocessable-entity")["data"]["message"]
    patched = api("PATCH", path, json={"configuration": {"port": 6543}})
    assert patched.json()["configuration"]["port"] == 6543
    assert api("DELETE", path).status_code == 204
    _problem(api("GET", path), 404, "resource-not-found")


# --- connections -------------------------------------------------------------------------------------


def test_connection_create_with_custom_namespace_and_catalog_defaults(api):
    connection = _connection(api)
    assert connection["namespaceDefinition"] == "custom_format"
    assert connection["namespaceFormat"] == "raw_m_42" and connection["prefix"] == "shopify_"
    assert connection["status"] == "active" and connection["schedule"] == {"scheduleType": "manual"}
    assert connection["workspaceId"] == WORKSPACE_ID and connection["tags"] == []
    assert connection["configurations"]["streams"] == [
        {"name": "orders", "syncMode": "incremental_deduped_history", "cursorField": ["updated_at"],
         "primaryKey": [["id"]]},
        {"name": "customers", "syncMode": "incremental_append", "cursorField": ["updated_at"]},
    ]  # fmt: skip
    assert api("GET", f"/connections/{connection['connectionId']}").json() == connection
    assert api("GET", "/connections").json() == {"data": [connection]}


def test_connection_without_streams_selects_all_as_full_refresh_overwrite(api):
    source, destination = _source(api), _destination(api)
    answer = api(
        "POST", "/connections", json={"sourceId": source["sourceId"], "destinationId": destination["destinationId"]}
    )
    body = answer.json()
    assert body["namespaceDefinition"] == "destination" and body["prefix"] == ""
    assert body["name"] == "m_42-shopify → warehouse"
    streams = body["configurations"]["streams"]
    assert {s["name"] for s in streams} == {"orders", "order_refunds", "customers", "products", "transactions", "shop"}
    assert {s["syncMode"] for s in streams} == {"full_refresh_overwrite"}


def test_connection_create_errors(api):
    source, destination = _source(api), _destination(api)
    ids = {"sourceId": source["sourceId"], "destinationId": destination["destinationId"]}
    unknown = api("POST", "/connections", json={**ids, "configurations": {"streams": [{"name": "invoices"}]}})
    assert "invoices" in _problem(unknown, 422, "unprocessable-entity")["data"]["message"]
    twice = api("POST", "/connections", json={**ids, "configurations": {"streams": [ORDERS, ORDERS]}})
    _problem(twice, 400, "bad-request")
    mode = api(
        "POST",
        "/connections",
        json={**ids, "configurations": {"streams": [{"name": "shop", "syncMode": "incremental_append"}]}},
    )
    assert "Cannot set sync mode" in _problem(mode, 400, "bad-request")["data"]["message"]
    _problem(api("POST", "/connections", json={**ids, "namespaceDefinition": "elsewhere"}), 400, "bad-request")
    gone = api("POST", "/connections", json={**ids, "sourceId": str(uuid.uuid4())})
    assert _problem(gone, 404, "resource-not-found")["data"]["resourceType"] == "source"
    hourly = api(
        "POST", "/connections", json={**ids, "schedule": {"scheduleType": "cron", "cronExpression": "0 0 * * * ?"}}
    )
    assert hourly.json()["schedule"] == {"scheduleType": "cron", "cronExpression": "0 0 * * * ? UTC"}
    too_often = api(
        "POST", "/connections", json={**ids, "schedule": {"scheduleType": "cron", "cronExpression": "* * * * * ?"}}
    )
    _problem(too_often, 400, "bad-request")


def test_connection_patch_status_schedule_streams_and_delete(api):
    connection = _connection(api)
    path = f"/connections/{connection['connectionId']}"
    paused = api("PATCH", path, json={"status": "inactive"})
    assert paused.json()["status"] == "inactive"
    assert paused.json()["configurations"] == connection["configurations"]
    streams = api(
        "PATCH", path, json={"configurations": {"streams": [{"name": "shop"}]}, "schedule": {"scheduleType": "manual"}}
    )
    assert streams.json()["configurations"]["streams"] == [{"name": "shop", "syncMode": "full_refresh_overwrite"}]
    _problem(api("PATCH", path, json={"status": "paused"}), 400, "bad-request")
    _problem(api("PATCH", path, json={"configurations": {"streams": [{"name": "nope"}]}}), 422, "unprocessable-entity")
    _problem(api("PATCH", path, json={"sourceId": str(uuid.uuid4())}), 400, "bad-request")
    assert api("DELETE", path).status_code == 204
    assert api("GET", path).json()["status"] == "deprecated"
    assert api("GET", "/connections").json()["data"] == []
    _problem(api("GET", f"/connections/{uuid.uuid4()}"), 404, "resource-not-found")


def test_streams_lists_the_source_catalog(api):
    source = _source(api)
    streams = api("GET", "/streams", params={"sourceId": source["sourceId"]}).json()
    orders = next(s for s in streams if s["streamName"] == "orders")
    assert orders["defaultCursorField"] == ["updated_at"] and orders["sourceDefinedPrimaryKey"] == [["id"]]
    assert "incremental_deduped_history" in orders["syncModes"]
    shop = next(s for s in streams if s["streamName"] == "shop")
    assert shop["syncModes"] == ["full_refresh_overwrite", "full_refresh_append", "full_refresh_overwrite_deduped"]


# --- jobs --------------------------------------------------------------------------------------------


def test_job_lifecycle_pending_running_succeeded(api, airbyte):
    connection = _connection(api)
    airbyte.script_job(rowsSynced=120, bytesSynced=4096)
    created = api("POST", "/jobs", json={"connectionId": connection["connectionId"], "jobType": "sync"})
    assert created.status_code == 200
    job = created.json()
    assert job["status"] == "pending" and job["jobType"] == "sync" and isinstance(job["jobId"], int)
    assert job["connectionId"] == connection["connectionId"] and job["startTime"].endswith("Z")
    assert job["duration"] is None and job["lastUpdatedAt"] is None and job["rowsSynced"] is None

    airbyte.advance(job["jobId"])
    running = api("GET", f"/jobs/{job['jobId']}").json()
    assert running["status"] == "running" and running["duration"].startswith("PT")
    airbyte.advance(job["jobId"])
    done = api("GET", f"/jobs/{job['jobId']}").json()
    assert done["status"] == "succeeded" and done["rowsSynced"] == 120 and done["bytesSynced"] == 4096
    assert done["lastUpdatedAt"].endswith("Z")
    # The next sync may start now.
    again = api("POST", "/jobs", json={"connectionId": connection["connectionId"], "jobType": "sync"})
    assert again.status_code == 200 and again.json()["jobId"] == job["jobId"] + 1


def test_409_try_again_later_while_a_job_runs(api, airbyte):
    connection = _connection(api)
    payload = {"connectionId": connection["connectionId"], "jobType": "sync"}
    first = api("POST", "/jobs", json=payload).json()
    busy = api("POST", "/jobs", json=payload)
    body = _problem(busy, 409, "try-again-later")
    assert body["detail"] == "Please try again later."
    assert body["data"] == {"message": f"A sync is already running for: {connection['connectionId']}"}
    _problem(api("POST", "/jobs", json={**payload, "jobType": "reset"}), 409, "try-again-later")
    running = api("GET", "/jobs", params={"connectionId": connection["connectionId"], "status": "pending"}).json()
    assert [j["jobId"] for j in running["data"]] == [first["jobId"]]


def test_simultaneous_triggers_start_exactly_one_job(server, api):
    connection = _connection(api)
    payload = {"connectionId": connection["connectionId"], "jobType": "sync"}
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = sorted(pool.map(lambda _: api("POST", "/jobs", json=payload).status_code, range(8)))
    assert statuses == [200] + [409] * 7
    assert len(api("GET", "/jobs").json()["data"]) == 1


def test_failed_job_with_error_type_and_incomplete_attempts(api, airbyte):
    connection = _connection(api)
    airbyte.script_job(status="failed", errorType="config_error", errorOrigin="source",
                       errorMessage="Shopify refused the access token", incomplete=True)  # fmt: skip
    job = api("POST", "/jobs", json={"connectionId": connection["connectionId"], "jobType": "sync"}).json()
    seen = [airbyte.advance(job["jobId"])["status"] for _ in range(4)]
    assert seen == ["running", "incomplete", "running", "failed"]
    public = api("GET", f"/jobs/{job['jobId']}").json()
    assert public["status"] == "failed" and "errorType" not in public
    detail = airbyte.job(job["jobId"])
    assert (detail["errorType"], detail["errorOrigin"]) == ("config_error", "source")
    assert detail["errorMessage"] == "Shopify refused the access token"


def test_jobs_progress_by_the_clock_when_durations_are_set(api, airbyte):
    airbyte.configure(pending_seconds=0, running_seconds=0)
    connection = _connection(api)
    airbyte.script_job(rowsSynced=0)  # no worker (db.internal is no database): test_airbyte_sync.py writes
    job = api("POST", "/jobs", json={"connectionId": connection["connectionId"], "jobType": "sync"}).json()
    assert job["status"] == "succeeded"
    airbyte.configure(pending_seconds=0, running_seconds=3600)
    slow = api("POST", "/jobs", json={"connectionId": connection["connectionId"], "jobType": "sync"}).json()
    assert slow["status"] == "running"
    airbyte.script_job(runningSeconds=0, status="failed", errorType="system_error")
    airbyte.advance(slow["jobId"], to="succeeded")
    quick_fail = api("POST", "/jobs", json={"connectionId": connection["connectionId"], "jobType": "sync"}).json()
    assert quick_fail["status"] == "failed"


def test_cancel_a_running_job_and_409_once_terminal(api, airbyte):
    connection = _connection(api)
    job = api("POST", "/jobs", json={"connectionId": connection["connectionId"], "jobType": "sync"}).json()
    cancelled = api("DELETE", f"/jobs/{job['jobId']}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    body = _problem(api("DELETE", f"/jobs/{job['jobId']}"), 409, "state-conflict")
    assert body["type"].endswith("#409-state-conflict") and body["detail"] == "Job is not currently running"
    _problem(api("GET", "/jobs/999999"), 404, "resource-not-found")


def test_job_create_errors(api, airbyte):
    connection = _connection(api)
    refresh = api("POST", "/jobs", json={"connectionId": connection["connectionId"], "jobType": "refresh"})
    assert _problem(refresh, 422, "unprocessable-entity")["data"]["message"] == (
        "Refreshes are not supported in the public API"
    )
    _problem(
        api("POST", "/jobs", json={"connectionId": connection["connectionId"], "jobType": "x"}), 400, "bad-request"
    )
    _problem(
        api("POST", "/jobs", json={"connectionId": str(uuid.uuid4()), "jobType": "sync"}), 404, "resource-not-found"
    )
    api("PATCH", f"/connections/{connection['connectionId']}", json={"status": "inactive"})
    inactive = api("POST", "/jobs", json={"connectionId": connection["connectionId"], "jobType": "sync"})
    _problem(inactive, 409, "state-conflict")


def test_jobs_list_filters_orders_and_pages(api, airbyte):
    connection = _connection(api)
    other = _connection(api)
    ids = []
    for _ in range(3):
        job = api("POST", "/jobs", json={"connectionId": connection["connectionId"], "jobType": "sync"}).json()
        airbyte.advance(job["jobId"], to="succeeded")
        ids.append(job["jobId"])
    api("POST", "/jobs", json={"connectionId": other["connectionId"], "jobType": "reset"})

    mine = api("GET", "/jobs", params={"connectionId": connection["connectionId"]}).json()
    assert [j["jobId"] for j in mine["data"]] == ids[::-1]
    ascending = api("GET", "/jobs", params={"connectionId": connection["connectionId"], "orderBy": "createdAt|ASC",
                                            "limit": 2}).json()  # fmt: skip
    assert [j["jobId"] for j in ascending["data"]] == ids[:2]
    assert "offset=2" in ascending["next"] and "previous" not in ascending
    following = requests.get(ascending["next"], headers=api.session.headers, timeout=5).json()
    assert [j["jobId"] for j in following["data"]] == ids[2:]
    resets = api("GET", "/jobs", params={"jobType": "reset"}).json()["data"]
    assert [j["connectionId"] for j in resets] == [other["connectionId"]]
    _problem(api("GET", "/jobs", params={"limit": 101}), 400, "bad-request")
    _problem(api("GET", "/jobs", params={"orderBy": "name|UP"}), 400, "bad-request")


# --- faults ------------------------------------------------------------------------------------------


def test_scripted_faults_answer_in_airbytes_shapes(api, control):
    control.fault("airbyte.jobs.create", 503)
    control.fault("airbyte.jobs.create", 429)
    control.fault("airbyte.sources.list", 502, body="<html>bad gateway</html>")
    answer = api("POST", "/jobs", json={})
    _problem(answer, 503, "unexpected-problem")
    limited = api("POST", "/jobs", json={})
    assert limited.status_code == 429 and set(limited.json()) == {"message"} and "Retry-After" not in limited.headers
    proxy = api("GET", "/sources")
    assert proxy.status_code == 502 and proxy.headers["Content-Type"].startswith("text/plain")
    assert [c["status"] for c in control.calls("airbyte.jobs.create")] == [503, 429]


def test_reset_clears_the_airbyte_store(api, control, airbyte):
    _connection(api)
    control.reset()
    assert airbyte.state() == {"sources": [], "destinations": [], "connections": []}


def test_control_routes_refuse_what_they_cannot_do(server, api, airbyte):
    base = f"{server.url}/_control/airbyte"
    assert requests.post(f"{base}/configure", json={"colour": "red"}, timeout=5).status_code == 400
    assert requests.post(f"{base}/configure", json={"running_seconds": -1}, timeout=5).status_code == 400
    assert requests.post(f"{base}/outcomes", json={"status": "running"}, timeout=5).status_code == 400
    assert requests.post(f"{base}/outcomes", json={"errorType": "oops"}, timeout=5).status_code == 400
    assert requests.post(f"{base}/outcomes", json={"times": 0}, timeout=5).status_code == 400
    assert requests.post(f"{base}/jobs/12345/advance", json={}, timeout=5).status_code == 404
    assert requests.get(f"{base}/jobs/12345", timeout=5).status_code == 404
    connection = _connection(api)
    job = api("POST", "/jobs", json={"connectionId": connection["connectionId"], "jobType": "sync"}).json()
    assert requests.post(f"{base}/jobs/{job['jobId']}/advance", json={"to": "queued"}, timeout=5).status_code == 400
    airbyte.advance(job["jobId"], to="failed")
    assert airbyte.job(job["jobId"])["errorType"] == "system_error"
    again = requests.post(f"{base}/jobs/{job['jobId']}/advance", json={}, timeout=5)
    assert again.status_code == 409
    # Control routes are never faulted nor logged.
    assert all(not call["route"].startswith("control.") for call in airbyte.control.calls())
    _problem(api("GET", "/streams"), 400, "bad-request")
