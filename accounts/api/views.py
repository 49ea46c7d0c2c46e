from drf_spectacular.utils import extend_schema
from rest_framework.generics import ListAPIView, RetrieveAPIView

from accounts.api.permissions import IsClerkUser
from accounts.api.serializers import MerchantSerializer
from accounts.selectors import membership_get, membership_list, merchant_list_for_user
from config.api import error_responses


@extend_schema(responses={200: MerchantSerializer, **error_responses(400, 401)})
class MerchantListApi(ListAPIView):
    """The merchants you are a member of."""

    permission_classes = [IsClerkUser]
    serializer_class = MerchantSerializer

    def get_queryset(self):
        return merchant_list_for_user(clerk_user_id=self.request.user.user_id)

    def get_serializer_context(self):
        context = super().get_serializer_context()
        if getattr(self, "swagger_fake_view", False):
            return {**context, "roles": {}}
        memberships = membership_list(clerk_user_id=self.request.user.user_id)
        return {**context, "roles": {m.merchant_id: m.role for m in memberships}}


@extend_schema(responses={200: MerchantSerializer, **error_responses(401, 404)})
class MerchantDetailApi(RetrieveAPIView):
    """One merchant you are a member of; any other id answers 404."""

    permission_classes = [IsClerkUser]
    serializer_class = MerchantSerializer

    def get_object(self):
        membership = membership_get(clerk_user_id=self.request.user.user_id, merchant_id=self.kwargs["merchant_id"])
        self._roles = {membership.merchant_id: membership.role}
        return membership.merchant

    def get_serializer_context(self):
        return {**super().get_serializer_context(), "roles": getattr(self, "_roles", {})}
