"""What a coalesced build loads: the stores that changed, the tables of the sources that changed, and every table
of a store the last run did not build (analytics.services.landing_scope)."""

from __future__ import annotations

import pytest
from django.utils import timezone

from analytics.choices import DbtRunStatus
from analytics.landing import source_tables
from analytics.models import DbtRun
from analytics.raw_schema import RAW_TABLES
from analytics.services import landing_scope
from tests.accounts.factories import MerchantFactory


@pytest.mark.django_db
def test_the_scope_is_the_changed_stores_sources_and_every_table_of_a_store_new_to_the_builds():
    built, other, new = MerchantFactory(), MerchantFactory(), MerchantFactory()
    now = timezone.now()
    DbtRun.objects.create(
        command="build", status=DbtRunStatus.SUCCESS, started_at=now, merchant_ids=[built.pk, other.pk]
    )
    # a run that never started (the lock was held) lists no stores and says nothing about what was built
    DbtRun.objects.create(command="build", status=DbtRunStatus.SKIPPED, started_at=now, merchant_ids=[])

    scope = landing_scope(
        [(1, "shopify", built.pk), (2, "klaviyo", built.pk), (3, "shopify", built.pk)],
        merchant_ids=[built.pk, other.pk, new.pk],
    )

    assert scope == {built.pk: sorted({*source_tables("shopify"), *source_tables("klaviyo")}), new.pk: None}
    assert all(t.startswith(("shopify_", "klaviyo_")) for t in scope[built.pk])


def test_an_unknown_source_loads_every_table():
    assert set(source_tables("someday_a_new_source")) == set(RAW_TABLES)
    assert {"web_events", "web_sessions"} <= set(source_tables("web"))
