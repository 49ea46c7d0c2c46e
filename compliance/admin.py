from django import forms
from django.contrib import admin
from django.core.exceptions import ValidationError

from compliance import holds
from compliance.choices import ActorType
from compliance.models import AuditEvent, HoldExemption, LegalHold, PurgeRun
from compliance.services import Actor


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
