import pytest
from django.core.exceptions import ValidationError

from accounts.choices import Role
from accounts.models import Merchant
from accounts.services import membership_grant, merchant_create
from accounts.validators import CURRENCY_INVALID, KEY_INVALID, SHOP_DOMAIN_INVALID, TIMEZONE_INVALID
from compliance.models import AuditEvent
from compliance.services import Actor

pytestmark = pytest.mark.django_db

VALID = {
    "name": "Acme",
    "shop_domain": "acme-store.myshopify.com",
    "timezone": "Europe/Paris",
    "currency": "EUR",
    "key": "acme",
}


def test_merchant_create_validates_and_audits():
    merchant = merchant_create(**VALID, actor=Actor.system("test"))
    assert merchant.raw_schema == "raw_acme"
    event = AuditEvent.objects.get(action="merchant.created")
    assert event.merchant_id == merchant.pk
    assert event.target_id == str(merchant.pk)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("shop_domain", "acme.com", SHOP_DOMAIN_INVALID),
        ("shop_domain", "-acme.myshopify.com", SHOP_DOMAIN_INVALID),
        ("shop_domain", "acme.myshopify.com.evil.io", SHOP_DOMAIN_INVALID),
        ("timezone", "Mars/Olympus", TIMEZONE_INVALID),
        ("timezone", "Europe/Atlantis", TIMEZONE_INVALID),
        ("currency", "XYZ", CURRENCY_INVALID),
        ("currency", "usd", CURRENCY_INVALID),
        ("key", "Acme", KEY_INVALID),
        ("key", "1acme", KEY_INVALID),
        ("key", "acme;drop", KEY_INVALID),
    ],
)
def test_merchant_create_rejects_bad_fields_and_writes_nothing(field, value, message):
    with pytest.raises(ValidationError) as excinfo:
        merchant_create(**{**VALID, field: value}, actor=Actor.system("test"))
    assert message in excinfo.value.message_dict[field]
    assert not Merchant.objects.exists()
    assert not AuditEvent.objects.exists()


def test_shop_domain_is_unique_case_insensitively():
    merchant_create(**VALID, actor=Actor.system("test"))
    with pytest.raises(ValidationError) as excinfo:
        merchant_create(**{**VALID, "shop_domain": "ACME-STORE.myshopify.com", "key": "acme2"}, actor=Actor.system("t"))
    assert "shop_domain" in excinfo.value.message_dict


def test_membership_grant_twice_changes_the_role():
    merchant = merchant_create(**VALID, actor=Actor.system("test"))
    first = membership_grant(merchant=merchant, clerk_user_id="user_x", role=Role.VIEWER, actor=Actor.system("t"))
    second = membership_grant(merchant=merchant, clerk_user_id="user_x", role=Role.ADMIN, actor=Actor.system("t"))
    assert first.pk == second.pk
    assert second.role == Role.ADMIN
    assert list(AuditEvent.objects.filter(target_type="accounts.membership").values_list("action", flat=True)) == [
        "membership.role_changed",
        "membership.granted",
    ]
