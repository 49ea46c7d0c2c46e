"""Shopify's privacy webhooks (compliance/privacy.py): stored with their 30-day due date, once per delivery,
worked by a task; the data-request file for the store's owners; shop/redact 48 h after the uninstall, honouring
holds; the staff alert when a request is due; the admin list."""

from __future__ import annotations

import datetime as dt
import json

import psycopg
import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone

from accounts.models import Merchant
from compliance.choices import ActorType, PrivacyState, PrivacyTopic
from compliance.holds import hold_place
from compliance.models import AuditEvent, HoldExemption, PrivacyRequest
from compliance.privacy import privacy_request_process, privacy_requests_sweep
from compliance.services import Actor
from connectors.models import ShopifyWebhookDelivery
from notifications.choices import NotificationKind
from notifications.models import Notification
from tests.accounts.factories import MembershipFactory, MerchantFactory

from .privacy_fixtures import (  # noqa: F401  (fixtures)
    _no_notification_delivery,
    compliance_storage,
    customer_payload,
    eager,
    pick_customers,
    seed_store,
    signed_post,
    warehouse,
)

STAFF = Actor(type=ActorType.STAFF, id="1", label="counsel@example.com")
CUSTOMER = {"id": 191167, "email": "john@example.com", "phone": "555-625-1199"}


def _request(**fields) -> PrivacyRequest:
    return PrivacyRequest.objects.get(**fields)


@pytest.mark.django_db
def test_a_bad_signature_is_401_and_nothing_is_stored(client, eager):  # noqa: F811  (a fixture)
    merchant = MerchantFactory()
    response = signed_post(
        client, customer_payload(merchant, CUSTOMER), topic=PrivacyTopic.CUSTOMERS_REDACT,
        shop=merchant.shop_domain, secret="not-the-app-secret",
    )  # fmt: skip
    assert response.status_code == 401
    assert not PrivacyRequest.objects.exists() and not ShopifyWebhookDelivery.objects.exists()


@pytest.mark.django_db
def test_a_request_is_stored_with_its_due_date_once_and_the_delivery_keeps_no_identifiers(
    client,
    eager,  # noqa: F811  (a fixture)
    compliance_storage,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    merchant = MerchantFactory(is_active=False)  # an uninstalled store, so shop/redact below waits for its 48 h
    merchant.uninstalled_at = timezone.now()
    merchant.save()
    body = customer_payload(merchant, CUSTOMER, orders_requested=[299938, 280263], data_request={"id": 9999})
    with django_capture_on_commit_callbacks(execute=True):
        first = signed_post(client, body, topic=PrivacyTopic.CUSTOMERS_DATA_REQUEST, shop=merchant.shop_domain,
                            event_id="evt-1")  # fmt: skip
        again = signed_post(client, body, topic=PrivacyTopic.CUSTOMERS_DATA_REQUEST, shop=merchant.shop_domain,
                            event_id="evt-1")  # fmt: skip
    assert first.status_code == again.status_code == 200
    request = _request()
    assert (request.topic, request.merchant, request.customer_id, request.customer_email, request.customer_phone) == (
        PrivacyTopic.CUSTOMERS_DATA_REQUEST, merchant, 191167, "john@example.com", "555-625-1199",
    )  # fmt: skip
    assert request.orders == [299938, 280263] and request.shopify_request_id == "9999"
    assert request.due_at - request.received_at == dt.timedelta(days=30)
    # Worked once (the store has no data yet: an empty file is still the answer owed).
    assert request.state == PrivacyState.DONE and request.attempts == 1 and request.file_key
    delivery = ShopifyWebhookDelivery.objects.get()
    assert "john@example.com" not in json.dumps(delivery.body) and delivery.body["privacy_request"] == request.pk
    assert AuditEvent.objects.filter(action="privacy.request_received", target_id=str(request.pk)).count() == 1
    assert AuditEvent.objects.filter(action="privacy.request_done", target_id=str(request.pk)).count() == 1

    with django_capture_on_commit_callbacks(execute=True):
        signed_post(client, {"shop_id": 1, "shop_domain": merchant.shop_domain}, topic=PrivacyTopic.SHOP_REDACT,
                    shop=merchant.shop_domain)  # fmt: skip
    shop_redact = _request(topic=PrivacyTopic.SHOP_REDACT)
    assert shop_redact.not_before == merchant.uninstalled_at + dt.timedelta(hours=48)
    assert shop_redact.state == PrivacyState.SCHEDULED


@pytest.mark.django_db
def test_a_request_for_a_shop_we_do_not_know_is_recorded_as_ignored(
    client,
    eager,  # noqa: F811
    django_capture_on_commit_callbacks,
):
    with django_capture_on_commit_callbacks(execute=True):
        response = signed_post(client, {"shop_domain": "nobody.myshopify.com"}, topic=PrivacyTopic.SHOP_REDACT,
                               shop="nobody.myshopify.com")  # fmt: skip
    assert response.status_code == 200
    request = _request()
    assert (request.state, request.merchant, request.error) == (
        PrivacyState.IGNORED,
        None,
        "no store of ours has this shop domain",
    )


@pytest.mark.django_db(transaction=True)
def test_the_owners_get_the_data_file_on_their_page_and_nobody_else_does(
    client,
    clerk,
    eager,  # noqa: F811
    warehouse,  # noqa: F811
    compliance_storage,  # noqa: F811
    settings,
):
    merchant = MerchantFactory(key="datareq", shop_domain="datareq.myshopify.com", timezone="UTC")
    owner = MembershipFactory(merchant=merchant, clerk_user_id=clerk.user("user_owner"), role="owner")
    viewer = MembershipFactory(merchant=merchant, clerk_user_id=clerk.user("user_viewer"), role="viewer")
    stranger = MembershipFactory(clerk_user_id=clerk.user("user_other"), role="owner")
    seed_store(warehouse, merchant, days=5, orders_per_day=4)
    [customer] = pick_customers(warehouse, merchant, n=1)

    response = signed_post(client, customer_payload(merchant, customer, data_request={"id": 1}),
                           topic=PrivacyTopic.CUSTOMERS_DATA_REQUEST, shop=merchant.shop_domain)  # fmt: skip
    assert response.status_code == 200
    request = _request()
    assert request.state == PrivacyState.DONE and request.file_name == f"customer-data-request-{request.pk}.json"
    told = Notification.objects.filter(kind=NotificationKind.PRIVACY_DATA_READY)
    assert list(told.values_list("clerk_user_id", flat=True)) == [owner.clerk_user_id]

    client.cookies["__session"] = clerk.token(owner.clerk_user_id)
    page = client.get(f"/m/{merchant.pk}/privacy/")
    assert page.status_code == 200
    [row] = page.context["rows"]
    assert row["request"] == request and not row["overdue"]
    download = client.get(row["link"].url)
    assert download.status_code == 200
    document = json.loads(b"".join(download.streaming_content))
    assert document["request"]["customer"]["email"] == customer["email"]
    assert document["identifiers_found"]["customer_ids"] == [customer["id"]]
    assert {"shopify_customers", "shopify_orders", "klaviyo_profiles", "web_sessions"} <= set(document["raw"])
    assert all(r["email"] == customer["email"] for r in document["raw"]["shopify_customers"])
    assert AuditEvent.objects.filter(action="privacy_request.downloaded", target_id=str(request.pk)).exists()

    # A viewer of the store, and the owner of another, see neither the page nor the file.
    for member in (viewer, stranger):
        client.cookies["__session"] = clerk.token(member.clerk_user_id)
        assert client.get(f"/m/{merchant.pk}/privacy/").status_code == 404
        assert client.get(row["link"].url).status_code == 404
    # Links last ten minutes.
    settings.COMPLIANCE_DOWNLOAD_LINK_SECONDS = -1
    client.cookies["__session"] = clerk.token(owner.clerk_user_id)
    assert client.get(row["link"].url).status_code == 403


@pytest.mark.django_db(transaction=True)
def test_shop_redact_erases_the_store_48_hours_after_the_uninstall_except_what_a_hold_keeps(
    client,
    eager,  # noqa: F811
    warehouse,  # noqa: F811
    compliance_storage,  # noqa: F811
):
    from analytics.dbt_runner import dbt_invoke

    merchant = MerchantFactory(key="gone", shop_domain="gone.myshopify.com", timezone="UTC")
    seed_store(warehouse, merchant, days=5, orders_per_day=4)
    m = {"id": merchant.pk, "key": merchant.key, "timezone": "UTC", "currency": "USD"}
    assert dbt_invoke(["run"], merchants=[m], db=warehouse).success
    NotificationFactoryKwargs = {"merchant": merchant, "clerk_user_id": "u1", "kind": NotificationKind.DATA_STALE}
    Notification.objects.create(**NotificationFactoryKwargs, context={})
    uninstalled = timezone.now() - dt.timedelta(hours=1)
    Merchant.objects.filter(pk=merchant.pk).update(is_active=False, uninstalled_at=uninstalled)
    hold = hold_place(merchant_id=merchant.pk, matter="Audit", reason="tax", actor=STAFF, categories=["messages"])

    signed_post(client, {"shop_id": 1, "shop_domain": merchant.shop_domain}, topic=PrivacyTopic.SHOP_REDACT,
                shop=merchant.shop_domain)  # fmt: skip
    request = _request()
    assert request.state == PrivacyState.SCHEDULED
    assert request.not_before == uninstalled + dt.timedelta(hours=48)
    assert privacy_requests_sweep().enqueued == []  # not before its time

    assert privacy_request_process(request_id=request.pk, now=uninstalled + dt.timedelta(hours=48, seconds=1)) == (
        PrivacyState.PARTIALLY_EXEMPT
    )
    with psycopg.connect(**warehouse) as conn:
        assert conn.execute("select to_regnamespace('raw_gone')").fetchone()[0] is None
        assert (
            conn.execute("select count(*) from landed.shopify_orders where merchant_id = %s", [merchant.pk]).fetchone()[
                0
            ]
            == 0
        )
        assert (
            conn.execute("select count(*) from analytics.fct_orders where merchant_id = %s", [merchant.pk]).fetchone()[
                0
            ]
            == 0
        )
    assert Merchant.objects.filter(pk=merchant.pk, is_active=False).exists()  # the tombstone
    assert Notification.objects.filter(merchant=merchant).count() == 1  # held
    request.refresh_from_db()
    assert [e["category"] for e in request.exemptions] == ["messages"]
    assert HoldExemption.objects.filter(hold=hold, work="shop/redact").count() == 1
    assert request.result["erased"]["raw_gone"] == 1


@pytest.mark.django_db
def test_a_reinstalled_store_is_not_erased(client, eager, django_capture_on_commit_callbacks):  # noqa: F811
    merchant = MerchantFactory()  # active again: Shopify would not send it, but a late one must not erase
    with django_capture_on_commit_callbacks(execute=True):
        signed_post(
            client, {"shop_domain": merchant.shop_domain}, topic=PrivacyTopic.SHOP_REDACT, shop=merchant.shop_domain
        )
    request = _request()
    assert (
        privacy_request_process(request_id=request.pk, now=timezone.now() + dt.timedelta(days=3))
        == PrivacyState.IGNORED
    )


@pytest.mark.django_db
def test_staff_are_told_once_about_a_request_due_within_three_days_or_overdue():
    staff = get_user_model().objects.create_user("ops", "ops@example.com", "pw", is_staff=True)
    merchant = MerchantFactory()
    now = timezone.now()

    def make(due_in: dt.timedelta, state=PrivacyState.RECEIVED) -> PrivacyRequest:
        return PrivacyRequest.objects.create(
            topic=PrivacyTopic.CUSTOMERS_REDACT, merchant=merchant, shop_domain=merchant.shop_domain,
            received_at=now - dt.timedelta(minutes=1), due_at=now + due_in, state=state,
        )  # fmt: skip

    overdue, soon = make(-dt.timedelta(days=1), PrivacyState.FAILED), make(dt.timedelta(days=2))
    later, done = make(dt.timedelta(days=20)), make(dt.timedelta(days=1), PrivacyState.DONE)
    outcome = privacy_requests_sweep(now=now)
    assert sorted(outcome.alerted) == sorted([overdue.pk, soon.pk])
    alerts = Notification.objects.filter(kind=NotificationKind.PRIVACY_REQUEST_DUE, staff_user=staff)
    assert sorted(a.context["request_id"] for a in alerts) == sorted([overdue.pk, soon.pk])
    assert privacy_requests_sweep(now=now + dt.timedelta(hours=1)).alerted == []  # once per request
    assert PrivacyRequest.objects.get(pk=later.pk).alerted_at is None and done.alerted_at is None


@pytest.mark.django_db
def test_the_admin_lists_requests_with_their_deadline_and_filters_the_overdue(admin_client):
    merchant = MerchantFactory()
    now = timezone.now()
    late = PrivacyRequest.objects.create(
        topic=PrivacyTopic.CUSTOMERS_REDACT, merchant=merchant, shop_domain=merchant.shop_domain,
        customer_email="secret-person@example.com", received_at=now - dt.timedelta(days=31),
        due_at=now - dt.timedelta(days=1),
    )  # fmt: skip
    PrivacyRequest.objects.create(
        topic=PrivacyTopic.SHOP_REDACT, merchant=merchant, shop_domain=merchant.shop_domain, received_at=now,
        due_at=now + dt.timedelta(days=30),
    )  # fmt: skip
    page = admin_client.get("/admin/compliance/privacyrequest/?deadline=overdue")
    assert page.status_code == 200
    assert list(page.context["cl"].result_list) == [late]
    detail = admin_client.get(f"/admin/compliance/privacyrequest/{late.pk}/change/")
    assert detail.status_code == 200 and b"secret-person@example.com" not in detail.content


@pytest.mark.django_db(transaction=True)
def test_the_sandbox_sends_the_compliance_topics_signed_and_a_forged_one_is_refused(
    live_server,
    eager,  # noqa: F811
    sandbox,
    settings,
):
    from tests.connectors.providers import ProviderSandbox

    settings.SHOPIFY_API_SECRET = "shpss_sandbox_shopify_api_secret_0000"  # the sandbox app's secret
    providers = ProviderSandbox(sandbox)
    merchant = MerchantFactory(is_active=False)
    target = f"{live_server.url}/webhooks/shopify/"
    body = {"shop_id": 1, "shop_domain": merchant.shop_domain}
    forged = providers.shopify_webhook(merchant.shop_domain, "shop/redact", target_url=target, payload=body,
                                       forge=True, attempts=2)  # fmt: skip
    assert forged["deliveries"][0]["attempts"] == [401, 401]
    sent = providers.shopify_webhook(merchant.shop_domain, "shop/redact", target_url=target, payload=body, repeat=2)
    assert [d["attempts"] for d in sent["deliveries"]] == [[200], [200]]
    assert PrivacyRequest.objects.filter(topic=PrivacyTopic.SHOP_REDACT, merchant=merchant).count() == 1
