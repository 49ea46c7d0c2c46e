"""Attach the verified Clerk identity (or nothing) to each request."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict

from django.core.cache import cache

from accounts.clerk import ClerkIdentity, ClerkRejection, clerk_identity_from_request
from compliance.choices import ActorType
from compliance.services import Actor, audit_event_record, request_context

logger = logging.getLogger(__name__)

# A Clerk session is recorded as signed in the first time we see it; sessions live at most days.
_SEEN_SESSION_TTL = 60 * 60 * 24 * 8
# Sessions this process already knows are recorded: skips the shared cache (a database round trip
# without Redis) on every later request of the same session.
_SEEN_LOCALLY_MAX = 10_000
_seen_locally: OrderedDict[str, None] = OrderedDict()
_seen_lock = threading.Lock()


class ClerkSessionMiddleware:
    """Sets `request.clerk` to a ClerkIdentity or None, and `request.clerk_rejection` to a reason or None."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request):
        request.clerk = None
        request.clerk_rejection = None
        if not request.path.startswith(("/static/", "/admin/", "/healthz", "/readyz")):
            result = clerk_identity_from_request(request)
            if isinstance(result, ClerkIdentity):
                request.clerk = result
                _record_first_sight(request, result)
            elif isinstance(result, ClerkRejection):
                request.clerk_rejection = result.reason
                logger.info("clerk session token rejected", extra={"reason": result.reason, "path": request.path})
        return self.get_response(request)


def _record_first_sight(request, identity: ClerkIdentity) -> None:
    # Clerk signs users in on its own pages; the first request of a new session is where we learn of it.
    if not identity.session_id:
        return
    with _seen_lock:
        if identity.session_id in _seen_locally:
            return
        _seen_locally[identity.session_id] = None
        if len(_seen_locally) > _SEEN_LOCALLY_MAX:
            _seen_locally.popitem(last=False)
    # The shared cache decides across processes: exactly one of them records the sign-in.
    if cache.add(f"clerk-session-seen:{identity.session_id}", 1, _SEEN_SESSION_TTL):
        audit_event_record(
            action="user.signed_in",
            actor=Actor(type=ActorType.CLERK_USER, id=identity.user_id, label=identity.user_id),
            target_type="clerk.session",
            target_id=identity.session_id,
            **request_context(request),
        )
