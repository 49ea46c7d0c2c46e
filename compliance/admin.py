from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError
from django.utils.html import format_html

from compliance import holds
from compliance.choices import ActorType, ExportState
from compliance.exports import audit_export_create, audit_export_errors
from compliance.models import AuditEvent, AuditExport, HoldExemption, LegalHold, PrivacyRequest, PurgeRun
from compliance.services import Actor, request_context
from compliance.storage import download_link


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the log is append-only, in the admin as in the database."""

    list_display = ("occurred_at", "action", "actor_type", "actor_label", "target_type", "target_id", "merchant", "ip")
    list_filter = ("action", "actor_type", "target_type", ("occurred_at", admin.DateFieldListFilter))
    search_fields = ("action", "actor_id", "actor_label", "target_id", "=ip")
    list_select_related = ("merchant",)
    date_hierarchy = "occurred_at"
    ordering = ("-occurred_at", "-id")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class _OverdueFilter(admin.SimpleListFilter):
    title = "deadline"
    parameter_name = "deadline"

    def lookups(self, request, model_admin):
        return (("overdue", "Overdue"), ("soon", "Due within 3 days"), ("open", "Not done"))

    def queryset(self, request, queryset):
        from compliance.selectors import privacy_request_list

        if self.value():
            return privacy_request_list(deadline=self.value(), queryset=queryset)
        return queryset


@admin.register(PrivacyRequest)
class PrivacyRequestAdmin(admin.ModelAdmin):
    """Every Shopify privacy request with its deadline. Read-only but for "process again": what was done is
    the record of a legal obligation, changed only by the work itself."""

    list_display = (
        "id",
        "topic",
        "shop_domain",
        "merchant",
        "state",
        "received_at",
        "due_at",
        "is_overdue",
        "handled_at",
    )
    list_filter = (_OverdueFilter, "state", "topic")
    search_fields = ("shop_domain", "=shopify_request_id", "=id")
    list_select_related = ("merchant",)
    date_hierarchy = "received_at"
    ordering = ("due_at", "id")
    actions = ("process_again",)
    # The customer's identifiers are not shown: staff act on the request, not on the person.
    exclude = ("customer_email", "customer_phone")

    @admin.display(boolean=True, description="Overdue")
    def is_overdue(self, obj: PrivacyRequest) -> bool:
        from compliance.selectors import privacy_request_is_overdue

        return privacy_request_is_overdue(obj)

    @admin.action(description="Process the selected failed requests again")
    def process_again(self, request, queryset):
        from compliance.choices import ActorType, PrivacyState
        from compliance.privacy import privacy_request_retry
        from compliance.services import Actor

        actor = Actor(type=ActorType.STAFF, id=str(request.user.pk), label=request.user.get_username())
        retried = 0
        for pk in queryset.filter(state=PrivacyState.FAILED).values_list("pk", flat=True):
            privacy_request_retry(request_id=pk, actor=actor)
            retried += 1
        self.message_user(request, f"{retried} request(s) queued again.")


class LegalHoldForm(forms.ModelForm):
    """The hold's matter and scope, checked by the same rules as the service (compliance/holds.py), and a release
    reason: filling it in releases the hold on save."""

    release_reason_new = forms.CharField(
        label="Release with reason",
        required=False,
        widget=forms.Textarea(attrs={"rows": 2}),
        help_text="Filled in: the hold is released on save (nothing is deleted; retention applies again).",
    )

    class Meta:
        model = LegalHold
        fields = ("merchant", "matter", "reason", "customer_ids", "emails", "categories", "date_from", "date_to")

    def clean(self):
        cleaned = super().clean()
        if self.instance.pk and self.instance.released_at:
            raise forms.ValidationError(holds.ALREADY_RELEASED.format(at=self.instance.released_at))
        try:
            normalised = holds._clean({name: cleaned.get(name) for name in holds.EDITABLE_FIELDS})
        except ValidationError as exc:
            raise ValidationError(exc.message_dict) from exc
        cleaned.update(normalised)
        return cleaned


def _staff(request) -> Actor:
    return Actor(type=ActorType.STAFF, id=str(request.user.pk), label=request.user.get_username())


@admin.register(LegalHold)
class LegalHoldAdmin(admin.ModelAdmin):
    """Place, change and release holds through the services, so each is audited; a hold is never deleted."""

    form = LegalHoldForm
    list_display = ("id", "merchant", "matter", "active", "placed_at", "placed_by_label", "released_at")
    list_filter = (("released_at", admin.EmptyFieldListFilter), "placed_at")
    search_fields = ("matter", "reason", "=merchant__key", "merchant__name")
    list_select_related = ("merchant",)
    readonly_fields = (
        "placed_at",
        "placed_by_label",
        "released_at",
        "released_by_label",
        "release_reason",
    )

    @admin.display(boolean=True, description="Active")
    def active(self, obj: LegalHold) -> bool:
        return obj.is_active

    def get_readonly_fields(self, request, obj=None):
        if obj is not None:  # the store of a hold is what it is about: never moved to another
            return ("merchant", *self.readonly_fields)
        return self.readonly_fields

    def save_model(self, request, obj, form, change):
        data, actor = form.cleaned_data, _staff(request)
        scope = {name: data[name] for name in holds.EDITABLE_FIELDS}
        if not change:
            placed = holds.hold_place(merchant_id=data["merchant"].pk, actor=actor, **scope)
            obj.pk = placed.pk
            obj.refresh_from_db()
            return
        holds.hold_update(hold=obj, actor=actor, **scope)
        if data.get("release_reason_new"):
            holds.hold_release(hold=obj, actor=actor, reason=data["release_reason_new"])

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(HoldExemption)
class HoldExemptionAdmin(admin.ModelAdmin):
    """Read-only: the record of work a hold stopped."""

    list_display = ("created_at", "hold", "merchant_id", "work", "target", "category", "purge_run")
    list_filter = ("work", "category", ("created_at", admin.DateFieldListFilter))
    search_fields = ("target", "=merchant_id", "=hold__id")
    list_select_related = ("hold", "purge_run")

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(PurgeRun)
class PurgeRunAdmin(admin.ModelAdmin):
    """Read-only: what each retention purge deleted and kept for holds."""

    list_display = ("id", "started_at", "finished_at", "status", "deleted", "held", "batches", "resumed")
    list_filter = ("status",)
    date_hierarchy = "started_at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class AuditExportAddForm(forms.ModelForm):
    """The admin's "add": the model's own checks, then the service's, so every refusal shows by its field."""

    class Meta:
        model = AuditExport
        fields = ("merchant", "occurred_from", "occurred_to", "actions", "actor_ids", "target_type", "target_id",
                  "format")  # fmt: skip

    def clean(self):
        data = super().clean()
        if self.errors:
            return data
        errors = audit_export_errors(
            merchant=data.get("merchant"),
            occurred_from=data["occurred_from"],
            occurred_to=data["occurred_to"],
            actor_type=ActorType.STAFF,
            actions=data.get("actions") or [],
            actor_ids=data.get("actor_ids") or [],
            target_type=data.get("target_type", ""),
            target_id=data.get("target_id", ""),
            format=data.get("format", ""),
        )
        for field, messages in errors.items():
            self.add_error(field if field in self.fields else None, messages)
        return data


@admin.register(AuditExport)
class AuditExportAdmin(admin.ModelAdmin):
    """Staff ask for exports of one merchant or of everything (merchant left blank); a row is read-only once
    asked for. Each page load signs fresh download links (valid 10 minutes): reload for new ones."""

    list_display = (
        "id",
        "scope",
        "occurred_from",
        "occurred_to",
        "format",
        "state",
        "row_count",
        "byte_size",
        "created_at",
        "download",
    )
    list_filter = ("state", "format", ("merchant", admin.EmptyFieldListFilter))
    search_fields = ("=id", "merchant__name", "merchant__key", "requested_by_id", "requested_by_label", "sha256")
    list_select_related = ("merchant",)
    ordering = ("-created_at", "-id")
    raw_id_fields = ("merchant",)
    form = AuditExportAddForm
    add_fields = (
        "merchant",
        "occurred_from",
        "occurred_to",
        "actions",
        "actor_ids",
        "target_type",
        "target_id",
        "format",
    )

    def get_fields(self, request, obj=None):
        if obj is None:
            return self.add_fields
        return [*self.add_fields, "state", "failure_reason", "row_count", "byte_size", "sha256", "file_name",
                "download", "requested_by_type", "requested_by_id", "requested_by_label", "created_at",
                "started_at", "finished_at"]  # fmt: skip

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj) if obj is not None else ()

    def has_change_permission(self, request, obj=None) -> bool:
        return False  # an export is a record of what was asked and produced

    def has_delete_permission(self, request, obj=None) -> bool:
        return False  # files leave by retention (audit_export_file_delete), rows stay

    def save_model(self, request, obj, form, change) -> None:
        user = request.user
        created = audit_export_create(
            merchant=obj.merchant,
            occurred_from=obj.occurred_from,
            occurred_to=obj.occurred_to,
            actions=obj.actions,
            actor_ids=obj.actor_ids,
            target_type=obj.target_type,
            target_id=obj.target_id,
            format=obj.format,
            actor=Actor(type=ActorType.STAFF, id=str(user.pk), label=user.get_username()),
            request_ctx=request_context(request),
        )
        obj.pk, obj.created_at, obj.requested_by_type = created.pk, created.created_at, created.requested_by_type
        obj._state.adding = False

    @admin.display(description="Scope", ordering="merchant__name")
    def scope(self, obj: AuditExport) -> str:
        return obj.merchant.name if obj.merchant_id else "Global (every merchant)"

    @admin.display(description="Download")
    def download(self, obj: AuditExport) -> str:
        if obj.stored_file() is None:
            return obj.failure_reason if obj.state == ExportState.FAILED else "—"
        return format_html('<a href="{}">{}</a>', download_link(obj).url, obj.file_name)
