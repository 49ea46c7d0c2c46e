"""Make the audit log append-only in the database itself, so no code path — ORM, admin, raw SQL, a
psql session — can rewrite history. A trigger binds only roles that cannot switch it off: the table's
owner can still TRUNCATE it or disable the trigger, and a superuser can set session_replication_role.
So the app connects as a role that owns nothing and may only INSERT and SELECT here; the owner, which
runs migrations (and `flush`, with its TRUNCATE), grants it that after every migrate (compliance/roles.py)."""

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
