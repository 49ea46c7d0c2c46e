"""Staff views of agencies: read-only mirrors of Clerk, grants and tokens, with two audited actions.

Nothing here is edited by hand: Clerk owns memberships, stores own grants, agencies own tokens. A token's
digest is never shown (it is not a secret by itself, but nothing needs it and it invites copy-paste). The
two actions set their fields and write the audit event directly; the grant and token services replace
their bodies when those pieces land (wt-access, wt-tokens).
"""

from __future__ import annotations

from django.contrib import admin, messages
from django.db import transaction
from django.utils import timezone

from agencies.choices import GrantStatus
from agencies.models import AccessGrant, Agency, AgencyInvitation, AgencyMember, AgencyToken, ClerkWebhookDelivery
from agencies.signals import grant_ended
from agencies.tokens import agency_tokens_revoke_by_staff
from compliance.choices import ActorType
from compliance.services import Actor, audit_event_record, request_context


def _staff_actor(request) -> Actor:
    return Actor(type=ActorType.STAFF, id=str(request.user.pk), label=request.user.get_username())


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class MemberInline(admin.TabularInline):
    model = AgencyMember
    fields = ("clerk_user_id", "email", "role", "clerk_role", "removed_at")
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Agency)
class AgencyAdmin(ReadOnlyAdmin):
    list_display = ("name", "slug", "status", "reporting_currency", "clerk_org_id", "created_at")
    list_filter = ("status", "reporting_currency")
    search_fields = ("name", "slug", "clerk_org_id", "created_by")
    inlines = (MemberInline,)


@admin.register(AgencyMember)
class AgencyMemberAdmin(ReadOnlyAdmin):
    list_display = ("clerk_user_id", "email", "agency", "role", "clerk_role", "removed_at", "clerk_updated_at")
    list_filter = ("role", ("removed_at", admin.EmptyFieldListFilter), "agency__status")
    search_fields = ("clerk_user_id", "email", "agency__name")
    list_select_related = ("agency",)


@admin.register(AgencyInvitation)
class AgencyInvitationAdmin(ReadOnlyAdmin):
    list_display = ("email", "agency", "role", "status", "attempts", "sent_at", "expires_at", "last_error")
    list_filter = ("status", "role")
    search_fields = ("email", "agency__name", "clerk_invitation_id")
    list_select_related = ("agency",)


@admin.register(AccessGrant)
class AccessGrantAdmin(ReadOnlyAdmin):
    list_display = ("agency", "merchant", "level", "status", "can_see_pii", "can_see_costs", "approved_at", "ended_at")
    list_filter = ("status", "level", "can_see_pii", "can_see_costs")
    search_fields = ("agency__name", "merchant__name", "merchant__shop_domain")
    list_select_related = ("agency", "merchant")
    actions = ("end_grant",)

    @admin.action(description="End the selected grants (the agency loses access at once)", permissions=["end"])
    def end_grant(self, request, queryset) -> None:
        ended = 0
        with transaction.atomic():
            for grant in queryset.select_for_update().filter(status__in=[GrantStatus.PENDING, GrantStatus.ACTIVE]):
                grant.status, grant.ended_at = GrantStatus.ENDED, timezone.now()
                grant.ended_by, grant.end_reason = f"staff:{request.user.pk}", "ended by staff in admin"
                grant.save(update_fields=["status", "ended_at", "ended_by", "end_reason", "updated_at"])
                audit_event_record(
                    action="agency.grant_ended",
                    actor=_staff_actor(request),
                    target_type="agencies.accessgrant",
                    target_id=grant.pk,
                    merchant_id=grant.merchant_id,
                    metadata={"agency_id": grant.agency_id, "via": "admin"},
                    **request_context(request),
                )
                # As agencies.grants.grant_end does: receivers (token revocation) run in this transaction.
                grant_ended.send(sender=AccessGrant, grant=grant)
                ended += 1
        self.message_user(request, f"{ended} grant(s) ended.", messages.SUCCESS)

    def has_end_permission(self, request) -> bool:
        return request.user.has_perm("agencies.change_accessgrant")


@admin.register(AgencyToken)
class AgencyTokenAdmin(ReadOnlyAdmin):
    list_display = ("name", "agency", "display", "created_by", "expires_at", "last_used_at", "revoked_at")
    list_filter = (("revoked_at", admin.EmptyFieldListFilter), "agency__status")
    search_fields = ("name", "agency__name", "created_by", "display_hint")
    list_select_related = ("agency",)
    # Every column but the digest (and its pepper version, which only matters next to it).
    fields = (
        "agency",
        "name",
        "display",
        "created_by",
        "scopes",
        "merchants",
        "expires_at",
        "last_used_at",
        "last_used_ip",
        "revoked_at",
        "revoked_by",
        "revoke_reason",
        "created_at",
    )
    readonly_fields = fields
    actions = ("revoke_token",)

    @admin.display(description="token")
    def display(self, obj: AgencyToken) -> str:
        return f"…{obj.display_hint}"

    @admin.action(description="Revoke the selected tokens (they stop working at once)", permissions=["revoke"])
    def revoke_token(self, request, queryset) -> None:
        revoked = agency_tokens_revoke_by_staff(
            tokens=queryset, actor=_staff_actor(request), request_context=request_context(request)
        )
        self.message_user(request, f"{revoked} token(s) revoked.", messages.SUCCESS)

    def has_revoke_permission(self, request) -> bool:
        return request.user.has_perm("agencies.change_agencytoken")


@admin.register(ClerkWebhookDelivery)
class ClerkWebhookDeliveryAdmin(ReadOnlyAdmin):
    list_display = ("svix_id", "event_type", "received_at")
    list_filter = ("event_type",)
    search_fields = ("svix_id",)
