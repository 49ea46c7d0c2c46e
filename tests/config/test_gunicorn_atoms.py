"""config.gunicorn.RedactingLogger: the atoms a format names are redacted; the ones it does not are dropped."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

from gunicorn.config import Config

BEARER = "Bearer SECRETbearer123"
REFERER = "https://app.example.com/connectors/oauth/google/callback/?code=SECRETcode456"


def atoms(access_log_format: str) -> dict:
    import config.gunicorn as project_gunicorn

    cfg = Config()
    cfg.set("access_log_format", access_log_format)
    logger = project_gunicorn.RedactingLogger(cfg)
    headers = [("AUTHORIZATION", BEARER), ("REFERER", REFERER), ("X-TRACE", "trace-1"), ("X-OTHER", "SECRETother")]
    req = SimpleNamespace(headers=headers, method="GET", path="/x/", query="token=SECRETq", uri="/x/", version=(1, 1))
    resp = SimpleNamespace(status="200 OK", headers=[], sent=2, response_length=2)
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/x/",
        "RAW_URI": "/x/?token=SECRETq",
        "QUERY_STRING": "token=SECRETq",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "HTTP_AUTHORIZATION": BEARER,
        "HTTP_REFERER": REFERER,
        "HTTP_X_OTHER": "SECRETother",
    }
    return logger.atoms(resp, req, environ, dt.timedelta(milliseconds=3))


def test_named_atoms_are_redacted_and_unnamed_ones_dropped():
    got = atoms('%(h)s "%(r)s" %(s)s "%(f)s" %({Authorization}i)s %({referer}i)s %({x-trace}i)s %({query_string}e)s')
    assert got["r"] == "GET /x/?token=[REDACTED] HTTP/1.1"
    assert got["{authorization}i"] == "[REDACTED]"
    assert "SECRETcode456" not in got["{referer}i"] and got["{referer}i"].endswith("?[REDACTED]")
    assert got["{x-trace}i"] == "trace-1"
    assert got["{query_string}e"] == "token=[REDACTED]"
    # Not in the format: not in the atoms at all (a handler reading the record's args sees nothing raw).
    assert "{x-other}i" not in got and "{http_x_other}e" not in got and "{http_authorization}e" not in got
    assert "SECRET" not in repr(got)


def test_the_default_format_keeps_no_header_atoms():
    from config.gunicorn import access_log_format

    got = atoms(access_log_format)
    assert not [name for name in got if name.startswith("{")]
    assert "SECRET" not in repr(got)
