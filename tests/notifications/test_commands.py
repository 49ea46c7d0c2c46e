from __future__ import annotations

from io import StringIO
from unittest import mock

import pytest
from django.core.management import CommandError, call_command

from accounts.choices import Role
from notifications.models import Notification
from tests.accounts.factories import MembershipFactory

pytestmark = pytest.mark.django_db


def test_notifies_owners_and_admins_and_enqueues(django_capture_on_commit_callbacks):
    owner = MembershipFactory(role=Role.OWNER)
    MembershipFactory(merchant=owner.merchant, role=Role.VIEWER)
    out = StringIO()
    with (
        mock.patch("notifications.tasks.notification_deliver_task.delay") as delay,
        django_capture_on_commit_callbacks(execute=True),
    ):
        call_command(
            "notify_merchant_admins",
            owner.merchant.key,
            "--kind",
            "data_stale",
            "--context",
            '{"source": "Meta"}',
            stdout=out,
        )
    notification = Notification.objects.get()
    assert notification.clerk_user_id == owner.clerk_user_id
    assert out.getvalue() == f"notification {notification.pk} → {owner.clerk_user_id}: pending\n"
    delay.assert_called_once_with(notification.pk)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["nope", "--kind", "data_stale"], "no merchant 'nope'"),
        (["{key}", "--kind", "data_stale", "--context", "[1]"], "must be a JSON object"),
        (["{key}", "--kind", "data_stale", "--context", "{"], "--context is not JSON"),
        (["{key}", "--kind", "data_stale", "--context", '{"token": "x"}'], "must not carry secrets"),
    ],
)
def test_bad_arguments_fail_clearly(args, message):
    membership = MembershipFactory(role=Role.OWNER)
    with pytest.raises(CommandError, match=message):
        call_command("notify_merchant_admins", *[a.replace("{key}", membership.merchant.key) for a in args])
    assert not Notification.objects.exists()


def test_a_merchant_without_admins_is_an_error():
    membership = MembershipFactory(role=Role.VIEWER)
    with pytest.raises(CommandError, match="has no owner or admin"):
        call_command("notify_merchant_admins", str(membership.merchant.pk), "--kind", "export_ready")
