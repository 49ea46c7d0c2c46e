from drf_spectacular.utils import extend_schema
from rest_framework.generics import ListAPIView, RetrieveAPIView
from rest_framework.response import Response

from accounts.access import store_access_get, store_access_list
from accounts.api.permissions import IsClerkUser
from accounts.api.serializers import MerchantSerializer
from config.api import error_responses


@extend_schema(responses={200: MerchantSerializer, **error_responses(400, 401)})
class MerchantListApi(ListAPIView):
    """The stores you may open: those you are a member of, and those granted to an agency you belong to."""

    permission_classes = [IsClerkUser]
    serializer_class = MerchantSerializer

    def list(self, request, *args, **kwargs):
        # The access list is already one pair of queries; pagination runs over it in memory.
        accesses = store_access_list(clerk_user_id=request.user.user_id)
        page = self.paginate_queryset(accesses)
        serializer = self.get_serializer(page if page is not None else accesses, many=True)
        return self.get_paginated_response(serializer.data) if page is not None else Response(serializer.data)


@extend_schema(responses={200: MerchantSerializer, **error_responses(401, 404)})
class MerchantDetailApi(RetrieveAPIView):
    """One store you may open; any other id answers 404."""

    permission_classes = [IsClerkUser]
    serializer_class = MerchantSerializer

    def get_object(self):
        return store_access_get(clerk_user_id=self.request.user.user_id, merchant_id=self.kwargs["merchant_id"])
