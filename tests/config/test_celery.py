"""The broker's timing, checked against the real task definitions and a real Redis.

Redis hands a message that no worker acknowledged to another worker once the visibility timeout has
passed. That is how a killed worker's messages come back, and why every wait a message spends in a
worker (its countdown, a task running, a task reserved behind it) must be shorter than the timeout.
"""

from __future__ import annotations

import contextlib
import json
import os
import runpy
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import pytest
import redis
from celery.contrib.django.task import DjangoTask
from django.conf import settings

from config.boot import SettingsError
from config.celery import Task, app
from config.schedules import SCHEDULES
from notifications import services as notification_services
from notifications.tasks import notification_deliver_task

ROOT = settings.BASE_DIR
VISIBILITY = settings.BROKER_VISIBILITY_TIMEOUT_SECONDS
CAP = settings.TASK_MAX_COUNTDOWN_SECONDS


def _project_tasks() -> dict[str, Task]:
    app.loader.import_default_modules()
    tasks = {name: task for name, task in app.tasks.items() if not name.startswith("celery.")}
    assert {"notifications.notification_deliver", "notifications.notifications_sweep"} <= set(tasks)
    return tasks


def _hard_limit(task) -> float:
    return task.time_limit or app.conf.task_time_limit


def _schedule(task_name: str):
    [schedule] = [s for s in SCHEDULES if s.task == task_name]
    return schedule


# --- the relations, from the real definitions --------------------------------------------------------


def test_every_project_task_is_built_on_the_class_that_caps_waits():
    for name, task in _project_tasks().items():
        assert isinstance(task, Task), name
        assert isinstance(task, DjangoTask), name  # what Celery would give a Django project: delay_on_commit


def test_the_visibility_timeout_exceeds_every_wait_a_message_spends_in_a_worker():
    assert CAP < VISIBILITY
    for name, task in _project_tasks().items():
        hard = _hard_limit(task)
        assert hard, f"{name} has no time limit: it could hold its message past the visibility timeout"
        assert hard < VISIBILITY, name
        if task.soft_time_limit or app.conf.task_soft_time_limit:
            assert (task.soft_time_limit or app.conf.task_soft_time_limit) < hard, name
        # What Celery waits by itself (retry() without a countdown, autoretry's backoff) fits under the cap too;
        # an explicit countdown or eta is capped at apply_async (below).
        assert task.default_retry_delay <= CAP, name
        if getattr(task, "retry_backoff", False):
            assert getattr(task, "retry_backoff_max", 600) <= CAP, name


def test_notification_leases_outlast_a_live_worker_and_recovery_takes_minutes():
    deliver = notification_deliver_task
    lease = notification_services.SENDING_LEASE.total_seconds()
    # A worker that is still running never loses its claim: Celery kills it at the hard limit, and its
    # retries of the final UPDATE fit inside the soft limit.
    assert _hard_limit(deliver) < lease
    assert sum(notification_services.DB_RETRY_DELAYS) < deliver.soft_time_limit
    # A dead worker's rows go out again within one lease plus one sweep period.
    sweep = _schedule("notifications.notifications_sweep")
    assert lease + sweep.every_seconds <= 10 * 60
    # A sweep expires before the next one is due, and finishes before its message could be lent again.
    assert sweep.expires_seconds < sweep.every_seconds
    assert _hard_limit(app.tasks["notifications.notifications_sweep"]) < VISIBILITY
    # A retry that waits longer than the broker may hold it is parked in the row, and the sweeper's grace
    # for lost rows is shorter than that wait, so a parked row is found soon after it is due.
    assert notification_services.PENDING_GRACE.total_seconds() <= CAP


def _settings_with(monkeypatch, **env: str) -> dict:
    """config/settings.py evaluated afresh under `env` (a local-development environment otherwise)."""
    monkeypatch.setenv("ENV_FILE", os.devnull)
    monkeypatch.setenv("DJANGO_DEV", "1")
    for name in ("CELERY_BROKER_URL", "CELERY_BROKER_VISIBILITY_TIMEOUT", "CELERY_TASK_TIME_LIMIT"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(ROOT / "config" / "settings.py"))


def test_settings_give_a_redis_broker_the_visibility_timeout(monkeypatch):
    values = _settings_with(monkeypatch, REDIS_URL="redis://127.0.0.1:6379/0")
    assert values["CELERY_BROKER_TRANSPORT_OPTIONS"] == {"visibility_timeout": 30 * 60 + 5 * 60}
    values = _settings_with(monkeypatch, REDIS_URL="redis://127.0.0.1:6379/0", CELERY_TASK_TIME_LIMIT="3600")
    assert values["CELERY_BROKER_TRANSPORT_OPTIONS"] == {"visibility_timeout": 3600 + 5 * 60}
    values = _settings_with(monkeypatch, REDIS_URL="", CELERY_BROKER_URL="rediss://broker.example.com:6380/0")
    assert values["CELERY_BROKER_TRANSPORT_OPTIONS"] == {"visibility_timeout": 30 * 60 + 5 * 60}


def test_settings_refuse_a_visibility_timeout_a_running_or_waiting_task_outlasts(monkeypatch):
    # SettingsError: manage.py and gunicorn print its one line and exit 2 (tests/config/test_settings_boot.py).
    with pytest.raises(SettingsError) as stopped:
        _settings_with(monkeypatch, REDIS_URL="redis://127.0.0.1:6379/0", CELERY_BROKER_VISIBILITY_TIMEOUT="600")
    assert str(stopped.value) == (
        "CELERY_BROKER_VISIBILITY_TIMEOUT (600) must exceed CELERY_TASK_TIME_LIMIT (1800) and "
        "the longest task countdown (600), or running and waiting tasks are handed to a second worker"
    )


# --- a real Redis ---------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory):
    """A Redis of the test's own (redis-server on a free port) where the binary exists; else REDIS_URL."""
    binary = shutil.which("redis-server")
    if binary is None:
        url = os.environ.get("REDIS_URL")
        if not url:
            pytest.fail(
                "tests/config/test_celery.py needs Redis: install redis-server (Debian: apt-get install "
                "redis-server) or set REDIS_URL to a server these tests may write to (keys are prefixed per run)"
            )
        yield url
        return
    port = _free_port()
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(tmp_path_factory.mktemp("redis"))],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"redis://127.0.0.1:{port}/0"
    try:
        client = redis.Redis.from_url(url)
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.ConnectionError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.05)
        yield url
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture
def broker(redis_url):
    """The broker options the settings give Redis, with a short visibility timeout and keys of this test's own."""
    prefix = f"test-celery-{os.getpid()}-{time.monotonic_ns()}:"
    options = {"visibility_timeout": 2, "global_keyprefix": prefix}
    yield redis_url, options
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)


def _declare_default_queue(connection):
    queue = app.amqp.queues[app.conf.task_default_queue]
    with connection.channel() as channel:
        queue(channel).declare()
    return queue


def test_a_countdown_longer_than_the_cap_is_cut_to_it_on_the_way_to_the_broker(broker):
    url, options = broker
    with app.connection_for_write(url, transport_options=options) as connection:
        queue = _declare_default_queue(connection)
        before = datetime.now(UTC)
        notification_deliver_task.apply_async(args=[1], countdown=6 * 60 * 60, connection=connection)
        notification_deliver_task.apply_async(args=[2], eta=before + timedelta(days=1), connection=connection)
        notification_deliver_task.apply_async(args=[3], countdown=30, connection=connection)
        etas = {}
        with connection.channel() as channel:
            for _ in range(3):
                message = queue(channel).get(no_ack=True, accept=["json"])
                etas[message.payload[0][0]] = datetime.fromisoformat(message.headers["eta"])
    for notification_id in (1, 2):
        assert (
            before + timedelta(seconds=CAP - 5) <= etas[notification_id] <= datetime.now(UTC) + timedelta(seconds=CAP)
        )
    assert etas[3] <= datetime.now(UTC) + timedelta(seconds=30)


CONSUMER = """
import json, sys, time
from kombu import Connection, Exchange, Queue

url, options = sys.argv[1], json.loads(sys.argv[2])
with Connection(url, transport_options=options) as connection:
    queue = Queue("celery", Exchange("celery", type="direct"), "celery")
    received = []
    with connection.Consumer(queue, callbacks=[lambda body, message: received.append(message)], accept=["json"]):
        while not received:
            connection.drain_events(timeout=10)
    print(received[0].headers["id"], flush=True)
    time.sleep(600)  # "running" the task: never acknowledged, until the process is killed
"""


def test_a_message_a_killed_worker_left_unacknowledged_is_delivered_again_after_the_visibility_timeout(broker):
    url, options = broker
    client = redis.Redis.from_url(url)
    prefix = options["global_keyprefix"]
    with app.connection_for_write(url, transport_options=options) as connection:
        queue = _declare_default_queue(connection)
        task_id = notification_deliver_task.apply_async(args=[42], connection=connection).id

        worker = subprocess.Popen(
            [sys.executable, "-c", CONSUMER, url, json.dumps(options)], stdout=subprocess.PIPE, text=True
        )
        try:
            assert worker.stdout.readline().strip() == task_id
            os.kill(worker.pid, signal.SIGKILL)  # no warm shutdown: nothing hands the message back
            worker.wait(timeout=10)
        finally:
            if worker.poll() is None:
                worker.kill()
                worker.wait(timeout=10)

        # The message is neither queued nor gone: Redis keeps it as unacknowledged, lent to a dead consumer.
        assert client.llen(f"{prefix}celery") == 0
        assert client.hlen(f"{prefix}unacked") == 1

        # Any live consumer of the queue gives it back once the visibility timeout has passed.
        redelivered = []
        with connection.Consumer(queue, callbacks=[lambda body, message: redelivered.append(message)], accept=["json"]):
            deadline = time.monotonic() + 60
            while not redelivered and time.monotonic() < deadline:
                with contextlib.suppress(TimeoutError):  # nothing yet: poll again (each empty poll may restore)
                    connection.drain_events(timeout=0.25)
            assert redelivered, "the message did not come back within a minute"
            [message] = redelivered
            assert message.headers["id"] == task_id
            assert message.payload[0] == [42]
            message.ack()
    assert client.hlen(f"{prefix}unacked") == 0
