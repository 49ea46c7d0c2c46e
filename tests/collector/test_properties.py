"""Bad input never answers 5xx: whatever the body, the collector answers 2xx or 4xx with a reason."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from tests.collector.conftest import batch, event, wsgi_call

pytestmark = pytest.mark.django_db(databases=["default", "warehouse"])

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=20,
)
FIELDS = ["event_id", "name", "client_id", "seq", "occurred_at", "url", "referrer", "user_agent", "consent",
          "customer_id", "order_id", "checkout_token", "email_sha256", "value", "currency", "product_id",
          "properties"]  # fmt: skip


@pytest.fixture
def loose_limits(settings):
    settings.COLLECTOR_IP_BATCHES_PER_WINDOW = 10**9


def _check(answer) -> None:
    status, headers, body, _ = answer
    assert 200 <= status < 500, (status, body)
    assert headers["Content-Type"] == "application/json" and isinstance(body, dict)
    if status >= 400:
        assert body.get("errors") or body.get("error")


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=2000))
def test_arbitrary_bytes_never_5xx(store, write_key, loose_limits, raw):
    _check(wsgi_call(raw))


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(document=JSON)
def test_arbitrary_json_never_5xx(store, write_key, loose_limits, document):
    _check(wsgi_call(json.dumps(document)))


@hsettings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    changes=st.dictionaries(st.sampled_from(FIELDS), JSON | st.text(min_size=1000, max_size=5000), max_size=4),
    top=st.dictionaries(st.sampled_from(["write_key", "sent_at", "events", "pixel_version"]), JSON, max_size=2),
    use_key=st.booleans(),
)
def test_valid_batches_with_arbitrary_fields_changed_never_5xx(store, write_key, loose_limits, changes, top, use_key):
    document = batch(write_key if use_key else "wk_" + "0" * 30, [event(1), event(2, **changes)])
    document.update(top)
    _check(wsgi_call(json.dumps(document)))


@hsettings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=st.text(alphabet=st.characters(codec="utf-8") | st.sampled_from(["\x00", "\ud800", "\udfff"])))
def test_any_unicode_in_any_string_never_5xx(store, write_key, loose_limits, text):
    document = batch(write_key, [event(1, client_id=text or "x", referrer=text, properties={text: text})])
    raw = json.dumps(document)  # ensure_ascii: NUL and lone surrogates as \\u escapes, as a browser would send
    _check(wsgi_call(raw))
