"""Agency pages: create an agency, and its members and invitations (invite, revoke, assign clients).

A page is visible to the agency's active members only; anyone else gets 404 whether or not the agency
exists. Changing anything is for the agency's admins (403 for its other members). The session token's
active organization only chooses where /agencies/ lands; who may see what comes from our database.
"""

from __future__ import annotations

from django.contrib import messages
from django.core.exceptions import PermissionDenied, ValidationError
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods, require_POST

from accounts.decorators import clerk_login_required
from agencies import selectors, services
from agencies.forms import AgencyCreateForm, ClientAssignmentForm, InvitationForm
from agencies.models import AgencyInvitation, AgencyMember
from compliance.services import request_context

INVITATION_QUEUED = "Invitation to {email} queued: Clerk emails it within minutes."
INVITATION_REVOKED = "Invitation to {email} revoked."
ASSIGNMENTS_SAVED = "Clients of {who} saved."


def _member_or_404(request: HttpRequest, agency_id: int) -> AgencyMember:
    try:
        return selectors.agency_member_get(agency_id=agency_id, clerk_user_id=request.clerk.user_id)
    except AgencyMember.DoesNotExist:
        raise Http404(selectors.AGENCY_NOT_FOUND) from None


def _admin_or_403(request: HttpRequest, agency_id: int) -> AgencyMember:
    member = _member_or_404(request, agency_id)
    if not selectors.member_is_admin(member):
        raise PermissionDenied(services.NOT_AN_ADMIN)
    return member


def _form_errors(form, exc: ValidationError) -> None:
    if hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    else:
        form.add_error(None, exc.messages)


@clerk_login_required
def agency_index(request: HttpRequest) -> HttpResponse:
    """Land on the session's active agency (Clerk's `o` claim) when the user is in it, else list theirs."""
    user_id = request.clerk.user_id
    active = selectors.agency_for_session_get(org_id=request.clerk.org_id, clerk_user_id=user_id)
    agencies = list(selectors.agency_list_for_user(clerk_user_id=user_id))
    if active is None and len(agencies) == 1:
        active = agencies[0]
    if active is not None:
        return redirect("agencies:members", agency_id=active.pk)
    return render(request, "agencies/index.html", {"agencies": agencies})


@clerk_login_required
@require_http_methods(["GET", "POST"])
def agency_new(request: HttpRequest) -> HttpResponse:
    form = AgencyCreateForm(request.POST if request.method == "POST" else None)
    status = 200
    if request.method == "POST":
        if form.is_valid():
            try:
                agency = services.agency_create(
                    **form.cleaned_data, created_by=request.clerk.user_id, **request_context(request)
                )
            except ValidationError as exc:
                _form_errors(form, exc)
            except services.AgencyError as exc:
                form.add_error(None, str(exc))
                status = 503
            else:
                messages.success(request, f"{agency.name} created. Invite your team below.")
                return redirect("agencies:members", agency_id=agency.pk)
        status = status if status != 200 else 400
    return render(request, "agencies/new.html", {"form": form}, status=status)


def _members_page(request: HttpRequest, member: AgencyMember, *, invite_form=None, status=200) -> HttpResponse:
    agency = member.agency
    is_admin = selectors.member_is_admin(member)
    clients = list(selectors.agency_client_list(agency=agency))
    members = list(selectors.agency_member_list(agency=agency))
    for m in members:
        assigned = {a.merchant_id for a in m.assignments.all()}
        m.client_choices = [(c, c.pk in assigned) for c in clients]
    return render(
        request,
        "agencies/members.html",
        {
            "agency": agency,
            "me": member,
            "is_admin": is_admin,
            "members": members,
            "invitations": selectors.agency_invitation_list(agency=agency),
            "clients": clients,
            "invite_form": invite_form or InvitationForm(),
        },
        status=status,
    )


@clerk_login_required
def agency_members(request: HttpRequest, agency_id: int) -> HttpResponse:
    return _members_page(request, _member_or_404(request, agency_id))


@clerk_login_required
@require_POST
def invitation_create(request: HttpRequest, agency_id: int) -> HttpResponse:
    member = _admin_or_403(request, agency_id)
    form = InvitationForm(request.POST)
    if form.is_valid():
        try:
            services.agency_invitation_create(
                agency=member.agency,
                email=form.cleaned_data["email"],
                role=form.cleaned_data["role"],
                invited_by=request.clerk.user_id,
                **request_context(request),
            )
        except ValidationError as exc:
            _form_errors(form, exc)
        else:
            messages.success(request, INVITATION_QUEUED.format(email=form.cleaned_data["email"]))
            return redirect("agencies:members", agency_id=agency_id)
    return _members_page(request, member, invite_form=form, status=400)


@clerk_login_required
@require_POST
def invitation_revoke(request: HttpRequest, agency_id: int, invitation_id: int) -> HttpResponse:
    member = _admin_or_403(request, agency_id)
    try:
        invitation = AgencyInvitation.objects.select_related("agency").get(pk=invitation_id, agency=member.agency)
    except AgencyInvitation.DoesNotExist:
        raise Http404("No such invitation.") from None
    try:
        services.agency_invitation_revoke(invitation=invitation, revoked_by=request.clerk.user_id)
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
    except services.ClerkError:
        messages.error(request, "Clerk could not be reached; the invitation is unchanged. Try again in a minute.")
    else:
        messages.success(request, INVITATION_REVOKED.format(email=invitation.email))
    return redirect("agencies:members", agency_id=agency_id)


@clerk_login_required
@require_POST
def member_clients(request: HttpRequest, agency_id: int, member_id: int) -> HttpResponse:
    admin = _admin_or_403(request, agency_id)
    try:
        target = AgencyMember.objects.get(pk=member_id, agency=admin.agency, removed_at__isnull=True)
    except AgencyMember.DoesNotExist:
        raise Http404("No such member.") from None
    clients = selectors.agency_client_list(agency=admin.agency)
    form = ClientAssignmentForm(request.POST, client_choices=[(c.pk, c.name) for c in clients])
    if not form.is_valid():
        messages.error(request, "Choose among the agency's clients.")
        return _members_page(request, admin, status=400)
    try:
        services.client_assignments_set(
            agency=admin.agency,
            member=target,
            merchant_ids=set(form.cleaned_data["merchants"]),
            assigned_by=request.clerk.user_id,
        )
    except ValidationError as exc:
        messages.error(request, " ".join(exc.messages))
        return _members_page(request, admin, status=400)
    messages.success(request, ASSIGNMENTS_SAVED.format(who=target.email or target.clerk_user_id))
    return redirect("agencies:members", agency_id=agency_id)
