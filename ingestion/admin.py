"""Staff's view of ingestion: read-only rows; "sync now" and "reset" go through audited services.

No configuration is ever shown: we keep none (only HMACs of what was sent, `source_digests`, which are
left out too), and the destination's password lives in settings alone.
"""

from __future__ import annotations

from django.contrib import admin, messages

from compliance.choices import ActorType
from compliance.services import Actor, request_context
from ingestion import services
from ingestion.choices import JobType
from ingestion.models import Pipeline, SyncJob, Workspace


def _staff_actor(request) -> Actor:
    return Actor(type=ActorType.STAFF, id=str(request.user.pk), label=request.user.get_username())


class _ReadOnly(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class SyncJobInline(admin.TabularInline):
    model = SyncJob
    fields = ("airbyte_job_id", "job_type", "status", "rows_synced", "bytes_synced", "started_at", "finished_at",
              "error_type", "attached")  # fmt: skip
    readonly_fields = fields
    extra = 0
    max_num = 0
    can_delete = False
    ordering = ("-created_at",)
    show_change_link = True

    def get_queryset(self, request):
        return super().get_queryset(request).order_by("-created_at")


@admin.register(Pipeline)
class PipelineAdmin(_ReadOnly):
    list_display = ("id", "merchant", "kind", "source_type", "status", "next_sync_at", "last_synced_at",
                    "consecutive_failures", "last_error_code")  # fmt: skip
    list_filter = ("status", "kind", "source_type")
    search_fields = ("merchant__name", "merchant__key", "connection_id", "source_id")
    list_select_related = ("merchant",)
    actions = ("sync_now", "reset")
    fields = ("merchant", "kind", "credential", "source_type", "source_id", "connection_id", "status", "start_date",
              "sync_interval_seconds", "next_sync_at", "last_job", "last_synced_at", "consecutive_failures",
              "failure_alerted_at", "last_error_code", "last_error_message", "created_at", "updated_at")  # fmt: skip
    readonly_fields = fields
    inlines = (SyncJobInline,)

    def _request(self, request, queryset, job_type: str, verb: str) -> None:
        actor, ctx = _staff_actor(request), request_context(request)
        for pipeline in queryset:
            services.pipeline_sync_request(pipeline_id=pipeline.pk, actor=actor, job_type=job_type, request_ctx=ctx)
        self.message_user(request, f"{verb} requested for {queryset.count()} pipeline(s).", messages.SUCCESS)

    @admin.action(description="Sync now")
    def sync_now(self, request, queryset) -> None:
        self._request(request, queryset, JobType.SYNC, "A sync")

    @admin.action(description="Reset (clear the raw tables and sync again from the start)")
    def reset(self, request, queryset) -> None:
        self._request(request, queryset, JobType.RESET, "A reset")


@admin.register(SyncJob)
class SyncJobAdmin(_ReadOnly):
    list_display = ("airbyte_job_id", "pipeline", "job_type", "status", "rows_synced", "bytes_synced",
                    "started_at", "finished_at", "error_type")  # fmt: skip
    list_filter = ("status", "job_type", "pipeline__source_type")
    search_fields = ("=airbyte_job_id", "pipeline__merchant__name", "pipeline__connection_id")
    list_select_related = ("pipeline", "pipeline__merchant")
    fields = ("pipeline", "airbyte_job_id", "job_type", "status", "rows_synced", "bytes_synced", "started_at",
              "finished_at", "error_type", "error_origin", "error_message", "attached", "polls", "next_poll_at",
              "created_at", "updated_at")  # fmt: skip
    readonly_fields = fields


@admin.register(Workspace)
class WorkspaceAdmin(_ReadOnly):
    list_display = ("workspace_id", "destination_id", "api_down_since", "api_alerted_at")
    fields = ("workspace_id", "destination_id", "api_down_since", "api_alerted_at", "created_at", "updated_at")
    readonly_fields = fields
