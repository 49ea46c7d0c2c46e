import json
import logging

import pytest

from config.logging import REDACTED, JsonFormatter, RedactSecretsFilter, TextFormatter, redact

SECRETS = {
    "authorization header": ("Authorization: Bearer abc.def.ghi", "abc.def.ghi"),
    "authorization dict": ("{'Authorization': 'Klaviyo-API-Key pk_live_1234'}", "pk_live_1234"),
    "bearer alone": ("sent bearer ya29.a0AfH6SMBx", "a0AfH6SMBx"),
    "clerk secret": ("key sk_test_AbCdEf1234567890", "sk_test_AbCdEf1234567890"),
    "klaviyo key": ("pk_" + "Z9" * 17, "pk_" + "Z9" * 17),
    "access token json": ('{"access_token": "tok-123-xyz"}', "tok-123-xyz"),
    "refresh token form": ("grant_type=refresh_token&refresh_token=1//0gabc&client_id=x", "1//0gabc"),
    "client secret": ("client_secret=shh-its-secret", "shh-its-secret"),
    "api key": ("api_key: my-api-key-value", "my-api-key-value"),
    "password": ("password=hunter2", "hunter2"),
    "jwt": ("token eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ1c2VyIn0.sig-nature_x", "eyJzdWIiOiJ1c2VyIn0"),
    "meta token": ("EAAB" + "x" * 40, "EAAB" + "x" * 40),
    "google refresh": ("got 1//0e" + "y" * 40, "1//0e" + "y" * 40),
}


@pytest.mark.parametrize(("text", "secret"), SECRETS.values(), ids=SECRETS.keys())
def test_redact_hides_every_secret_pattern(text, secret):
    cleaned = redact(text)
    assert secret not in cleaned
    assert REDACTED in cleaned


def test_redact_leaves_ordinary_text_alone():
    text = "refreshed credential 42 for merchant demo_store in 120 ms (status=active)"
    assert redact(text) == text


def _record(msg, *args, exc_info=None, **extra):
    record = logging.LogRecord("app", logging.ERROR, __file__, 1, msg, args, exc_info)
    record.__dict__.update(extra)
    return record


def test_filter_redacts_arguments_before_any_handler_sees_them():
    record = _record("calling %s with %s", "klaviyo", {"Authorization": "Klaviyo-API-Key pk_live_secretvalue"})
    RedactSecretsFilter().filter(record)
    assert "pk_live_secretvalue" not in record.getMessage()


def test_json_formatter_is_one_line_and_redacts_extras_and_tracebacks():
    try:
        raise ValueError("bad token sk_live_ABCDEFGH12345678")
    except ValueError:
        import sys

        record = _record("failed", exc_info=sys.exc_info(), refresh_token_used="1//0secretsecretsecretsecret123")
    line = JsonFormatter().format(record)
    assert "\n" not in line
    payload = json.loads(line)
    assert payload["message"] == "failed"
    assert "sk_live_ABCDEFGH12345678" not in line
    assert "1//0secretsecretsecretsecret123" not in line


def test_text_formatter_folds_tracebacks_into_one_line():
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        import sys

        record = _record("failed", exc_info=sys.exc_info())
    line = TextFormatter().format(record)
    assert "\n" not in line
    assert "RuntimeError: boom" in line
