"""Local orchestration behind `make run`, `make stop`, `make test` and `make lint`.

    python -m devtools run     start (or reuse) PostgreSQL, the sandbox, web, worker and beat; print URLs
    python -m devtools stop    stop everything `run` started, the embedded PostgreSQL included
    python -m devtools test    the whole pytest suite (extra arguments go to pytest)
    python -m devtools lint    ruff, migrations check, Django system check, dbt parse
    python -m devtools status  what is running

Every service started here is a detached process with a pid file under .local/run and a log under
.local/log, so a second `make run` finds them and only re-applies migrations and the demo seed.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import unquote, urlsplit

from devtools import postgres

ROOT = postgres.ROOT
LOCAL = postgres.LOCAL
RUN_DIR = LOCAL / "run"
LOG_DIR = LOCAL / "log"
SANDBOX_DIR = LOCAL / "sandbox"
PY = sys.executable
SANDBOX_PORT = int(os.environ.get("SANDBOX_PORT", "8001"))
SANDBOX_SMTP_PORT = int(os.environ.get("SANDBOX_SMTP_PORT", "8025"))
PORT = int(os.environ.get("PORT", "8000"))
# Celery runs as root here (no users on a dev box); with JSON-only serialisation that is only a warning.
os.environ.setdefault("C_FORCE_ROOT", "1")


def say(message: str) -> None:
    print(f"==> {message}", flush=True)


def base_env() -> dict[str, str]:
    """The environment every Django process gets: dev mode and a database, as two roles.

    DATABASE_OWNER_URL (the owner: migrations) and DATABASE_URL (the app's role: everything else). Given
    both, they are used as they are; given one URL (or none: the embedded server), it is the owner's, and
    the app's role `analytics_app` is created on the same server and database.
    """
    env = dict(os.environ)
    env["DJANGO_DEV"] = "1"
    env.setdefault("XDG_RUNTIME_DIR", str(RUN_DIR))
    env.setdefault("DO_NOT_TRACK", "1")
    if env.get("DATABASE_URL") and env.get("DATABASE_OWNER_URL"):
        say("PostgreSQL: DATABASE_URL (the app's role) and DATABASE_OWNER_URL (the owner) from the environment")
    else:
        if env.get("DATABASE_OWNER_URL") or env.get("DATABASE_URL"):
            env["DATABASE_OWNER_URL"] = env.get("DATABASE_OWNER_URL") or env["DATABASE_URL"]
            say("PostgreSQL: DATABASE_URL from the environment")
        else:
            env["DATABASE_OWNER_URL"] = postgres.embedded_database_url()
            say("PostgreSQL: embedded, data in .local/pg")
        env["DATABASE_URL"] = postgres.app_database_url(env["DATABASE_OWNER_URL"])
        owner = urlsplit(env["DATABASE_OWNER_URL"]).username or "postgres"
        say(f"  roles: migrations as {owner}, the app (web, worker, beat, dbt) as {postgres.APP_ROLE}")
    say("Broker: " + ("Redis at REDIS_URL" if env.get("REDIS_URL") else "filesystem transport in .local/celery"))
    return env


def dbt_env(database_url: str) -> dict[str, str]:
    """dbt's profile reads these; they name the same server, database and role (the app's) as DATABASE_URL."""
    from urllib.parse import parse_qs

    url = urlsplit(database_url)
    host = parse_qs(url.query).get("host", [url.hostname or "127.0.0.1"])[0]
    return {
        "DBT_PG_HOST": host,
        "DBT_PG_PORT": str(url.port or 5432),
        "DBT_PG_USER": unquote(url.username or "postgres"),
        "DBT_PG_PASSWORD": unquote(url.password or ""),
        "DBT_PG_DBNAME": url.path.lstrip("/") or "postgres",
    }


def manage(env: dict[str, str], *args: str) -> None:
    if subprocess.run([PY, "manage.py", *args], cwd=ROOT, env=env).returncode != 0:
        raise SystemExit(f"`manage.py {' '.join(args)}` failed (its message is above)")


# --- background services -------------------------------------------------------------------------


def _alive(pid: int) -> bool:
    """True while the process runs. A zombie counts as gone: not every init reaps orphans promptly."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state not in ("Z", "X")


def _pid(name: str) -> int | None:
    try:
        pid = int((RUN_DIR / f"{name}.pid").read_text())
    except (FileNotFoundError, ValueError):
        return None
    return pid if _alive(pid) else None


def start_service(name: str, cmd: list[str], env: dict[str, str]) -> bool:
    """Start `cmd` detached unless it already runs. Returns True when it was started now."""
    if _pid(name):
        return False
    log = open(LOG_DIR / f"{name}.log", "ab")  # noqa: SIM115  (handed to the child, which outlives us)
    process = subprocess.Popen(
        cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )
    (RUN_DIR / f"{name}.pid").write_text(str(process.pid))
    return True


def stop_services(names: list[str]) -> list[str]:
    """SIGTERM every named service's process group at once, then wait for all (SIGKILL after 15 s)."""
    signalled = {}
    for name in names:
        pid = _pid(name)
        (RUN_DIR / f"{name}.pid").unlink(missing_ok=True)
        if pid:
            try:
                os.killpg(pid, signal.SIGTERM)
                signalled[name] = pid
            except ProcessLookupError:
                pass
    deadline = time.monotonic() + 15
    waiting = dict(signalled)
    while waiting and time.monotonic() < deadline:
        for name, pid in list(waiting.items()):
            if not _alive(pid):
                del waiting[name]
        time.sleep(0.1)
    for pid in waiting.values():
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
    return list(signalled)


def wait_http(url: str, timeout: float, name: str) -> None:
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310  (our own http:// URLs)
                if response.status == 200:
                    return
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except OSError as exc:
            last = type(exc).__name__
        time.sleep(0.2)
    raise SystemExit(f"{name} did not become ready at {url} within {timeout:.0f}s ({last}); see .local/log/")


SERVICES = ("sandbox", "web", "worker", "beat")


def cmd_run(args: list[str]) -> None:
    started_at = time.monotonic()
    for folder in (RUN_DIR, LOG_DIR, SANDBOX_DIR, LOCAL / "celery" / "queue", LOCAL / "celery" / "processed"):
        folder.mkdir(parents=True, exist_ok=True)
    env = base_env()
    sandbox_url = f"http://127.0.0.1:{SANDBOX_PORT}"
    public_key = SANDBOX_DIR / "clerk_public.pem"
    sandbox_cmd = [
        PY, "-m", "sandbox", "--host", "127.0.0.1", "--port", str(SANDBOX_PORT),
        "--private-key", str(SANDBOX_DIR / "clerk_private.pem"), "--public-key-out", str(public_key),
        "--seed", str(ROOT / "sandbox" / "data" / "demo_users.json"), "--smtp-port", str(SANDBOX_SMTP_PORT),
    ]  # fmt: skip
    # The web app verifies Clerk webhooks with this secret; the sandbox signs the ones it sends with it.
    webhook_secret = env.get("CLERK_WEBHOOK_SECRET") or (
        "whsec_" + base64.b64encode(hashlib.sha256(b"local-dev-only:clerk-webhook").digest()).decode()
    )
    env.update(CLERK_WEBHOOK_SECRET=webhook_secret, SANDBOX_CLERK_WEBHOOK_SECRET=webhook_secret)
    if start_service("sandbox", sandbox_cmd, env):
        say(f"sandbox starting on {sandbox_url}")
    wait_http(f"{sandbox_url}/_control/routes", 20, "sandbox")

    env.update(
        SANDBOX_URL=sandbox_url,
        CLERK_API_URL=f"{sandbox_url}/clerk/v1",
        CLERK_SECRET_KEY=env.get("CLERK_SECRET_KEY") or "sk_test_localsandbox0000000000",
        CLERK_JWT_KEY_FILE=str(public_key),
        PORT=str(PORT),
        EMAIL_URL=env.get("EMAIL_URL") or f"smtp://127.0.0.1:{SANDBOX_SMTP_PORT}",
    )
    # Connectors: every provider is the sandbox's stand-in, with throwaway app credentials.
    env.update(
        META_GRAPH_URL=f"{sandbox_url}/meta/graph",
        META_DIALOG_URL=f"{sandbox_url}/meta/www",
        META_APP_ID=env.get("META_APP_ID") or "100000000000001",
        META_APP_SECRET=env.get("META_APP_SECRET") or "local-sandbox-meta-app-secret",
        GOOGLE_OAUTH_AUTHORIZE_URL=f"{sandbox_url}/google/o/oauth2/v2/auth",
        GOOGLE_OAUTH_TOKEN_URL=f"{sandbox_url}/google/token",
        GOOGLE_OAUTH_REVOKE_URL=f"{sandbox_url}/google/revoke",
        GOOGLE_OAUTH_CLIENT_ID=env.get("GOOGLE_OAUTH_CLIENT_ID") or "local-sandbox.apps.googleusercontent.com",
        GOOGLE_OAUTH_CLIENT_SECRET=env.get("GOOGLE_OAUTH_CLIENT_SECRET") or "local-sandbox-google-secret",
        GOOGLE_ADS_API_URL=f"{sandbox_url}/google/ads",
        KLAVIYO_API_URL=f"{sandbox_url}/klaviyo",
        ATTENTIVE_API_URL=f"{sandbox_url}/attentive",
        SHOPIFY_ADMIN_URL=f"{sandbox_url}/shopify/{{shop}}",
    )
    say("migrating")
    manage(env, "migrate", "--no-input", "-v", "0")  # as DATABASE_OWNER_URL (compliance's migrate)
    if not env.get("REDIS_URL"):
        manage(env, "createcachetable", "-v", "0")
    # From here on every process is the app and never sees the owner's credentials. dbt and the demo data,
    # run as the app's role, own their schemas (a database from before the split gets them handed over).
    postgres.app_schemas_hand_over(env.pop("DATABASE_OWNER_URL"), unquote(urlsplit(env["DATABASE_URL"]).username or ""))
    manage(env, "sync_schedules", "-v", "0")
    say("loading the demo")
    # The demo stores and users (seed_demo); each provider connected the way a merchant connects (connect_demo),
    # so the Connectors page tells the truth; their data through the sandbox's Airbyte (ingest_demo): the first
    # run syncs each store's history and builds the models, later runs find it synced and leave the hourly
    # syncs to beat. One process for the three: a second `make run` stays quick.
    manage(env, "load_demo", "--sandbox-url", sandbox_url, "--app-url", f"http://127.0.0.1:{PORT}")

    web_cmd = [
        PY, "-m", "gunicorn", "-c", "python:config.gunicorn", "config.wsgi:application",
        "--bind", f"127.0.0.1:{PORT}", "--workers", "2",
        "--reload", "--access-logfile", "-", "--graceful-timeout", "5",
    ]  # fmt: skip
    if start_service("web", web_cmd, env):
        say(f"web starting on http://127.0.0.1:{PORT}")
    celery = [PY, "-m", "celery", "-A", "config"]
    start_service("worker", [*celery, "worker", "--loglevel", "INFO", "--concurrency", "2"], env)
    start_service("beat", [*celery, "beat", "--loglevel", "INFO", "--pidfile", ""], env)
    wait_http(f"http://127.0.0.1:{PORT}/readyz", 60, "web")

    password = (LOCAL / "demo-admin-password").read_text().strip()
    print(
        f"""
Ready in {time.monotonic() - started_at:.1f}s.

  App        http://127.0.0.1:{PORT}/          sign in as a demo user (e.g. Olivia Owner)
  Admin      http://127.0.0.1:{PORT}/admin/    user: admin   password: {password}
  API docs   http://127.0.0.1:{PORT}/api/docs/
  Sandbox    {sandbox_url}/_control/routes
  Mail       {sandbox_url}/mail/            every email the app sent (SMTP sink on port {SANDBOX_SMTP_PORT})
  Logs       .local/log/   (web, worker, beat, sandbox)
  Stop       make stop
""",
        flush=True,
    )


def cmd_stop(args: list[str]) -> None:
    for name in stop_services(list(SERVICES)):
        say(f"stopped {name}")
    if postgres.embedded_stop():
        say("stopped the embedded PostgreSQL")


def cmd_status(args: list[str]) -> None:
    for name in SERVICES:
        pid = _pid(name)
        print(f"{name:8} {'running, pid ' + str(pid) if pid else 'stopped'}")
    print(f"{'postgres':8} {'running (embedded)' if postgres.embedded_running() else 'stopped (embedded)'}")


def ensure_chromium() -> None:
    """The browser tests drive Debian's Chromium (Playwright cannot download a browser here)."""
    if shutil.which("chromium") or shutil.which("chromium-browser"):
        return
    if os.geteuid() != 0 or not shutil.which("apt-get"):
        raise SystemExit("Chromium is needed for the browser tests: install it (Debian: apt-get install chromium)")
    say("installing Chromium for the browser tests (apt-get install chromium)")
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "chromium"],
        check=True,
        env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
    )


def cmd_test(args: list[str]) -> None:
    ensure_chromium()
    env = base_env()
    env.pop("SANDBOX_URL", None)  # the suite starts its own sandbox on a free port
    if not env.get("REDIS_URL") and not env.get("CELERY_DATA_DIR"):
        # The tests' queued tasks go to a broker folder of their own, emptied per run: in `make run`'s folder
        # its worker would take them and run them against the development database.
        test_broker = LOCAL / "celery-test"
        shutil.rmtree(test_broker, ignore_errors=True)
        env["CELERY_DATA_DIR"] = str(test_broker)
    result = subprocess.run([PY, "-m", "pytest", *args], cwd=ROOT, env=env)
    raise SystemExit(result.returncode)


def cmd_lint(args: list[str]) -> None:
    env = base_env()
    steps = [
        ("ruff check", [PY, "-m", "ruff", "check", "."]),
        ("ruff format --check", [PY, "-m", "ruff", "format", "--check", "."]),
        ("makemigrations --check", [PY, "manage.py", "makemigrations", "--check", "--dry-run"]),
        ("manage.py check", [PY, "manage.py", "check", "--fail-level", "WARNING"]),
        (
            "dbt parse",
            [
                str(Path(PY).parent / "dbt"),
                "parse",
                "--project-dir",
                "analytics_dbt",
                "--profiles-dir",
                "analytics_dbt",
            ],
        ),
    ]
    env.update(dbt_env(env["DATABASE_URL"]))  # dbt parse reads the profile, though it connects to nothing
    failed = []
    for name, cmd in steps:
        say(name)
        if subprocess.run(cmd, cwd=ROOT, env=env).returncode != 0:
            failed.append(name)
    if failed:
        raise SystemExit(f"lint failed: {', '.join(failed)}")


COMMANDS = {"run": cmd_run, "stop": cmd_stop, "status": cmd_status, "test": cmd_test, "lint": cmd_lint}

if __name__ == "__main__":
    if len(sys.argv) < 2 or sys.argv[1] not in COMMANDS:
        raise SystemExit(__doc__)
    COMMANDS[sys.argv[1]](sys.argv[2:])
