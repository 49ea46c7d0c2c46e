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
SCHEDULES: list[Schedule] = []


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
