import factory

from notifications.choices import NotificationKind, NotificationStatus
from notifications.models import Notification
from tests.accounts.factories import MerchantFactory


class NotificationFactory(factory.django.DjangoModelFactory):
    """A row as notification_create would store it, for tests of delivery and admin (no enqueue)."""

    class Meta:
        model = Notification

    merchant = factory.SubFactory(MerchantFactory)
    clerk_user_id = factory.Sequence(lambda n: f"user_notif_{n}")
    kind = NotificationKind.DATA_STALE
    subject = "Data is stale"
    body_text = "Text body"
    body_html = "<p>HTML body</p>"
    status = NotificationStatus.PENDING
