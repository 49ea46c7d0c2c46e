"""The sweeper, the refresh task, and the async rules every task of the project must follow."""

from __future__ import annotations

import datetime as dt
import inspect
import typing
from unittest import mock

import pytest
from django.utils import timezone

from config.celery import app
from connectors import services, tasks
from connectors.choices import CredentialStatus, Provider
from connectors.selectors import REFRESH_RESCUE_GRACE, credential_ids_due_for_refresh
from tests.connectors.factories import CredentialFactory, google_credential

pytestmark = pytest.mark.django_db

PLAIN = {int, str, float, bool, type(None), list, dict, tuple}


def test_sweeper_selects_only_credentials_due_in_their_window():
    now = timezone.now()
    google_due = CredentialFactory(provider=Provider.GOOGLE_ADS, expires_at=now + dt.timedelta(minutes=5))
    CredentialFactory(provider=Provider.GOOGLE_ADS, expires_at=now + dt.timedelta(minutes=50))
    meta_due = CredentialFactory(provider=Provider.META, expires_at=now + dt.timedelta(days=6))
    CredentialFactory(provider=Provider.META, expires_at=now + dt.timedelta(days=20))
    CredentialFactory(provider=Provider.META, expires_at=None)  # system user: never
    CredentialFactory(provider=Provider.GOOGLE_ADS, expires_at=now, status=CredentialStatus.NEEDS_REAUTH)
    CredentialFactory(provider=Provider.GOOGLE_ADS, expires_at=now, next_attempt_at=now + dt.timedelta(minutes=5))
    CredentialFactory(provider=Provider.KLAVIYO, auth_kind="api_key", api_key="pk_x", access_token="", expires_at=None)

    assert sorted(credential_ids_due_for_refresh()) == sorted([google_due.pk, meta_due.pk])


def test_sweeper_enqueues_one_task_per_credential_after_commit(django_capture_on_commit_callbacks):
    due = [CredentialFactory(expires_at=timezone.now()) for _ in range(3)]
    with mock.patch.object(tasks.credential_refresh_task, "apply_async") as apply_async:
        with django_capture_on_commit_callbacks(execute=False) as callbacks:
            services.credential_refresh_sweep()
        assert apply_async.call_count == 0  # nothing leaves before the transaction commits
        for callback in callbacks:
            callback()
    assert sorted(call.kwargs["args"][0] if "args" in call.kwargs else call.args[0][0]
                  for call in apply_async.call_args_list) == sorted(c.pk for c in due)  # fmt: skip


def test_refresh_task_refreshes_and_is_idempotent(providers):
    credential = google_credential(providers, expired=True)
    tasks.credential_refresh_task.apply(args=[credential.pk]).get()
    tasks.credential_refresh_task.apply(args=[credential.pk]).get()
    assert providers.calls("google.oauth.token") == 1


def test_refresh_task_ignores_a_deleted_credential_and_terminal_states(providers):
    tasks.credential_refresh_task.apply(args=[999_999]).get()
    credential = google_credential(providers, expired=True, status=CredentialStatus.NEEDS_REAUTH)
    tasks.credential_refresh_task.apply(args=[credential.pk]).get()
    assert providers.calls("google.oauth.token") == 0


def test_refresh_task_retries_transient_failures_with_a_countdown(providers):
    credential = google_credential(providers, expired=True)
    providers.control.fault("google.oauth.token", 503)
    retry_patch = mock.patch.object(tasks.credential_refresh_task, "retry", side_effect=RuntimeError("retry"))
    with retry_patch as retry, pytest.raises(RuntimeError, match="retry"):
        tasks.credential_refresh_task.run(credential.pk)
    countdown = retry.call_args.kwargs["countdown"]
    assert 15 <= countdown <= 30


def test_a_retry_after_longer_than_the_broker_holds_is_left_to_the_sweeper(providers, settings):
    credential = google_credential(providers, expired=True)
    providers.control.fault("google.oauth.token", 429, headers={"Retry-After": "3600"})
    with mock.patch.object(tasks.credential_refresh_task, "retry") as retry:
        tasks.credential_refresh_task.run(credential.pk)
    assert retry.call_count == 0  # no message parked in the broker past its visibility timeout
    credential.refresh_from_db()
    assert credential.next_attempt_at >= timezone.now() + dt.timedelta(seconds=3590)
    assert credential.pk not in credential_ids_due_for_refresh()
    # One clock (issue 17): the sweeper rescues the parked row once it is overdue, never before its time.
    assert credential.pk not in credential_ids_due_for_refresh(now=credential.next_attempt_at)
    assert credential.pk in credential_ids_due_for_refresh(now=credential.next_attempt_at + REFRESH_RESCUE_GRACE)


def _project_tasks():
    for name, task in sorted(app.tasks.items()):
        module = getattr(task.run, "__module__", "") or ""
        if module.split(".")[0] in {"connectors", "notifications", "analytics", "compliance", "accounts",
                                    "agencies", "dashboards"}:  # fmt: skip
            yield name, task


def test_every_project_task_takes_ids_and_plain_values_only():
    found = list(_project_tasks())
    assert any(name.startswith("connectors.") for name, _ in found)
    for name, task in found:
        hints = typing.get_type_hints(task.run)
        for parameter in inspect.signature(task.run).parameters.values():
            if parameter.name in ("self", "args", "kwargs"):
                continue
            hint = hints.get(parameter.name)
            assert hint is not None, f"{name}({parameter.name}) has no type hint"
            origins = {typing.get_origin(a) or a for a in (typing.get_args(hint) or (hint,))}
            origins.add(typing.get_origin(hint) or hint)
            origins.discard(typing.Union)
            import types

            origins.discard(types.UnionType)
            assert origins <= PLAIN, f"{name}({parameter.name}: {hint}) must take plain values, not {origins - PLAIN}"


def test_connectors_never_enqueue_outside_on_commit():
    """Source check: every enqueue in connectors goes through delay_on_commit (or runs inside on_commit)."""
    import pathlib

    import connectors

    root = pathlib.Path(connectors.__file__).parent
    for path in root.rglob("*.py"):
        text = path.read_text()
        for bad in (".delay(", ".apply_async("):
            assert bad not in text, f"{path.relative_to(root)} enqueues with {bad} instead of delay_on_commit"


def test_sweep_purges_oauth_attempts_older_than_a_day():
    from connectors.models import OAuthState
    from tests.accounts.factories import MerchantFactory

    merchant = MerchantFactory()
    old = OAuthState.objects.create(nonce="old", merchant=merchant, clerk_user_id="u", provider="meta")
    OAuthState.objects.filter(pk=old.pk).update(created_at=timezone.now() - dt.timedelta(days=2))
    OAuthState.objects.create(nonce="new", merchant=merchant, clerk_user_id="u", provider="meta")
    services.credential_refresh_sweep()
    assert list(OAuthState.objects.values_list("nonce", flat=True)) == ["new"]
