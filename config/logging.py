"""One line per log event, with secrets scrubbed before anything is written.

Redaction runs twice on purpose: the filter cleans the message (so any handler is safe), and the
formatters clean the final line, which also covers tracebacks and `extra` fields.

URLs are redacted by one rule wherever they are written (`redact_query`, `redact_url`): Django's request
logs and a request's repr here, gunicorn's access log (config/gunicorn.py) and Django's error reports
(config/reporting.py). The query string of the OAuth callback and the webhooks is dropped whole (it is the
authorization code and state, or a provider's signature); anywhere else a parameter named like a secret
(code, state, token, signature, hmac, key, ...) keeps its name and loses its value; and the unsubscribe
token in its path is hidden.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
from urllib.parse import unquote, unquote_plus, urlsplit, urlunsplit

REDACTED = "[REDACTED]"

# Paths whose whole query string is secret: the OAuth callbacks (?code=...&state=...; Shopify's with its
# hmac), Shopify's install request and every webhook.
SECRET_QUERY_PATHS = re.compile(r"^/(?:connectors/oauth/[^/]+/callback/?|webhooks/|shopify/(?:callback|install)/?)")
# Query parameters that hold a secret wherever they appear, compared case-insensitively.
SECRET_QUERY_PARAMETERS = frozenset(
    {
        "code", "state", "token", "access_token", "refresh_token", "id_token", "fb_exchange_token", "code_verifier",
        "signature", "sig", "hmac", "key", "api_key", "apikey", "secret", "client_secret", "password",
        "__clerk_ticket", "ticket", "__session", "session", "auth", "authorization", "jwt",
    }
)  # fmt: skip
# Path segments that are secrets themselves: the one-click unsubscribe token.
_SECRET_PATH_SEGMENT = re.compile(r"(/notifications/unsubscribe/)[^/?#\s\"']+")

# Order matters: key/value forms first, so the value is replaced whatever shape it has.
_PATTERNS: list[tuple[re.Pattern[str], str]] = [
    # Authorization headers in any rendering: "Authorization: Bearer x", "'authorization': 'Klaviyo-API-Key x'".
    (
        re.compile(
            r"""(?i)(authorization['"]?\s*[:=]\s*['"]?)(?:(?:bearer|basic|token|klaviyo-api-key)\s+)?[^\s'",}]+"""
        ),
        r"\1" + REDACTED,
    ),
    (re.compile(r"(?i)\b(bearer\s+)[A-Za-z0-9\-._~+/]+=*"), r"\1" + REDACTED),
    # key=value, key: value and "key": "value" for secret-named keys.
    (
        re.compile(
            r"""(?i)(["']?\b(?:access_token|refresh_token|id_token|client_secret|api_key|apikey|x-api-key|"""
            r"""secret|secret_key|password|passwd|token|fb_exchange_token|code_verifier)["']?\s*[:=]\s*["']?)"""
            r"""[^\s"'&,}]+"""
        ),
        r"\1" + REDACTED,
    ),
    # Well-known key shapes: Clerk/Stripe-style sk_/pk_ keys (Klaviyo private keys are pk_ + 34).
    (re.compile(r"\b(?:sk|pk|rk)_(?:live_|test_)?[A-Za-z0-9]{8,}\b"), REDACTED),
    # Agency API tokens (agencies/token_format.py), wherever one lands outside an Authorization header.
    (re.compile(r"\bmkt_at_[0-9A-Za-z]{8,}"), REDACTED),
    # JSON Web Tokens (Clerk session tokens): three base64url segments, the first starting "eyJ".
    (re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+"), REDACTED),
    # Meta user tokens (EAA...) and Google access tokens (ya29.) and refresh tokens (1//).
    (re.compile(r"\bEAA[A-Za-z0-9]{20,}"), REDACTED),
    (re.compile(r"\bya29\.[A-Za-z0-9_\-]+"), REDACTED),
    (re.compile(r"\b1//[A-Za-z0-9_\-]{20,}"), REDACTED),
    # Shopify access tokens (shpat_, shpca_, shpua_), refresh tokens (shprt_) and app secrets (shpss_).
    (re.compile(r"\bshp(?:at|ca|ua|rt|ss)_[A-Za-z0-9_]{8,}"), REDACTED),
]


def redact_query(path: str, query: str) -> str:
    """The query string of a request to `path`, safe to write down (raw or decoded, `&` or `;` separated)."""
    if not query:
        return query
    if SECRET_QUERY_PATHS.match(path):
        return REDACTED
    parts = []
    for part in re.split(r"([&;])", query):
        name, sep, _value = part.partition("=")
        if sep and unquote_plus(name).strip().lower() in SECRET_QUERY_PARAMETERS:
            part = f"{name}={REDACTED}"
        parts.append(part)
    return "".join(parts)


def redact_path(path: str) -> str:
    return _SECRET_PATH_SEGMENT.sub(r"\1" + REDACTED, path)


def redact_url(url: str) -> str:
    """A URL (absolute, or a path with its query), safe to write down; the fragment is dropped."""
    if not url:
        return url
    split = urlsplit(url)
    query = redact_query(unquote(split.path), split.query)
    return urlunsplit((split.scheme, split.netloc, redact_path(split.path), query, ""))


# A URL inside free text (a request line, a repr, a Referer): a path starting with "/" or an absolute URL,
# up to whitespace or a quote.
_URL_IN_TEXT = re.compile(r"""(?:\bhttps?://[^\s/'"<>]+)?(?<![\w/])/[^\s'"<>]*""")


# Any remaining `?name=value` / `&name=value` of a secret name, in text no URL pattern recognised.
_SECRET_PARAMETER_IN_TEXT = re.compile(
    r"(?i)([?&;](?:" + "|".join(re.escape(name) for name in sorted(SECRET_QUERY_PARAMETERS)) + r")=)[^&;\s'\"#]*"
)


def _redact_urls(text: str) -> str:
    return _URL_IN_TEXT.sub(
        lambda m: redact_url(m.group(0)) if ("?" in m.group(0) or "/unsubscribe/" in m.group(0)) else m.group(0), text
    )


def redact(text: str) -> str:
    """Return `text` with every secret-looking value replaced by a marker."""
    text = _SECRET_PARAMETER_IN_TEXT.sub(r"\1" + REDACTED, _redact_urls(text))
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class RedactSecretsFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a broken %-format must not lose the event; log what we have
            message = str(record.msg)
        record.msg = redact(message)
        record.args = None
        return True


_RESERVED = set(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """Production format: one JSON object per line, `extra` fields included."""

    def format(self, record: logging.LogRecord) -> str:
        payload = {
            "ts": dt.datetime.fromtimestamp(record.created, tz=dt.UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _RESERVED and not key.startswith("_"):
                payload[key] = value
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return redact(json.dumps(payload, default=str))


class TextFormatter(logging.Formatter):
    """Development format: readable, still one event per line (tracebacks are folded)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s", datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        extras = {k: v for k, v in record.__dict__.items() if k not in _RESERVED and not k.startswith("_")}
        if extras:
            line += " " + " ".join(f"{k}={v}" for k, v in extras.items())
        return redact(line.replace("\n", " | "))
