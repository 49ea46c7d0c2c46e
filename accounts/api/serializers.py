from rest_framework import serializers

from accounts.models import Merchant


class MerchantSerializer(serializers.ModelSerializer):
    role = serializers.SerializerMethodField(help_text="Your role on this merchant.")

    class Meta:
        model = Merchant
        fields = ["id", "name", "shop_domain", "timezone", "currency", "role"]
        read_only_fields = fields

    def get_role(self, merchant: Merchant) -> str:
        return self.context["roles"].get(merchant.pk, "")
