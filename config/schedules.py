"""Every periodic job in one place, each with the reason it runs when it does.

`schedules_sync()` writes them into django-celery-beat's tables idempotently (update_or_create by
name), so the database scheduler — editable in admin — starts from this list on every deploy. An
operator's edit of a schedule's timing in admin survives until the definition here changes.
Each entry expires before its next run so a backed-up queue does not pile up duplicates.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from django.db import transaction


@dataclass(frozen=True)
class Schedule:
    name: str
    task: str
    why: str
    crontab: dict[str, str] | None = None  # minute, hour, day_of_week, day_of_month, month_of_year
    every_seconds: int | None = None
    expires_seconds: int | None = None
    kwargs: dict = field(default_factory=dict)


# One entry per job, named "app:<what>", with its why. Apps' tasks are referenced by their dotted name.
SCHEDULES: list[Schedule] = [
    Schedule(
        name="app:dbt-build-nightly",
        task="analytics.run_dbt",
        kwargs={"args": ["build"]},
        crontab={"minute": "15", "hour": "3"},
        expires_seconds=6 * 60 * 60,
        why="Rebuild every model and run the tests once a day, after Airbyte's overnight syncs. Finding the dbt lock "
        "held (a long coalesced build) it asks again every 5 minutes until the 6-hour expiry, and only then is "
        "recorded `skipped` and staff told: a long build delays the nightly build, never loses it silently.",
    ),
    Schedule(
        name="app:dbt-build-unbuilt-sweep",
        task="analytics.dbt_build_coalesced",
        every_seconds=5 * 60,
        expires_seconds=4 * 60,
        why="Each successful sync asks for the coalesced build itself; this catches the requests lost on the way "
        "(a broker outage at the sync's commit, a worker killed mid-build), so no synced data waits for the "
        "nightly build. With nothing unbuilt it is one indexed query under the dbt lock. It also tells staff, "
        "once per run, of a run holding the dbt lock longer than DBT_RUN_OVERDUE_MINUTES (60), and records skipped "
        "a scheduled run whose wait for the lock lost its retry.",
    ),
    Schedule(
        name="app:dbt-test-weekly",
        task="analytics.run_dbt",
        kwargs={"args": ["test"]},
        crontab={"minute": "45", "hour": "5", "day_of_week": "0"},
        expires_seconds=6 * 60 * 60,
        why="The nightly build tests only the rows it wrote; once a week every test runs over every row. It waits "
        "for the dbt lock as the nightly build does.",
    ),
    Schedule(
        name="app:data-freshness-hourly",
        task="analytics.data_freshness_check",
        crontab={"minute": "5"},
        expires_seconds=50 * 60,
        why="Notice a stopped sync within the hour: a connected source with no data landed for 48 hours alerts "
        "staff and the store's admins (once a day per store and source). One SQL statement over what ingestion "
        "records, milliseconds for every store, and no dbt lock — it replaced the hourly `dbt source freshness`, "
        "which took 26 minutes at 200 stores under the lock and made the nightly build skip.",
    ),
    Schedule(
        name="app:notifications-sweep",
        task="notifications.notifications_sweep",
        every_seconds=5 * 60,
        expires_seconds=4 * 60,
        why="Re-enqueue notifications whose task was lost, whose worker died (a 5-minute lease: sent again within "
        "10 minutes) or whose retry waits longer than the broker may hold it, so no email stays unsent; a claim "
        "the mail server already accepted is marked sent, not sent again.",
    ),
    Schedule(
        name="app:credential-refresh-sweep",
        task="connectors.credential_refresh_sweep",
        every_seconds=5 * 60,
        expires_seconds=4 * 60,
        why="Renew OAuth tokens before they expire (Google 10 min ahead, Meta 7 days ahead), so no sync "
        "finds an expired token and no merchant has to sign in again; every 5 min fits Google's 1-hour tokens.",
    ),
    Schedule(
        name="app:ingestion-sweep",
        task="ingestion.sweep",
        every_seconds=60,
        expires_seconds=50,
        why="Trigger each store's Airbyte connections when due (hourly, each at a minute of its own so a thousand "
        "stores do not all start at :00), follow every job not yet finished (a killed worker's too) and retry "
        "failed ones; every minute so a slot is kept to the minute and a lost poll is picked up within two.",
    ),
    Schedule(
        name="app:agency-invitations-sweep",
        task="agencies.agency_invitations_sweep",
        every_seconds=5 * 60,
        expires_seconds=4 * 60,
        why="Send queued agency invitations whose task was lost or whose wait for Clerk's hourly invitation budget "
        "outlived its retries; the send locks the row, so a row a task is still sending is not sent twice.",
    ),
    Schedule(
        name="app:agency-invitations-expire",
        task="agencies.agency_invitations_expire",
        crontab={"minute": "20"},
        expires_seconds=50 * 60,
        why="Clerk sends no webhook when an invitation lapses; hourly, pending invitations past their expiry are "
        "shown expired (one UPDATE over an indexed status).",
    ),
    Schedule(
        name="app:agency-members-reconcile-nightly",
        task="agencies.agency_members_reconcile_all",
        crontab={"minute": "40", "hour": "2"},
        expires_seconds=6 * 60 * 60,
        why="Clerk's webhooks are not guaranteed: once a night each agency's memberships are paged from Clerk and "
        "the mirror fixed (members added, roles changed, leavers removed and their tokens revoked). Before the "
        "03:15 dbt build, and one task per agency so one slow organization does not hold up the rest.",
    ),
]


@transaction.atomic
def schedules_sync() -> list[str]:
    """Create or update the beat rows for SCHEDULES; disable rows we created that are no longer listed."""
    from django_celery_beat.models import CrontabSchedule, IntervalSchedule, PeriodicTask

    names = []
    for schedule in SCHEDULES:
        if not schedule.name.startswith("app:"):
            raise ValueError(f"schedule names start with 'app:' (so retired ones can be found): {schedule.name}")
        defaults = {
            "task": schedule.task,
            "kwargs": json.dumps(schedule.kwargs),
            "description": schedule.why,
            "expire_seconds": schedule.expires_seconds,
            "enabled": True,
            "crontab": None,
            "interval": None,
        }
        if schedule.crontab is not None:
            crontab, _ = CrontabSchedule.objects.get_or_create(**{"timezone": "UTC", **schedule.crontab})
            defaults["crontab"] = crontab
        elif schedule.every_seconds is not None:
            interval, _ = IntervalSchedule.objects.get_or_create(
                every=schedule.every_seconds, period=IntervalSchedule.SECONDS
            )
            defaults["interval"] = interval
        else:
            raise ValueError(f"schedule {schedule.name} needs a crontab or an interval")
        PeriodicTask.objects.update_or_create(name=schedule.name, defaults=defaults)
        names.append(schedule.name)
    PeriodicTask.objects.filter(name__startswith="app:").exclude(name__in=names).update(enabled=False)
    return names
