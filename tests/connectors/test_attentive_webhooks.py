"""Attentive by webhook: registration at connect, deletion at disconnect, and the intake at
/webhooks/attentive/<public id>/ (signature, idempotency, raw rows in the shape staging reads)."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time

import pytest
from django.db import connections

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


# --- a burst, with the database connections killed in the middle ---------------------------------------------


@pytest.mark.django_db(transaction=True, databases=["default", "warehouse"])
def test_a_10000_event_burst_with_connections_killed_is_stored_exactly_once(
    live_server, owner, providers, owner_db, settings
):
    settings.APP_BASE_URL = live_server.url
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
            # Every connection the app's role holds to the test database but this test's own: the live
            # server's, mid-request or idle.
            killed = owner_db.execute(
                "select count(pg_terminate_backend(pid)) from pg_stat_activity"
                " where datname = current_database() and usename = %s and pid <> all(%s)",
                [settings.DATABASE_APP_ROLE, own_pids],
            ).fetchone()[0]
            break
        time.sleep(0.05)
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
