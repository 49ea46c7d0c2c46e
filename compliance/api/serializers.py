from rest_framework import serializers

from compliance.choices import ExportFormat
from compliance.exports import MAX_FILTER_VALUES, RANGE_ORDER, TARGET_ID_NEEDS_TYPE
from compliance.models import AuditExport


class TextListField(serializers.ListField):
    """A list of strings whose item errors come as one list of messages ("Item 3: …"), the shape every 400 of
    the API documents (config.api.FieldErrorsSerializer), not DRF's `{"2": [...]}` by index."""

    def run_child_validation(self, data):
        try:
            return super().run_child_validation(data)
        except serializers.ValidationError as exc:
            if not isinstance(exc.detail, dict):
                raise
            messages = [f"Item {int(index) + 1}: {m}" for index, errors in exc.detail.items() for m in errors]
            raise serializers.ValidationError(messages) from None


class AuditExportCreateSerializer(serializers.Serializer):
    """What to export: a half-open range [occurred_from, occurred_to) of the merchant's audit log, filtered."""

    occurred_from = serializers.DateTimeField(help_text="Inclusive, ISO-8601 with a time zone.")
    occurred_to = serializers.DateTimeField(help_text="Exclusive.")
    actions = TextListField(
        child=serializers.CharField(max_length=100),
        max_length=MAX_FILTER_VALUES,
        required=False,
        default=list,
    )
    actor_ids = TextListField(
        child=serializers.CharField(max_length=128),
        max_length=MAX_FILTER_VALUES,
        required=False,
        default=list,
    )
    target_type = serializers.CharField(max_length=100, required=False, allow_blank=True, default="")
    target_id = serializers.CharField(max_length=128, required=False, allow_blank=True, default="")
    format = serializers.ChoiceField(choices=ExportFormat.choices, default=ExportFormat.NDJSON)

    def validate(self, data):
        errors = {}
        if data["occurred_from"] >= data["occurred_to"]:
            errors["occurred_to"] = [RANGE_ORDER]
        if data["target_id"] and not data["target_type"]:
            errors["target_type"] = [TARGET_ID_NEEDS_TYPE]
        if errors:
            raise serializers.ValidationError(errors)
        return data


class AuditExportSerializer(serializers.ModelSerializer):
    """An export as its requester sees it: the file's name and checksum, never where it is stored."""

    download_available = serializers.SerializerMethodField(
        help_text="Whether POST …/download-link/ will give a link (succeeded, and the file not deleted yet)."
    )

    class Meta:
        model = AuditExport
        fields = [
            "id",
            "merchant_id",
            "occurred_from",
            "occurred_to",
            "actions",
            "actor_ids",
            "target_type",
            "target_id",
            "format",
            "state",
            "failure_reason",
            "row_count",
            "byte_size",
            "sha256",
            "file_name",
            "download_available",
            "requested_by_type",
            "requested_by_id",
            "created_at",
            "started_at",
            "finished_at",
        ]
        read_only_fields = fields

    def get_download_available(self, obj: AuditExport) -> bool:
        return obj.stored_file() is not None


class DownloadLinkSerializer(serializers.Serializer):
    url = serializers.URLField(help_text="GET it with the same credentials; gzip bytes as an attachment.")
    expires_at = serializers.DateTimeField(help_text="After this the link answers 403; ask for a new one.")
