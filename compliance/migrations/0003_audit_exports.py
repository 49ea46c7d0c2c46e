"""The audit export jobs (docs/audit-export.md §2): one row per export, its state, its file and checksum."""

import django.contrib.postgres.fields
import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_merchant_uninstalled_at"),
        ("compliance", "0002_audit_append_only"),
    ]

    operations = [
        migrations.CreateModel(
            name="AuditExport",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("occurred_from", models.DateTimeField(help_text="Inclusive.")),
                (
                    "occurred_to",
                    models.DateTimeField(help_text="Exclusive: consecutive ranges never share or miss an event."),
                ),
                (
                    "actions",
                    django.contrib.postgres.fields.ArrayField(
                        base_field=models.CharField(max_length=100), blank=True, default=list, size=None
                    ),
                ),
                (
                    "actor_ids",
                    django.contrib.postgres.fields.ArrayField(
                        base_field=models.CharField(max_length=128), blank=True, default=list, size=None
                    ),
                ),
                ("target_type", models.CharField(blank=True, max_length=100)),
                ("target_id", models.CharField(blank=True, max_length=128)),
                (
                    "format",
                    models.CharField(
                        choices=[("ndjson", "NDJSON (one JSON event per line)"), ("csv", "CSV")],
                        default="ndjson",
                        max_length=10,
                    ),
                ),
                (
                    "state",
                    models.CharField(
                        choices=[
                            ("pending", "Pending"),
                            ("running", "Running"),
                            ("succeeded", "Succeeded"),
                            ("failed", "Failed"),
                        ],
                        default="pending",
                        max_length=10,
                    ),
                ),
                ("failure_reason", models.TextField(blank=True)),
                ("row_count", models.BigIntegerField(blank=True, null=True)),
                ("byte_size", models.BigIntegerField(blank=True, help_text="Of the stored gzip file.", null=True)),
                (
                    "sha256",
                    models.CharField(blank=True, help_text="Hex digest of the stored gzip file.", max_length=64),
                ),
                (
                    "file_key",
                    models.CharField(blank=True, help_text="Blank until succeeded and once deleted.", max_length=255),
                ),
                ("file_name", models.CharField(blank=True, max_length=255)),
                (
                    "requested_by_type",
                    models.CharField(
                        choices=[
                            ("clerk_user", "Merchant user (Clerk)"),
                            ("staff", "Staff user"),
                            ("system", "System"),
                            ("agency_token", "Agency token"),
                            ("anonymous", "Anonymous"),
                        ],
                        max_length=20,
                    ),
                ),
                ("requested_by_id", models.CharField(blank=True, max_length=128)),
                ("requested_by_label", models.CharField(blank=True, max_length=255)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("started_at", models.DateTimeField(blank=True, null=True)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                (
                    "merchant",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="audit_exports",
                        to="accounts.merchant",
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at", "-id"],
                "indexes": [
                    models.Index(fields=["merchant", "-created_at"], name="audit_export_merchant_created"),
                    models.Index(
                        condition=models.Q(("state__in", ["pending", "running"])),
                        fields=["created_at"],
                        name="audit_export_unfinished",
                    ),
                ],
                "constraints": [
                    models.CheckConstraint(
                        condition=models.Q(("occurred_from__lt", models.F("occurred_to"))),
                        name="audit_export_range_ordered",
                        violation_error_message="The end must be after the start.",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            ("target_id", ""), models.Q(("target_type", ""), _negated=True), _connector="OR"
                        ),
                        name="audit_export_target_id_needs_type",
                        violation_error_message="A target id needs its target type.",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(("state", "succeeded"), _negated=True),
                            models.Q(
                                models.Q(("sha256", ""), _negated=True),
                                ("row_count__isnull", False),
                                ("byte_size__isnull", False),
                            ),
                            _connector="OR",
                        ),
                        name="audit_export_succeeded_has_file",
                    ),
                    models.CheckConstraint(
                        condition=models.Q(
                            models.Q(("state", "failed"), _negated=True),
                            models.Q(("failure_reason", ""), _negated=True),
                            _connector="OR",
                        ),
                        name="audit_export_failed_has_reason",
                    ),
                ],
            },
        ),
    ]
