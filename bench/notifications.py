"""Benchmark: 10,000 notifications to 500 users, through the Clerk sandbox and the local SMTP sink.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python bench/notifications.py \
        [--notifications 10000] [--users 500] [--workers N] [--keep]

Creates its own database on DATABASE_URL's server (dropped at the end unless --keep), starts
``python -m sandbox --smtp-port ...`` as a separate process, creates the notifications with
``notification_create`` (enqueueing switched off), then delivers them with N worker processes, each
running the real Celery task body (``notification_deliver_task.apply``) one notification at a time —
Celery's default prefork pool: concurrency = CPU count, prefetch 1. Cache: the project's default
(Redis when REDIS_URL is set, else the database cache). Prints ``name: value unit`` lines.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import queue
import secrets
import subprocess
import sys
import threading
import time
from pathlib import Path
from unittest import mock

import psycopg
import requests
from psycopg.conninfo import conninfo_to_dict, make_conninfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from _common import free_port  # noqa: E402


def start_sandbox(smtp_port: int) -> tuple[subprocess.Popen, str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "sandbox", "--port", "0", "--smtp-port", str(smtp_port)],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,  # one log line per request; 10,000 of them would fill a pipe
        text=True,
    )
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            line = lines.get(timeout=0.5)
        except queue.Empty:
            continue
        if line.startswith("sandbox listening on "):
            return proc, line.removeprefix("sandbox listening on ").strip()
    proc.kill()
    sys.exit("the sandbox did not start")


def _worker_init() -> None:
    from django.db import connections

    connections.close_all()  # never share the parent's sockets across a fork


def _deliver(notification_id: int) -> str | None:
    from notifications.tasks import notification_deliver_task

    return notification_deliver_task.apply(args=[notification_id]).get(disable_sync_subtasks=False)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notifications", type=int, default=10_000)
    parser.add_argument("--users", type=int, default=500)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="default: CPU count, like Celery")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    args = parser.parse_args()

    url = os.environ.get("DATABASE_URL") or sys.exit("DATABASE_URL is not set")
    params = conninfo_to_dict(url)
    bench_db = f"bench_notifications_{secrets.token_hex(4)}"
    admin = make_conninfo(url, dbname=params.get("dbname") or "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{bench_db}"')
    smtp_port = free_port()
    sandbox, sandbox_url = start_sandbox(smtp_port)
    try:
        run(args, url.rsplit("/", 1)[0] + "/" + bench_db, sandbox_url, smtp_port)
    finally:
        sandbox.terminate()
        sandbox.wait(timeout=15)
        if not args.keep:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE "{bench_db}" WITH (FORCE)')


def run(args: argparse.Namespace, database_url: str, sandbox_url: str, smtp_port: int) -> None:
    os.environ.update(
        DJANGO_DEV="1",
        DATABASE_URL=database_url,
        SANDBOX_URL=sandbox_url,
        CLERK_API_URL=f"{sandbox_url}/clerk/v1",
        CLERK_SECRET_KEY="sk_test_bench000000000000",
        EMAIL_URL=f"smtp://127.0.0.1:{smtp_port}",
        LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    import django

    django.setup()
    from django.conf import settings
    from django.core.management import call_command

    from accounts.models import Merchant
    from notifications.choices import NotificationKind, NotificationStatus
    from notifications.models import Notification
    from notifications.services import notification_create
    from sandbox import SandboxControl

    call_command("migrate", "--no-input", verbosity=0)
    if "DatabaseCache" in settings.CACHES["default"]["BACKEND"]:
        call_command("createcachetable", verbosity=0)

    control = SandboxControl(sandbox_url)
    users = [f"user_bench_{i:04d}" for i in range(args.users)]
    for user in users:
        control.seed_clerk_user(user, first_name="Bench", email_addresses=[f"{user}@example.com"])
    merchant = Merchant.objects.create(
        name="Bench Store", shop_domain="bench.myshopify.com", timezone="UTC", currency="USD", key="bench"
    )
    kinds = [NotificationKind.DATA_STALE, NotificationKind.EXPORT_READY, NotificationKind.CREDENTIAL_NEEDS_REAUTH]

    started = time.perf_counter()
    with mock.patch("notifications.services._enqueue"):
        ids = [
            notification_create(
                merchant=merchant,
                clerk_user_id=users[i % len(users)],
                kind=kinds[i % len(kinds)],
                context={"source": "Meta Ads", "export_name": f"export {i}", "provider": "Google Ads"},
            ).pk
            for i in range(args.notifications)
        ]
    create_seconds = time.perf_counter() - started

    from django.db import connections

    connections.close_all()
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(args.workers, initializer=_worker_init) as pool:
        statuses = list(pool.imap_unordered(_deliver, ids, chunksize=1))
    deliver_seconds = time.perf_counter() - started

    lookups = len(control.calls("clerk.users.get"))
    mail = requests.get(f"{sandbox_url}/_control/mail", timeout=60).json()
    received = mail[-1]["id"] if mail else 0  # ids count from 1; the list keeps only the newest messages
    by_status = {s: Notification.objects.filter(status=s).count() for s in NotificationStatus.values}
    print(f"notifications: {args.notifications} to {len(users)} users, {args.workers} worker processes")
    # Other work on the machine (Postgres, the sandbox and the SMTP sink share it) moves these figures.
    print(f"load_average_1m: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    print(f"create_rate: {args.notifications / create_seconds:.0f} notifications/s")
    print(f"clerk_lookups: {lookups} (goal <= {len(users)})")
    print(f"send_rate: {args.notifications / deliver_seconds:.0f} sends/s (goal >= 50)")
    print(f"deliver_seconds: {deliver_seconds:.1f} s")
    print(f"smtp_received: {received}")
    print(f"statuses: { {k: v for k, v in by_status.items() if v} }")
    print(f"task_results_sent: {sum(s == NotificationStatus.SENT for s in statuses)}")


if __name__ == "__main__":
    main()
