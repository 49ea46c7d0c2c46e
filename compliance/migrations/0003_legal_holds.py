"""Legal holds (compliance/holds.py) and their enforcement in the database (compliance/guards.py): the hold and
exemption tables, the functions the hold trigger calls, the trigger on the notifications outbox. The raw and landed
tables get theirs from the code that creates them (analytics/raw_schema.py, analytics/landing.py)."""

import django.contrib.postgres.fields
import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models

# The database's side of legal holds (compliance/guards.py says how the trigger is told where a row keeps its
# store, customer and date). Both lookups are SECURITY DEFINER, owned by the owner that runs this migration, with
# a fixed search_path: any role whose deletes are guarded (the app, Airbyte's) can ask whether a hold covers a
# row without being able to read, or shadow, the holds table. The guard itself runs as whoever deletes.
FORWARD = """
CREATE FUNCTION compliance_hold_blocks(
    p_merchant_id bigint, p_category text, p_customer_id text, p_email text, p_occurred_at timestamptz
) RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path FROM CURRENT AS $$
    -- The id of an active hold covering data of this store, category, customer and date; NULL if none.
    -- A hold's empty scope means "all"; data of unknown date (or customer, for a store-wide hold) is covered.
    SELECT h.id FROM compliance_legalhold h
    WHERE h.merchant_id = p_merchant_id AND h.released_at IS NULL
      AND (cardinality(h.categories) = 0 OR p_category = ANY (h.categories))
      AND (p_occurred_at IS NULL OR h.date_from IS NULL OR p_occurred_at >= h.date_from)
      AND (p_occurred_at IS NULL OR h.date_to IS NULL OR p_occurred_at < h.date_to)
      AND (
        (cardinality(h.customer_ids) = 0 AND cardinality(h.emails) = 0)
        OR (p_customer_id IS NOT NULL AND p_customer_id = ANY (h.customer_ids))
        OR (p_email IS NOT NULL AND EXISTS (
            SELECT FROM unnest(h.emails) AS e
            WHERE e = lower(btrim(p_email)) OR encode(sha256(convert_to(e, 'UTF8')), 'hex') = lower(p_email)
        ))
      )
    ORDER BY h.id
    LIMIT 1
$$;

CREATE FUNCTION compliance_merchant_id(p_key text) RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER SET search_path FROM CURRENT AS $$
    SELECT id FROM accounts_merchant WHERE key = p_key
$$;

CREATE FUNCTION compliance_hold_guard() RETURNS trigger
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    r jsonb := to_jsonb(OLD);
    n jsonb;
    col text;
    changed boolean := true;
    merchant bigint;
    hold bigint;
BEGIN
    IF TG_OP = 'UPDATE' THEN
        n := to_jsonb(NEW);
        IF TG_ARGV[5] = '' THEN
            changed := r IS DISTINCT FROM n;
        ELSE
            changed := false;
            FOREACH col IN ARRAY string_to_array(TG_ARGV[5], ',') LOOP
                IF (r -> col) IS DISTINCT FROM (n -> col) THEN
                    changed := true;
                    EXIT;
                END IF;
            END LOOP;
        END IF;
    END IF;
    IF changed THEN
        merchant := CASE WHEN TG_ARGV[1] = '' THEN (r ->> 'merchant_id')::bigint ELSE TG_ARGV[1]::bigint END;
        IF merchant IS NOT NULL THEN
            hold := compliance_hold_blocks(
                merchant,
                TG_ARGV[0],
                CASE WHEN TG_ARGV[2] = '' THEN NULL ELSE r #>> TG_ARGV[2]::text[] END,
                CASE WHEN TG_ARGV[3] = '' THEN NULL ELSE r #>> TG_ARGV[3]::text[] END,
                CASE WHEN TG_ARGV[4] = '' THEN NULL ELSE (r #>> TG_ARGV[4]::text[])::timestamptz END
            );
        END IF;
        IF hold IS NOT NULL THEN
            RAISE EXCEPTION 'legal hold % covers this row of %.%: % refused', hold, TG_TABLE_SCHEMA, TG_TABLE_NAME, TG_OP
                USING ERRCODE = 'HL001',
                      DETAIL = format('hold_id=%s', hold),
                      HINT = 'Skip the row and record a hold exemption; it becomes deletable when the hold is released.';
        END IF;
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END;
$$;

-- Installs (or refreshes) the guard on a table; run by the table's owner. p_merchant_key: the store of a
-- per-store table (raw_<key>.*), resolved here, once; NULL: the rows carry merchant_id. A store not known (yet)
-- gets no trigger now: the load step installs it when it first reads the table.
CREATE FUNCTION compliance_hold_guard_install(
    p_table regclass, p_merchant_key text, p_category text, p_customer text, p_email text, p_date text, p_watch text
) RETURNS boolean
LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
DECLARE
    merchant text := '';
BEGIN
    IF p_merchant_key IS NOT NULL THEN
        merchant := compliance_merchant_id(p_merchant_key)::text;
        IF merchant IS NULL THEN
            RETURN false;
        END IF;
    END IF;
    EXECUTE format(
        'CREATE OR REPLACE TRIGGER compliance_hold_guard BEFORE UPDATE OR DELETE ON %s FOR EACH ROW'
        ' EXECUTE FUNCTION compliance_hold_guard(%L, %L, %L, %L, %L, %L)',
        p_table, p_category, merchant, p_customer, p_email, p_date, p_watch
    );
    RETURN true;
END;
$$;

-- A hold is never deleted (released instead) and an exemption never changes: both are evidence.
CREATE FUNCTION compliance_hold_record_reject_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% on % is not allowed: legal holds are released, not deleted, and exemptions are kept',
        TG_OP, TG_TABLE_NAME USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER compliance_legalhold_kept BEFORE DELETE ON compliance_legalhold
    FOR EACH ROW EXECUTE FUNCTION compliance_hold_record_reject_change();
CREATE TRIGGER compliance_holdexemption_append_only BEFORE UPDATE OR DELETE ON compliance_holdexemption
    FOR EACH ROW EXECUTE FUNCTION compliance_hold_record_reject_change();

"""

BACKWARD = """
DROP TRIGGER IF EXISTS compliance_hold_guard ON notifications_notification;
DROP TRIGGER IF EXISTS compliance_holdexemption_append_only ON compliance_holdexemption;
DROP TRIGGER IF EXISTS compliance_legalhold_kept ON compliance_legalhold;
DROP FUNCTION IF EXISTS compliance_hold_record_reject_change();
DROP FUNCTION IF EXISTS compliance_hold_guard_install(regclass, text, text, text, text, text, text);
DROP FUNCTION IF EXISTS compliance_hold_guard() CASCADE;
DROP FUNCTION IF EXISTS compliance_merchant_id(text);
DROP FUNCTION IF EXISTS compliance_hold_blocks(bigint, text, text, text, timestamptz);
"""


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0002_merchant_uninstalled_at"),
        ("compliance", "0002_audit_append_only"),
        ("notifications", "0003_store_uninstalled"),
    ]

    operations = [
        migrations.CreateModel(
            name="LegalHold",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("matter", models.CharField(help_text="The case or matter this hold belongs to.", max_length=200)),
                ("reason", models.TextField(help_text="Why the data must be preserved.")),
                (
                    "customer_ids",
                    django.contrib.postgres.fields.ArrayField(
                        base_field=models.CharField(max_length=64),
                        blank=True,
                        default=list,
                        help_text="Shopify customer ids; empty: all.",
                        size=None,
                    ),
                ),
                (
                    "emails",
                    django.contrib.postgres.fields.ArrayField(
                        base_field=models.CharField(max_length=254),
                        blank=True,
                        default=list,
                        help_text="Lower-cased; empty: all customers.",
                        size=None,
                    ),
                ),
                (
                    "categories",
                    django.contrib.postgres.fields.ArrayField(
                        base_field=models.CharField(
                            choices=[
                                ("raw", "Raw provider data"),
                                ("events", "Web events"),
                                ("messages", "Messages and notifications"),
                                ("exports", "Exports"),
                                ("audit_log", "Audit log"),
                            ],
                            max_length=20,
                        ),
                        blank=True,
                        default=list,
                        help_text="Empty: every category.",
                        size=None,
                    ),
                ),
                (
                    "date_from",
                    models.DateTimeField(blank=True, help_text="Data from this moment on (inclusive).", null=True),
                ),
                (
                    "date_to",
                    models.DateTimeField(blank=True, help_text="Data before this moment (exclusive).", null=True),
                ),
                ("placed_at", models.DateTimeField(default=django.utils.timezone.now)),
                (
                    "placed_by_type",
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
                ("placed_by_id", models.CharField(blank=True, max_length=128)),
                ("placed_by_label", models.CharField(blank=True, max_length=255)),
                ("released_at", models.DateTimeField(blank=True, null=True)),
                (
                    "released_by_type",
                    models.CharField(
                        blank=True,
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
                ("released_by_id", models.CharField(blank=True, max_length=128)),
                ("released_by_label", models.CharField(blank=True, max_length=255)),
                ("release_reason", models.TextField(blank=True)),
                (
                    "merchant",
                    models.ForeignKey(
                        db_constraint=False,
                        on_delete=django.db.models.deletion.DO_NOTHING,
                        related_name="legal_holds",
                        to="accounts.merchant",
                    ),
                ),
            ],
            options={
                "ordering": ["-placed_at", "-id"],
            },
        ),
        migrations.CreateModel(
            name="HoldExemption",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("merchant_id", models.BigIntegerField(db_index=True)),
                ("work", models.CharField(help_text='What was skipped, e.g. "customers/redact".', max_length=100)),
                (
                    "target",
                    models.CharField(help_text='What it would have touched, e.g. "customer 123".', max_length=500),
                ),
                ("detail", models.JSONField(blank=True, default=dict)),
                ("created_at", models.DateTimeField(db_index=True, default=django.utils.timezone.now)),
                (
                    "hold",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.PROTECT,
                        related_name="exemptions",
                        to="compliance.legalhold",
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at", "-id"],
            },
        ),
        migrations.AddIndex(
            model_name="legalhold",
            index=models.Index(
                condition=models.Q(("released_at__isnull", True)), fields=["merchant"], name="legalhold_active"
            ),
        ),
        migrations.AddConstraint(
            model_name="legalhold",
            constraint=models.CheckConstraint(
                condition=models.Q(
                    ("date_from__isnull", True),
                    ("date_to__isnull", True),
                    ("date_from__lt", models.F("date_to")),
                    _connector="OR",
                ),
                name="legalhold_date_range",
                violation_error_message="The date range must end after it starts.",
            ),
        ),
        migrations.RunSQL(FORWARD, BACKWARD),
        migrations.RunSQL(
            [
                (
                    "SELECT compliance_hold_guard_install('notifications_notification'::regclass, NULL,"
                    " %s, %s, %s, %s, %s)",
                    # compliance.guards.NOTIFICATIONS_GUARD, frozen here as a migration must be.
                    ["messages", "", "{to_email}", "{created_at}", "to_email,subject,body_text,body_html,context"],
                )
            ],
            migrations.RunSQL.noop,
        ),
    ]
