"""gunicorn's configuration for every deployment: `gunicorn -c python:config.gunicorn config.wsgi:application`.

Two things it adds to gunicorn's defaults:

- The access log goes through `RedactingLogger`: the request line, query, Referer and any header or environ
  atom a format could name are written with the one URL rule of config/logging.py, so the OAuth callback's
  authorization code (`?code=...&state=...`), a webhook's query string and any parameter named like a secret
  never reach the log.
- The settings are loaded, and so checked (config/boot.py), in the master before any worker is forked: a
  setting the app cannot serve with stops gunicorn with its one line and exit status 2, instead of every
  worker failing to boot in turn.

Command-line options override what is set here (devtools adds --reload and --workers for `make run`).
"""

from __future__ import annotations

import functools
import importlib.util
import os
import re
import runpy

from gunicorn import glogging

from collector.privacy import PATH as COLLECTOR_PATH
from collector.privacy import ip_prefix
from config.boot import exit_on_settings_error
from config.logging import REDACTED, redact, redact_path, redact_query, redact_url

logger_class = "config.gunicorn.RedactingLogger"
accesslog = "-"  # stdout, one line per request
# gunicorn's default ("combined") format; listed so that what the redaction covers is visible.
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'

# Atoms (lower-cased header and environ names) that are credentials whatever their value.
_SECRET_ATOMS = frozenset(
    {"{authorization}i", "{cookie}i", "{http_authorization}e", "{http_cookie}e", "{svix-signature}i"}
)
# Atoms that hold the URL or its query.
_URL_ATOMS = frozenset({"{referer}i", "{http_referer}e", "{raw_uri}e", "{request_uri}e"})


_FORMAT_KEY = re.compile(r"%\(([^)]*)\)")


@functools.lru_cache(maxsize=8)
def _written_brace_atoms(access_log_format: str) -> frozenset[str]:
    """The `{...}` atoms a format writes, lower-cased as gunicorn looks them up (glogging.SafeAtoms)."""
    return frozenset(key.lower() for key in _FORMAT_KEY.findall(access_log_format) if key.startswith("{"))


class RedactingLogger(glogging.Logger):
    def atoms(self, resp, req, environ, request_time):
        atoms = super().atoms(resp, req, environ, request_time)
        path_info = environ.get("PATH_INFO", "")
        raw_path, sep, raw_query = (environ.get("RAW_URI") or "").partition("?")
        query = redact_query(path_info, raw_query)
        atoms["r"] = (
            f"{environ.get('REQUEST_METHOD')} {redact_path(raw_path)}{sep}{query} {environ.get('SERVER_PROTOCOL')}"
        )
        atoms["U"] = redact_path(path_info)
        atoms["q"] = redact_query(path_info, environ.get("QUERY_STRING", ""))
        atoms["f"] = redact_url(environ.get("HTTP_REFERER", "")) or "-"
        if path_info == COLLECTOR_PATH:
            # A shopper's address is kept nowhere, the access log included: its network only (collector/privacy.py).
            atoms["h"] = ip_prefix(str(atoms.get("h", ""))) or "-"
        # Every request header and environ variable is a `{...}` atom; redacting each of them on every request
        # cost more CPU than the rest of the request line's work (a webhook burst is thousands a second). Only
        # those the format names are kept, redacted; the others are dropped, so no handler that reads the
        # record's args sees them raw either.
        written = _written_brace_atoms(self.cfg.access_log_format)
        for name in [n for n in atoms if isinstance(n, str) and n.startswith("{") and n not in written]:
            del atoms[name]
        for name in list(atoms):
            if not isinstance(name, str) or not name.startswith("{"):
                continue
            if name in _SECRET_ATOMS:
                atoms[name] = REDACTED
            elif name in _URL_ATOMS and isinstance(atoms[name], str):
                atoms[name] = redact_url(atoms[name])
            elif name in ("{query_string}e",) and isinstance(atoms[name], str):
                atoms[name] = atoms["q"]
            elif name in ("{path_info}e",):
                atoms[name] = atoms["U"]
            elif isinstance(atoms[name], str):
                atoms[name] = redact(atoms[name])
        return atoms


def _check_settings() -> None:
    """Run the settings module once, in a namespace of its own, for its checks (config/boot.py).

    Not imported as Django's settings: workers forked later must import it themselves, or `--reload` would keep
    serving the settings the master read at start."""
    module = os.environ.get("DJANGO_SETTINGS_MODULE", "config.settings")
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise SystemExit(f"configuration error: DJANGO_SETTINGS_MODULE {module} was not found")
    with exit_on_settings_error():
        runpy.run_path(spec.origin, run_name="gunicorn_settings_check")


_check_settings()
