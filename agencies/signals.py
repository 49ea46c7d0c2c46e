"""What other agency pieces announce, so that tokens (and anything else) can follow without being imported by them.

Each is sent after the change is committed (`transaction.on_commit`) by the service that made it.
"""

from django.dispatch import Signal

# A person left the agency (Clerk membership deleted, or removed by the nightly reconcile): kwargs agency,
# clerk_user_id.
member_removed = Signal()
# The agency's Clerk organization was deleted: kwargs agency.
agency_suspended = Signal()
# A grant stopped being active (ended by either side, or expired): kwargs grant.
grant_ended = Signal()
