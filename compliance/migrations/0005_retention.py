"""Retention (compliance/retention.py): purge runs, exemptions per run, and the guarded purge of the audit log."""

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

# The audit log is append-only against everyone; the retention purge alone may delete from it, through
# compliance_audit_purge: SECURITY DEFINER, owned by the owner that runs this migration, deleting only rows older
# than the audit log's retention — a setting of the function itself, which only its owner may change (the
# post_migrate receiver compliance.retention.audit_retention_apply writes settings.RETENTION_DAYS["audit_log"]
# there) — that no hold covers. The append-only trigger lets through exactly those deletes, and only while the
# function has flagged its transaction; the app's role still has no DELETE privilege on the table at all.
FORWARD = """
CREATE OR REPLACE FUNCTION compliance_auditevent_reject_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    -- Nested, not one AND: SQL does not promise to stop at the first false operand, and the retention setting
    -- exists only inside compliance_audit_purge.
    IF TG_OP = 'DELETE' AND coalesce(current_setting('compliance.audit_purge', true), '') = 'on' THEN
        IF OLD.occurred_at < now() - make_interval(
               days => coalesce(nullif(current_setting('compliance.audit_retention_days', true), ''), '2557')::int)
           AND compliance_hold_blocks(OLD.merchant_id, 'audit_log', NULL, NULL, OLD.occurred_at) IS NULL THEN
            RETURN OLD;
        END IF;
    END IF;
    RAISE EXCEPTION 'audit log is append-only: % on compliance_auditevent is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE FUNCTION compliance_audit_cutoff() RETURNS timestamptz
LANGUAGE sql STABLE SECURITY DEFINER AS $$
    SELECT now() - make_interval(days => current_setting('compliance.audit_retention_days')::int)
$$;

CREATE FUNCTION compliance_audit_purge(p_limit integer) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER AS $$
DECLARE
    cutoff timestamptz := now() - make_interval(days => current_setting('compliance.audit_retention_days')::int);
    deleted integer;
BEGIN
    PERFORM set_config('compliance.audit_purge', 'on', true);
    DELETE FROM compliance_auditevent WHERE id IN (
        SELECT id FROM compliance_auditevent
        WHERE occurred_at < cutoff
          AND compliance_hold_blocks(merchant_id, 'audit_log', NULL, NULL, occurred_at) IS NULL
        ORDER BY occurred_at, id
        LIMIT least(greatest(p_limit, 0), 10000)
    );
    GET DIAGNOSTICS deleted = ROW_COUNT;
    PERFORM set_config('compliance.audit_purge', 'off', true);
    RETURN deleted;
END;
$$;

DO $pin$
DECLARE
    path text := format('%I, pg_temp', current_schema());
BEGIN
    EXECUTE format('ALTER FUNCTION compliance_auditevent_reject_change() SET search_path = %s', path);
    EXECUTE format('ALTER FUNCTION compliance_audit_cutoff() SET search_path = %s', path);
    EXECUTE format('ALTER FUNCTION compliance_audit_purge(integer) SET search_path = %s', path);
END;
$pin$;
-- 7 years until the receiver writes the setting's value (and whenever it cannot).
ALTER FUNCTION compliance_audit_cutoff() SET compliance.audit_retention_days = '2557';
ALTER FUNCTION compliance_audit_purge(integer) SET compliance.audit_retention_days = '2557';
"""

BACKWARD = """
DROP FUNCTION IF EXISTS compliance_audit_purge(integer);
DROP FUNCTION IF EXISTS compliance_audit_cutoff();
CREATE OR REPLACE FUNCTION compliance_auditevent_reject_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit log is append-only: % on compliance_auditevent is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
"""


class Migration(migrations.Migration):
    dependencies = [
        ("compliance", "0004_hold_ddl_guard"),
    ]

    operations = [
        migrations.AddField(
            model_name="holdexemption",
            name="category",
            field=models.CharField(
                blank=True,
                choices=[
                    ("raw", "Raw provider data"),
                    ("events", "Web events"),
                    ("messages", "Messages and notifications"),
                    ("exports", "Exports"),
                    ("audit_log", "Audit log"),
                ],
                max_length=20,
            ),
        ),
        migrations.CreateModel(
            name="PurgeRun",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("started_at", models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                ("finished_at", models.DateTimeField(blank=True, null=True)),
                (
                    "status",
                    models.CharField(
                        choices=[("running", "Running"), ("succeeded", "Succeeded"), ("failed", "Failed")],
                        default="running",
                        max_length=10,
                    ),
                ),
                (
                    "cutoffs",
                    models.JSONField(default=dict, help_text="{category: ISO time}: data older than this is purged."),
                ),
                ("deleted", models.JSONField(default=dict, help_text="{category: rows deleted}")),
                (
                    "held",
                    models.JSONField(default=dict, help_text="{category: rows past retention kept for a legal hold}"),
                ),
                ("done", models.JSONField(default=list, help_text="The categories finished.")),
                ("batches", models.PositiveIntegerField(default=0)),
                (
                    "resumed",
                    models.PositiveIntegerField(default=0, help_text="How many times a later run took it up again."),
                ),
                ("error", models.TextField(blank=True)),
            ],
            options={
                "ordering": ["-started_at", "-id"],
                "constraints": [
                    models.UniqueConstraint(
                        condition=models.Q(("status", "running")), fields=("status",), name="purgerun_one_running"
                    )
                ],
            },
        ),
        migrations.AddField(
            model_name="holdexemption",
            name="purge_run",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.PROTECT,
                related_name="exemptions",
                to="compliance.purgerun",
            ),
        ),
        migrations.AddConstraint(
            model_name="holdexemption",
            constraint=models.UniqueConstraint(
                condition=models.Q(("purge_run__isnull", False)),
                fields=("purge_run", "hold", "category"),
                name="holdexemption_once_per_purge_run",
            ),
        ),
        migrations.RunSQL(FORWARD, BACKWARD),
    ]
