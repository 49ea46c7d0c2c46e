"""Generated input over every connectors page that takes input: never a 5xx, field-level errors, and no
provider call (the sandbox's call log) for input that cannot be stored (issue 12, item 4).

The expectations restate the rules (PROVIDERS.md key formats, column sizes, no NUL) rather than asking
our own form, so a form that forgot a rule fails here.
"""

from __future__ import annotations

import re
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from django.core.cache import cache
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from accounts.choices import Role
from compliance.models import AuditEvent
from connectors.forms import ApiKeyConnectForm, OAuthCallbackForm
from connectors.models import ConnectorCredential, OAuthState
from tests.accounts.factories import MembershipFactory
from tests.connectors.factories import CredentialFactory

pytestmark = pytest.mark.django_db(databases=["default", "warehouse"])

KLAVIYO_KEY = re.compile(r"pk_[A-Za-z0-9]{34}")  # PROVIDERS.md §4.1
ATTENTIVE_KEY = re.compile(r"[A-Za-z0-9._~+/=-]{16,512}")  # a bearer token; the format is undocumented
PROVIDER_ROUTES = ("klaviyo.accounts.list", "attentive.me.get", "google.oauth.token", "meta.oauth.access_token")
GENERATED = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,  # the same examples on every run: deterministic, as the suite must be
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)

# Text as a browser can send it (anything but lone surrogates, which cannot be encoded), with the
# characters that broke things weighted in: NUL, other controls, whitespace, non-ASCII.
awkward = st.text(
    alphabet=st.one_of(
        st.sampled_from(["\x00", "\x01", "\t", "\n", " ", "é", "€", "\u202e", "=", "'", '"', "<"]),
        st.characters(blacklist_categories=["Cs"]),
    ),
    max_size=40,
)
long_text = st.text(alphabet="ab\x00", min_size=250, max_size=300)


@pytest.fixture(autouse=True)
def _clear_throttle():
    cache.clear()


@pytest.fixture
def owner(clerk):
    return MembershipFactory(clerk_user_id=clerk.user("user_owner"), role=Role.OWNER)


def provider_calls(providers) -> int:
    return sum(providers.calls(route) for route in PROVIDER_ROUTES)


def valid_key_input(provider: str, api_key: str, label: str) -> bool:
    fields = (provider, api_key, label)
    if any("\x00" in field for field in fields):
        return False
    key, label = api_key.strip(), label.strip()
    pattern = {"klaviyo": KLAVIYO_KEY, "attentive": ATTENTIVE_KEY}.get(provider.strip())
    return pattern is not None and bool(pattern.fullmatch(key)) and len(key) <= 512 and len(label) <= 255


def key_inputs(good_keys: dict[str, str]):
    """(provider, api_key): half of them a real key under its own provider (as given, padded, or with a NUL),
    so that what follows the key check (the label) is reached too; the rest drawn independently."""
    matched = st.sampled_from(sorted(good_keys.items())).flatmap(
        lambda pair: st.tuples(st.just(pair[0]), st.sampled_from([pair[1], f" {pair[1]}\n", pair[1] + "\x00"]))
    )
    keys = st.one_of(
        st.sampled_from(sorted(good_keys.values())),
        st.from_regex(r"pk_[A-Za-z0-9]{34}", fullmatch=True),  # well-formed, unknown to Klaviyo
        awkward,
    )
    return st.one_of(matched, st.tuples(providers_strategy, keys))


providers_strategy = st.one_of(st.sampled_from(["klaviyo", "attentive", "meta", "google_ads", ""]), awkward)
labels = st.one_of(awkward, awkward.map(lambda text: f"{text}\x00{text}"), long_text, st.just("Main store"))


def test_nul_in_the_label_is_a_field_error_before_the_provider_is_called(client, clerk, owner, providers):
    """The review's case: the provider accepted the key, then the label's NUL made the write a 500."""
    key = providers.klaviyo_key()
    response = client.post(
        f"/m/{owner.merchant_id}/connectors/api-key/",
        {"provider": "klaviyo", "api_key": key, "label": "Main\x00store"},
        **clerk.auth_header("user_owner"),
    )
    assert response.status_code == 400
    assert response.context["form_errors"] == {"label": ["Null characters are not allowed."]}
    assert provider_calls(providers) == 0
    assert not ConnectorCredential.objects.exists()
    assert not AuditEvent.objects.filter(action__startswith="credential.").exists()


def test_the_api_refuses_a_nul_label_before_the_provider_is_called(client, clerk, owner, providers):
    response = client.post(
        "/api/connectors/api-key/connect",
        {"merchant_id": owner.merchant_id, "provider": "klaviyo", "api_key": providers.klaviyo_key(), "label": "a\x00"},
        content_type="application/json",
        **clerk.auth_header("user_owner"),
    )
    assert response.status_code == 400 and set(response.json()) == {"label"}
    assert provider_calls(providers) == 0


def test_the_service_validates_through_the_same_form_for_every_caller(owner, providers):
    from django.core.exceptions import ValidationError

    from connectors import services

    with pytest.raises(ValidationError) as caught:
        services.credential_connect_api_key(
            merchant=owner.merchant,
            provider="attentive",
            api_key=providers.attentive_key(),
            label="x" * 256,
            actor=services.clerk_actor("user_owner"),
        )
    assert set(caught.value.message_dict) == {"label"}
    assert provider_calls(providers) == 0


def test_api_key_page_form_under_generated_input(client, clerk, owner, providers):
    good = {"klaviyo": providers.klaviyo_key(), "attentive": providers.attentive_key()}
    auth = clerk.auth_header("user_owner")
    url = f"/m/{owner.merchant_id}/connectors/api-key/"

    @GENERATED
    @given(key_input=key_inputs(good), label=labels)
    def check(key_input: tuple[str, str], label: str) -> None:
        provider, api_key = key_input
        before = provider_calls(providers)
        response = client.post(url, {"provider": provider, "api_key": api_key, "label": label}, **auth)
        calls = provider_calls(providers) - before
        assert response.status_code < 500
        if valid_key_input(provider, api_key, label):
            assert calls == 1
            assert response.status_code in (302, 422, 503)
        else:
            assert calls == 0, (provider, api_key, label)
            assert response.status_code == 400
            errors = response.context["form_errors"]
            assert errors and set(errors) <= {"provider", "api_key", "label"}  # field-level, every one
            assert not any(key in response.content.decode() for key in good.values())  # never echoed

    check()


def test_api_key_page_form_refuses_non_managers_whatever_they_send(client, clerk, owner, providers):
    viewer = MembershipFactory(merchant=owner.merchant, clerk_user_id=clerk.user("user_viewer"), role=Role.VIEWER)
    good = {"klaviyo": providers.klaviyo_key(), "attentive": providers.attentive_key()}
    auth = clerk.auth_header(viewer.clerk_user_id)

    @GENERATED
    @given(key_input=key_inputs(good), label=labels)
    def check(key_input: tuple[str, str], label: str) -> None:
        provider, api_key = key_input
        response = client.post(
            f"/m/{owner.merchant_id}/connectors/api-key/",
            {"provider": provider, "api_key": api_key, "label": label},
            **auth,
        )
        assert response.status_code == 403

    check()
    assert provider_calls(providers) == 0


def test_api_key_connect_api_under_generated_input(client, clerk, owner, providers, settings):
    settings.CONNECTORS_API_KEY_CONNECT_RATE = "100000/min"
    good = {"klaviyo": providers.klaviyo_key(), "attentive": providers.attentive_key()}
    auth = clerk.auth_header("user_owner")

    @GENERATED
    @given(key_input=key_inputs(good), label=labels)
    def check(key_input: tuple[str, str], label: str) -> None:
        provider, api_key = key_input
        before = provider_calls(providers)
        body = {"merchant_id": owner.merchant_id, "provider": provider, "api_key": api_key, "label": label}
        response = client.post("/api/connectors/api-key/connect", body, content_type="application/json", **auth)
        calls = provider_calls(providers) - before
        assert response.status_code < 500
        if valid_key_input(provider, api_key, label) and provider == provider.strip():
            assert calls == 1
        else:
            assert calls == 0, (provider, api_key, label)
            assert response.status_code == 400
            assert set(response.json()) <= {"provider", "api_key", "label"}

    check()


def test_oauth_callback_under_generated_query(client, clerk, owner, providers):
    """A genuine state with a generated code and error: only a well-formed code reaches Google."""
    auth = clerk.auth_header("user_owner")

    @GENERATED
    @given(code=st.one_of(awkward, long_text, st.text(alphabet="4/abc", min_size=2050, max_size=2100)),
           error=st.one_of(st.just(""), awkward))  # fmt: skip
    def check(code: str, error: str) -> None:
        start = client.post(f"/m/{owner.merchant_id}/connectors/google_ads/connect/", **auth)
        state = parse_qs(urlsplit(start["Location"]).query)["state"][0]
        before = provider_calls(providers)
        response = client.get(
            "/connectors/oauth/google_ads/callback/", {"state": state, "code": code, "error": error}, **auth
        )
        calls = provider_calls(providers) - before
        assert response.status_code < 500
        well_formed = "\x00" not in code + error and len(code.strip()) <= 2048 and len(error.strip()) <= 256
        if well_formed and code.strip() and not error.strip():
            assert calls == 1  # a code Google does not know: refused, nothing stored
        else:
            assert calls == 0, (code, error)
        assert response.status_code == 400
        assert not ConnectorCredential.objects.exists()

    check()


@GENERATED
@given(state=awkward, code=awkward, error=awkward, provider=st.one_of(st.sampled_from(["google_ads", "meta"]), awkward))
def test_oauth_callback_with_a_forged_state_never_calls_a_provider(client, clerk, owner, providers, state, code, error,
                                                                   provider):  # fmt: skip
    response = client.get(
        f"/connectors/oauth/{quote(provider, safe='')}/callback/",
        {"state": state, "code": code, "error": error},
        **clerk.auth_header("user_owner"),
    )
    assert response.status_code in (400, 404)
    assert provider_calls(providers) == 0


@GENERATED
@given(provider=st.one_of(st.sampled_from(["google_ads", "meta", "klaviyo"]), awkward))
def test_oauth_start_under_generated_provider(client, clerk, owner, providers, provider):
    before = OAuthState.objects.count()
    response = client.post(
        f"/m/{owner.merchant_id}/connectors/{quote(provider, safe='')}/connect/", **clerk.auth_header("user_owner")
    )
    assert response.status_code < 500
    if provider in ("google_ads", "meta"):
        assert response.status_code == 302
    else:
        assert response.status_code in (403, 404)
        assert OAuthState.objects.count() == before
    assert provider_calls(providers) == 0


@GENERATED
@given(credential_id=st.one_of(st.integers(min_value=0, max_value=2**70), st.just(-1)))
def test_disconnect_under_generated_ids(client, clerk, owner, providers, credential_id):
    CredentialFactory(merchant=owner.merchant)
    response = client.post(
        f"/m/{owner.merchant_id}/connectors/{credential_id}/disconnect/", **clerk.auth_header("user_owner")
    )
    assert response.status_code < 500
    assert provider_calls(providers) == 0


@GENERATED
@given(provider=providers_strategy, api_key=awkward, label=labels)
def test_the_forms_never_raise_and_report_field_errors_only(provider, api_key, label):
    form = ApiKeyConnectForm(data={"provider": provider, "api_key": api_key, "label": label})
    if not form.is_valid():
        assert set(form.errors) <= {"provider", "api_key", "label"}
    callback = OAuthCallbackForm(data={"state": provider, "code": api_key, "error": label})
    if "\x00" in provider + api_key + label:
        assert not callback.is_valid()
