"""Audit events for things Django itself does: staff sign-in/out and every admin change.

Signals are the only hook that sees every admin change, including those made in admins of
third-party apps (celery-beat schedules), so the rule "no logic in signals" bends here: each
receiver only translates the signal into one `audit_event_record` call.
"""

from __future__ import annotations

from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry
from django.contrib.auth.signals import user_logged_in, user_logged_out, user_login_failed
from django.db.models.signals import post_save
from django.dispatch import receiver

from compliance.choices import ActorType
from compliance.services import Actor, audit_event_record, request_context

_ADMIN_ACTIONS = {ADDITION: "admin.object_added", CHANGE: "admin.object_changed", DELETION: "admin.object_deleted"}


def _staff_actor(user) -> Actor:
    return Actor(type=ActorType.STAFF, id=str(user.pk), label=user.get_username())


@receiver(user_logged_in)
def _staff_signed_in(sender, request, user, **kwargs):
    audit_event_record(action="staff.signed_in", actor=_staff_actor(user), **request_context(request))


@receiver(user_logged_out)
def _staff_signed_out(sender, request, user, **kwargs):
    if user is not None:
        audit_event_record(action="staff.signed_out", actor=_staff_actor(user), **request_context(request))


@receiver(user_login_failed)
def _staff_sign_in_failed(sender, credentials, request=None, **kwargs):
    # Only the username: the credentials dict also holds the attempted password.
    username = str(credentials.get("username", ""))[:150]
    context = request_context(request) if request is not None else {}
    audit_event_record(
        action="staff.sign_in_failed",
        actor=Actor(type=ActorType.ANONYMOUS, label=username),
        metadata={"username": username},
        **context,
    )


@receiver(post_save, sender=LogEntry)
def _admin_change(sender, instance: LogEntry, created: bool, **kwargs):
    if not created:
        return
    content_type = instance.content_type
    object_id = str(instance.object_id or "")
    merchant_id = None
    if content_type is not None and content_type.app_label == "accounts" and content_type.model == "merchant":
        merchant_id = int(object_id) if object_id.isdigit() else None
    audit_event_record(
        action=_ADMIN_ACTIONS.get(instance.action_flag, "admin.object_changed"),
        actor=_staff_actor(instance.user),
        target_type=f"{content_type.app_label}.{content_type.model}" if content_type else "",
        target_id=object_id,
        merchant_id=merchant_id,
        metadata={"object": instance.object_repr[:200], "change": instance.get_change_message()[:1000]},
    )
