"""Benchmark: export 100,000 and 1,000,000 audit events as NDJSON, time and peak memory of each.

    DATABASE_URL=postgres://postgres@127.0.0.1:5432/postgres python bench/audit_export.py [--rows 1000000] [--keep]

The audit log is append-only (a trigger refuses UPDATE and DELETE, docs/database-roles.md), so the rows go into
a database of the benchmark's own on DATABASE_URL's server, dropped at the end (unless --keep) — the one way
to get rid of them. They are inserted by one `INSERT … SELECT FROM generate_series` as the database's owner:
one store, one event a second, realistic widths (a user agent, an ip, a small metadata object).

Each export is created with `audit_export_create` and run by `audit_export_run` — the Celery task's body — in a
fresh child process, so its peak RSS (`ru_maxrss`) is that export's alone, Django's own footprint included.
The file goes to a temporary folder through the compliance storage. Prints `name: value unit` lines; targets
at 1M: ≤ 15 s and ≤ 200 MB, and memory flat from 100k.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

INSERT = """
INSERT INTO compliance_auditevent
    (occurred_at, actor_type, actor_id, actor_label, action, target_type, target_id, merchant_id, ip, user_agent,
     metadata)
SELECT timestamptz '2026-01-01 00:00:00+00' + make_interval(secs => i),
       (ARRAY['clerk_user', 'system', 'staff'])[1 + i %% 3],
       'user_' || (i %% 97),
       'Person ' || (i %% 97),
       (ARRAY['credential.refreshed', 'template.saved', 'user.signed_in', 'connector.synced'])[1 + i %% 4],
       'connectors.credential',
       (i %% 1000)::text,
       %(merchant_id)s,
       ('10.0.' || (i %% 250) || '.' || (i %% 200))::inet,
       'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5',
       jsonb_build_object('provider', 'meta', 'attempt', i %% 7, 'ok', i %% 5 <> 0)
FROM generate_series(1, %(rows)s) AS i
"""


def django_setup(database_url: str, files: str) -> None:
    os.environ.update(
        DJANGO_DEV="1",
        DATABASE_URL=database_url,
        CELERY_BROKER_URL="memory://localhost/",  # the run is called directly; the enqueue after create goes nowhere
        COMPLIANCE_FILES_DIR=files,
        LOG_LEVEL="WARNING",
        DJANGO_SETTINGS_MODULE="config.settings",
    )
    import django

    django.setup()


def child(export_id: int) -> None:
    """Run one export in this fresh process; print its seconds, peak RSS and what it wrote, as JSON."""
    django_setup(os.environ["BENCH_DATABASE_URL"], os.environ["BENCH_FILES"])
    from compliance.exports import audit_export_run

    started = time.perf_counter()
    export = audit_export_run(export_id=export_id)
    seconds = time.perf_counter() - started
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_rss_mb": peak_mb,
                "state": export.state,
                "rows": export.row_count,
                "bytes": export.byte_size,
                "reason": export.failure_reason,
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return

    url = os.environ.get("DATABASE_URL") or sys.exit("DATABASE_URL is not set")
    params = conninfo_to_dict(url)
    bench_db = f"bench_audit_export_{secrets.token_hex(4)}"
    admin = make_conninfo(url, dbname=params.get("dbname") or "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{bench_db}"')
    try:
        with tempfile.TemporaryDirectory(prefix="bench-audit-export-") as files:
            run(args, make_conninfo(url, dbname=bench_db), url.rsplit("/", 1)[0] + "/" + bench_db, files)
    finally:
        if not args.keep:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE "{bench_db}" WITH (FORCE)')


def run(args: argparse.Namespace, conninfo: str, database_url: str, files: str) -> None:
    django_setup(database_url, files)
    import datetime as dt

    from django.core.management import call_command

    from accounts.models import Merchant
    from compliance.choices import ActorType
    from compliance.exports import audit_export_create
    from compliance.services import Actor

    call_command("migrate", "--no-input", verbosity=0)
    merchant = Merchant.objects.create(name="Bench store", shop_domain="bench.myshopify.com", key="bench")

    started = time.perf_counter()
    with psycopg.connect(conninfo, autocommit=True) as conn:  # DATABASE_URL's role owns this database
        conn.execute(INSERT, {"merchant_id": merchant.pk, "rows": args.rows})
        conn.execute("ANALYZE compliance_auditevent")
    print(f"audit_export_insert_{args.rows}_seconds: {time.perf_counter() - started:.1f} s")

    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    staff = Actor(type=ActorType.STAFF, id="1", label="bench")
    for rows, label in ((args.rows // 10, _label(args.rows // 10)), (args.rows, _label(args.rows))):
        # One event a second from start + 1 s: the first `rows` seconds hold exactly `rows` events.
        export = audit_export_create(
            merchant=merchant, occurred_from=start, occurred_to=start + dt.timedelta(seconds=rows + 1), actor=staff
        )
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(export.pk)],
            env={**os.environ, "BENCH_DATABASE_URL": database_url, "BENCH_FILES": files},
            capture_output=True,
            text=True,
            check=True,
        )
        result = json.loads(out.stdout.strip().splitlines()[-1])
        if result["state"] != "succeeded" or result["rows"] != rows:
            sys.exit(f"export of {rows} rows: {result}")
        print(f"audit_export_{label}_seconds: {result['seconds']:.2f} s")
        print(f"audit_export_{label}_peak_rss_mb: {result['peak_rss_mb']:.0f} MB")
        print(f"audit_export_{label}_file_mb: {result['bytes'] / 1e6:.1f} MB")


def _label(rows: int) -> str:
    return f"{rows // 1_000_000}m" if rows % 1_000_000 == 0 else f"{rows // 1000}k"


if __name__ == "__main__":
    main()
