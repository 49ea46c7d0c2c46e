"""The columns each emitter writes, by name, checked against ``analytics.raw_schema`` when its module loads.

An emitter writes a row as COPY text, its values in the order of the names it declares here (``declare``).
Those names must be the raw table's columns, in the table's order: the demo data is copied into the table with
that column list, and the sandbox's Airbyte reads a record's text against the same columns
(``sandbox.providers.airbyte_worker``). A column added to or moved in the raw schema therefore stops the import
with the table and the difference, instead of shifting every later value into the wrong column. The check runs
once, at import; a row costs what it did.
"""

from __future__ import annotations

from analytics.raw_schema import AIRBYTE_META_COLUMNS, RAW_TABLES

# What ``_Generator.emit`` appends to each row after the emitter's values, in this order.
EMIT_META_COLUMNS = ("_airbyte_raw_id", "_airbyte_extracted_at", "_airbyte_meta", "_airbyte_generation_id")

NOT_A_RAW_TABLE = "{table}: the simulation writes a table analytics/raw_schema.py does not have"
COLUMNS_DIFFER = (
    "{table}: the simulation ({module}) writes {declared} columns but analytics/raw_schema.py has {expected}; "
    "missing: {missing}; unknown: {unknown}{reordered}. Change the emitter's declaration and its row text together."
)
DECLARED_TWICE = "{table}: two emitters declare its columns"
NUMBER_TAKEN = "{table}: table number {number} is {other}'s"
META_DIFFER = "Airbyte's metadata columns changed in analytics/raw_schema.py: emit() writes {emitted}, not {expected}"


class ColumnMismatch(RuntimeError):
    """The simulation and the raw schema disagree about a table's columns."""


# table -> the columns its emitter writes (the raw table's, in order), and the table's number in record ids
EMITTED: dict[str, tuple[str, ...]] = {}
TABLE_NUMBERS: dict[str, int] = {}
_COPY_COLUMNS: dict[str, tuple[str, ...]] = {}

if tuple(name for name, _ in AIRBYTE_META_COLUMNS) != EMIT_META_COLUMNS:
    raise ColumnMismatch(META_DIFFER.format(emitted=EMIT_META_COLUMNS, expected=AIRBYTE_META_COLUMNS))


def declare(module: str, tables: dict[str, int], names: tuple[str, ...]) -> tuple[str, ...]:
    """Record that `module` writes `names` into each of `tables` ({table: its number in record ids}).

    The number is fixed per table (it is part of every `_airbyte_raw_id` the simulation makes), so the same seed
    gives the same ids whatever tables the raw schema gains. Returns `names`.
    """
    for table, number in tables.items():
        check_columns(module, table, names)
        if table in EMITTED:
            raise ColumnMismatch(DECLARED_TWICE.format(table=table))
        other = next((t for t, n in TABLE_NUMBERS.items() if n == number), None)
        if other is not None:
            raise ColumnMismatch(NUMBER_TAKEN.format(table=table, number=number, other=other))
        EMITTED[table] = names
        TABLE_NUMBERS[table] = number
        _COPY_COLUMNS[table] = (*names, *EMIT_META_COLUMNS)
    return names


def check_columns(module: str, table: str, names: tuple[str, ...]) -> None:
    """Raise ColumnMismatch unless `names` are the raw table's columns, in its order."""
    if table not in RAW_TABLES:
        raise ColumnMismatch(NOT_A_RAW_TABLE.format(table=table))
    expected = tuple(name for name, _ in RAW_TABLES[table])
    if names != expected:
        missing = [c for c in expected if c not in names]
        unknown = [c for c in names if c not in expected]
        reordered = "" if missing or unknown else "; the same columns in another order"
        raise ColumnMismatch(
            COLUMNS_DIFFER.format(
                table=table,
                module=module,
                declared=len(names),
                expected=len(expected),
                missing=missing or "none",
                unknown=unknown or "none",
                reordered=reordered,
            )
        )


def copy_columns(table: str) -> tuple[str, ...]:
    """The column list a row of `table` is copied into: its emitter's columns, then Airbyte's metadata."""
    return _COPY_COLUMNS[table]
