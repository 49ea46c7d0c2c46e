"""Benchmark: the Attentive webhook intake under gunicorn with 2 workers.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python bench/webhooks.py [--seconds 20] [--concurrency 8]

Creates its own database on DATABASE_URL's server (dropped at the end unless --keep), migrates it, starts the
provider sandbox in-process, connects an Attentive key for one merchant through the service (which registers
the webhook at the sandbox and stores its signing key), then starts gunicorn with the project's configuration
(`-c python:config.gunicorn`, access log on, 2 sync workers) and POSTs distinct signed `sms.sent` events
(the sandbox emitter's shapes and signature) to /webhooks/attentive/<id>/ from --concurrency threads for
--seconds:

- sustained intake: events stored per second (goal ≥ 1,000);
- latency: p50/p99 per delivery as the sender sees it (goal p99 ≤ 50 ms);
- a check that every event answered 200 is in the raw table exactly once.

The load generator shares the machine's cores with gunicorn and PostgreSQL (its CPU share is printed), and
uses http.client with pre-signed bodies so it takes as little of them as it can.

Prints ``name: value unit`` lines.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg
from psycopg.conninfo import make_conninfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from _common import database_url, free_port, pct  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20.0, help="how long the sustained load runs")
    parser.add_argument("--concurrency", type=int, default=8, help="concurrent senders (Attentive's connections)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn sync workers")
    parser.add_argument("--keep", action="store_true", help="keep the bench database")
    parser.add_argument("--gunicorn-option", action="append", default=[], help="passed on to gunicorn (repeatable)")
    args = parser.parse_args()

    from cryptography.fernet import Fernet

    name = f"bench_webhooks_{secrets.token_hex(3)}"
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
        # As production serves: DEBUG off (no query log, no debug cursor), plain HTTP on loopback.
        DEBUG="0",
        SECURE_SSL_REDIRECT="0",
        ALLOWED_HOSTS="127.0.0.1,localhost",
    )
    try:
        run(args)
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            with psycopg.connect(make_conninfo(**admin), autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def run(args) -> None:
    import django

    port = free_port()
    os.environ["APP_BASE_URL"] = f"http://127.0.0.1:{port}"
    django.setup()
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connections

    from accounts.models import Merchant
    from compliance.services import Actor
    from connectors import services
    from connectors.crypto import decrypt_secret
    from connectors.models import AttentiveWebhook
    from sandbox.providers.attentive import sample_event, sign
    from sandbox.server import SandboxControl, SandboxServer

    call_command("migrate", verbosity=0)
    with SandboxServer() as sandbox:
        control = SandboxControl(sandbox.url)
        settings.ATTENTIVE_API_URL = f"{sandbox.url}/attentive"
        merchant = Merchant.objects.create(
            name="Bench", shop_domain="bench.myshopify.com", timezone="UTC", currency="USD", key="bench"
        )
        api_key = control._request("POST", "/_control/attentive/keys", json={"company": "Bench"}).json()["api_key"]
        services.credential_connect_api_key(
            merchant=merchant, provider="attentive", api_key=api_key, actor=Actor.system("bench")
        )
        webhook = AttentiveWebhook.objects.get()
        signing_key = decrypt_secret(webhook.signing_key_enc)
        [registered] = control._request("GET", "/_control/attentive/webhooks").json()["webhooks"]
    path = f"/webhooks/attentive/{webhook.public_id}/"
    connections.close_all()

    # Distinct events, signed ahead of time: the senders only send.
    now_ms = int(time.time() * 1000)
    capacity = int(args.seconds * 4000) + 2000
    bodies = []
    for n in range(capacity):
        body = json.dumps(sample_event("sms.sent", n, registered, now_ms)).encode()
        bodies.append((body, sign(signing_key, body)))

    server = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "python:config.gunicorn", "config.wsgi:application",
         "--workers", str(args.workers), "--bind", f"127.0.0.1:{port}", "--log-level", "warning",
         *args.gunicorn_option],
        cwd=ROOT, env=dict(os.environ), stdout=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/healthz")
                if conn.getresponse().status == 200:
                    break
            except OSError:
                pass
            if time.monotonic() > deadline:
                sys.exit("gunicorn did not answer within 30 s")
            time.sleep(0.2)

        lock = threading.Lock()
        cursor = [0]
        latencies: list[float] = []
        statuses: dict[int, int] = {}

        def take() -> tuple[bytes, str] | None:
            with lock:
                if cursor[0] >= len(bodies):
                    return None
                cursor[0] += 1
                return bodies[cursor[0] - 1]

        def worker_cpu_seconds() -> float:
            """CPU used so far by gunicorn's workers (the master's children), from /proc."""
            total = 0.0
            for child in Path(f"/proc/{server.pid}/task/{server.pid}/children").read_text().split():
                fields = Path(f"/proc/{child}/stat").read_text().rsplit(")", 1)[1].split()
                total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
            return total

        def send(body: bytes, signature: str) -> int:
            # Gunicorn's sync workers close each connection after the response, as Attentive's
            # senders would find: a new connection per delivery either way.
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            try:
                conn.request(
                    "POST", path, body=body,
                    headers={"Content-Type": "application/json", "x-attentive-hmac-sha256": signature},
                )  # fmt: skip
                response = conn.getresponse()
                response.read()
                return response.status
            except (OSError, http.client.HTTPException):
                return 0  # counted as not stored; the exactly-once check below looks at the table
            finally:
                conn.close()

        def sender(stop_at: float, record: bool) -> None:
            while time.monotonic() < stop_at and (item := take()) is not None:
                started = time.perf_counter()
                status = send(*item)
                elapsed = (time.perf_counter() - started) * 1000
                if record:
                    with lock:
                        latencies.append(elapsed)
                        statuses[status] = statuses.get(status, 0) + 1

        def load(seconds: float, record: bool) -> float:
            stop_at = time.monotonic() + seconds
            threads = [threading.Thread(target=sender, args=(stop_at, record)) for _ in range(args.concurrency)]
            started = time.monotonic()
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            return time.monotonic() - started

        load(2.0, record=True)  # warm both workers: imports, connections, the prepared INSERT
        warmup_sent, warmup_ok = cursor[0], statuses.get(200, 0)
        latencies.clear()
        statuses.clear()
        client_cpu, server_cpu = time.process_time(), worker_cpu_seconds()
        elapsed = load(args.seconds, record=True)
        client_cpu, server_cpu = time.process_time() - client_cpu, worker_cpu_seconds() - server_cpu
        stored_ok = statuses.get(200, 0)
        if cursor[0] >= len(bodies):
            print("warning: the senders ran out of pre-signed events before the time was up", file=sys.stderr)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=10)

    with connections["warehouse"].cursor() as cur:
        cur.execute("select count(*), count(distinct _airbyte_raw_id) from raw_bench.attentive_sms_sent")
        rows, distinct = cur.fetchone()
    sent = cursor[0]
    answered = warmup_ok + stored_ok
    print(f"webhooks_workers: {args.workers} gunicorn sync workers")
    print(f"webhooks_senders: {args.concurrency} threads")
    print(f"webhooks_events: {len(latencies)} events in {elapsed:.1f} s")
    print(f"webhooks_throughput: {stored_ok / elapsed:.0f} events/s")
    print(f"webhooks_latency_p50: {pct(latencies, 0.50):.1f} ms")
    print(f"webhooks_latency_p99: {pct(latencies, 0.99):.1f} ms")
    print(f"webhooks_latency_max: {max(latencies):.1f} ms")
    others = ", ".join(f"{status}: {n}" for status, n in sorted(statuses.items()) if status != 200)
    print(f"webhooks_non_200: {len(latencies) - stored_ok} events ({others or 'none'})")
    # Every event answered 200 is stored, once; an unanswered one (none, normally) may or may not be.
    exact = rows == distinct and answered <= rows <= sent
    print(f"webhooks_stored_exactly_once: {exact} ({rows} rows, {answered} events answered 200, {sent} sent)")
    print(f"webhooks_server_cpu_per_event: {1000 * server_cpu / max(1, len(latencies)):.2f} ms (gunicorn workers)")
    print(f"webhooks_client_cpu: {100 * client_cpu / elapsed:.0f} % of one core")
    if warmup_sent == 0:
        print("warning: the warm-up sent nothing", file=sys.stderr)


if __name__ == "__main__":
    main()
