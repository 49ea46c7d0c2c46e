"""Make the audit log append-only in the database itself, so no code path — ORM, admin, raw SQL, a
psql session — can rewrite history. TRUNCATE stays possible for the database owner: test suites
reset tables with it, and it needs a privilege application roles should not be given."""

from django.db import migrations

FORWARD = """
CREATE OR REPLACE FUNCTION compliance_auditevent_reject_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit log is append-only: % on compliance_auditevent is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;

CREATE TRIGGER compliance_auditevent_append_only
    BEFORE UPDATE OR DELETE ON compliance_auditevent
    FOR EACH ROW EXECUTE FUNCTION compliance_auditevent_reject_change();
"""

BACKWARD = """
DROP TRIGGER IF EXISTS compliance_auditevent_append_only ON compliance_auditevent;
DROP FUNCTION IF EXISTS compliance_auditevent_reject_change();
"""


class Migration(migrations.Migration):
    dependencies = [("compliance", "0001_initial")]

    operations = [migrations.RunSQL(FORWARD, BACKWARD)]
