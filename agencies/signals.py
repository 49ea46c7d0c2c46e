"""Hooks for the pieces that must react when someone leaves an agency, the agency goes away or a grant ends.

`member_removed` and `agency_suspended` are sent inside the transaction that records the change
(agencies/services.py), so a receiver's writes (revoking the member's or the agency's API tokens,
agencies/tokens.py) commit or roll back together with it: nobody is marked gone while their tokens still work.
A receiver that fails makes the webhook answer 5xx, and Clerk retries.
"""

from __future__ import annotations

import django.dispatch

# Sent with sender=Agency, agency=<Agency>, clerk_user_id=<str>: a person left the agency (Clerk membership
# deleted, or removed by the nightly reconcile).
member_removed = django.dispatch.Signal()

# Sent with sender=Agency, agency=<Agency>: its Clerk organization was deleted.
agency_suspended = django.dispatch.Signal()

# Sent with sender=AccessGrant, grant=<AccessGrant>: the grant was ended (by the store or the agency). Sent in
# the ending transaction (agencies/grants.py), so tokens limited to the store are revoked together with it.
grant_ended = django.dispatch.Signal()
