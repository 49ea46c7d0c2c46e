"""Route nothing to the warehouse alias implicitly.

The `warehouse` alias exists for raw SQL over the dbt marts (selectors use `connections["warehouse"]`).
Django's own tables live in `default` only, and migrations never run against the warehouse.
"""


class WarehouseRouter:
    def allow_migrate(self, db: str, app_label: str, **hints) -> bool | None:
        if db == "warehouse":
            return False
        return None
