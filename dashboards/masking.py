"""What an agency's grant hides: customer PII and costs, masked the same way in every page, CSV and API body.

A store's own members see everything. An agency sees customer names, emails and phones only with the grant's
`can_see_pii`, and ad spend, costs and what is derived from them (ROAS, MER, CAC, LTV:CAC, payback) only with
its `can_see_costs`. Hidden figures become null (API, so clients can tell "hidden" from zero), an empty cell
(CSV; the header stays, so a column's position never moves), or "Hidden by the store's grant" (pages).

This is the one place that knows which fields are PII or costs; the selectors stay unaware of who looks.
Today's dashboards show no customer-level data, so PII masking covers the fields below wherever they appear
(future customer tables included) rather than a page in particular.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

# Keys (selector output, API bodies) and CSV columns that are costs or derived from costs.
COST_KEYS = frozenset(
    {"ad_spend", "spend", "mer", "roas", "blended_cac", "new_customer_cac", "cac", "ltv_to_cac", "payback_month"}
)
# Metrics (KPI tiles, widgets) that are costs: the tile or widget keeps its place and says it is hidden.
COST_METRICS = frozenset({"ad_spend", "mer", "blended_cac", "new_customer_cac"})
PII_KEYS = frozenset(
    {"email", "customer_email", "customer_name", "first_name", "last_name", "phone", "customer_phone", "address"}
)
PII_MASK = "•••"
HIDDEN_BY_GRANT = "Hidden by the store's grant"


@dataclass(frozen=True)
class Masking:
    hide_pii: bool = False
    hide_costs: bool = False

    @property
    def active(self) -> bool:
        return self.hide_pii or self.hide_costs


NO_MASKING = Masking()


def masking_for(access) -> Masking:
    """The masking an accounts.access.StoreAccess calls for (none for a store member)."""
    return Masking(hide_pii=not access.can_see_pii, hide_costs=not access.can_see_costs)


def _is_cost_column(name: str) -> bool:
    # The attribution comparison's "<model>_roas" columns, and plain ones like "spend".
    return name in COST_KEYS or name.rsplit("_", 1)[-1] == "roas"


def _hidden_figure(item: dict) -> dict:
    """A KPI tile or widget over a cost metric: same shape, figures null, and a note saying why."""
    hidden = {**item, "hidden": HIDDEN_BY_GRANT}
    for key in ("value", "previous", "change"):
        if key in hidden:
            hidden[key] = None
    data = hidden.get("data")
    if isinstance(data, dict):
        hidden["data"] = _hidden_figure(data)
    elif isinstance(data, list):
        hidden["data"] = [{**p, "value": None} if isinstance(p, dict) and "value" in p else p for p in data]
    return hidden


def mask(value: Any, masking: Masking) -> Any:
    """`value` (dicts and lists of selector output or an API body) with what `masking` hides replaced.

    Returns new containers and leaves `value` alone: it may be a cached body shared with store members.
    """
    if not masking.active:
        return value
    if isinstance(value, list | tuple):
        return [mask(v, masking) for v in value]
    if not isinstance(value, dict):
        return value
    if masking.hide_costs and (value.get("key") in COST_METRICS or value.get("metric") in COST_METRICS):
        value = _hidden_figure(value)
    out = {}
    for key, item in value.items():
        if masking.hide_costs and key in COST_KEYS:
            out[key] = None
        elif masking.hide_pii and key in PII_KEYS:
            out[key] = PII_MASK if item else item
        else:
            out[key] = mask(item, masking)
    return out


def mask_csv(rows: Iterable[list], masking: Masking) -> Iterator[list]:
    """CSV rows (the first is the header) with hidden columns' cells emptied; the header is kept."""
    rows = iter(rows)
    header = next(rows, None)
    if header is None:
        return
    yield header
    cost = {i for i, name in enumerate(header) if masking.hide_costs and _is_cost_column(str(name))}
    pii = {i for i, name in enumerate(header) if masking.hide_pii and str(name) in PII_KEYS}
    for row in rows:
        yield [("" if i in cost else PII_MASK if i in pii and cell else cell) for i, cell in enumerate(row)]
