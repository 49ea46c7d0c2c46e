from __future__ import annotations

import datetime as dt
import io
import json
import uuid

import pytest
from django.db import connections
from django.utils import timezone

from collector import intake, ratelimit
from collector.services import write_key_get_or_create
from tests.accounts.factories import MerchantFactory
from tests.connectors.conftest import providers  # noqa: F401  (the provider sandbox, for the activation tests)

CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.0 Mobile/15E148 Safari/604.1"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


@pytest.fixture(autouse=True)
def _fresh_collector_state(settings):
    intake.write_keys_forget()
    ratelimit.limiter_reset()
    settings.REDIS_URL = ""
    intake._counts.clear()
    yield
    intake.write_keys_forget()
    ratelimit.limiter_reset()
    intake._counts.clear()


@pytest.fixture
def store():
    return MerchantFactory(shop_domain="hudson-ivy.myshopify.com", key="hudson_ivy")


@pytest.fixture
def write_key(store) -> str:
    return write_key_get_or_create(merchant=store).key


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def event(n: int = 0, **fields) -> dict:
    now = timezone.now()
    base = {
        "event_id": f"evt-{n}-{uuid.uuid4().hex[:8]}",
        "name": "page_viewed",
        "client_id": "client-1",
        "seq": n,
        "occurred_at": iso(now - dt.timedelta(seconds=5)),
        "url": "https://hudson-ivy.myshopify.com/products/mug?utm_source=fb&utm_medium=paid&fbclid=FB1",
        "referrer": "https://www.facebook.com/",
        "user_agent": CHROME,
        "consent": {"analytics": True, "marketing": False, "preferences": False, "sale_of_data": False},
    }
    base.update(fields)
    return base


def batch(write_key: str, events: list[dict], **fields) -> dict:
    return {"write_key": write_key, "sent_at": iso(timezone.now()), "pixel_version": "1", "events": events, **fields}


def wsgi_call(body: bytes | str | dict = b"", *, method: str = "POST", headers: dict | None = None, length=None):
    """config.wsgi's application (the collector's fast path in front of Django) with a real environ."""
    from django.core import signals
    from django.db import close_old_connections

    from config.wsgi import application

    if isinstance(body, dict):
        body = json.dumps(body)
    if isinstance(body, str):
        body = body.encode()
    environ = {
        "REQUEST_METHOD": method,
        "PATH_INFO": intake.PATH,
        "SERVER_NAME": "testserver",
        "SERVER_PORT": "80",
        "HTTP_HOST": "testserver",
        "REMOTE_ADDR": "203.0.113.77",
        "HTTP_USER_AGENT": CHROME,
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": io.StringIO(),
        "CONTENT_TYPE": "text/plain;charset=UTF-8",
        **({"CONTENT_LENGTH": str(len(body) if length is None else length)} if length != "" else {}),
        **(headers or {}),
    }
    started: list = []
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    try:
        chunks = application(environ, lambda status, response_headers: started.append((status, response_headers)))
        content = b"".join(chunks)
    finally:
        signals.request_started.connect(close_old_connections)
        signals.request_finished.connect(close_old_connections)
    status, response_headers = started[0]
    headers_out: dict[str, str] = {}
    for name, value in response_headers:
        headers_out.setdefault(name, value)
    return int(status.split()[0]), headers_out, (json.loads(content) if content else None), response_headers


def stored(store, columns: str = "*") -> list[dict]:
    # Through the connection the collector writes with (inside this test's transaction, unless transactional).
    with connections[intake._raw_alias()].cursor() as cursor:
        cursor.execute("select to_regclass(%s)", [f"raw_{store.key}.web_events"])
        if cursor.fetchone()[0] is None:
            return []
        cursor.execute(f"select {columns} from raw_{store.key}.web_events order by seq, event_id")
        names = [c.name for c in cursor.description]
        rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    for row in rows:  # Django's cursor leaves jsonb as text
        for name in ("_airbyte_meta", "properties"):
            if isinstance(row.get(name), str):
                row[name] = json.loads(row[name])
    return rows
