"""Benchmark: the web pixel's collector (POST /collect/v1/batch) under gunicorn, as `make run` serves it.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python bench/collector.py \
        [--events 100000] [--batch 20] [--concurrency 4] [--workers 2] [--reload] [--no-kill]

Creates its own database on DATABASE_URL's server (dropped at the end unless --keep), migrates it, makes one store
and its write key, then starts gunicorn with the project's configuration and `make run`'s options
(`-c python:config.gunicorn config.wsgi:application --workers 2`, access log on; `--reload` too if asked) and
posts --events distinct events in batches of --batch from --concurrency threads, as the pixel does: text/plain
JSON, a browser's user agent, and on a 429/503/5xx or a connection error the same batch again (same event ids)
after Retry-After. Once half the events are stored it kills every database connection of the app
(pg_terminate_backend), once.

Prints ``name: value unit`` lines:
- collector_events_per_second: events answered 2xx per second of the run (goal >= 5,000);
- collector_latency_p50 / _p99 / _max: per POST as the sender sees it, retries included (goal p99 <= 50 ms);
- collector_lost: events answered 2xx that are not in raw_<key>.web_events (goal 0);
- collector_duplicated: rows beyond one per event id (goal 0); collector_unanswered: events never answered 2xx;
- the statuses seen, the retries, the connections killed, and the CPU the workers and the senders used.

One client address sends every batch here (a real store's come from many visitors), so the per-IP limit is raised
for the run (COLLECTOR_IP_BATCHES_PER_WINDOW); the per-store limit is the default.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from _common import database_url, free_port, pct  # noqa: E402

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
PATH = "/collect/v1/batch"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=6, help="concurrent senders")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers (make run: 2)")
    parser.add_argument("--reload", action="store_true", help="also gunicorn's --reload, as make run adds")
    parser.add_argument("--no-kill", action="store_true", help="do not kill the database connections mid-run")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    args = parser.parse_args()

    from cryptography.fernet import Fernet

    name = f"bench_collector_{secrets.token_hex(3)}"
    url, admin = database_url(name)
    with psycopg.connect(make_conninfo(**admin), autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    os.environ.update(
        DATABASE_URL=url,
        DJANGO_DEV="1",
        DJANGO_SETTINGS_MODULE="config.settings",
        LOG_LEVEL="WARNING",
        FIELD_ENCRYPTION_KEYS=Fernet.generate_key().decode(),
        CONN_MAX_AGE="600",
        DEBUG="0",  # as production serves: no query log, no debug cursor
        SECURE_SSL_REDIRECT="0",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        COLLECTOR_IP_BATCHES_PER_WINDOW="1000000000",
    )
    os.environ.pop("DATABASE_OWNER_URL", None)
    os.environ.pop("WAREHOUSE_DATABASE_URL", None)
    try:
        run(args, url)
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            with psycopg.connect(make_conninfo(**admin), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(args, url: str) -> None:
    import django

    port = free_port()
    os.environ["APP_BASE_URL"] = f"http://127.0.0.1:{port}"
    django.setup()
    from django.core.management import call_command
    from django.db import connections

    from accounts.models import Merchant
    from collector.services import write_key_get_or_create

    call_command("migrate", verbosity=0)
    merchant = Merchant.objects.create(
        name="Bench", shop_domain="bench.myshopify.com", timezone="UTC", currency="USD", key="bench"
    )
    write_key = write_key_get_or_create(merchant=merchant).key
    connections.close_all()

    # Every batch built ahead of time: the senders only send.
    now = dt.datetime.now(dt.UTC)
    stamp = now.isoformat(timespec="milliseconds").replace("+00:00", "Z")
    bodies: list[tuple[bytes, list[str]]] = []
    for b in range(args.events // args.batch):
        events = []
        for n in range(args.batch):
            seq = b * args.batch + n
            events.append(
                {
                    "event_id": str(uuid.uuid4()),
                    "name": "page_viewed" if n % 5 else "product_viewed",
                    "client_id": f"client-{seq // 10}",
                    "seq": seq % 10,
                    "occurred_at": stamp,
                    "url": f"https://bench.myshopify.com/products/p{seq % 97}?utm_source=fb&fbclid=x{b}",
                    "referrer": "https://www.facebook.com/",
                    "user_agent": CHROME,
                    "consent": {"analytics": True, "marketing": False, "preferences": False, "sale_of_data": False},
                }
            )
        body = {"write_key": write_key, "sent_at": stamp, "pixel_version": "1", "events": events}
        bodies.append((json.dumps(body).encode(), [e["event_id"] for e in events]))

    cmd = [sys.executable, "-m", "gunicorn", "-c", "python:config.gunicorn", "config.wsgi:application",
           "--bind", f"127.0.0.1:{port}", "--workers", str(args.workers), "--access-logfile", "-",
           "--graceful-timeout", "5", *(["--reload"] if args.reload else [])]  # fmt: skip
    server = subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL, start_new_session=True)
    watcher = psycopg.connect(url.replace("postgres://", "postgresql://"), autocommit=True)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                sys.exit("gunicorn did not answer within 60 s")
            time.sleep(0.2)
        result = load(args, port, bodies, server, watcher)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=15)

    rows, distinct = watcher.execute("select count(*), count(distinct event_id) from raw_bench.web_events").fetchone()
    stored = {r[0] for r in watcher.execute("select event_id from raw_bench.web_events")}
    watcher.close()
    answered = result["answered"]
    lost = len(answered - stored)
    latencies = result["latencies"]
    elapsed = result["elapsed"]
    statuses = ", ".join(f"{status}: {n}" for status, n in sorted(result["statuses"].items(), key=str))
    print(f"collector_server: gunicorn -c python:config.gunicorn, {args.workers} sync workers"
          f"{', --reload' if args.reload else ''}, access log on")  # fmt: skip
    print(f"collector_senders: {args.concurrency} threads, batches of {args.batch}")
    print(f"collector_events: {len(answered)} events answered 2xx of {args.events} sent in {elapsed:.1f} s")
    print(f"collector_events_per_second: {len(answered) / elapsed:.0f} events/s")
    print(f"collector_batches_per_second: {len(latencies) / elapsed:.0f} requests/s")
    print(f"collector_latency_p50: {pct(latencies, 0.50):.1f} ms")
    print(f"collector_latency_p99: {pct(latencies, 0.99):.1f} ms")
    print(f"collector_latency_max: {max(latencies):.1f} ms")
    print(f"collector_statuses: {statuses}")
    print(f"collector_retries: {result['retries']} requests")
    print(f"collector_connections_killed: {result['killed']} (at {result['killed_at_stored']} events stored)")
    print(f"collector_lost: {lost} events")
    print(f"collector_duplicated: {rows - distinct} events")
    print(f"collector_unanswered: {args.events - len(answered)} events")
    print(f"collector_stored: {rows} rows, {distinct} distinct event ids")
    print(f"collector_server_cpu_per_event: {1000 * result['server_cpu'] / max(1, len(answered)):.3f} ms (workers)")
    print(f"collector_client_cpu: {100 * result['client_cpu'] / elapsed:.0f} % of one core")
    # The machine is shared: what else ran (1-minute load average; 2 cores here) bears on every figure above.
    print(f"collector_load_average: {result['load_before']:.1f} before, {os.getloadavg()[0]:.1f} after")


def load(args, port: int, bodies, server, watcher) -> dict:
    lock = threading.Lock()
    cursor = [0]
    latencies: list[float] = []
    statuses: dict = {}
    answered: set[str] = set()
    retries = [0]
    done = threading.Event()

    def take():
        with lock:
            if cursor[0] >= len(bodies):
                return None
            cursor[0] += 1
            return bodies[cursor[0] - 1]

    def post(body: bytes) -> tuple[int | str, float]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            conn.request(
                "POST", PATH, body=body, headers={"Content-Type": "text/plain;charset=UTF-8", "User-Agent": CHROME}
            )
            response = conn.getresponse()
            response.read()
            return response.status, float(response.getheader("Retry-After") or 0)
        except (OSError, http.client.HTTPException):
            return "error", 0.0
        finally:
            conn.close()

    def sender() -> None:
        while (item := take()) is not None:
            body, ids = item
            for attempt in range(50):
                started = time.perf_counter()
                status, retry_after = post(body)
                elapsed = (time.perf_counter() - started) * 1000
                with lock:
                    latencies.append(elapsed)
                    statuses[status] = statuses.get(status, 0) + 1
                if isinstance(status, int) and status < 300:
                    with lock:
                        answered.update(ids)
                    break
                if isinstance(status, int) and status not in (429, 503) and status < 500:
                    break  # a 4xx the pixel drops: never expected here, and counted as unanswered
                with lock:
                    retries[0] += 1
                # The pixel's backoff: Retry-After when given, else exponential from 100 ms.
                time.sleep(retry_after or min(5.0, 0.1 * 2**attempt))

    kill = {"killed": 0, "at": 0}

    def killer() -> None:
        # Waits on the senders' own count of answered events (an answered event is committed), not on a
        # count(*) of the table, which would cost the database as much as the load.
        own = watcher.execute("select pg_backend_pid()").fetchone()[0]
        while not done.is_set():
            with lock:
                count = len(answered)
            if count >= args.events // 2:
                kill["killed"] = watcher.execute(
                    "select count(pg_terminate_backend(pid)) from pg_stat_activity"
                    " where datname = current_database() and pid <> %s and backend_type = 'client backend'",
                    [own],
                ).fetchone()[0]
                kill["at"] = count
                return
            time.sleep(0.05)

    def worker_cpu_seconds() -> float:
        total = 0.0
        for child in Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split():
            try:
                fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
            except FileNotFoundError:
                continue
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total

    threads = [threading.Thread(target=sender) for _ in range(args.concurrency)]
    watch = threading.Thread(target=killer) if not args.no_kill else None
    load_before = os.getloadavg()[0]
    client_cpu, server_cpu = time.process_time(), worker_cpu_seconds()
    started = time.monotonic()
    for thread in threads:
        thread.start()
    if watch is not None:
        watch.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    done.set()
    if watch is not None:
        watch.join()
    return {
        "answered": answered,
        "latencies": latencies,
        "statuses": statuses,
        "retries": retries[0],
        "elapsed": elapsed,
        "killed": kill["killed"],
        "killed_at_stored": kill["at"],
        "client_cpu": time.process_time() - client_cpu,
        "load_before": load_before,
        "server_cpu": worker_cpu_seconds() - server_cpu,
    }


if __name__ == "__main__":
    main()
