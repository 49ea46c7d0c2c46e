"""Settings for every environment, read from environment variables (and an optional `.env`).

Production is the default. `DJANGO_DEV=1` (set by `make run` and `make test`) relaxes the rules that
only make sense on a real deployment: secrets get throwaway local values and DEBUG turns on.
Every variable is listed in the README with its default and meaning.

A production process checks, while these settings load, every setting it cannot serve without (a secret
that is missing or malformed, a key that does not parse, hosts and origins): it stops with one line naming
the setting (config/boot.py), rather than booting and failing on the first request that needs it.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import environ

from config import boot

BASE_DIR = Path(__file__).resolve().parent.parent
LOCAL_DIR = BASE_DIR / ".local"

env = environ.Env()
# Real environment variables win over the file; ENV_FILE names another file (or /dev/null for none).
environ.Env.read_env(env.str("ENV_FILE", default=str(BASE_DIR / ".env")), overwrite=False)

DEV = env.bool("DJANGO_DEV", default=False)


def _stop(message: str) -> None:
    """Stop the boot with one clear line (manage.py and gunicorn print it alone) rather than a traceback
    deep inside Django, or a process that boots and fails on its first request."""
    raise boot.SettingsError(message)


def _check(problem: str | None) -> None:
    if problem:
        _stop(problem)


def _secret(name: str, dev_default: str) -> str:
    return env.str(name, default="") or (dev_default if DEV else "")


def _dev_fernet_key(label: str) -> str:
    # A stable, clearly local-only key so `make run` keeps decrypting what it stored yesterday.
    return base64.urlsafe_b64encode(hashlib.sha256(f"local-dev-only:{label}".encode()).digest()).decode()


SECRET_KEY = _secret("SECRET_KEY", "local-dev-only-" + hashlib.sha256(b"secret-key").hexdigest())
if not DEV:
    _check(boot.secret_key_problem(SECRET_KEY))
FIELD_ENCRYPTION_KEYS = [
    k.strip() for k in _secret("FIELD_ENCRYPTION_KEYS", _dev_fernet_key("field-encryption")).split(",") if k.strip()
]
# In every environment: a malformed key would otherwise fail only when a secret is first read or written.
_check(boot.fernet_keys_problem(FIELD_ENCRYPTION_KEYS))
DEBUG = env.bool("DEBUG", default=DEV)

PORT = env.int("PORT", default=8000)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "testserver"] if DEV else [])
if not DEV:
    _check(boot.allowed_hosts_problem(ALLOWED_HOSTS))
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
_check(boot.origins_problem("CSRF_TRUSTED_ORIGINS", CSRF_TRUSTED_ORIGINS))

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "whitenoise.runserver_nostatic",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_beat",
    "config",
    "accounts",
    "compliance",
    "connectors",
    "notifications",
    "dashboards",
    "agencies",
    "analytics",
    "ingestion",
    "collector",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "config.csp.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "accounts.middleware.ClerkSessionMiddleware",
    "dashboards.middleware.MartsNotBuiltMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "accounts.context_processors.clerk",
            ],
        },
    },
]

# --- databases ---------------------------------------------------------------------------------
# Two roles keep the audit log append-only against the app itself (README "Database roles",
# compliance/roles.py). DATABASE_URL is the app's role, for every process: it owns no table and may only
# INSERT and SELECT the audit log. DATABASE_OWNER_URL is the role that owns the schema, set only where
# migrations run: `migrate`, `createcachetable` and `flush` connect as it.
if not env.str("DATABASE_URL", default=""):
    _stop("DATABASE_URL is required (`make run` and `make test` start an embedded PostgreSQL and set it)")
DATABASES = {
    "default": env.db("DATABASE_URL"),
    # Dashboards read the dbt marts through this alias; it is the same database unless told otherwise.
    "warehouse": env.db("WAREHOUSE_DATABASE_URL", default=env.str("DATABASE_URL")),
}
for _db in DATABASES.values():
    _db.setdefault("CONN_MAX_AGE", env.int("CONN_MAX_AGE", default=60))
    _db["CONN_HEALTH_CHECKS"] = True
DATABASES["warehouse"]["TEST"] = {"MIRROR": "default"}
DATABASE_OWNER = env.db("DATABASE_OWNER_URL") if env.str("DATABASE_OWNER_URL", default="") else None
# The role `migrate` grants the app's privileges to.
DATABASE_APP_ROLE = DATABASES["default"]["USER"]
if DATABASE_OWNER is not None:
    if DATABASE_OWNER["NAME"] != DATABASES["default"]["NAME"]:
        _stop("DATABASE_OWNER_URL must name the same database as DATABASE_URL (it is the same database, as its owner)")
    if DATABASE_OWNER["USER"] == DATABASE_APP_ROLE and not DEV:
        _stop("DATABASE_OWNER_URL and DATABASE_URL are the same role: the app's role must not own the tables")
# Production refuses a database role that could rewrite the audit log: a superuser, the owner of the table
# or its schema, or one with more than INSERT and SELECT on it (checked on each process's first connection).
DATABASE_REFUSE_PRIVILEGED_ROLE = not DEV
DATABASE_ROUTERS = ["config.db_router.WarehouseRouter"]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- cache and broker --------------------------------------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    # Shared by web and worker processes without Redis; `migrate` does not create it, `createcachetable` does.
    # Its default of 300 entries (then culling a third) is fewer than one cached Clerk address per member
    # of a few merchants, so every send would ask Clerk again.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "django_cache",
            "OPTIONS": {"MAX_ENTRIES": 100_000},
        }
    }

# Dashboard pages and metrics, cached per process until the next dbt run (see dashboards/cache.py). The
# timeout bounds staleness after a dbt run made outside the app; 500 entries of 10-60 KB each.
CACHES["dashboards"] = {
    "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
    "LOCATION": "dashboards",
    "TIMEOUT": env.int("DASHBOARD_CACHE_SECONDS", default=600),
    "OPTIONS": {"MAX_ENTRIES": 500},
}

# The coalesced dbt build after syncs (analytics.services.dbt_build_coalesced_when_due) is a debounce with a
# ceiling: it starts once the stores' raw data has been quiet for DBT_BUILD_COALESCE_SECONDS (no sync recorded
# in that long), or once the oldest sync not built yet has waited DBT_BUILD_COALESCE_MAX_SECONDS, whichever
# comes first. The quiet period is what a lone store's sync waits (10 s of the 60 s from a sync to the
# API, beside a ~40 s build). The ceiling keeps syncs that never pause (a thousand stores, each at a minute of
# its own) from postponing the build for ever: 120 s is twice the one-minute window, so 20 stores whose
# syncs finish within a minute share one build with a minute to spare, and under a steady stream of syncs a
# build starts at most every 2 minutes (a ~40 s build leaves the warehouse idle two thirds of the time) while
# no sync waits longer than 2 minutes plus one build. Both are capped at 600 s, the longest a task may wait in
# the broker; a ceiling below the quiet period would make the quiet period meaningless.
DBT_BUILD_COALESCE_SECONDS = env.int("DBT_BUILD_COALESCE_SECONDS", default=10)
if not 0 <= DBT_BUILD_COALESCE_SECONDS <= 600:
    _stop("DBT_BUILD_COALESCE_SECONDS must be between 0 and 600 (the longest a task may wait in the broker)")
DBT_BUILD_COALESCE_MAX_SECONDS = env.int("DBT_BUILD_COALESCE_MAX_SECONDS", default=max(120, DBT_BUILD_COALESCE_SECONDS))
if not DBT_BUILD_COALESCE_SECONDS <= DBT_BUILD_COALESCE_MAX_SECONDS <= 600:
    _stop(
        "DBT_BUILD_COALESCE_MAX_SECONDS must be between DBT_BUILD_COALESCE_SECONDS and 600 (the longest a task "
        "may wait in the broker)"
    )

# The hourly freshness check (analytics.services.data_freshness_check): a connected source whose data last landed
# longer ago than this is late (warn, recorded) or stale (error: staff and the store's owners and admins told) —
# the thresholds dbt's `source freshness` had (analytics_dbt/models/staging/_sources.yml: warn 24 h, error 48 h).
DATA_FRESHNESS_WARN_HOURS = env.int("DATA_FRESHNESS_WARN_HOURS", default=24)
DATA_FRESHNESS_ERROR_HOURS = env.int("DATA_FRESHNESS_ERROR_HOURS", default=48)
if not 1 <= DATA_FRESHNESS_WARN_HOURS <= DATA_FRESHNESS_ERROR_HOURS:
    _stop("DATA_FRESHNESS_WARN_HOURS must be at least 1 and at most DATA_FRESHNESS_ERROR_HOURS")

# A scheduled dbt run (the nightly build, the weekly test) that finds the dbt lock held asks again every
# DBT_LOCK_RETRY_SECONDS until the lock frees or its schedule's expiry passes (DBT_LOCK_WAIT_MAX_SECONDS when
# it was sent without one); only then is it recorded `skipped` and staff told. A run holding the lock longer than
# DBT_RUN_OVERDUE_MINUTES is reported to staff once (the 5-minute sweep): the nightly build takes ~1 minute.
DBT_LOCK_RETRY_SECONDS = env.int("DBT_LOCK_RETRY_SECONDS", default=5 * 60)
if not 1 <= DBT_LOCK_RETRY_SECONDS <= 600:
    _stop("DBT_LOCK_RETRY_SECONDS must be between 1 and 600 (the longest a task may wait in the broker)")
DBT_LOCK_WAIT_MAX_SECONDS = env.int("DBT_LOCK_WAIT_MAX_SECONDS", default=6 * 60 * 60)
DBT_RUN_OVERDUE_MINUTES = env.int("DBT_RUN_OVERDUE_MINUTES", default=60)
if DBT_LOCK_WAIT_MAX_SECONDS < 0 or DBT_RUN_OVERDUE_MINUTES < 1:
    _stop("DBT_LOCK_WAIT_MAX_SECONDS must be 0 or more and DBT_RUN_OVERDUE_MINUTES at least 1")

CELERY_DATA_DIR = Path(env.str("CELERY_DATA_DIR", default=str(LOCAL_DIR / "celery")))
if REDIS_URL:
    CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default=REDIS_URL)
elif DEV:
    # A single machine without Redis: kombu's filesystem transport is a real broker across processes.
    CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="filesystem://")
else:
    CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", default="")
    if not CELERY_BROKER_URL:
        _stop("REDIS_URL (or CELERY_BROKER_URL) is required outside local development")
CELERY_TASK_TIME_LIMIT = env.int("CELERY_TASK_TIME_LIMIT", default=30 * 60)
CELERY_TASK_SOFT_TIME_LIMIT = env.int("CELERY_TASK_SOFT_TIME_LIMIT", default=25 * 60)
# Redis gives a message that no worker acknowledged to another worker once the visibility timeout has passed
# (its default: an hour). That is how a killed worker's messages come back; but a task waiting for its
# countdown/eta is unacknowledged in a worker too, and so is one reserved behind a running task. So the timeout
# exceeds every countdown (config/celery.py caps them at TASK_MAX_COUNTDOWN_SECONDS; longer waits are kept in
# the database: the notification outbox) and every task's time limit. docs/async.md says what each task
# relies on; tests/config/test_celery.py checks these relations against the real task definitions.
TASK_MAX_COUNTDOWN_SECONDS = 10 * 60
BROKER_VISIBILITY_TIMEOUT_SECONDS = env.int("CELERY_BROKER_VISIBILITY_TIMEOUT", default=CELERY_TASK_TIME_LIMIT + 5 * 60)
_longest_task_wait = max(CELERY_TASK_TIME_LIMIT, TASK_MAX_COUNTDOWN_SECONDS)
if _longest_task_wait >= BROKER_VISIBILITY_TIMEOUT_SECONDS:
    _stop(
        f"CELERY_BROKER_VISIBILITY_TIMEOUT ({BROKER_VISIBILITY_TIMEOUT_SECONDS}) must exceed CELERY_TASK_TIME_LIMIT "
        f"({CELERY_TASK_TIME_LIMIT}) and the longest task countdown ({TASK_MAX_COUNTDOWN_SECONDS}), or running and "
        "waiting tasks are handed to a second worker"
    )
if CELERY_BROKER_URL.startswith("filesystem://"):
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(CELERY_DATA_DIR / "queue"),
        "data_folder_out": str(CELERY_DATA_DIR / "queue"),
        "processed_folder": str(CELERY_DATA_DIR / "processed"),
        "control_folder": str(CELERY_DATA_DIR / "control"),
        "store_processed": False,
    }
elif CELERY_BROKER_URL.startswith(("redis://", "rediss://", "redis+socket://", "sentinel://")):
    CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": BROKER_VISIBILITY_TIMEOUT_SECONDS}
CELERY_RESULT_BACKEND = None
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = "UTC"
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=False)

# --- auth --------------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "accounts:sign_in"

# Clerk: merchant users' session tokens are verified offline with the instance's PEM public key.
CLERK_API_URL = env.str("CLERK_API_URL", default="https://api.clerk.com/v1")
CLERK_SECRET_KEY = env.str("CLERK_SECRET_KEY", default="")
_check(boot.clerk_secret_key_problem(CLERK_SECRET_KEY))
# multiline: a key pasted on one line with \n escapes (as .env files and secret stores often hold it) works too.
CLERK_JWT_KEY = env.str("CLERK_JWT_KEY", default="", multiline=True)
if not CLERK_JWT_KEY and env.str("CLERK_JWT_KEY_FILE", default=""):
    _key_file = Path(env.str("CLERK_JWT_KEY_FILE"))
    if not _key_file.is_file():
        _stop(f"CLERK_JWT_KEY_FILE points at {_key_file}, which does not exist")
    CLERK_JWT_KEY = _key_file.read_text()
# Without it every signed-in request would fail; set, it must parse (a broken paste fails here, not per request).
if CLERK_JWT_KEY or not DEV:
    _check(boot.clerk_jwt_key_problem(CLERK_JWT_KEY))
CLERK_AUTHORIZED_PARTIES = env.list(
    "CLERK_AUTHORIZED_PARTIES",
    default=[f"http://127.0.0.1:{PORT}", f"http://localhost:{PORT}"] if DEV else [],
)
# Every token's azp is checked against these; a production without them could sign nobody in, so it stops. Each
# is an origin exactly as a browser sends it (scheme://host[:port]): anything else would never match an azp.
if not CLERK_AUTHORIZED_PARTIES and not DEV:
    _stop("CLERK_AUTHORIZED_PARTIES is required: the origins (e.g. https://app.example.com) users sign in from")
_check(boot.origins_problem("CLERK_AUTHORIZED_PARTIES", CLERK_AUTHORIZED_PARTIES))
CLERK_SIGN_IN_URL = env.str("CLERK_SIGN_IN_URL", default="")
# How far our clock may be off Clerk's when judging a token's exp/nbf/iat (the SDK's own default).
CLERK_CLOCK_SKEW_MS = env.int("CLERK_CLOCK_SKEW_MS", default=5000)
CLERK_SESSION_COOKIE = "__session"

# The provider sandbox (sandbox/): set in local development and tests only. It enables the dev sign-in.
SANDBOX_URL = env.str("SANDBOX_URL", default="")
if SANDBOX_URL and not DEV:
    _stop("SANDBOX_URL is a local-development setting; unset it or set DJANGO_DEV=1")

# --- notifications -----------------------------------------------------------------------------
# Outgoing mail through Django's email backend: an SMTP relay in production (smtp+tls://user:pw@host:587);
# locally the sandbox's SMTP sink, whose received mail is listed at <SANDBOX_URL>/mail/.
SANDBOX_SMTP_PORT = env.int("SANDBOX_SMTP_PORT", default=8025)
# EMAIL_URL expands into Django's EMAIL_BACKEND, EMAIL_HOST, EMAIL_PORT, EMAIL_HOST_USER/PASSWORD, EMAIL_USE_TLS/SSL.
globals().update(
    env.email_url("EMAIL_URL", default=f"smtp://127.0.0.1:{SANDBOX_SMTP_PORT}" if DEV else "smtp://localhost:25")
)
EMAIL_TIMEOUT = env.int("EMAIL_TIMEOUT", default=10)  # seconds; a hung relay must not pin a worker
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="Marketing analytics <notifications@localhost>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
# A Clerk user's address is cached this long; Clerk's user.updated/user.deleted webhooks drop it sooner.
CLERK_EMAIL_CACHE_TTL = env.int("CLERK_EMAIL_CACHE_TTL", default=60 * 60)
# Svix signing secret (whsec_...) of the Clerk webhook endpoint. Without it the endpoint answers 503.
CLERK_WEBHOOK_SECRET = env.str(
    "CLERK_WEBHOOK_SECRET",
    default="whsec_" + base64.b64encode(hashlib.sha256(b"local-dev-only:clerk-webhook").digest()).decode()
    if DEV
    else "",
)
_check(boot.clerk_webhook_secret_problem(CLERK_WEBHOOK_SECRET))
# Agencies (Clerk organizations). Clerk allows 250 organization invitations per hour per instance; the
# queue sends at most this many so a burst from one agency never makes Clerk refuse everyone else's.
AGENCY_INVITATIONS_PER_HOUR = env.int("AGENCY_INVITATIONS_PER_HOUR", default=200)
AGENCY_INVITATION_EXPIRY_DAYS = env.int("AGENCY_INVITATION_EXPIRY_DAYS", default=7)
# Clerk's default is 5 members per organization; 20 is the most without the B2B add-on.
AGENCY_MAX_MEMBERS = env.int("AGENCY_MAX_MEMBERS", default=20)
# Absolute links in emails (unsubscribe, reconnect) start with this.
APP_BASE_URL = env.str(
    "APP_BASE_URL",
    default=f"http://127.0.0.1:{PORT}" if DEV else (f"https://{ALLOWED_HOSTS[0]}" if ALLOWED_HOSTS else ""),
)
# --- connectors --------------------------------------------------------------------------------
# Base URLs default to the real providers; `make run` and the tests point them at the sandbox.
META_GRAPH_URL = env.str("META_GRAPH_URL", default="https://graph.facebook.com")
META_DIALOG_URL = env.str("META_DIALOG_URL", default="https://www.facebook.com")
META_GRAPH_VERSION = env.str("META_GRAPH_VERSION", default="v25.0")
META_APP_ID = env.str("META_APP_ID", default="")
META_APP_SECRET = env.str("META_APP_SECRET", default="")
META_OAUTH_SCOPES = env.list("META_OAUTH_SCOPES", default=["ads_read", "read_insights"])
GOOGLE_OAUTH_AUTHORIZE_URL = env.str(
    "GOOGLE_OAUTH_AUTHORIZE_URL", default="https://accounts.google.com/o/oauth2/v2/auth"
)
GOOGLE_OAUTH_TOKEN_URL = env.str("GOOGLE_OAUTH_TOKEN_URL", default="https://oauth2.googleapis.com/token")
GOOGLE_OAUTH_REVOKE_URL = env.str("GOOGLE_OAUTH_REVOKE_URL", default="https://oauth2.googleapis.com/revoke")
GOOGLE_OAUTH_CLIENT_ID = env.str("GOOGLE_OAUTH_CLIENT_ID", default="")
GOOGLE_OAUTH_CLIENT_SECRET = env.str("GOOGLE_OAUTH_CLIENT_SECRET", default="")
GOOGLE_OAUTH_SCOPES = env.list("GOOGLE_OAUTH_SCOPES", default=["https://www.googleapis.com/auth/adwords"])
GOOGLE_ADS_API_URL = env.str("GOOGLE_ADS_API_URL", default="https://googleads.googleapis.com")
GOOGLE_ADS_API_VERSION = env.str("GOOGLE_ADS_API_VERSION", default="v24")
GOOGLE_ADS_DEVELOPER_TOKEN = env.str("GOOGLE_ADS_DEVELOPER_TOKEN", default="")
KLAVIYO_API_URL = env.str("KLAVIYO_API_URL", default="https://a.klaviyo.com")
KLAVIYO_REVISION = env.str("KLAVIYO_REVISION", default="2025-10-15")
ATTENTIVE_API_URL = env.str("ATTENTIVE_API_URL", default="https://api.attentivemobile.com")
# Shopify (the app merchants install): in local development and tests the sandbox's app and shops
# (sandbox/providers/shopify.py); in production every one is required. SHOPIFY_ADMIN_URL is where a shop's
# Admin API lives, `{shop}` being its myshopify domain: https://{shop} for real shops.
SHOPIFY_API_KEY = _secret("SHOPIFY_API_KEY", "sandbox-shopify-api-key")
SHOPIFY_API_SECRET = _secret("SHOPIFY_API_SECRET", "shpss_sandbox_shopify_api_secret_0000")
# write_pixels and read_customer_events: the web pixel is activated per store with webPixelCreate (collector/).
SHOPIFY_SCOPES = env.list(
    "SHOPIFY_SCOPES",
    default=["read_orders", "read_customers", "read_products", "write_pixels", "read_customer_events"] if DEV else [],
)
SHOPIFY_API_VERSION = env.str("SHOPIFY_API_VERSION", default="2026-01" if DEV else "")
SHOPIFY_APP_URL = env.str("SHOPIFY_APP_URL", default=APP_BASE_URL if DEV else "").rstrip("/")
SHOPIFY_ADMIN_URL = env.str(
    "SHOPIFY_ADMIN_URL",
    default=f"{SANDBOX_URL or 'http://127.0.0.1:8001'}/shopify/{{shop}}" if DEV else "https://{shop}",
)
if not DEV:
    _check(
        boot.shopify_problem(
            {
                "SHOPIFY_API_KEY": SHOPIFY_API_KEY,
                "SHOPIFY_API_SECRET": SHOPIFY_API_SECRET,
                "SHOPIFY_SCOPES": SHOPIFY_SCOPES,
                "SHOPIFY_API_VERSION": SHOPIFY_API_VERSION,
                "SHOPIFY_APP_URL": SHOPIFY_APP_URL,
            }
        )
    )
# A pending install (started from Shopify, waiting for its person to sign in) can be claimed this long.
SHOPIFY_CLAIM_MAX_AGE_SECONDS = env.int("SHOPIFY_CLAIM_MAX_AGE_SECONDS", default=30 * 60)
# (connect, read) seconds for every provider call; no call goes out without a timeout.
CONNECTORS_HTTP_TIMEOUT = (
    env.float("CONNECTORS_HTTP_CONNECT_TIMEOUT", default=5.0),
    env.float("CONNECTORS_HTTP_READ_TIMEOUT", default=20.0),
)
# How far ahead of expiry a token is refreshed: Google's live an hour, Meta's about 60 days.
CONNECTORS_GOOGLE_REFRESH_AHEAD_SECONDS = env.int("CONNECTORS_GOOGLE_REFRESH_AHEAD_SECONDS", default=600)
CONNECTORS_META_REFRESH_AHEAD_DAYS = env.int("CONNECTORS_META_REFRESH_AHEAD_DAYS", default=7)
# Shopify's expiring offline tokens live an hour; Shopify asks for a refresh a few minutes ahead.
CONNECTORS_SHOPIFY_REFRESH_AHEAD_SECONDS = env.int("CONNECTORS_SHOPIFY_REFRESH_AHEAD_SECONDS", default=300)
# Consecutive transient refresh failures before a credential turns to `error` and is alerted.
CONNECTORS_REFRESH_MAX_FAILURES = env.int("CONNECTORS_REFRESH_MAX_FAILURES", default=5)
# How long a writer (refresh, revoke, re-encrypt) waits for the credential's row lock.
CONNECTORS_REFRESH_LOCK_TIMEOUT_SECONDS = env.int("CONNECTORS_REFRESH_LOCK_TIMEOUT_SECONDS", default=30)
# The most a refresh caller waits in all: for another caller's refresh of the credential plus its own provider call.
CONNECTORS_REFRESH_MAX_WAIT_SECONDS = env.float("CONNECTORS_REFRESH_MAX_WAIT_SECONDS", default=30.0)
# After a failed refresh, callers within this many seconds (or the provider's Retry-After, if longer) get the
# same failure at once, without calling the provider; failures within one such window count once.
CONNECTORS_REFRESH_NEGATIVE_CACHE_SECONDS = env.float("CONNECTORS_REFRESH_NEGATIVE_CACHE_SECONDS", default=30.0)
CONNECTORS_API_KEY_CONNECT_RATE = env.str("CONNECTORS_API_KEY_CONNECT_RATE", default="10/min")

# --- the web pixel's collector (collector/, docs/rfcs/session-tracking.md) ------------------------------
# Where the pixel posts its batches (the pixel's `collectorUrl` setting at activation).
COLLECTOR_URL = env.str("COLLECTOR_URL", default=f"{APP_BASE_URL}/collect/v1/batch")
COLLECTOR_MAX_EVENTS = env.int("COLLECTOR_MAX_EVENTS", default=500)  # per batch
COLLECTOR_MAX_BODY_BYTES = env.int("COLLECTOR_MAX_BODY_BYTES", default=512 * 1024)
# |received_at - sent_at| beyond this is a broken clock, not skew to correct: the batch is refused.
COLLECTOR_MAX_CLOCK_SKEW_SECONDS = env.int("COLLECTOR_MAX_CLOCK_SKEW_SECONDS", default=24 * 3600)
# An event may wait in the visitor's browser (unsent, retried) this long before it is too old to take.
COLLECTOR_MAX_EVENT_AGE_SECONDS = env.int("COLLECTOR_MAX_EVENT_AGE_SECONDS", default=7 * 24 * 3600)
# Rate limits, per fixed window: batches per client IP, events per write key (429 + Retry-After beyond).
# With REDIS_URL they hold across processes; without, per process (each gunicorn worker counts its own).
COLLECTOR_RATE_WINDOW_SECONDS = env.int("COLLECTOR_RATE_WINDOW_SECONDS", default=10)
COLLECTOR_IP_BATCHES_PER_WINDOW = env.int("COLLECTOR_IP_BATCHES_PER_WINDOW", default=60)
COLLECTOR_KEY_EVENTS_PER_WINDOW = env.int("COLLECTOR_KEY_EVENTS_PER_WINDOW", default=200_000)
# Client IP: REMOTE_ADDR, or the Nth address from the right of X-Forwarded-For behind N trusted proxies.
COLLECTOR_TRUSTED_PROXY_COUNT = env.int("COLLECTOR_TRUSTED_PROXY_COUNT", default=0)
# A rotated write key is still accepted this long (pages cached with the old pixel settings).
COLLECTOR_WRITE_KEY_GRACE_SECONDS = env.int("COLLECTOR_WRITE_KEY_GRACE_SECONDS", default=7 * 24 * 3600)
# Each process writes its counters (collector.EventCount) at most this often.
COLLECTOR_COUNTS_FLUSH_SECONDS = env.float("COLLECTOR_COUNTS_FLUSH_SECONDS", default=5.0)

# --- ingestion (Airbyte's public API; ingestion/) ------------------------------------------------------
# Cloud: https://api.airbyte.com/v1; self-hosted: <server>/api/public/v1. Locally the sandbox's stand-in.
AIRBYTE_API_URL = env.str(
    "AIRBYTE_API_URL", default=f"{SANDBOX_URL or 'http://127.0.0.1:8001'}/airbyte/v1" if DEV else ""
)
AIRBYTE_CLIENT_ID = env.str("AIRBYTE_CLIENT_ID", default="sandbox-airbyte-client" if DEV else "")
AIRBYTE_CLIENT_SECRET = _secret("AIRBYTE_CLIENT_SECRET", "sandbox-airbyte-secret")
AIRBYTE_WORKSPACE_ID = env.str("AIRBYTE_WORKSPACE_ID", default="5ae6b09b-fdec-41af-aaf7-7d94cfc33ef6" if DEV else "")
# The one PostgreSQL destination Airbyte writes every store's raw schema into; created in Airbyte once, on
# the first connect (ingestion/services.py). An empty host means the warehouse database itself (local
# development). The password is sent to Airbyte only: never logged, shown in admin or returned.
AIRBYTE_DESTINATION_HOST = env.str("AIRBYTE_DESTINATION_HOST", default="")
AIRBYTE_DESTINATION_PORT = env.int("AIRBYTE_DESTINATION_PORT", default=5432)
AIRBYTE_DESTINATION_DATABASE = env.str("AIRBYTE_DESTINATION_DATABASE", default="")
AIRBYTE_DESTINATION_USER = env.str("AIRBYTE_DESTINATION_USER", default="")
AIRBYTE_DESTINATION_PASSWORD = env.str("AIRBYTE_DESTINATION_PASSWORD", default="")
AIRBYTE_DESTINATION_SSL_MODE = env.str("AIRBYTE_DESTINATION_SSL_MODE", default="disable" if DEV else "require")
# Each connection syncs this often, at a minute of the hour derived from its id (staggered).
AIRBYTE_SYNC_INTERVAL_SECONDS = env.int("AIRBYTE_SYNC_INTERVAL_SECONDS", default=3600)
# The operator's switch: scheduled syncs stop (pipelines still follow their credentials, running jobs are still
# followed to their end, staff's "sync now" still works): for maintenance of the warehouse, say.
AIRBYTE_SCHEDULED_SYNCS_PAUSED = env.bool("AIRBYTE_SCHEDULED_SYNCS_PAUSED", default=False)
# At most this many history syncs (a pipeline's first, which reads HISTORY_DAYS back) run at once in the
# deployment: an agency onboarding 50 stores at once would otherwise start 200 of them in the same minute. The
# others wait, due, for a free place (the sweeper, every minute). 0: no limit.
AIRBYTE_HISTORY_SYNCS_MAX_CONCURRENT = env.int("AIRBYTE_HISTORY_SYNCS_MAX_CONCURRENT", default=10)
# After this many failed syncs in a row the store's owners and admins are told, once per failing run.
AIRBYTE_SYNC_ALERT_AFTER_FAILURES = env.int("AIRBYTE_SYNC_ALERT_AFTER_FAILURES", default=3)
# Airbyte's API unreachable this long → one ERROR line for staff per outage (syncs catch up afterwards).
AIRBYTE_OUTAGE_ALERT_SECONDS = env.int("AIRBYTE_OUTAGE_ALERT_SECONDS", default=600)
# The exchange-rates source's API key (exchangeratesapi.io / apilayer): one for the deployment, ours, not a
# merchant's. Each store with a Meta or Google Ads connection syncs the rates daily into its raw schema (the marts
# convert ad spend with them). Empty: no such pipeline is made, and spend in a currency other than the store's
# is left unconverted (fct_ad_spend_daily).
EXCHANGE_RATES_ACCESS_KEY = _secret("EXCHANGE_RATES_ACCESS_KEY", "sandbox-exchange-rates-key")
# A store uninstalled this long ago is closed (Shopify erases it, shop/redact, 48 h after the uninstall): its
# paused connections and their sources, which hold its other providers' secrets, are deleted from Airbyte.
AIRBYTE_TEARDOWN_AFTER_UNINSTALL_DAYS = env.int("AIRBYTE_TEARDOWN_AFTER_UNINSTALL_DAYS", default=2)
# Where Airbyte can reach us: the workspace's failure and success notifications are set (once, on first use) to
# <this>/webhooks/airbyte/?token=<derived from SECRET_KEY>. Empty: no notifications (the poller still follows
# every job, but a source's refused credentials are then seen only as "failed").
AIRBYTE_NOTIFICATIONS_BASE_URL = env.str("AIRBYTE_NOTIFICATIONS_BASE_URL", default=APP_BASE_URL).rstrip("/")
if not DEV:
    _check(boot.airbyte_problem(AIRBYTE_API_URL, AIRBYTE_CLIENT_ID, AIRBYTE_CLIENT_SECRET, AIRBYTE_WORKSPACE_ID))

# --- dashboards --------------------------------------------------------------------------------
# Content-Security-Policy (config.csp): scripts and styles from our origin only; Django admin and
# the Swagger UI need inline script/style and get the relaxed policy.
CSP_POLICY = env.str(
    "CSP_POLICY",
    default="default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'",
)
CSP_RELAXED_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'self'; frame-ancestors 'none'"
)
CSP_RELAXED_PATH_PREFIXES = ["/admin/", "/api/docs/"]

# --- HTTP security -----------------------------------------------------------------------------
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
if not DEBUG:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=60 * 60 * 24 * 365)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    # Behind a TLS-terminating proxy the app sees plain HTTP; trust its header only when told to.
    if env.bool("SECURE_PROXY_SSL_HEADER", default=False):
        SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    # /healthz and /readyz are probed over plain HTTP from inside the network.
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]

# --- i18n, static ------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}
WHITENOISE_USE_FINDERS = DEBUG

# --- API ---------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["accounts.api.authentication.ClerkSessionAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    # Bounded limit/offset and a JSON parser that refuses over-deep documents: bad input is a 400 (config/api.py).
    "DEFAULT_PAGINATION_CLASS": "config.api.LimitOffsetPagination",
    "DEFAULT_PARSER_CLASSES": [
        "config.api.JSONParser",
        "rest_framework.parsers.FormParser",
        "rest_framework.parsers.MultiPartParser",
    ],
    "PAGE_SIZE": 100,
    "EXCEPTION_HANDLER": "config.api.exception_handler",
    "UNAUTHENTICATED_USER": None,
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Marketing analytics API",
    "DESCRIPTION": "Merchant data, connectors and metrics. Authenticate with a Clerk session token.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # Request bodies get components of their own: read-only fields left out, required text non-blank.
    "COMPONENT_SPLIT_REQUEST": True,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Enums named after what they are, not after the field that happens to hold them ("TypeEnum", "KindEnum").
    "ENUM_NAME_OVERRIDES": {
        "WidgetTypeEnum": "dashboards.choices.WidgetType",
        "WidgetWidthEnum": "dashboards.choices.WidgetWidth",
        "KpiKindEnum": "dashboards.api.serializers.KPI_KINDS",
        "EngagementChannelEnum": "dashboards.selectors.ENGAGEMENT_CHANNELS",
        "AttributionModelEnum": "dashboards.api.serializers.ATTRIBUTION_MODEL_CHOICES",
    },
}

# --- error reports -----------------------------------------------------------------------------
# Django's reports (technical 500 page, mailed reports) hide the request's secrets too: the OAuth callback's and
# webhooks' query strings, secret-named GET/POST parameters, Clerk's session cookie (config/reporting.py).
DEFAULT_EXCEPTION_REPORTER_FILTER = "config.reporting.SafeExceptionReporterFilter"
DEFAULT_EXCEPTION_REPORTER = "config.reporting.SafeExceptionReporter"

# --- logging -----------------------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
LOG_FORMAT = env.str("LOG_FORMAT", default="text" if DEBUG else "json")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"redact": {"()": "config.logging.RedactSecretsFilter"}},
    "formatters": {
        "json": {"()": "config.logging.JsonFormatter"},
        "text": {"()": "config.logging.TextFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["redact"],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django.db.backends": {"level": "INFO"},
        # The Clerk SDK's HTTP client logs request lines, headers included, at DEBUG.
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
}
