from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from connectors.choices import API_KEY_PROVIDERS
from connectors.models import ConnectorCredential


class ApiKeyConnectSerializer(serializers.Serializer):
    merchant_id = serializers.IntegerField()
    provider = serializers.ChoiceField(choices=[(p.value, p.label) for p in API_KEY_PROVIDERS])
    api_key = serializers.CharField(max_length=512, trim_whitespace=True, write_only=True)
    label = serializers.CharField(max_length=255, required=False, allow_blank=True, default="")


class ApiKeyRefusedSerializer(serializers.Serializer):
    """422: why the provider did not accept the key (nothing was stored)."""

    api_key = serializers.ListField(child=serializers.CharField())
    missing_scope = serializers.CharField(required=False, help_text="The scope the key lacks, when that is why.")


@extend_schema_field({"type": "array", "items": {"type": "string"}})
class ScopesField(serializers.JSONField):
    """The model's JSON list of scope names, sent as stored (documented as the list of strings it is)."""


class CredentialSerializer(serializers.ModelSerializer):
    """A credential as API clients see it: secrets never, the last four characters of the main one."""

    scopes = ScopesField(read_only=True, help_text="The scopes the provider granted.")
    secret_masked = serializers.SerializerMethodField()

    class Meta:
        model = ConnectorCredential
        fields = [
            "id",
            "merchant_id",
            "provider",
            "auth_kind",
            "external_account_id",
            "account_label",
            "secret_masked",
            "scopes",
            "status",
            "expires_at",
            "last_refreshed_at",
            "consecutive_failures",
            "last_error_code",
            "created_at",
            "updated_at",
        ]
        read_only_fields = fields

    def get_secret_masked(self, obj: ConnectorCredential) -> str:
        return f"••••{obj.secret_last4}" if obj.secret_last4 else "••••"
