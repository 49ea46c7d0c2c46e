"""Attentive by webhook: registration at connect, deletion at disconnect, and the intake at
/webhooks/attentive/<public id>/ (signature, idempotency, raw rows in the shape staging reads)."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import threading
import time

import pytest
from django.db import connections
from django.utils import timezone

from accounts.choices import Role
from analytics.raw_schema import table_columns
from compliance.services import Actor
from connectors import attentive, services
from connectors.choices import CredentialStatus
from connectors.crypto import decrypt_secret
from connectors.models import AttentiveWebhook, ConnectorCredential
from tests.accounts.factories import MembershipFactory

pytestmark = pytest.mark.django_db(databases=["default", "warehouse"])

TS = 1_632_945_178_104  # ms


@pytest.fixture(autouse=True)
def _fresh_lookups():
    attentive.webhook_lookup_forget()


@pytest.fixture
def owner(clerk):
    return MembershipFactory(clerk_user_id=clerk.user("user_owner"), role=Role.OWNER)


@pytest.fixture
def _eager_tasks(settings):
    from config.celery import app

    settings.CELERY_TASK_ALWAYS_EAGER = True
    app.conf.task_always_eager = True
    yield
    app.conf.task_always_eager = False


def connect(owner, providers, *, company: str = "Hudson & Ivy") -> ConnectorCredential:
    return services.credential_connect_api_key(
        merchant=owner.merchant,
        provider="attentive",
        api_key=providers.attentive_key(company=company),
        actor=services.clerk_actor(owner.clerk_user_id),
    )


def raw_rows(merchant, table: str) -> list[dict]:
    # Through the connection the intake writes with (inside this test's transaction, unless transactional).
    with connections[attentive._raw_alias()].cursor() as cursor:
        cursor.execute("select to_regclass(%s)", [f"raw_{merchant.key}.{table}"])
        if cursor.fetchone()[0] is None:
            return []
        cursor.execute(f'select * from "raw_{merchant.key}"."{table}" order by "timestamp"')
        names = [c.name for c in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    for row in rows:  # Django's cursor leaves jsonb as text
        for name in ("_airbyte_meta", "payload"):
            if isinstance(row.get(name), str):
                row[name] = json.loads(row[name])
    return rows


def sign(key: str, body: bytes) -> str:
    return hmac.new(key.encode(), body, hashlib.sha256).hexdigest()


def deliver(client, webhook: AttentiveWebhook, event, *, signature: str | None = "valid", raw: bytes | None = None):
    body = raw if raw is not None else json.dumps(event).encode()
    headers = {}
    if signature == "valid":
        headers["HTTP_X_ATTENTIVE_HMAC_SHA256"] = sign(decrypt_secret(webhook.signing_key_enc), body)
    elif signature is not None:
        headers["HTTP_X_ATTENTIVE_HMAC_SHA256"] = signature
    return client.post(
        f"/webhooks/attentive/{webhook.public_id}/", data=body, content_type="application/json", **headers
    )


def sms_sent(n: int = 1, **overrides) -> dict:
    return {
        "type": "sms.sent",
        "timestamp": TS + n,
        "company": {"display_name": "Hudson & Ivy", "company_id": "MDc6Q29tcGFueTU"},
        "subscriber": {"external_id": 16467358 + n, "phone": "+15555555555", "email": "Test@Gmail.com"},
        "message": {"id": "m1", "type": "CAMPAIGN", "name": "Spring", "text": "Hi", "channel": "TEXT"},
        **overrides,
    }


# --- registration --------------------------------------------------------------------------------------------


def test_connect_registers_a_webhook_for_the_mart_event_types_and_stores_its_key_encrypted(owner, providers, settings):
    credential = connect(owner, providers)

    [registered] = providers.attentive_webhooks()
    webhook = AttentiveWebhook.objects.get()
    assert webhook.credential == credential and webhook.merchant_id == owner.merchant_id
    assert webhook.attentive_webhook_id == registered["id"]
    assert registered["url"] == f"{settings.APP_BASE_URL}/webhooks/attentive/{webhook.public_id}/"
    # Opaque: nothing in the URL names the merchant or the credential.
    assert len(webhook.public_id) == 32 and owner.merchant.key not in webhook.public_id
    assert sorted(registered["events"]) == sorted(
        [
            "sms.sent",
            "sms.message_link_click",
            "email.sent",
            "email.opened",
            "email.message_link_click",
            "sms.subscribed",
            "email.subscribed",
            "sms.unsubscribed",
            "email.unsubscribed",
        ]
    )
    assert registered["signingKey"] not in webhook.signing_key_enc
    assert decrypt_secret(webhook.signing_key_enc) == registered["signingKey"]


@pytest.mark.parametrize(
    ("status", "error", "message"),
    [
        (503, services.ProviderUnavailable, "Attentive is not answering right now"),
        (400, services.ApiKeyRejected, "Attentive refused to register the webhook"),
        (403, services.ApiKeyMissingScope, "webhooks:write"),
    ],
)
def test_a_failed_registration_saves_nothing_and_says_why(owner, providers, status, error, message):
    providers.control.fault("attentive.webhooks.create", status)
    with pytest.raises(error) as raised:
        connect(owner, providers)
    assert message in raised.value.message
    if error is not services.ApiKeyMissingScope:
        assert raised.value.message.startswith("Attentive did not register the webhook its data arrives by")
    assert not ConnectorCredential.objects.exists()
    assert not AttentiveWebhook.objects.exists()
    assert providers.attentive_webhooks() == []


def test_the_connect_api_says_the_webhook_was_not_registered(client, clerk, owner, providers):
    from django.core.cache import cache

    cache.clear()  # the connect rate limit
    key = providers.attentive_key()
    providers.control.fault("attentive.webhooks.create", 502)
    response = client.post(
        "/api/connectors/api-key/connect",
        {"merchant_id": owner.merchant_id, "provider": "attentive", "api_key": key},
        content_type="application/json",
        **clerk.auth_header("user_owner"),
    )
    assert response.status_code == 503
    assert response.json() == {
        "detail": attentive.REGISTRATION_FAILED.format(
            reason="Attentive is not answering right now; try again in a minute."
        ),
        "retry_after": 30,
    }
    assert key not in response.content.decode()
    assert not ConnectorCredential.objects.exists() and not AttentiveWebhook.objects.exists()


def test_a_failure_after_registration_deletes_the_webhook_at_attentive(owner, providers, monkeypatch):
    def broken(**kwargs):
        raise RuntimeError("database went away")

    monkeypatch.setattr(attentive, "attentive_webhook_store", broken)
    with pytest.raises(RuntimeError):
        connect(owner, providers)
    assert not ConnectorCredential.objects.exists() and not AttentiveWebhook.objects.exists()
    assert providers.attentive_webhooks() == []
    assert providers.calls("attentive.webhooks.delete") == 1


@pytest.mark.django_db(transaction=True, databases=["default", "warehouse"])
def test_disconnect_refuses_its_events_and_deletes_the_webhook_at_attentive(client, owner, providers, _eager_tasks):
    credential = connect(owner, providers)
    webhook = AttentiveWebhook.objects.get()
    assert deliver(client, webhook, sms_sent()).status_code == 200

    services.credential_revoke(credential_id=credential.pk, actor=Actor.system("test"))

    webhook.refresh_from_db()
    assert webhook.disabled_at is not None
    assert providers.attentive_webhooks() == []
    assert deliver(client, webhook, sms_sent(2)).status_code == 404
    credential.refresh_from_db()
    assert credential.status == CredentialStatus.REVOKED and credential.api_key_enc == ""


@pytest.mark.django_db(transaction=True, databases=["default", "warehouse"])
def test_reconnect_replaces_the_webhook(client, owner, providers, _eager_tasks):
    key = providers.attentive_key(company="Hudson & Ivy")
    for _ in range(2):
        services.credential_connect_api_key(
            merchant=owner.merchant, provider="attentive", api_key=key, actor=services.clerk_actor("user_owner")
        )
    old, new = AttentiveWebhook.objects.order_by("created_at")
    assert old.disabled_at is not None and new.disabled_at is None
    assert [w["id"] for w in providers.attentive_webhooks()] == [new.attentive_webhook_id]
    assert deliver(client, old, sms_sent()).status_code == 404
    assert deliver(client, new, sms_sent()).status_code == 200


# --- intake --------------------------------------------------------------------------------------------------


@pytest.fixture
def webhook(owner, providers) -> AttentiveWebhook:
    connect(owner, providers)
    return AttentiveWebhook.objects.get()


def test_a_signed_event_is_stored_in_the_columns_staging_reads(client, webhook, owner):
    response = deliver(client, webhook, sms_sent())
    assert response.status_code == 200
    assert response.json() == {"ok": True, "duplicate": False}
    [row] = raw_rows(owner.merchant, "attentive_sms_sent")
    assert list(row) == [name for name, _ in table_columns("attentive_sms_sent")]
    assert {k: v for k, v in row.items() if not k.startswith("_airbyte")} == {
        "type": "sms.sent",
        "timestamp": row["timestamp"],
        "company_id": "MDc6Q29tcGFueTU",
        "company_display_name": "Hudson & Ivy",
        "message_id": "m1",
        "message_name": "Spring",
        "message_type": "CAMPAIGN",
        "message_channel": "TEXT",
        "message_text": "Hi",
        "subscriber_external_id": "16467359",
        "subscriber_email": "Test@Gmail.com",
        "subscriber_phone": "+15555555555",
    }
    assert row["timestamp"].timestamp() * 1000 == TS + 1  # milliseconds, not seconds
    body = json.dumps(sms_sent()).encode()
    assert row["_airbyte_raw_id"].hex == hashlib.sha256(body).hexdigest()[:32]
    assert row["_airbyte_meta"]["changes"] == [] and row["_airbyte_generation_id"] == 0
    assert row["_airbyte_extracted_at"] is not None


def test_click_and_subscription_events_land_in_their_tables(client, webhook, owner):
    click = sms_sent(type="email.message_link_click", link={"url": "https://shop.example/?utm_source=attentive"})
    click["message"] = {"id": "e1", "type": "JOURNEY", "name": "Welcome", "text": "Hello", "subject": "Hi"}
    subscribed = {
        "type": "email.subscribed",
        "timestamp": TS,
        "company": {"display_name": "Hudson & Ivy", "company_id": "MDc6Q29tcGFueTU"},
        "subscriber": {"external_id": 16467358, "phone": "+15555555555", "email": "test@gmail.com"},
        "creative": {"name": "Text to Join", "type": "TEXT_TO_JOIN", "subtype": "CODE"},
        "subscription": {"type": "MARKETING"},
    }
    assert deliver(client, webhook, click).status_code == 200
    assert deliver(client, webhook, subscribed).status_code == 200
    [row] = raw_rows(owner.merchant, "attentive_email_message_link_click")
    assert row["message_link_click_url"] == "https://shop.example/?utm_source=attentive"
    assert row["message_channel"] == "EMAIL"  # from the event type when the message does not say
    [sub] = raw_rows(owner.merchant, "attentive_subscribed")
    assert (sub["subscription_type"], sub["subscription_channel"]) == ("MARKETING", "EMAIL")
    assert (sub["creative_name"], sub["creative_type"]) == ("Text to Join", "TEXT_TO_JOIN")


def test_emoji_escaped_as_surrogate_pairs_are_text_like_any_other(client, webhook, owner):
    event = sms_sent()
    event["message"]["text"] = "New drop \U0001f389"  # json.dumps writes it as \ud83c\udf89
    assert "\\ud83c" in json.dumps(event)
    assert deliver(client, webhook, event).status_code == 200
    assert raw_rows(owner.merchant, "attentive_sms_sent")[0]["message_text"] == "New drop \U0001f389"


def test_a_replayed_event_is_stored_once(client, webhook, owner):
    assert deliver(client, webhook, sms_sent()).json() == {"ok": True, "duplicate": False}
    assert deliver(client, webhook, sms_sent()).json() == {"ok": True, "duplicate": True}
    assert len(raw_rows(owner.merchant, "attentive_sms_sent")) == 1


def test_new_events_ask_for_one_coalesced_build_at_a_time(client, webhook, owner, django_capture_on_commit_callbacks):
    from analytics.models import DbtRun, RawDataChange

    unbuilt = RawDataChange.objects.filter(merchant=owner.merchant, source="attentive", consumed_by_run=None)
    with django_capture_on_commit_callbacks(execute=False) as requested:
        assert deliver(client, webhook, sms_sent(1)).status_code == 200
    assert unbuilt.count() == 1 and len(requested) == 1  # the build is asked for once the change commits
    # A burst while that change waits for its build records nothing more; a replay is no new data at all.
    with django_capture_on_commit_callbacks(execute=False) as requested:
        for n in (2, 3, 1):
            assert deliver(client, webhook, sms_sent(n)).status_code == 200
    assert unbuilt.count() == 1 and requested == []
    # Once a build has taken the change in, the next event is a change for the next build.
    unbuilt.update(consumed_by_run=DbtRun.objects.create(command="build", started_at=timezone.now()))
    assert deliver(client, webhook, sms_sent(4)).status_code == 200
    assert unbuilt.count() == 1
    assert RawDataChange.objects.filter(merchant=owner.merchant, source="attentive").count() == 2


def test_a_change_that_cannot_be_recorded_still_answers_200_for_the_stored_event(client, webhook, owner, monkeypatch):
    from django.db import OperationalError

    from analytics import services as analytics_services

    def refuse(**kwargs):
        raise OperationalError("the database went away")

    monkeypatch.setattr(analytics_services, "raw_data_changed_mark", refuse)
    assert deliver(client, webhook, sms_sent()).json() == {"ok": True, "duplicate": False}
    assert len(raw_rows(owner.merchant, "attentive_sms_sent")) == 1


def test_unknown_event_types_are_kept_whole(client, webhook, owner):
    event = {"type": "custom_attribute.set", "timestamp": TS, "company": {"company_id": "C1"}, "attrs": {"a": 1}}
    no_timestamp = {"type": "sms.inbound_message", "message": {"type": "TYPE_CONVERSATION", "text": "STOP"}}
    assert deliver(client, webhook, event).status_code == 200
    assert deliver(client, webhook, no_timestamp).status_code == 200
    rows = raw_rows(owner.merchant, "attentive_other_events")
    assert [(r["type"], r["company_id"], r["payload"]) for r in rows] == [
        ("custom_attribute.set", "C1", event),
        ("sms.inbound_message", None, no_timestamp),
    ]


def test_base64_signatures_are_accepted(client, webhook, owner):
    import base64

    body = json.dumps(sms_sent()).encode()
    digest = hmac.new(decrypt_secret(webhook.signing_key_enc).encode(), body, hashlib.sha256).digest()
    response = deliver(client, webhook, None, raw=body, signature=base64.b64encode(digest).decode())
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("signature", "error"),
    [(None, attentive.MISSING_SIGNATURE), ("", attentive.MISSING_SIGNATURE), ("ab" * 32, attentive.INVALID_SIGNATURE)],
)
def test_unsigned_or_badly_signed_events_are_401_and_not_stored(client, webhook, owner, signature, error):
    response = deliver(client, webhook, sms_sent(), signature=signature)
    assert response.status_code == 401
    assert response.json() == {"error": error}
    assert raw_rows(owner.merchant, "attentive_sms_sent") == []


def test_another_webhooks_key_does_not_verify(client, webhook, owner, clerk, providers):
    other_owner = MembershipFactory(clerk_user_id=clerk.user("user_other"), role=Role.OWNER)
    connect(other_owner, providers, company="Other")
    other = AttentiveWebhook.objects.get(merchant=other_owner.merchant)
    body = json.dumps(sms_sent()).encode()
    response = deliver(client, webhook, None, raw=body, signature=sign(decrypt_secret(other.signing_key_enc), body))
    assert response.status_code == 401


def test_unknown_webhook_is_404(client, webhook):
    for public_id in ("nope", "a" * 32, "%00" * 12, webhook.public_id[:-1] + "%E2%80%AE"):
        response = client.post(f"/webhooks/attentive/{public_id}/", data=b"{}", content_type="application/json")
        assert response.status_code == 404 and response.json() == {"error": attentive.UNKNOWN_WEBHOOK}
    assert client.get(f"/webhooks/attentive/{webhook.public_id}/").status_code == 405


@pytest.mark.parametrize(
    ("raw", "error"),
    [
        (b"{not json", "body is not JSON: "),
        (b"\xff\xfe", "body is not JSON: "),
        (b"[1, 2]", attentive.NOT_OBJECT),
        (b'{"timestamp": 1}', attentive.MISSING_TYPE),
        (b'{"type": ""}', attentive.MISSING_TYPE),
        (b'{"type": "sms.sent"}', attentive.BAD_TIMESTAMP),
        (b'{"type": "sms.sent", "timestamp": 1632945178}', attentive.BAD_TIMESTAMP),  # seconds, not ms
        (b'{"type": "sms.sent", "timestamp": "1632945178104"}', attentive.BAD_TIMESTAMP),
        (b'{"type": "sms.sent", "timestamp": 1632945178104, "message": []}', "`message` must be an object"),
        (
            b'{"type": "sms.sent", "timestamp": 1632945178104, "subscriber": {"email": {"a": 1}}}',
            "`subscriber.email` must be a string or a number",
        ),
        (b'{"type": "x.y", "payload": "a\\u0000b"}', attentive.NOT_STORABLE),
        (b'{"type": "sms.sent\\ud800", "timestamp": 1632945178104}', attentive.NOT_STORABLE),
        (b"[" * 40 + b"]" * 40, "body is not JSON: "),
    ],
)
def test_malformed_events_are_400_with_the_reason_and_not_stored(client, webhook, owner, raw, error):
    response = deliver(client, webhook, None, raw=raw)
    assert response.status_code == 400
    assert response.json()["error"].startswith(error)
    for table in ("attentive_sms_sent", "attentive_other_events"):
        assert raw_rows(owner.merchant, table) == []


@pytest.mark.django_db(transaction=True, databases=["default", "warehouse"])
def test_a_database_error_is_503_so_attentive_delivers_again(client, webhook, owner, owner_db, settings):
    assert deliver(client, webhook, sms_sent(0)).status_code == 200  # the merchant's raw tables now exist
    table = f'"raw_{owner.merchant.key}".attentive_sms_sent'
    role = settings.DATABASE_APP_ROLE
    owner_db.execute(f'revoke insert on {table} from "{role}"')
    try:
        response = deliver(client, webhook, sms_sent())
    finally:
        owner_db.execute(f'grant insert on {table} to "{role}"')
    assert response.status_code == 503 and response.json() == {"error": attentive.STORE_FAILED}
    assert len(raw_rows(owner.merchant, "attentive_sms_sent")) == 1
    assert deliver(client, webhook, sms_sent()).status_code == 200  # the redelivery is stored
    assert len(raw_rows(owner.merchant, "attentive_sms_sent")) == 2


# --- the WSGI fast path, in-process -------------------------------------------------------------------------


def wsgi_call(path: str, body: bytes = b"", *, method: str = "POST", headers: dict | None = None, length=None):
    """Call config.wsgi's application (the fast path in front of Django) with a real environ."""
    from config.wsgi import application

    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "HTTP_HOST": "testserver",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "CONTENT_TYPE": "application/json",
        **({"CONTENT_LENGTH": str(len(body) if length is None else length)} if length != "" else {}),
        **(headers or {}),
    }
    from django.core import signals
    from django.db import close_old_connections

    started: list = []
    # As Django's test client does: the connection is this test's transaction, not to be recycled.
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        chunks = application(environ, lambda status, response_headers: started.append((status, response_headers)))
        content = b"".join(chunks)
        if hasattr(chunks, "close"):
            chunks.close()
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)
    status, response_headers = started[0]
    return int(status.split()[0]), dict(response_headers), content


def test_the_wsgi_fast_path_answers_like_the_view(webhook, owner):
    path = f"/webhooks/attentive/{webhook.public_id}/"
    body = json.dumps(sms_sent()).encode()
    signed = {"HTTP_X_ATTENTIVE_HMAC_SHA256": sign(decrypt_secret(webhook.signing_key_enc), body)}

    status, headers, content = wsgi_call(path, body, headers=signed)
    assert (status, json.loads(content)) == (200, {"ok": True, "duplicate": False})
    assert headers["Content-Type"] == "application/json" and headers["X-Content-Type-Options"] == "nosniff"
    assert json.loads(wsgi_call(path, body, headers=signed)[2]) == {"ok": True, "duplicate": True}
    assert len(raw_rows(owner.merchant, "attentive_sms_sent")) == 1

    assert wsgi_call(path, body)[0] == 401
    assert wsgi_call(path, body, headers={"HTTP_X_ATTENTIVE_HMAC_SHA256": "00" * 32})[0] == 401
    assert wsgi_call("/webhooks/attentive/nope/", body, headers=signed)[0] == 404
    bad = b'{"type": ""}'
    bad_signed = {"HTTP_X_ATTENTIVE_HMAC_SHA256": sign(decrypt_secret(webhook.signing_key_enc), bad)}
    status, _, content = wsgi_call(path, bad, headers=bad_signed)
    assert (status, json.loads(content)) == (400, {"error": attentive.MISSING_TYPE})


def test_the_wsgi_fast_path_bounds_the_body_and_leaves_other_requests_to_django(webhook, settings):
    path = f"/webhooks/attentive/{webhook.public_id}/"
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1000
    status, _, content = wsgi_call(path, b"{}", length=5000)
    assert (status, json.loads(content)) == (413, {"error": attentive.BODY_TOO_LARGE.format(limit=1000)})
    assert wsgi_call(path, b"{}", length="")[0] == 411
    assert wsgi_call(path, b"{}", length="abc")[0] == 411
    # Not a POST, or not exactly /webhooks/attentive/<id>/: Django answers, as for any URL.
    assert wsgi_call(path, method="GET")[0] == 405
    assert wsgi_call(f"{path}extra/", b"{}")[0] == 404
    assert wsgi_call(path[:-1], b"{}")[0] in (301, 404)


# --- a burst under gunicorn, with the database connections killed in the middle -----------------------------


@pytest.fixture
def gunicorn_url(settings):
    """config.wsgi under gunicorn (2 workers, the project's configuration) against this test's database."""
    import os
    import signal
    import socket
    import subprocess
    import sys
    from pathlib import Path
    from urllib.parse import quote

    import requests

    db = connections["default"].settings_dict
    host = db["HOST"] or db["OPTIONS"].get("host") or ""
    user = quote(db["USER"], safe="") + (":" + quote(db["PASSWORD"], safe="") if db["PASSWORD"] else "")
    if host.startswith("/"):
        url = f"postgres://{user}@/{db['NAME']}?host={quote(host)}"
    else:
        url = f"postgres://{user}@{host}:{db['PORT'] or 5432}/{db['NAME']}"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_OWNER_URL", "WAREHOUSE_DATABASE_URL", "ENV_FILE")}
    env.update(
        DATABASE_URL=url,
        DJANGO_DEV="1",
        DEBUG="0",
        SECURE_SSL_REDIRECT="0",
        ALLOWED_HOSTS="127.0.0.1",
        FIELD_ENCRYPTION_KEYS=",".join(settings.FIELD_ENCRYPTION_KEYS),
        LOG_LEVEL="WARNING",
        CONN_MAX_AGE="600",
        ENV_FILE="/dev/null",
    )
    root = Path(__file__).resolve().parents[2]
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "python:config.gunicorn", "config.wsgi:application",
         "--workers", "2", "--bind", f"127.0.0.1:{port}", "--log-level", "warning"],
        cwd=root, env=env, stdout=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{base}/healthz", timeout=5).status_code == 200:
                    break
            except requests.RequestException:  # not listening yet, or a worker still importing the app
                pass
            assert server.poll() is None and time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.2)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=10)


@pytest.mark.django_db(transaction=True, databases=["default", "warehouse"])
def test_a_10000_event_burst_with_connections_killed_is_stored_exactly_once(
    gunicorn_url, owner, providers, owner_db, settings
):
    settings.APP_BASE_URL = gunicorn_url
    connect(owner, providers)
    webhook = AttentiveWebhook.objects.get()
    table = f'"raw_{owner.merchant.key}".attentive_sms_sent'
    own_pids = []
    for alias in ("default", "warehouse"):
        with connections[alias].cursor() as cursor:
            cursor.execute("select pg_backend_pid()")
            own_pids.append(cursor.fetchone()[0])

    report: dict = {}
    emitter = threading.Thread(
        target=lambda: report.update(
            providers.attentive_emit(
                webhook.attentive_webhook_id, type="sms.sent", count=10_000, concurrency=8, max_attempts=20
            )
        )
    )
    emitter.start()
    killed = 0
    deadline = time.monotonic() + 300
    while emitter.is_alive() and time.monotonic() < deadline:
        exists = owner_db.execute("select to_regclass(%s)", [table.replace('"', "")]).fetchone()[0]
        stored = owner_db.execute(f"select count(*) from {table}").fetchone()[0] if exists else 0
        if stored >= 5_000:
            # Every connection the app's role holds to the test database but this test's own: gunicorn's
            # workers', mid-statement or idle between events.
            killed = owner_db.execute(
                "select count(pg_terminate_backend(pid)) from pg_stat_activity"
                " where datname = current_database() and usename = %s and pid <> all(%s)",
                [settings.DATABASE_APP_ROLE, own_pids],
            ).fetchone()[0]
            break
        time.sleep(0.02)
    emitter.join(timeout=300)

    assert killed >= 1
    assert report["delivered"] == 10_000 and report["undelivered"] == 0, report
    counts = owner_db.execute(f"select count(*), count(distinct _airbyte_raw_id) from {table}").fetchone()
    assert counts == (10_000, 10_000)
    # Distinct events, not just distinct bodies: the sandbox numbers its subscribers.
    subscribers = owner_db.execute(f"select count(distinct subscriber_external_id) from {table}").fetchone()[0]
    assert subscribers == 10_000


# --- dbt staging reads what the intake wrote -----------------------------------------------------------------


@pytest.mark.django_db(transaction=True, databases=["default", "warehouse"])
def test_dbt_staging_reads_webhook_rows_through_its_one_code_path(client, webhook, owner, owner_db):
    from analytics.dbt_runner import dbt_invoke
    from analytics.selectors import warehouse_connection_params

    click = sms_sent(3, type="sms.message_link_click", link={"url": "https://shop.example/?utm_source=attentive"})
    subscribed = {
        "type": "sms.subscribed",
        "timestamp": TS,
        "company": {"display_name": "Hudson & Ivy", "company_id": "MDc6Q29tcGFueTU"},
        "subscriber": {"external_id": 16467358, "phone": "+15555555555", "email": " Test@Gmail.com "},
        "creative": {"name": "Text to Join", "type": "TEXT_TO_JOIN", "subtype": "CODE"},
        "subscription": {"type": "marketing"},
    }
    for event in (sms_sent(1), sms_sent(1), click, subscribed):  # the first one twice: a redelivery
        assert deliver(client, webhook, event).status_code == 200

    existed = owner_db.execute("select to_regnamespace('analytics_staging')").fetchone()[0] is not None
    merchant = owner.merchant
    try:
        result = dbt_invoke(
            [
                "run",
                "--select",
                "stg_attentive__sms_sent stg_attentive__sms_message_link_click stg_attentive__subscribed",
            ],
            merchants=[{"id": merchant.pk, "key": merchant.key, "timezone": merchant.timezone, "currency": "USD"}],
            db=warehouse_connection_params(),
        )
        assert result.success, result.error
        mine = [merchant.pk]
        sent = owner_db.execute(
            "select merchant_id, occurred_at, message_id, message_type, message_channel, subscriber_external_id,"
            " email, phone, link_url from analytics_staging.stg_attentive__sms_sent where merchant_id = %s",
            mine,
        ).fetchall()
        clicks = owner_db.execute(
            "select message_id, link_url from analytics_staging.stg_attentive__sms_message_link_click"
            " where merchant_id = %s",
            mine,
        ).fetchall()
        subs = owner_db.execute(
            "select subscription_type, subscription_channel, creative_name, email"
            " from analytics_staging.stg_attentive__subscribed where merchant_id = %s",
            mine,
        ).fetchall()
    finally:
        if not existed:
            owner_db.execute("drop schema if exists analytics_staging cascade")
        else:  # another test's build: leave it as it was
            for model in ("sms_sent", "sms_message_link_click", "subscribed"):
                owner_db.execute(
                    f"delete from analytics_staging.stg_attentive__{model} where merchant_id = %s",
                    [merchant.pk],
                )
    [(merchant_id, occurred_at, *rest)] = sent
    assert merchant_id == merchant.pk
    assert occurred_at.timestamp() * 1000 == TS + 1
    assert rest == ["m1", "CAMPAIGN", "TEXT", "16467359", "test@gmail.com", "+15555555555", None]
    assert clicks == [("m1", "https://shop.example/?utm_source=attentive")]
    assert subs == [("MARKETING", "TEXT", "Text to Join", "test@gmail.com")]


def test_key_rotation_re_encrypts_signing_keys_and_the_intake_still_verifies(client, webhook, settings, encryption_key):
    from io import StringIO

    from cryptography.fernet import Fernet
    from django.core.management import call_command

    from connectors.crypto import key_id_for, secret_key_id

    signing_key = decrypt_secret(webhook.signing_key_enc)
    new_key = Fernet.generate_key().decode()
    settings.FIELD_ENCRYPTION_KEYS = [new_key, encryption_key]
    call_command("rotate_encryption_keys", stdout=StringIO(), stderr=StringIO())
    settings.FIELD_ENCRYPTION_KEYS = [new_key]  # the old key retired
    webhook.refresh_from_db()
    assert secret_key_id(webhook.signing_key_enc) == key_id_for(new_key)
    assert decrypt_secret(webhook.signing_key_enc) == signing_key
    attentive.webhook_lookup_forget()
    assert deliver(client, webhook, sms_sent()).status_code == 200
