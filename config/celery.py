"""The Celery application: configured from Django settings (`CELERY_*`), tasks found in each app."""

import logging
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

from celery import Celery
from celery.contrib.django.task import DjangoTask

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

logger = logging.getLogger(__name__)

COUNTDOWN_CAPPED = "task %s asked to wait %.0fs in the broker; capped at %ss (keep longer waits in the database)"


class Task(DjangoTask):
    """Every project task (Celery's Django task: `delay_on_commit`). A countdown or eta longer than
    `TASK_MAX_COUNTDOWN_SECONDS` is cut to it.

    Redis lends a waiting message to a worker unacknowledged, and lends it again to another worker once the
    visibility timeout passes: a wait longer than that would run the task twice (and again each timeout).
    The visibility timeout is set above the cap (config/settings.py), so capping here, in the one place every
    `delay`, `apply_async` and `retry` goes through, keeps that true whatever a task or a provider's
    Retry-After asks. Running early is safe for our tasks: each re-checks its row (docs/async.md); a task
    that must wait longer keeps the time in its own row, as the notification outbox does.
    """

    def apply_async(self, args=None, kwargs=None, task_id=None, producer=None, link=None, link_error=None, **options):
        _cap_wait(self.name, options)
        return super().apply_async(args, kwargs, task_id, producer, link, link_error, **options)


def _cap_wait(name: str, options: dict) -> None:
    from django.conf import settings

    limit = settings.TASK_MAX_COUNTDOWN_SECONDS
    countdown, eta = options.get("countdown"), options.get("eta")
    if countdown is not None and countdown > limit:
        logger.warning(COUNTDOWN_CAPPED, name, countdown, limit)
        options["countdown"] = limit
    if eta is not None:
        now = datetime.now(UTC)
        when = datetime.fromisoformat(eta) if isinstance(eta, str) else eta
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        if (when - now).total_seconds() > limit:
            logger.warning(COUNTDOWN_CAPPED, name, (when - now).total_seconds(), limit)
            options["eta"] = now + timedelta(seconds=limit)


app = Celery("config", task_cls=Task)
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_configure.connect
def _create_filesystem_broker_folders(sender, **kwargs) -> None:
    # The filesystem transport (local development without Redis) fails on folders that do not exist.
    options = sender.conf.broker_transport_options or {}
    for key in ("data_folder_in", "data_folder_out", "processed_folder", "control_folder"):
        if options.get(key):
            Path(options[key]).mkdir(parents=True, exist_ok=True)
