from rest_framework import serializers


class AgencyRefSerializer(serializers.Serializer):
    id = serializers.IntegerField(read_only=True)
    name = serializers.CharField(read_only=True)


class MerchantSerializer(serializers.Serializer):
    """A store as one person may open it (an accounts.access.StoreAccess): the store, and the access's terms."""

    id = serializers.IntegerField(source="merchant.pk", read_only=True)
    name = serializers.CharField(source="merchant.name", read_only=True)
    shop_domain = serializers.CharField(source="merchant.shop_domain", read_only=True)
    timezone = serializers.CharField(source="merchant.timezone", read_only=True)
    currency = serializers.CharField(source="merchant.currency", read_only=True)
    role = serializers.CharField(
        read_only=True,
        help_text="Your role on this merchant; for agency access, the role its grant level acts as.",
    )
    agency = AgencyRefSerializer(
        read_only=True,
        allow_null=True,
        help_text="The agency whose grant gives you access; null when you are a member of the store.",
    )
    level = serializers.CharField(
        read_only=True, help_text="Your role for a member; the grant level (viewer, analyst, manager) for an agency."
    )
    can_see_pii = serializers.BooleanField(read_only=True, help_text="Customer names, emails and phones shown.")
    can_see_costs = serializers.BooleanField(read_only=True, help_text="Ad spend, costs, ROAS/MER/CAC shown.")
