"""The simulation's output is pinned: the same seed writes the same bytes, whatever the code's layout.

The hashes below were computed on main before the emitters were split by source and declared their columns
by name (issue 17, item 5); a change that moves a value to another column, reorders a random draw or renames
a column changes them. Plain functions, no database: the COPY text the generator hands to PostgreSQL, with the
column list it is copied into, for every table that got rows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import subprocess
import sys

import pytest

from analytics.raw_schema import RAW_TABLES
from sandbox.world import columns
from sandbox.world.columns import EMITTED, TABLE_NUMBERS, ColumnMismatch
from sandbox.world.simulation import _Generator, copy_columns

PINNED = {
    (11, "USD"): "f1921ffd3c924f9d6fd9bca685d145723fbe25a1a62d218d176ffb3bd786765c",
    (12, "EUR"): "dd16b35a848016c4f04746d276c1447e799e0d6250284b65e98cdc209e3ed6d5",
}


def simulated(seed: int, currency: str) -> _Generator:
    gen = _Generator(
        None,
        merchant_key="hashme",
        shop_domain="hash-shop.myshopify.com",
        timezone="America/New_York",
        currency=currency,
        days=30,
        orders_per_day=12,
        seed=seed,
        end_date=dt.date(2026, 3, 12),
        from_date=None,
        progress=None,
    )
    gen.simulate()
    return gen


@pytest.mark.parametrize(("seed", "currency"), sorted(PINNED))
def test_the_same_seed_writes_the_same_bytes_as_before_the_split(seed, currency):
    gen = simulated(seed, currency)
    digest = hashlib.sha256()
    tables = sorted(t for t, rows in gen.buf.items() if rows)
    for table in tables:
        digest.update(f"{table}:{','.join(copy_columns(table))}\n".encode())
        for row in gen.buf[table]:
            digest.update(row.encode())
    assert tables == sorted(EMITTED)  # every table the simulation writes got rows: none escapes the hash
    assert digest.hexdigest() == PINNED[seed, currency]


def test_every_row_holds_as_many_values_as_its_emitter_declares_columns():
    gen = simulated(11, "USD")
    for table, rows in gen.buf.items():
        for row in rows:
            assert row.count("\t") + 1 == len(copy_columns(table)), (table, row)


def test_every_table_the_simulation_writes_declares_the_raw_schema_columns_in_order():
    # Every raw table but those the simulation has no emitter for (Attentive's "other" events; tables added since).
    assert set(EMITTED) <= set(RAW_TABLES) and len(EMITTED) == 22
    for table, names in EMITTED.items():
        assert names == tuple(name for name, _ in RAW_TABLES[table]), table
    assert sorted(TABLE_NUMBERS.values()) == list(range(1, 23))  # fixed: part of every _airbyte_raw_id


RAW_SCHEMA_CHANGED = """
import analytics.raw_schema as raw
cols = list(raw.RAW_TABLES["shopify_orders"])
cols.insert(3, ("source_identifier", "text"))  # a column inserted in the middle of the table
raw.RAW_TABLES["shopify_orders"] = tuple(cols)
import sandbox.world.simulation
"""


def test_a_column_inserted_in_the_raw_schema_stops_the_import_instead_of_shifting_the_data():
    done = subprocess.run([sys.executable, "-c", RAW_SCHEMA_CHANGED], capture_output=True, text=True, check=False)
    assert done.returncode != 0
    assert "ColumnMismatch: shopify_orders: the simulation (sandbox.world.sources.shopify) writes 33 columns" in (
        done.stderr
    )
    assert "raw_schema.py has 34; missing: ['source_identifier']; unknown: none." in done.stderr


def test_the_same_columns_in_another_order_are_refused_too():
    names = tuple(name for name, _ in RAW_TABLES["web_sessions"])
    swapped = (names[1], names[0], *names[2:])
    with pytest.raises(ColumnMismatch, match=r"web_sessions: .* the same columns in another order"):
        columns.check_columns("tests", "web_sessions", swapped)
    with pytest.raises(ColumnMismatch, match="web_visits: the simulation writes a table"):
        columns.check_columns("tests", "web_visits", names)
