"""Secrets never reach a log line or an error report: gunicorn's access log (a real gunicorn), Django's request
logs through our filter and formatters, and Django's error reports (issue 12 item 8)."""

from __future__ import annotations

import json
import logging
import os
import secrets
import subprocess
import sys
import time
from urllib.parse import urlsplit

import pytest
import requests
from django.conf import settings
from django.test import RequestFactory
from django.views.debug import get_exception_reporter_class

from config.logging import REDACTED, JsonFormatter, RedactSecretsFilter, TextFormatter, redact, redact_url
from tests.conftest import free_port

ROOT = settings.BASE_DIR
# Made at run time: a report shows source lines around each frame, and the secrets must not be in those either.
CODE = "SECRETcode" + secrets.token_hex(4)
STATE = "SECRETstate" + secrets.token_hex(4)
SESSION_TOKEN = "eyJSECRETsession" + secrets.token_hex(4) + ".eyJpayload.sig"
CSRF = "SECRETcsrf" + secrets.token_hex(4)

# path?query as requested -> what the log may show of it
URLS = {
    "OAuth callback": (
        f"/connectors/oauth/meta/callback/?code={CODE}&state={STATE}",
        "/connectors/oauth/meta/callback/?[REDACTED]",
    ),
    "OAuth callback, error": (
        f"/connectors/oauth/google/callback/?state={STATE}&error=access_denied",
        "/connectors/oauth/google/callback/?[REDACTED]",
    ),
    "webhook": ("/webhooks/clerk/?svix=SECRETwebhook1", "/webhooks/clerk/?[REDACTED]"),
    "secret-named parameters elsewhere": (
        "/readyz?page=2&token=SECRETtok1&Signature=SECRETsig2&hmac=SECREThmac3&key=SECRETkey4&limit=5",
        "/readyz?page=2&token=[REDACTED]&Signature=[REDACTED]&hmac=[REDACTED]&key=[REDACTED]&limit=5",
    ),
    "percent-encoded name": ("/readyz?%63ode=SECRETenc5", "/readyz?%63ode=[REDACTED]"),
    "unsubscribe token in the path": (
        "/notifications/unsubscribe/SECRETunsub6/",
        "/notifications/unsubscribe/[REDACTED]/",
    ),
    "nothing secret": ("/readyz?page=2&limit=5", "/readyz?page=2&limit=5"),
}


@pytest.mark.parametrize(("url", "shown"), URLS.values(), ids=URLS.keys())
def test_redact_url_hides_secret_queries_and_keeps_the_rest(url, shown):
    assert redact_url(url) == shown
    assert redact(f'"GET {url} HTTP/1.1" 200 12') == f'"GET {shown} HTTP/1.1" 200 12'


# --- gunicorn, for real ------------------------------------------------------------------------------------


def _test_database_url() -> str:
    url = urlsplit(os.environ["DATABASE_URL"])
    return url._replace(path="/" + settings.DATABASES["default"]["NAME"]).geturl()


def _gunicorn_env(**overrides: str) -> dict[str, str]:
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "XDG_RUNTIME_DIR") if k in os.environ}
    env.update(ENV_FILE=os.devnull, DJANGO_DEV="1", DATABASE_URL=_test_database_url(), DO_NOT_TRACK="1")
    env.update(overrides)
    return env


def _gunicorn(port: int, access_log, env: dict[str, str]) -> subprocess.Popen:
    # As production starts it (devtools adds --reload and the worker count): our config module, the WSGI app.
    return subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "python:config.gunicorn", "config.wsgi:application",
         "--bind", f"127.0.0.1:{port}", "--workers", "1", "--access-logfile", str(access_log)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True, text=True,
    )  # fmt: skip


@pytest.fixture
def gunicorn(tmp_path, django_db_setup):
    port = free_port()
    access_log = tmp_path / "access.log"
    server = _gunicorn(port, access_log, _gunicorn_env())
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            requests.get(f"{base}/healthz", timeout=10)
            break
        except requests.RequestException:
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"gunicorn did not start: {server.communicate()[1][-2000:]}")
            time.sleep(0.2)
    yield base, access_log
    server.terminate()
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def test_gunicorns_access_log_carries_no_code_state_or_secret_parameter(gunicorn):
    base, access_log = gunicorn
    referer = f"https://app.example.com/connectors/oauth/google/callback/?code={CODE}"
    for url, _shown in URLS.values():
        requests.get(base + url, headers={"Referer": referer}, allow_redirects=False, timeout=10)
    requests.post(base + "/webhooks/clerk/?signature=SECRETpost7", data=b"{}", timeout=10)

    deadline = time.monotonic() + 10
    while len(access_log.read_text().splitlines()) < len(URLS) + 2 and time.monotonic() < deadline:
        time.sleep(0.1)
    log = access_log.read_text()
    lines = log.splitlines()
    assert len(lines) == len(URLS) + 2  # /healthz, each URL, the webhook POST
    assert "SECRET" not in log
    for _url, shown in URLS.values():
        shown = shown.replace("%63ode", "code")  # requests decodes an unreserved character before sending
        assert any(f'"GET {shown} HTTP/1.1"' in line for line in lines), (shown, lines)
    assert any('"POST /webhooks/clerk/?[REDACTED] HTTP/1.1" 400' in line for line in lines)  # bad signature
    assert '"https://app.example.com/connectors/oauth/google/callback/?[REDACTED]"' in lines[1]


def test_gunicorn_stops_in_the_master_with_one_line_on_a_setting_it_cannot_serve_with(tmp_path, django_db_setup):
    server = _gunicorn(free_port(), tmp_path / "access.log", _gunicorn_env(FIELD_ENCRYPTION_KEYS="SECRETnotfernet"))
    try:
        _stdout, stderr = server.communicate(timeout=60)
    finally:
        if server.poll() is None:
            server.kill()
    assert server.returncode == 2
    assert stderr.strip().splitlines() == [
        "configuration error: FIELD_ENCRYPTION_KEYS entry 1 of 1 is not a Fernet key (32 url-safe base64-encoded "
        "bytes: python -c 'from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())')"
    ]


# --- Django's own request logs --------------------------------------------------------------------------------


def _record(logger: str, msg: str, *args, **extra) -> logging.LogRecord:
    record = logging.LogRecord(logger, logging.WARNING, __file__, 1, msg, args, None)
    record.__dict__.update(extra)
    return record


def test_djangos_request_log_lines_are_redacted_by_the_filter():
    # django.server's line (runserver), as its handler formats it: the request line with the query.
    url, shown = URLS["OAuth callback"]
    record = _record("django.server", '"%s" %s %s', f"GET {url} HTTP/1.1", "302", "0")
    RedactSecretsFilter().filter(record)
    assert record.getMessage() == f'"GET {shown} HTTP/1.1" 302 0'


@pytest.mark.parametrize("formatter", [JsonFormatter(), TextFormatter()], ids=["json", "text"])
def test_djangos_request_logger_extra_request_is_redacted(formatter):
    # django.request logs "Not Found: /path" with the request in `extra`; its repr carries the query string.
    url, _shown = URLS["OAuth callback"]
    request = RequestFactory().get(url)
    assert CODE in repr(request)
    record = _record("django.request", "Not Found: %s", request.path, status_code=404, request=request)
    RedactSecretsFilter().filter(record)
    line = formatter.format(record)
    assert CODE not in line and STATE not in line
    assert "/connectors/oauth/meta/callback/?[REDACTED]" in line
    if isinstance(formatter, JsonFormatter):
        assert json.loads(line)["message"] == "Not Found: /connectors/oauth/meta/callback/"


# --- Django's error reports -------------------------------------------------------------------------------------


def _report(request) -> dict[str, str]:
    def failing_view(request):
        raise RuntimeError("the view failed")

    try:
        failing_view(request)
    except RuntimeError:
        reporter = get_exception_reporter_class(request)(request, *sys.exc_info())
        return {"text": reporter.get_traceback_text(), "html": reporter.get_traceback_html()}


@pytest.fixture
def production_reports(settings):
    settings.DEBUG = False  # Django's filters hide nothing in debug mode, by design


def test_the_oauth_callbacks_error_report_carries_no_code_state_or_session(production_reports):
    url, _shown = URLS["OAuth callback"]
    request = RequestFactory().get(
        url,
        HTTP_REFERER=f"https://app.example.com{url}",
        HTTP_COOKIE=f"__session={SESSION_TOKEN}; csrftoken={CSRF}",
    )
    report = _report(request)
    for where, body in report.items():
        for secret in (CODE, STATE, SESSION_TOKEN, CSRF):
            assert secret not in body, (secret, where)
    assert "/connectors/oauth/meta/callback/?[REDACTED]" in report["text"]
    assert "__session" in report["text"]  # the cookie is listed, its value starred


def test_a_webhooks_error_report_hides_its_query_and_every_post_parameter(production_reports):
    request = RequestFactory().post(
        "/webhooks/clerk/?svix=SECRETquery", {"payload": "SECRETpayload", "signature": "SECRETsig"}
    )
    report = _report(request)
    for where, body in report.items():
        for secret in ("SECRETquery", "SECRETpayload", "SECRETsig"):
            assert secret not in body, (secret, where)
    assert "payload" in report["text"]


def test_elsewhere_only_secret_named_parameters_are_hidden(production_reports):
    request = RequestFactory().get("/m/1/connectors/?page=2&token=SECRETtok&q=shoes")
    report = _report(request)
    assert "SECRETtok" not in report["text"] and "SECRETtok" not in report["html"]
    assert "shoes" in report["text"]
    assert "/m/1/connectors/?page=2&token=[REDACTED]&q=shoes" in report["text"]


def test_the_settings_name_the_safe_reporter_and_filter():
    from django.views.debug import get_default_exception_reporter_filter

    from config.reporting import SafeExceptionReporter, SafeExceptionReporterFilter

    assert isinstance(get_default_exception_reporter_filter(), SafeExceptionReporterFilter)
    assert get_exception_reporter_class(RequestFactory().get("/")) is SafeExceptionReporter
    assert REDACTED == "[REDACTED]"
