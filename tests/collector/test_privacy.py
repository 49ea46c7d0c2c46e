"""A shopper's IP address is stored nowhere: not in web_events (its network only), not in the rate limiter's
keys, not in the access log."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest
from gunicorn.config import Config

from collector.privacy import PATH, ip_digest, ip_prefix


@pytest.mark.parametrize(
    ("ip", "prefix"),
    [
        ("203.0.113.77", "203.0.113.0/24"),
        ("2001:db8:1234:5678:9abc::1", "2001:db8:1234::/48"),
        ("::ffff:198.51.100.23", "198.51.100.0/24"),
        ("not an address", None),
        ("", None),
    ],
)
def test_the_prefix_is_the_network_only(ip, prefix):
    assert ip_prefix(ip) == prefix


def test_the_limiter_is_keyed_by_a_digest_not_the_address():
    digest = ip_digest("203.0.113.77", b"k" * 50)
    assert "203" not in digest and len(digest) == 24
    assert digest != ip_digest("203.0.113.77", b"j" * 50) and digest != ip_digest("203.0.113.78", b"k" * 50)


def _access_atoms(path: str) -> dict:
    import config.gunicorn as project_gunicorn

    cfg = Config()
    cfg.set("access_log_format", project_gunicorn.access_log_format)
    logger = project_gunicorn.RedactingLogger(cfg)
    req = SimpleNamespace(headers=[], method="POST", path=path, query="", uri=path, version=(1, 1))
    resp = SimpleNamespace(status="200 OK", headers=[], sent=2, response_length=2)
    environ = {"REQUEST_METHOD": "POST", "PATH_INFO": path, "RAW_URI": path, "QUERY_STRING": "",
               "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "203.0.113.77"}  # fmt: skip
    return logger.atoms(resp, req, environ, dt.timedelta(milliseconds=3))


def test_the_access_log_writes_the_collectors_clients_as_their_network():
    assert _access_atoms(PATH)["h"] == "203.0.113.0/24"
    assert _access_atoms("/healthz")["h"] == "203.0.113.77"  # the rest of the app logs as before
