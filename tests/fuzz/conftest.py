"""Two tenants with data, a staff user, the providers on the sandbox, and no way out of this machine.

Tenant A is the signed-in user's (Alpine Gear, with marts); tenant B (Beach Things) belongs to someone else and
its ids are fed to every test: they must answer 404 to A. A third store, where A's user is only a viewer, is
there for the 403s. Object ids are fixed so the schemathesis configuration can name them before any test runs.
"""

from __future__ import annotations

import collections
import ipaddress
import socket
from dataclasses import dataclass

import pytest
from django.core.cache import cache
from django.core.signals import request_finished, request_started
from django.db import close_old_connections

from accounts.choices import Role
from compliance.models import AuditExport
from dashboards.models import DashboardTemplate
from tests.accounts.factories import MembershipFactory, MerchantFactory
from tests.connectors.conftest import _no_notification_delivery, encryption_key, providers  # noqa: F401 — reused
from tests.connectors.factories import CredentialFactory
from tests.dashboards.conftest import MART_MERCHANTS, mart_merchant, marts  # noqa: F401 — the session fixture

MERCHANT_A, MERCHANT_B = (m["id"] for m in MART_MERCHANTS)
MERCHANT_VIEWER = 910_103  # A's user may read this store but not manage it
TEMPLATE_A, TEMPLATE_B = 920_101, 920_102
CREDENTIAL_A, CREDENTIAL_B = 930_101, 930_102
EXPORT_A, EXPORT_B = 940_101, 940_102  # audit exports (pending: no file)
MISSING_ID = 999_999_937  # no row has it
USER_A, USER_B = "user_fuzz_alice", "user_fuzz_bob"


def mart_merchant_name(index: int) -> str:
    return MART_MERCHANTS[index]["name"]


# (operation, status) → responses seen by the schemathesis run, summarised at the end of the session.
STATUSES: collections.Counter[tuple[str, int]] = collections.Counter()

LAYOUT = [{"type": "kpi", "metric": "orders", "options": {"title": "Orders"}}]


@dataclass(frozen=True)
class Tenants:
    a: object  # Merchant
    b: object
    viewer_store: object
    template_a: DashboardTemplate
    template_b: DashboardTemplate
    auth_a: dict[str, str]  # Django test client headers (HTTP_AUTHORIZATION)
    token_a: str


@pytest.fixture
def tenants(clerk, providers, marts) -> Tenants:  # noqa: F811
    cache.clear()  # the connect throttle counts per user in the default cache
    a, b = mart_merchant(0), mart_merchant(1)
    viewer_store = MerchantFactory(pk=MERCHANT_VIEWER, name="Viewer Store", key="fuzz_viewer")
    MembershipFactory(clerk_user_id=clerk.user(USER_A), merchant=a, role=Role.OWNER)
    MembershipFactory(clerk_user_id=USER_A, merchant=viewer_store, role=Role.VIEWER)
    MembershipFactory(clerk_user_id=clerk.user(USER_B), merchant=b, role=Role.OWNER)
    templates = [
        DashboardTemplate.objects.create(pk=pk, merchant=m, name=f"Saved {m.name}", layout=LAYOUT, created_by=user)
        for pk, m, user in ((TEMPLATE_A, a, USER_A), (TEMPLATE_B, b, USER_B))
    ]
    for pk, merchant in ((CREDENTIAL_A, a), (CREDENTIAL_B, b)):
        CredentialFactory(pk=pk, merchant=merchant)
    for pk, merchant in ((EXPORT_A, a), (EXPORT_B, b)):
        AuditExport.objects.create(
            pk=pk,
            merchant=merchant,
            occurred_from="2026-01-01T00:00:00Z",
            occurred_to="2026-02-01T00:00:00Z",
            requested_by_type="clerk_user",
        )
    token = clerk.token(USER_A)
    return Tenants(a, b, viewer_store, *templates, auth_a={"HTTP_AUTHORIZATION": f"Bearer {token}"}, token_a=token)


@pytest.fixture
def in_process_requests():
    """What Django's test client does around each request, for a WSGI client that is not Django's: the
    end-of-request signal must not close the connection that holds the test's transaction."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)


@pytest.fixture(autouse=True)
def _loopback_only(monkeypatch):
    """Every socket the app opens goes to this machine (the sandbox): a generated request that reached a
    real provider would fail here instead of creating something there."""
    connect = socket.socket.connect

    def guarded(sock, address):
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            host = address[0]
            try:
                loopback = ipaddress.ip_address(host).is_loopback
            except ValueError:
                loopback = host == "localhost"
            if not loopback:
                raise AssertionError(f"a fuzzed request tried to reach {host}: only loopback is allowed")
        return connect(sock, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


def pytest_terminal_summary(terminalreporter):
    if not STATUSES:
        return
    by_operation: dict[str, dict[int, int]] = collections.defaultdict(dict)
    for (operation, status), count in sorted(STATUSES.items()):
        by_operation[operation][status] = count
    terminalreporter.section("schemathesis: responses by operation")
    terminalreporter.write_line(f"{sum(STATUSES.values())} requests over {len(by_operation)} operations")
    for operation, statuses in by_operation.items():
        terminalreporter.write_line(f"{operation}: " + ", ".join(f"{s} x{n}" for s, n in statuses.items()))
