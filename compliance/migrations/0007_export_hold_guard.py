"""The hold guard on audit exports: while a hold covers a store's exports, clearing an export's file (retention's
`audit_export_file_delete`) or deleting the row is refused in the database, as for every other held row."""

from django.db import migrations

FORWARD = r"""
CREATE OR REPLACE FUNCTION compliance_hold_table_scope(p_schema text, p_table text, OUT merchant_id bigint, OUT category text)
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN p_schema LIKE 'raw\_%' THEN compliance_merchant_id(substr(p_schema, 5)) END,
           CASE WHEN p_table IN ('web_events', 'web_sessions') THEN 'events'
                WHEN p_table = 'notifications_notification' THEN 'messages'
                WHEN p_table = 'compliance_auditexport' THEN 'exports'
                ELSE 'raw' END
$$;

SELECT compliance_hold_guard_install(
    'compliance_auditexport'::regclass, NULL, 'exports', '', '', '{created_at}', 'file_key,sha256,byte_size'
);
-- Not TRUNCATE's guard: the app may not truncate a table it does not own, and the owner's `flush` (tests)
-- truncates every table at once (as on the outbox).
DROP TRIGGER compliance_hold_guard_truncate ON compliance_auditexport;
"""

BACKWARD = """
DROP TRIGGER IF EXISTS compliance_hold_guard ON compliance_auditexport;
"""


class Migration(migrations.Migration):
    dependencies = [("compliance", "0006_merge_exports")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
