"""Never lose an event answered 2xx: the database refusing, unreachable, or its connections killed mid-burst.

The design (docs/rfcs/session-tracking.md, Durability): 200 only once the batch's one INSERT committed; any
database failure is a 503 with Retry-After and nothing half-stored; the pixel sends the same batch again and
the unique event_id makes the resend land once.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import quote

import pytest
import requests
from django.db import connections

from collector import intake
from tests.collector.conftest import CHROME, batch, event, stored, wsgi_call

pytestmark = pytest.mark.django_db(transaction=True, databases=["default", "warehouse"])


@pytest.fixture(autouse=True)
def _drop_raw_schema(store, owner_db):
    """Transactional tests commit; the store's raw schema is no Django table, so flush would leave it."""
    yield
    owner_db.execute(f'drop schema if exists "raw_{store.key}" cascade')


def test_a_table_the_app_may_not_write_is_503_with_retry_after_and_the_resend_is_stored_once(
    store, write_key, owner_db, settings
):
    assert wsgi_call(batch(write_key, [event(0)]))[0] == 200  # the store's table exists now
    table = f'"raw_{store.key}".web_events'
    role = settings.DATABASE_APP_ROLE
    resent = batch(write_key, [event(n) for n in range(1, 21)])
    owner_db.execute(f'revoke insert on {table} from "{role}"')
    try:
        status, headers, body, _ = wsgi_call(resent)
    finally:
        owner_db.execute(f'grant insert on {table} to "{role}"')
    assert (status, body) == (503, {"error": intake.STORE_FAILED})
    assert headers["Retry-After"] == str(intake.STORE_RETRY_AFTER_SECONDS)
    assert len(stored(store)) == 1  # nothing of the refused batch
    assert wsgi_call(resent)[2]["accepted"] == 20
    assert wsgi_call(resent)[2] == {"accepted": 0, "duplicate": 20, "no_consent": 0, "bot": 0}
    assert len(stored(store)) == 21


def test_a_database_on_a_closed_port_is_503_and_nothing_is_answered_2xx(store, write_key):
    saved = {alias: dict(connections[alias].settings_dict) for alias in ("default", "warehouse")}
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]  # nobody listens once the probe is closed
    try:
        for alias in saved:
            connections[alias].close()
            connections[alias].settings_dict.update(HOST="127.0.0.1", PORT=closed_port)
            connections[alias].settings_dict["OPTIONS"] = {
                k: v for k, v in saved[alias]["OPTIONS"].items() if k != "host"
            } | {"connect_timeout": 2}
        status, headers, body, _ = wsgi_call(batch(write_key, [event(1)]))
    finally:
        for alias, settings_dict in saved.items():
            connections[alias].close()
            connections[alias].settings_dict.clear()
            connections[alias].settings_dict.update(settings_dict)
    assert (status, body) == (503, {"error": intake.STORE_FAILED}) and headers["Retry-After"] == "2"
    assert stored(store) == []


def test_a_connection_killed_between_batches_is_reconnected_without_an_error(store, write_key, owner_db, settings):
    assert wsgi_call(batch(write_key, [event(1)]))[0] == 200
    with connections[intake._raw_alias()].cursor() as cursor:
        cursor.execute("select pg_backend_pid()")
        (pid,) = cursor.fetchone()
    assert owner_db.execute("select pg_terminate_backend(%s)", [pid]).fetchone()[0]
    intake.write_keys_forget()
    status, _, body, _ = wsgi_call(batch(write_key, [event(2)]))
    assert (status, body["accepted"]) == (200, 1)
    assert [r["seq"] for r in stored(store)] == [1, 2]


# --- a burst under gunicorn (as `make run` serves), the database connections killed in the middle ----------------


@pytest.fixture
def gunicorn_url(settings):
    db = connections["default"].settings_dict
    host = db["HOST"] or db["OPTIONS"].get("host") or ""
    user = quote(db["USER"], safe="") + (":" + quote(db["PASSWORD"], safe="") if db["PASSWORD"] else "")
    if host.startswith("/"):
        url = f"postgres://{user}@/{db['NAME']}?host={quote(host)}"
    else:
        url = f"postgres://{user}@{host}:{db['PORT'] or 5432}/{db['NAME']}"
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_OWNER_URL", "WAREHOUSE_DATABASE_URL", "ENV_FILE")}
    env.update(
        DATABASE_URL=url, DJANGO_DEV="1", DEBUG="0", SECURE_SSL_REDIRECT="0", ALLOWED_HOSTS="127.0.0.1",
        FIELD_ENCRYPTION_KEYS=",".join(settings.FIELD_ENCRYPTION_KEYS), LOG_LEVEL="WARNING", CONN_MAX_AGE="600",
        ENV_FILE="/dev/null", COLLECTOR_IP_BATCHES_PER_WINDOW="1000000", REDIS_URL="",
    )  # fmt: skip
    root = Path(__file__).resolve().parents[2]
    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "python:config.gunicorn", "config.wsgi:application",
         "--workers", "2", "--bind", f"127.0.0.1:{port}", "--log-level", "warning"],
        cwd=root, env=env, stdout=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if requests.get(f"{base}/healthz", timeout=5).status_code == 200:
                    break
            except requests.RequestException:
                pass
            assert server.poll() is None and time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.2)
        yield base
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=10)


def send_like_the_pixel(url: str, body: dict, report: dict, lock: threading.Lock) -> None:
    """POST until 2xx; 429/503/5xx and connection errors are retried with the same events (Retry-After
    honoured, capped for the test's sake), as extensions/session-pixel/src/pixel.js does."""
    while True:
        try:
            # The browser's own user agent, as the pixel's fetch sends it (python-requests' would be a bot).
            headers = {"Content-Type": "text/plain", "User-Agent": CHROME}
            response = requests.post(url, data=json.dumps(body), headers=headers, timeout=10)
        except requests.RequestException:
            status, wait = "error", 0.1
        else:
            status, wait = response.status_code, min(float(response.headers.get("Retry-After") or 0.1), 0.5)
            if status < 400:
                with lock:
                    report["answered"].extend(e["event_id"] for e in body["events"])
                    report["statuses"][status] = report["statuses"].get(status, 0) + 1
                return
            assert status in (429, 503) or status >= 500, (status, response.text)
        with lock:
            report["statuses"][status] = report["statuses"].get(status, 0) + 1
        time.sleep(wait)


def test_a_5000_event_burst_with_connections_killed_is_stored_exactly_once(
    gunicorn_url, store, write_key, owner_db, settings
):
    bodies = [batch(write_key, [event(b * 20 + n) for n in range(20)]) for b in range(250)]
    own_pids = []
    for alias in ("default", "warehouse"):
        with connections[alias].cursor() as cursor:
            cursor.execute("select pg_backend_pid()")
            own_pids.append(cursor.fetchone()[0])
    report: dict = {"answered": [], "statuses": {}}
    lock = threading.Lock()
    todo = list(bodies)

    def sender() -> None:
        while True:
            with lock:
                if not todo:
                    return
                body = todo.pop()
            send_like_the_pixel(f"{gunicorn_url}/collect/v1/batch", body, report, lock)

    threads = [threading.Thread(target=sender) for _ in range(4)]
    for thread in threads:
        thread.start()
    table = f"raw_{store.key}.web_events"
    killed = 0
    deadline = time.monotonic() + 120
    while any(t.is_alive() for t in threads) and time.monotonic() < deadline:
        exists = owner_db.execute("select to_regclass(%s)", [table]).fetchone()[0]
        count = owner_db.execute(f"select count(*) from {table}").fetchone()[0] if exists else 0
        if count >= 2000:
            killed = owner_db.execute(
                "select count(pg_terminate_backend(pid)) from pg_stat_activity"
                " where datname = current_database() and usename = %s and pid <> all(%s)",
                [settings.DATABASE_APP_ROLE, own_pids],
            ).fetchone()[0]
            break
        time.sleep(0.01)
    for thread in threads:
        thread.join(timeout=120)

    assert killed >= 1
    answered = report["answered"]
    assert len(answered) == 5000 and len(set(answered)) == 5000, report["statuses"]
    rows, distinct = owner_db.execute(f"select count(*), count(distinct event_id) from {table}").fetchone()
    assert (rows, distinct) == (5000, 5000)
