from django.contrib import admin
from django.utils.html import format_html, format_html_join

from analytics.choices import DbtRunStatus
from analytics.models import DbtRun, RawDataChange
from analytics.selectors import raw_data_change_unbuilt_list


@admin.register(DbtRun)
class DbtRunAdmin(admin.ModelAdmin):
    list_display = ("started_at", "command", "status", "triggered_by", "duration", "failure_count")
    list_filter = ("status", "triggered_by", ("started_at", admin.DateFieldListFilter))
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
