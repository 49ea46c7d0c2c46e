from django.contrib import admin
from django.utils.html import format_html, format_html_join

from analytics.choices import DbtRunStatus
from analytics.models import DataFreshnessCheck, DbtRun, RawDataChange
from analytics.selectors import raw_data_change_unbuilt_list


@admin.register(DbtRun)
class DbtRunAdmin(admin.ModelAdmin):
    list_display = ("started_at", "command", "status", "triggered_by", "duration", "failure_count", "waited_for")
    list_filter = ("status", "triggered_by", ("started_at", admin.DateFieldListFilter))
    list_select_related = ("blocked_by",)
    search_fields = ("command", "error")
    date_hierarchy = "started_at"
    readonly_fields = [f.name for f in DbtRun._meta.fields] + ["failure_table", "freshness_table"]
    exclude = ("failures", "freshness")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="Duration")
    def duration(self, obj: DbtRun) -> str:
        return f"{obj.duration_seconds:.1f} s" if obj.duration_seconds is not None else "—"

    @admin.display(description="Waited for")
    def waited_for(self, obj: DbtRun) -> str:
        """A scheduled run that found the lock held: since when it asked, and which run held the lock."""
        if obj.requested_at is None and obj.blocked_by_id is None:
            return "—"
        holder = f"run #{obj.blocked_by_id}" if obj.blocked_by_id else "the lock"
        since = f" since {obj.requested_at:%Y-%m-%d %H:%M}" if obj.requested_at else ""
        return f"{holder}{since}"

    @admin.display(description="Failures")
    def failure_count(self, obj: DbtRun) -> int:
        return len(obj.failures)

    @admin.display(description="Failed nodes")
    def failure_table(self, obj: DbtRun) -> str:
        if not obj.failures:
            return "—"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((f["unique_id"], f["status"], f["message"]) for f in obj.failures),
        )
        return format_html("<table><tr><th>Node</th><th>Status</th><th>Message</th></tr>{}</table>", rows)

    @admin.display(description="Source freshness")
    def freshness_table(self, obj: DbtRun) -> str:
        if not obj.freshness:
            return "—"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
            ((f["source"], f.get("max_loaded_at") or "—", f["status"]) for f in obj.freshness),
        )
        return format_html("<table><tr><th>Source</th><th>Latest load</th><th>Status</th></tr>{}</table>", rows)


class RawDataChangeStateFilter(admin.SimpleListFilter):
    title = "build"
    parameter_name = "build"

    def lookups(self, request, model_admin):
        return [("unbuilt", "Not built yet"), ("built", "Taken in by a build")]

    def queryset(self, request, queryset):
        unbuilt = raw_data_change_unbuilt_list().values("pk")
        if self.value() == "unbuilt":
            return queryset.filter(pk__in=unbuilt)
        if self.value() == "built":
            return queryset.exclude(pk__in=unbuilt)
        return queryset


@admin.register(RawDataChange)
class RawDataChangeAdmin(admin.ModelAdmin):
    """Read-only: what the coalesced dbt build has still to take in, and which build took in the rest."""

    list_display = ("recorded_at", "merchant", "source", "at", "build_state")
    list_filter = (RawDataChangeStateFilter, "source", ("at", admin.DateFieldListFilter))
    list_select_related = ("merchant", "consumed_by_run")
    search_fields = ("merchant__name", "merchant__key", "source")
    date_hierarchy = "recorded_at"
    readonly_fields = [f.name for f in RawDataChange._meta.fields] + ["build_state"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="Build")
    def build_state(self, obj: RawDataChange) -> str:
        run = obj.consumed_by_run
        if run is None:
            return "waiting for a build"
        if run.status == DbtRunStatus.RUNNING:
            return f"building (run #{run.pk})"
        if run.status == DbtRunStatus.INTERRUPTED:
            return f"waiting for a build (run #{run.pk} was interrupted)"
        return f"run #{run.pk}: {run.get_status_display()}"


@admin.register(DataFreshnessCheck)
class DataFreshnessCheckAdmin(admin.ModelAdmin):
    """Read-only: each hourly freshness check, what it read, how long it took, and what was stale or late."""

    list_display = ("checked_at", "stores_checked", "sources_checked", "stale_count", "late_count", "duration")
    list_filter = ("staff_notified", ("checked_at", admin.DateFieldListFilter))
    date_hierarchy = "checked_at"
    readonly_fields = [f.name for f in DataFreshnessCheck._meta.fields] + ["stale_table", "late_table"]
    exclude = ("stale", "late")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="Stale")
    def stale_count(self, obj: DataFreshnessCheck) -> int:
        return len(obj.stale)

    @admin.display(description="Late")
    def late_count(self, obj: DataFreshnessCheck) -> int:
        return len(obj.late)

    @admin.display(description="Duration")
    def duration(self, obj: DataFreshnessCheck) -> str:
        return f"{obj.duration_seconds * 1000:.0f} ms"

    @staticmethod
    def _table(entries: list[dict]) -> str:
        if not entries:
            return "—"
        rows = format_html_join(
            "",
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            (
                (e["merchant_key"], e["source"], e["landed_at"] or "no data yet", e["connected_at"], e["age_hours"])
                for e in entries
            ),
        )
        return format_html(
            "<table><tr><th>Store</th><th>Source</th><th>Last landed</th><th>Connected</th><th>Hours</th></tr>"
            "{}</table>",
            rows,
        )

    @admin.display(description="Stale (past the error threshold)")
    def stale_table(self, obj: DataFreshnessCheck) -> str:
        return self._table(obj.stale)

    @admin.display(description="Late (past the warn threshold)")
    def late_table(self, obj: DataFreshnessCheck) -> str:
        return self._table(obj.late)
