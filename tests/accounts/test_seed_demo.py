import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from accounts.models import Membership, Merchant

pytestmark = pytest.mark.django_db


def test_seed_demo_is_idempotent(tmp_path):
    password_file = tmp_path / "pw"
    call_command("seed_demo", password_file=str(password_file))
    snapshot = (
        list(Merchant.objects.values_list("key", "name", "shop_domain", "timezone", "currency")),
        list(Membership.objects.values_list("merchant__key", "clerk_user_id", "role")),
    )
    password = password_file.read_text().strip()

    call_command("seed_demo", password_file=str(password_file))

    assert (
        list(Merchant.objects.values_list("key", "name", "shop_domain", "timezone", "currency")),
        list(Membership.objects.values_list("merchant__key", "clerk_user_id", "role")),
    ) == snapshot
    assert Merchant.objects.count() == 2
    assert Membership.objects.filter(merchant__key="demo_store").count() == 3
    admin = get_user_model().objects.get(username="admin")
    assert admin.is_superuser and admin.is_staff and admin.check_password(password)


def test_seed_demo_refuses_outside_development(settings, tmp_path):
    settings.DEV = False
    with pytest.raises(CommandError, match="DJANGO_DEV=1"):
        call_command("seed_demo", password_file=str(tmp_path / "pw"))
    assert not Merchant.objects.exists()
