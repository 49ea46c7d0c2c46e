"""Every URL pattern of config/urls.py, filled with tenant A's ids, tenant B's, missing and hostile values,
requested with GET, HEAD, OPTIONS and POST (empty, garbage form, garbage JSON) as anonymous, as A's user and
as staff: no 5xx anywhere, and B's objects answer 404 to A.

One test per identity; each collects every failure before it asserts, so one run reports them all.
"""

from __future__ import annotations

import collections
import dataclasses
import re
import time
from collections.abc import Iterator

import pytest
from django.contrib import admin
from django.contrib.auth import get_user_model
from django.db import transaction
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from django.urls.resolvers import RegexPattern, RoutePattern

from tests.fuzz.conftest import (
    CREDENTIAL_A,
    CREDENTIAL_B,
    EXPORT_A,
    EXPORT_B,
    MERCHANT_A,
    MERCHANT_B,
    MERCHANT_VIEWER,
    MISSING_ID,
    TEMPLATE_A,
    TEMPLATE_B,
    mart_merchant_name,
)

pytestmark = pytest.mark.django_db(databases=["default", "warehouse"])

BEYOND_BIGINT = "9" * 25
TENANT_B_NAME = mart_merchant_name(1)
HOSTILE_TEXT = ["%00", "..%2F..%2Fetc", "%3Cscript%3E", "a" * 600, "%C0%AE", "null"]

# What each path parameter is filled with, by name: (tenant A's value, tenant B's values, the others).
PARAMETERS: dict[str, tuple[str, list[str], list[str]]] = {
    "merchant_id": (str(MERCHANT_A), [str(MERCHANT_B)], [str(MERCHANT_VIEWER), str(MISSING_ID), "0", BEYOND_BIGINT]),
    "template_id": (str(TEMPLATE_A), [str(TEMPLATE_B)], [str(MISSING_ID), BEYOND_BIGINT]),
    "credential_id": (str(CREDENTIAL_A), [str(CREDENTIAL_B)], [str(MISSING_ID), BEYOND_BIGINT]),
    "export_id": (str(EXPORT_A), [str(EXPORT_B)], [str(MISSING_ID), BEYOND_BIGINT]),
    "table": ("overview-daily", [], ["no-such-table", "a" * 300]),
    "key": ("acquisition", [], ["no-such-starter", "-"]),
    "provider": ("google_ads", [], ["meta", "klaviyo", "nope", *HOSTILE_TEXT[:3]]),
    "token": ("not-a-token", [], HOSTILE_TEXT),
    "public_id": ("no-such-webhook", [], HOSTILE_TEXT[:3]),  # /webhooks/attentive/<public_id>/: 404 unless known
    # A's user is in no agency: every agency id is someone else's (404), as are invitations and members under it.
    "agency_id": (str(MISSING_ID), [], ["0", BEYOND_BIGINT]),
    "invitation_id": (str(MISSING_ID), [], ["0", BEYOND_BIGINT]),
    "member_id": (str(MISSING_ID), [], ["0", BEYOND_BIGINT]),
    "group_id": (str(MISSING_ID), [], ["0", BEYOND_BIGINT]),
    "token_id": (str(MISSING_ID), [], ["0", BEYOND_BIGINT]),
    "grant_id": (str(MISSING_ID), [], ["0", BEYOND_BIGINT]),  # agency grants (agencies/urls_grants.py)
}
ADMIN_OBJECT_IDS = [str(MISSING_ID), BEYOND_BIGINT, "abc", "%00", "1%2F2"]  # besides a real row's pk

GARBAGE_FORM = {
    "name": "\u202e<script>alert(1)</script>",
    "merchant_id": BEYOND_BIGINT,
    "template": "abc",
    "layout": "[{",
    "kind": ["nope", ""],
    "next": "//evil.example/",
    "provider": "../../",
    "api_key": "x" * 5000,
    "start": "2026-13-45",
    "end": "-1",
    "version": "1e309",
    "action": "nope",
    "_selected_action": ["abc", BEYOND_BIGINT],
}
GARBAGE_JSON = ['{"name": [1, {"a": null}], "layout": "x", "merchant_id": 1e309, "version": -1}', '{"unterminated": ']


@dataclasses.dataclass(frozen=True)
class Url:
    path: str
    pattern: str
    varied: tuple[str, str] | None = None  # (parameter, value) when one parameter is not at A's value
    b_owned: bool = False  # that value is one of tenant B's ids


def patterns(resolver=None, prefix: str = "") -> Iterator[tuple[str, object]]:
    for entry in (resolver or get_resolver()).url_patterns:
        if isinstance(entry, URLResolver):
            yield from patterns(entry, prefix + str(entry.pattern))
        else:
            assert isinstance(entry, URLPattern)
            yield prefix + str(entry.pattern), entry.pattern


ROUTE_PARAMETER = re.compile(r"<(?:(?P<converter>[^>:]+):)?(?P<name>[^>]+)>")


def admin_object_ids(route: str) -> list[str]:
    """A real row's pk for the admin page of that model (when it has one), then missing and hostile ids."""
    match = re.match(r"admin/(\w+)/(\w+)/", route)
    ids = list(ADMIN_OBJECT_IDS)
    if match:
        model = next((m for m in admin.site._registry if m._meta.app_label == match[1] and
                      m._meta.model_name == match[2]), None)  # fmt: skip
        first = model and model._default_manager.order_by("pk").values_list("pk", flat=True).first()
        if first is not None:
            ids.insert(0, str(first))
    return ids


def urls(*, full: bool, only=None) -> Iterator[Url]:
    """Each pattern with every parameter at A's value, then (`full`, for the patterns `only` accepts) one
    parameter at a time at each of its other values."""
    for route, pattern in patterns():
        varied = full and (only is None or only(route))
        if isinstance(pattern, RegexPattern):
            if "app_label" in route:
                labels = [*sorted({m._meta.app_label for m in admin.site._registry}), "nope"]
                yield from (
                    Url(f"/admin/{label}/", route)
                    for label in labels[: None if full and (only is None or only(route)) else 1]
                )
            else:  # the admin's catch-all
                yield Url("/admin/no/such/page/", route)
            continue
        assert isinstance(pattern, RoutePattern)
        names = [m["name"] for m in ROUTE_PARAMETER.finditer(route)]
        values: dict[str, tuple[str, list[str], list[str]]] = {}
        for name in names:
            if name in PARAMETERS:
                values[name] = PARAMETERS[name]
            elif name in ("object_id", "content_type_id", "id"):
                ids = admin_object_ids(route)
                values[name] = (ids[0], [], ids[1:])
            else:
                raise AssertionError(f"{route}: no values for the path parameter {name!r}; add them to PARAMETERS")

        def fill(chosen: dict[str, str], route: str = route) -> str:
            return "/" + ROUTE_PARAMETER.sub(lambda match: chosen[match["name"]], route)

        defaults = {name: v[0] for name, v in values.items()}
        yield Url(fill(defaults), route)
        if varied:
            for name, (_, b_values, others) in values.items():
                for value in b_values + others:
                    yield Url(fill({**defaults, name: value}), route, (name, value), value in b_values)


def requests(client: Client, url: str, *, admin_page: bool):
    yield "GET", client.get(url)
    yield "HEAD", client.head(url)
    yield "OPTIONS", client.options(url)
    yield "POST empty", client.post(url)
    yield "POST form", client.post(url, GARBAGE_FORM)
    if not admin_page:  # the admin parses forms only
        for body in GARBAGE_JSON:
            yield "POST json", client.post(url, body, content_type="application/json")


@dataclasses.dataclass
class Walk:
    requests: int = 0
    statuses: collections.Counter = dataclasses.field(default_factory=collections.Counter)
    failures: list[str] = dataclasses.field(default_factory=list)


def walk(client: Client, *, full_for, sign_in, tenant_a: bool = False) -> Walk:
    """Each URL in a savepoint that is rolled back: a garbage POST may delete what it names (the admin's
    delete confirms on any POST), and every URL must see the same rows. `sign_in` restores the identity before
    each URL: the walk signs out too (`/sign-out/`, the admin's logout)."""
    result = Walk()
    seen: dict[tuple, tuple[int, str]] = {}
    b_owned: list[tuple[tuple, Url, str, int]] = []
    for url, index, method, response in _requests_in_savepoints(client, urls(full=True, only=full_for), sign_in):
        result.requests += 1
        result.statuses[response.status_code // 100 * 100] += 1
        if response.status_code >= 500:
            body = response.content[:300].decode(errors="replace")
            result.failures.append(f"{method} {url.path[:120]} → {response.status_code}: {body}")
        if url.varied:
            seen[(url.pattern, *url.varied, index)] = response.status_code
        if url.b_owned and tenant_a:
            b_owned.append(((url.pattern, url.varied[0], str(MISSING_ID), index), url, method, response))
    for missing_key, url, method, response in b_owned:
        # Another tenant's object is indistinguishable from one that does not exist, whatever the method; only
        # OPTIONS may succeed (DRF's metadata, the same for every id).
        allowed = response.status_code >= 400 or method == "OPTIONS"
        if response.status_code != seen[missing_key] or not allowed:
            result.failures.append(
                f"{method} {url.path[:120]} (tenant B's) → {response.status_code}, a missing id → {seen[missing_key]}"
            )
        if TENANT_B_NAME.encode() in response.content:
            result.failures.append(f"{method} {url.path[:120]} shows tenant B's name")
    assert not tenant_a or any(r.status_code == 404 for *_, r in b_owned), "tenant B's ids were never tried"
    return result


def _requests_in_savepoints(client: Client, urls: Iterator[Url], sign_in):
    for url in urls:
        with transaction.atomic():
            sign_in()
            for index, (method, response) in enumerate(
                requests(client, url.path, admin_page=url.pattern.startswith("admin/"))
            ):
                yield url, index, method, response
            transaction.set_rollback(True)


def report(identity: str, result: Walk, started: float) -> None:
    statuses = ", ".join(f"{s // 100}xx: {n}" for s, n in sorted(result.statuses.items()))
    print(f"url walk as {identity}: {result.requests} requests in {time.monotonic() - started:.1f} s ({statuses})")
    assert not result.failures, f"{len(result.failures)} of {result.requests} requests failed:\n" + "\n".join(
        result.failures
    )


def is_admin(route: str) -> bool:
    return route.startswith("admin/")


def test_walk_as_anonymous(tenants):
    started = time.monotonic()
    client = Client(raise_request_exception=False)
    report("anonymous", walk(client, full_for=lambda route: not is_admin(route), sign_in=client.cookies.clear), started)


def test_walk_as_tenant_a(tenants):
    client = Client(raise_request_exception=False)

    def sign_in():
        client.cookies["__session"] = tenants.token_a

    sign_in()
    assert client.get(f"/m/{MERCHANT_A}/overview/").status_code == 200  # signed in, with data
    started = time.monotonic()
    report(
        "tenant A", walk(client, full_for=lambda route: not is_admin(route), sign_in=sign_in, tenant_a=True), started
    )


def test_walk_as_staff(tenants):
    staff = get_user_model().objects.create_superuser("fuzz-staff", "staff@example.com", "a-long-password-1")
    client = Client(raise_request_exception=False)
    client.force_login(staff)
    assert client.get("/admin/").status_code == 200
    started = time.monotonic()

    def sign_in():
        client.cookies.clear()  # the admin's logout deleted the session the cookie names
        client.force_login(staff)

    report("staff", walk(client, full_for=is_admin, sign_in=sign_in), started)


def test_every_admin_action_on_a_real_row(tenants):
    """The actions of every changelist, on tenant A's row where the model has one: the walk's garbage POSTs
    never get past the action form's validation."""
    staff = get_user_model().objects.create_superuser("fuzz-staff", "staff@example.com", "a-long-password-1")
    client = Client(raise_request_exception=False)
    client.force_login(staff)
    failures, count = [], 0
    for model, model_admin in admin.site._registry.items():
        pk = model._default_manager.order_by("pk").values_list("pk", flat=True).first()
        if pk is None:
            continue
        url = f"/admin/{model._meta.app_label}/{model._meta.model_name}/"
        request = client.get(url).wsgi_request
        for action in model_admin.get_actions(request):
            count += 1
            response = client.post(url, {"action": action, "_selected_action": [str(pk)], "index": "0"})
            if response.status_code >= 400:
                failures.append(f"{action} on {model._meta.label} #{pk} → {response.status_code}")
    assert count and not failures, failures
