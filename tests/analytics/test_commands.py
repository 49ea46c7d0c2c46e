"""generate_demo_data: argument checks, and a small run that lands rows in the merchant's raw schema."""

import psycopg
import pytest
from django.core.management import CommandError, call_command

from analytics.selectors import warehouse_connection_params
from tests.accounts.factories import MerchantFactory

pytestmark = pytest.mark.django_db(databases=["default", "warehouse"])


def test_unknown_merchant_is_a_clear_error():
    with pytest.raises(CommandError, match="no merchant with key 'nope'"):
        call_command("generate_demo_data", "--merchant", "nope")


def test_non_positive_sizes_are_refused_before_anything_is_written():
    merchant = MerchantFactory(key="cmd_refused")
    with pytest.raises(CommandError, match="must be positive"):
        call_command("generate_demo_data", "--merchant", merchant.key, "--days", "0")
    with psycopg.connect(**warehouse_connection_params()) as conn:
        assert conn.execute("SELECT to_regnamespace('raw_cmd_refused')").fetchone()[0] is None


def test_a_small_run_writes_the_merchants_raw_tables(capsys):
    merchant = MerchantFactory(key="cmd_small", timezone="America/Los_Angeles")
    params = warehouse_connection_params()
    try:
        call_command("generate_demo_data", "--merchant", merchant.key, "--days", "3", "--orders-per-day", "2")
        out = capsys.readouterr().out
        with psycopg.connect(**params) as conn:
            orders = conn.execute("SELECT count(*) FROM raw_cmd_small.shopify_orders").fetchone()[0]
        assert orders >= 6
        assert f"raw_cmd_small.shopify_orders: {orders:,}" in out
    finally:
        with psycopg.connect(**params, autocommit=True) as conn:
            conn.execute("DROP SCHEMA IF EXISTS raw_cmd_small CASCADE")
