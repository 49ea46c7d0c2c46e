"""CSV for every dashboard export: one writer, so no export can forget to neutralise a formula.

Names in the marts come from raw data anyone can shape (a store visit with a crafted `utm_campaign`, a
campaign named in Klaviyo). A spreadsheet opening the file runs a cell that starts with `=`, `+`, `-` or
`@` as a formula (`=HYPERLINK(...)`, `-2+3+cmd|' /C calc'!A0`), and a leading tab or carriage return is
stripped by some importers before they look. OWASP's rule: prefix such a cell with a single quote, which
spreadsheets show as text. The fullwidth forms of the four signs are included because Excel in East
Asian locales reads them as the ASCII ones.

Only text is neutralised. Numbers (int, float, Decimal) are written as they are, so a refund's -5 stays
the number -5 rather than the text '-5. Text cells are always quoted (csv.QUOTE_NONNUMERIC), so a
spreadsheet that splits on `;` or tab (many locales) cannot cut a name into a second cell that starts
with `=`.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator
from decimal import Decimal

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\uff1d", "\uff0b", "\uff0d", "\uff20")


def csv_cell(value: object) -> object:
    """What the CSV writer is given for one cell: numbers unchanged, None empty, anything else safe text."""
    if value is None:
        return ""
    if isinstance(value, int | float | Decimal):  # bool is an int: written True/False, never a formula
        return value
    text = str(value)
    if text.startswith(FORMULA_TRIGGERS):
        return "'" + text
    return text


class _Echo:
    """A file that hands back what is written to it, so csv.writer yields lines for a streaming response."""

    def write(self, value: str) -> str:
        return value


def csv_lines(rows: Iterable[Iterable[object]]) -> Iterator[str]:
    """The rows as CSV lines, every cell through csv_cell."""
    writer = csv.writer(_Echo(), quoting=csv.QUOTE_NONNUMERIC)
    for row in rows:
        yield writer.writerow([csv_cell(value) for value in row])
