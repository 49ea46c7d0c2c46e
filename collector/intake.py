"""POST /collect/v1/batch: the web pixel's batches into raw_<key>.web_events (docs/rfcs/session-tracking.md).

On the hot path (thousands of events a second on two cores), so it runs ahead of Django's middleware, as the
Attentive intake does (config/wsgi.py): no session, cookie, CSRF or auth work, one indexed read of the write key
per process every LOOKUP_CACHE_SECONDS, and one INSERT per batch.

Durability: an answer 2xx means the batch's events are committed. The INSERT is one statement in autocommit (all
of the batch or none of it), and only its success is answered 200. A database that is unavailable answers 503
with Retry-After, and the pixel sends the same batch again (same event ids): the unique index on event_id makes
the resend land once. A connection that died under us (a restart, pg_terminate_backend) is reconnected and the
statement run once more before giving up; if the first run did commit before the connection died, the second
finds its rows and counts them as duplicates — stored once either way. Nothing is buffered in this process: a
worker killed mid-request has answered nothing, and the pixel resends.
"""

from __future__ import annotations

import atexit
import datetime as dt
import json
import logging
import re
import threading
import time
from dataclasses import dataclass
from typing import Any

import psycopg
from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, ProgrammingError, connections, transaction
from django.utils import timezone
from psycopg import sql

from analytics.raw_schema import raw_schema_name, raw_table_statements, table_columns
from collector import bots, events
from collector.privacy import PATH, ip_digest, ip_prefix
from collector.ratelimit import limiter

logger = logging.getLogger(__name__)

TABLE = "web_events"

UNKNOWN_KEY = "Unknown or expired write key."
BAD_KEY = "Not a write key."
RATE_LIMITED = "Too many {what}; retry after {seconds} s."
STORE_FAILED = "The events could not be stored right now; send the same batch again."
BODY_TOO_LARGE = "The body is larger than {limit} bytes."
LENGTH_REQUIRED = "Content-Length is required."
METHOD_NOT_ALLOWED = "Only POST (and the OPTIONS preflight)."
STORE_RETRY_AFTER_SECONDS = 2

_WRITE_KEY = re.compile(r"wk_[A-Za-z0-9_-]{16,60}")


@dataclass(frozen=True)
class Answer:
    status: int
    body: dict[str, Any]
    retry_after: int | None = None


# --- write keys --------------------------------------------------------------------------------------------

LOOKUP_CACHE_SECONDS = 5.0
_KEY_QUERY = (
    "SELECT m.id, m.key, m.shop_domain, k.expires_at FROM collector_writekey k "
    "JOIN accounts_merchant m ON m.id = k.merchant_id "
    "WHERE k.key = %s AND m.is_active AND (k.expires_at IS NULL OR k.expires_at > now())"
)
_keys: dict[str, tuple[float, tuple[int, str, str, dt.datetime | None] | None]] = {}


@dataclass(frozen=True)
class Store:
    merchant_id: int
    merchant_key: str
    shop_domain: str


def store_for_key(write_key: str) -> Store | None:
    """The store of a live write key (None: unknown, expired, or its store inactive); one read per process at
    most every LOOKUP_CACHE_SECONDS, so a rotation's end or an uninstall is honoured within that."""
    now = time.monotonic()
    cached = _keys.get(write_key)
    if cached is None or now - cached[0] >= LOOKUP_CACHE_SECONDS:
        row = _reconnecting("default", lambda cursor: (cursor.execute(_KEY_QUERY, [write_key]), cursor.fetchone())[1])
        if len(_keys) > 10_000:
            _keys.clear()
        _keys[write_key] = cached = (now, row)
    row = cached[1]
    if row is None or (row[3] is not None and row[3] <= timezone.now()):
        return None
    return Store(merchant_id=row[0], merchant_key=row[1], shop_domain=row[2])


def write_keys_forget() -> None:
    _keys.clear()


# --- client IP ---------------------------------------------------------------------------------------------


def client_ip(environ: dict[str, Any]) -> str:
    """REMOTE_ADDR, or behind COLLECTOR_TRUSTED_PROXY_COUNT proxies the address the outermost one saw."""
    hops = settings.COLLECTOR_TRUSTED_PROXY_COUNT
    if hops > 0:
        forwarded = [part.strip() for part in environ.get("HTTP_X_FORWARDED_FOR", "").split(",") if part.strip()]
        if len(forwarded) >= hops:
            return forwarded[-hops]
    return environ.get("REMOTE_ADDR", "")


# --- counters ----------------------------------------------------------------------------------------------

COUNT_FIELDS = ("accepted", "duplicate", "no_consent", "bot", "rejected")
_counts: dict[tuple[int, dt.datetime], list[int]] = {}
_counts_lock = threading.Lock()
_counts_flushed_at = time.monotonic()


def count(merchant_id: int, at: dt.datetime, **amounts: int) -> None:
    hour = at.replace(minute=0, second=0, microsecond=0)
    with _counts_lock:
        totals = _counts.setdefault((merchant_id, hour), [0] * len(COUNT_FIELDS))
        for index, name in enumerate(COUNT_FIELDS):
            totals[index] += amounts.get(name, 0)


_COUNTS_UPSERT = (
    "INSERT INTO collector_eventcount (merchant_id, hour, accepted, duplicate, no_consent, bot, rejected) "
    "VALUES {values} ON CONFLICT (merchant_id, hour) DO UPDATE SET "
    "accepted = collector_eventcount.accepted + excluded.accepted, "
    "duplicate = collector_eventcount.duplicate + excluded.duplicate, "
    "no_consent = collector_eventcount.no_consent + excluded.no_consent, "
    "bot = collector_eventcount.bot + excluded.bot, rejected = collector_eventcount.rejected + excluded.rejected"
)


def counts_flush(*, force: bool = False) -> None:
    """Add this process's counts to collector_eventcount (at most every COLLECTOR_COUNTS_FLUSH_SECONDS). Counts
    that cannot be written are kept for the next flush; a process killed in between loses its last seconds of
    counts, never an event."""
    global _counts_flushed_at
    now = time.monotonic()
    if not force and now - _counts_flushed_at < settings.COLLECTOR_COUNTS_FLUSH_SECONDS:
        return
    with _counts_lock:
        pending = dict(_counts)
        _counts.clear()
        _counts_flushed_at = now
    if not pending:
        return
    params: list[Any] = []
    for (merchant_id, hour), totals in pending.items():
        params.extend([merchant_id, hour, *totals])
    statement = _COUNTS_UPSERT.format(values=", ".join(["(%s, %s, %s, %s, %s, %s, %s)"] * len(pending)))
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute(statement, params)
    except DatabaseError as exc:
        logger.warning("collector counts not written (%s); kept for the next flush", type(exc).__name__)
        with _counts_lock:
            for key, totals in pending.items():
                mine = _counts.setdefault(key, [0] * len(COUNT_FIELDS))
                for index, amount in enumerate(totals):
                    mine[index] += amount


def _flush_at_exit() -> None:
    try:
        counts_flush(force=True)
    except Exception:
        logger.warning("collector counts not written at exit")


atexit.register(_flush_at_exit)


# --- the write ---------------------------------------------------------------------------------------------

_COLUMNS = [name for name, _ in table_columns(TABLE)]
_INSERTS: dict[str, str] = {}


# Computed by the statement rather than sent per row: the batch's constants (bound once), the device clock's
# correction (occurred_at + (received_at - sent_at)), and Airbyte's metadata columns.
_BY_STATEMENT = {
    "occurred_at": "r.occurred_at + (%(received_at)s::timestamptz - %(sent_at)s::timestamptz)",
    "sent_at": "%(sent_at)s::timestamptz",
    "received_at": "%(received_at)s::timestamptz",
    "ip_prefix": "%(ip_prefix)s::text",
    "shop_url": "%(shop_url)s::text",
    "_airbyte_raw_id": "gen_random_uuid()",
    "_airbyte_extracted_at": "%(received_at)s::timestamptz",
    "_airbyte_meta": """'{"changes": [], "sync_id": null}'::jsonb""",
    "_airbyte_generation_id": "0",
}


def _insert_sql(merchant_key: str) -> str:
    statement = _INSERTS.get(merchant_key)
    if statement is None:
        table = sql.Identifier(raw_schema_name(merchant_key), TABLE)
        picked = [
            sql.SQL(_BY_STATEMENT[name]) if name in _BY_STATEMENT else sql.SQL("r.{}").format(sql.Identifier(name))
            for name in _COLUMNS
        ]
        statement = _INSERTS[merchant_key] = (
            sql.SQL(
                "INSERT INTO {table} ({cols}) SELECT {picked}"
                " FROM jsonb_populate_recordset(NULL::{table}, %(rows)s::jsonb) AS r"
                " ON CONFLICT (event_id) DO NOTHING"
            )
            .format(
                table=table,
                cols=sql.SQL(", ").join(map(sql.Identifier, _COLUMNS)),
                picked=sql.SQL(", ").join(picked),
            )
            .as_string(None)
        )
    return statement


def _raw_alias() -> str:
    from connectors.attentive import _raw_alias as attentive_raw_alias

    return attentive_raw_alias()


def web_events_table_create(*, merchant_key: str) -> None:
    """The store's raw schema and web_events table with its unique event_id index (idempotent)."""
    alias = _raw_alias()
    with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
        for statement in raw_table_statements(merchant_key, (TABLE,)):
            cursor.execute(statement.as_string(None))


def _reconnecting(alias: str, work: Any) -> Any:
    """`work(cursor)`, run once more on a new connection if the connection was lost (a database restart,
    pg_terminate_backend) — never inside a transaction, where the first run's effects would be gone with it."""
    connection = connections[alias]
    try:
        with connection.cursor() as cursor:
            return work(cursor)
    except (InterfaceError, OperationalError) as exc:
        if connection.in_atomic_block:
            raise
        logger.info("collector: database connection lost (%s); reconnecting once", type(exc).__name__)
        connection.close()
    with connection.cursor() as cursor:
        return work(cursor)


def _execute(alias: str, statement: str, payload: dict[str, Any]) -> int:
    def work(cursor) -> int:
        # psycopg's own cursor under Django's (whose ClientCursor would quote the batch's JSON into the SQL
        # text): the JSON goes as a bound parameter, and the statement is prepared once per connection.
        connection = connections[alias]
        with connection.wrap_database_errors, psycopg.Cursor(connection.connection) as raw:
            raw.execute(statement, payload, prepare=True)
            return raw.rowcount

    if connections[alias].in_atomic_block:
        # Inside someone's transaction (a test's): a savepoint, so a missing table does not abort it.
        with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
            return work(cursor)
    return _reconnecting(alias, work)


_TABLE_INCOMPLETE = (
    psycopg.errors.UndefinedTable,
    psycopg.errors.InvalidSchemaName,
    psycopg.errors.InvalidColumnReference,
)


def web_events_insert(*, merchant_key: str, rows: list[dict[str, Any]], batch: dict[str, Any]) -> int:
    """Store the rows (events.event_row) with the batch's columns (events.BATCH_COLUMNS) in one statement;
    returns how many were new (the others were stored before). DatabaseError propagates when the database
    cannot take them (after one reconnect for a lost connection: if the lost statement had committed, the
    second run finds its rows and counts them as duplicates)."""
    alias = _raw_alias()
    statement = _insert_sql(merchant_key)
    payload = {**batch, "rows": json.dumps(rows, separators=(",", ":"))}
    try:
        return _execute(alias, statement, payload)
    except ProgrammingError as exc:
        # No table yet (the store's first event), or one made without the unique event_id index by a writer
        # that knows only the columns (the sandbox's demo seed): made, or completed, here.
        missing = (
            psycopg.errors.UndefinedTable | psycopg.errors.InvalidSchemaName | psycopg.errors.InvalidColumnReference
        )
        if not isinstance(exc.__cause__, missing):
            raise
    try:
        web_events_table_create(merchant_key=merchant_key)
    except DatabaseError:
        logger.info("web_events of %s: created concurrently", merchant_key)
    return _execute(alias, statement, payload)


_UNBUILT_WEB_CHANGE = (
    "SELECT EXISTS (SELECT 1 FROM analytics_rawdatachange WHERE merchant_id = %s AND source = 'web' "
    "AND consumed_by_run_id IS NULL)"
)


def web_change_mark(*, merchant_id: int) -> None:
    """New events are raw data the coalesced build must take in: one `web` change until a build takes it (as
    connectors.attentive.attentive_change_mark does, so a burst is one change per build, not one per batch).
    Never fails the batch, whose events are stored: the nightly build takes them in."""
    from analytics.services import raw_data_changed_mark

    try:
        with connections["default"].cursor() as cursor:
            cursor.execute(_UNBUILT_WEB_CHANGE, [merchant_id])
            (pending,) = cursor.fetchone()
        if not pending:
            raw_data_changed_mark(merchant_id=merchant_id, source="web", at=timezone.now())
    except DatabaseError as exc:
        logger.warning("collector: the change of merchant %s not recorded (%s)", merchant_id, type(exc).__name__)


# --- one batch ---------------------------------------------------------------------------------------------


def batch_receive(*, body: bytes, ip: str, header_user_agent: str) -> Answer:
    """One POST's body → the answer. Never raises for bad input; a database failure is a 503."""
    received_at = timezone.now()
    ip_key = ip_digest(ip, settings.SECRET_KEY.encode())
    wait = limiter().hit(f"ip:{ip_key}", 1, settings.COLLECTOR_IP_BATCHES_PER_WINDOW)
    if wait is not None:
        return Answer(
            429, {"error": RATE_LIMITED.format(what="batches from this address", seconds=int(wait))}, int(wait)
        )
    try:
        document = events.body_parse(body)
        write_key = events.write_key_of(document)
    except events.BatchRefused as exc:
        return Answer(400, {"errors": exc.errors})
    if not _WRITE_KEY.fullmatch(write_key):
        return Answer(401, {"errors": {"write_key": [BAD_KEY]}})
    try:
        store = store_for_key(write_key)
    except DatabaseError:
        logger.warning("collector: database unavailable while looking up a write key")
        return Answer(503, {"error": STORE_FAILED}, STORE_RETRY_AFTER_SECONDS)
    if store is None:
        return Answer(401, {"errors": {"write_key": [UNKNOWN_KEY]}})
    try:
        batch = events.batch_parse(
            document,
            received_at=received_at,
            max_events=settings.COLLECTOR_MAX_EVENTS,
            max_skew=settings.COLLECTOR_MAX_CLOCK_SKEW_SECONDS,
            max_age=settings.COLLECTOR_MAX_EVENT_AGE_SECONDS,
        )
    except events.BatchRefused as exc:
        given = document.get("events")
        count(store.merchant_id, received_at, rejected=len(given) if isinstance(given, list) else 1)
        counts_flush()
        return Answer(400, {"errors": exc.errors})
    wait = limiter().hit(f"key:{store.merchant_id}", len(batch.events), settings.COLLECTOR_KEY_EVENTS_PER_WINDOW)
    if wait is not None:
        count(store.merchant_id, received_at, rejected=len(batch.events))
        counts_flush()
        return Answer(429, {"error": RATE_LIMITED.format(what="events for this store", seconds=int(wait))}, int(wait))

    prefix = ip_prefix(ip)
    fallback_agent = header_user_agent[: events.MAX_USER_AGENT]
    rows, no_consent, bot = [], 0, 0
    for event in batch.events:
        if not event["analytics_consent"]:
            no_consent += 1
            continue
        agent = event["user_agent"] or fallback_agent
        # The event's own user agent (the pixel's navigator), and the request's if it sent one: a bot's fetch
        # claiming a browser's user agent in the payload is still a bot.
        if bots.is_bot(agent) or (fallback_agent and fallback_agent != agent and bots.is_bot(fallback_agent)):
            bot += 1
            continue
        rows.append(events.event_row(event, user_agent=agent))
    inserted = 0
    if rows:
        constants = {"sent_at": batch.sent_at, "received_at": received_at, "ip_prefix": prefix,
                     "shop_url": store.shop_domain}  # fmt: skip
        try:
            inserted = web_events_insert(merchant_key=store.merchant_key, rows=rows, batch=constants)
        except DatabaseError as exc:
            logger.warning("collector: batch not stored (%s); the pixel sends it again", type(exc).__name__)
            return Answer(503, {"error": STORE_FAILED}, STORE_RETRY_AFTER_SECONDS)
        if inserted:
            web_change_mark(merchant_id=store.merchant_id)
    duplicate = len(rows) - inserted
    count(store.merchant_id, received_at, accepted=inserted, duplicate=duplicate, no_consent=no_consent, bot=bot)
    counts_flush()
    return Answer(200, {"accepted": inserted, "duplicate": duplicate, "no_consent": no_consent, "bot": bot})


# --- HTTP ----------------------------------------------------------------------------------------------------

_STATUS_LINES = {200: "200 OK", 204: "204 No Content", 400: "400 Bad Request", 401: "401 Unauthorized",
                 405: "405 Method Not Allowed", 411: "411 Length Required", 413: "413 Content Too Large",
                 429: "429 Too Many Requests", 500: "500 Internal Server Error",
                 503: "503 Service Unavailable"}  # fmt: skip
# No credentials ever cross (the pixel sends none, we set none): any origin may post, the pixel's sandbox
# (Origin `null`) and the shop's own pages alike. `*` cannot be combined with credentials, which is the point.
CORS_HEADERS = [
    ("Access-Control-Allow-Origin", "*"),
    ("Access-Control-Allow-Methods", "POST, OPTIONS"),
    ("Access-Control-Allow-Headers", "Content-Type"),
    ("Access-Control-Max-Age", "86400"),
]
_BASE_HEADERS = [("Cache-Control", "no-store"), ("X-Content-Type-Options", "nosniff"), *CORS_HEADERS]


def http_answer(environ: dict[str, Any]) -> tuple[int, list[tuple[str, str]], bytes]:
    """The collector's whole HTTP exchange for one request to PATH: status, headers, body."""
    method = environ.get("REQUEST_METHOD")
    if method == "OPTIONS":
        return 204, list(_BASE_HEADERS), b""
    if method != "POST":
        answer = Answer(405, {"error": METHOD_NOT_ALLOWED})
        return _encode(answer, extra=[("Allow", "POST, OPTIONS")])
    try:
        length = int(environ.get("CONTENT_LENGTH") or "")
    except ValueError:
        length = -1
    limit = settings.COLLECTOR_MAX_BODY_BYTES
    if length < 0:
        answer = Answer(411, {"error": LENGTH_REQUIRED})
    elif length > limit:
        answer = Answer(413, {"errors": {"body": [BODY_TOO_LARGE.format(limit=limit)]}})
    else:
        body = environ["wsgi.input"].read(length) if length else b""
        answer = batch_receive(body=body, ip=client_ip(environ), header_user_agent=environ.get("HTTP_USER_AGENT", ""))
    return _encode(answer)


def _encode(answer: Answer, extra: list[tuple[str, str]] | None = None) -> tuple[int, list[tuple[str, str]], bytes]:
    payload = json.dumps(answer.body).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(payload))), *_BASE_HEADERS]
    if answer.retry_after is not None:
        headers.append(("Retry-After", str(answer.retry_after)))
    return answer.status, headers + (extra or []), payload


class CollectorDispatch:
    """WSGI middleware (config/wsgi.py): requests to PATH are answered by the collector directly, everything else
    goes to Django. Kept from Django's handling: the request_started/finished signals (database connections are
    health-checked and recycled as for any request). Not run: sessions, CSRF, auth, messages — none applies to
    an anonymous, credential-less beacon, and together they cost more than the batch's own work."""

    def __init__(self, django_app: Any) -> None:
        self.django_app = django_app

    def __call__(self, environ: dict, start_response: Any) -> Any:
        if environ.get("PATH_INFO") != PATH:
            return self.django_app(environ, start_response)
        from django.core import signals

        signals.request_started.send(sender=self.__class__, environ=environ)
        # Django's per-request health check is one more round trip (SELECT 1) before the batch's statements;
        # those reconnect by themselves on a lost connection (_reconnecting), so it is skipped here.
        for alias in {"default", _raw_alias()}:
            if connections[alias].connection is not None:
                connections[alias].health_check_done = True
        try:
            status, headers, payload = http_answer(environ)
        except Exception:
            logger.exception("collector: the intake failed")
            status, headers, payload = _encode(Answer(500, {"error": "internal error"}))
        finally:
            signals.request_finished.send(sender=self.__class__)
        start_response(_STATUS_LINES.get(status, f"{status} Error"), headers)
        return [payload]
