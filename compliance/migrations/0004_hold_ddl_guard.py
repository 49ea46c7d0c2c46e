"""Close the ways around the hold trigger that a table's owner has (docs/retention.md, "Who can switch it off").

The app's role owns the tables it creates: the landed layer and the raw_<key> tables our own intakes write. An
owner is not bound by a row trigger it may drop, disable or bypass with TRUNCATE. So:

- TRUNCATE (which fires no row trigger) gets a statement trigger of its own, installed with the row trigger,
  that refuses while any active hold covers the table's store and category;
- an event trigger refuses, in the same transaction, any DDL that would leave a covered table unguarded:
  DISABLE (or ENABLE REPLICA) of the guard, dropping it or its table or schema, renaming it, or re-creating it
  with arguments that no longer name the table's store. Event triggers bind every role, the table's owner
  included; only a superuser may create one, so on a database whose owner is not a superuser this part is
  skipped here and `manage.py check --deploy` reports it (compliance.W003).

Also pins the search_path of 0003's functions to Django's schema: `FROM CURRENT` kept "$user", and the app,
which may create schemas, could otherwise shadow a function with one of its own named after the owner role.
"""

from django.db import migrations

FORWARD = r"""
DO $pin$
DECLARE
    path text := format('%I, pg_temp', current_schema());
BEGIN
    EXECUTE format('ALTER FUNCTION compliance_hold_blocks(bigint, text, text, text, timestamptz) SET search_path = %s', path);
    EXECUTE format('ALTER FUNCTION compliance_merchant_id(text) SET search_path = %s', path);
    EXECUTE format('ALTER FUNCTION compliance_hold_guard() SET search_path = %s', path);
    EXECUTE format(
        'ALTER FUNCTION compliance_hold_guard_install(regclass, text, text, text, text, text, text) SET search_path = %s',
        path
    );
END;
$pin$;

-- Any active hold on the store's (NULL: any store's) data of the category, whatever its customers and dates.
CREATE FUNCTION compliance_hold_any(p_merchant_id bigint, p_category text) RETURNS bigint
LANGUAGE sql STABLE SECURITY DEFINER AS $$
    SELECT h.id FROM compliance_legalhold h
    WHERE h.released_at IS NULL
      AND (p_merchant_id IS NULL OR h.merchant_id = p_merchant_id)
      AND (cardinality(h.categories) = 0 OR p_category = ANY (h.categories))
    ORDER BY h.id
    LIMIT 1
$$;

CREATE FUNCTION compliance_hold_guard_truncate() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    hold bigint := compliance_hold_any(NULLIF(TG_ARGV[1], '')::bigint, TG_ARGV[0]);
BEGIN
    IF hold IS NOT NULL THEN
        RAISE EXCEPTION 'legal hold % covers rows of %.%: TRUNCATE refused', hold, TG_TABLE_SCHEMA, TG_TABLE_NAME
            USING ERRCODE = 'HL001', DETAIL = format('hold_id=%s', hold),
                  HINT = 'Delete the rows no hold covers instead; the guard skips nothing a DELETE would not.';
    END IF;
    RETURN NULL;
END;
$$;

-- The store and category a guarded table's data belongs to, from its name alone (what is left of a table by
-- the time sql_drop fires): raw_<key>.* is that store's; landed.* and the outbox are every store's.
CREATE FUNCTION compliance_hold_table_scope(p_schema text, p_table text, OUT merchant_id bigint, OUT category text)
LANGUAGE sql STABLE AS $$
    SELECT CASE WHEN p_schema LIKE 'raw\_%' THEN compliance_merchant_id(substr(p_schema, 5)) END,
           CASE WHEN p_table IN ('web_events', 'web_sessions') THEN 'events'
                WHEN p_table = 'notifications_notification' THEN 'messages'
                ELSE 'raw' END
$$;

CREATE FUNCTION compliance_hold_refuse_ddl(p_schema text, p_table text, p_what text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    scope record := compliance_hold_table_scope(p_schema, p_table);
    hold bigint;
BEGIN
    IF p_schema LIKE 'raw\_%' AND scope.merchant_id IS NULL THEN
        RETURN;  -- a store we do not know (any more): nothing of it can be held
    END IF;
    hold := compliance_hold_any(scope.merchant_id, scope.category);
    IF hold IS NOT NULL THEN
        RAISE EXCEPTION 'legal hold % covers rows of %.%: % refused', hold, p_schema, p_table, p_what
            USING ERRCODE = 'HL001', DETAIL = format('hold_id=%s', hold),
                  HINT = 'The hold guard stays on a table while a hold covers its data; release the hold first.';
    END IF;
END;
$$;

CREATE FUNCTION compliance_hold_ddl_end() RETURNS event_trigger
LANGUAGE plpgsql AS $$
DECLARE
    g record;
    args text[];
    scope record;
BEGIN
    FOR g IN
        SELECT tg.tgname, tg.tgenabled, tg.tgargs, tg.tgfoid, n.nspname, c.relname
        FROM pg_event_trigger_ddl_commands() d
        JOIN pg_trigger tg ON (d.classid = 'pg_class'::regclass AND tg.tgrelid = d.objid)
                           OR (d.classid = 'pg_trigger'::regclass AND tg.oid = d.objid)
        JOIN pg_class c ON c.oid = tg.tgrelid
        JOIN pg_namespace n ON n.oid = c.relnamespace
        WHERE tg.tgfoid IN ('compliance_hold_guard'::regproc, 'compliance_hold_guard_truncate'::regproc)
    LOOP
        IF g.tgenabled NOT IN ('O', 'A') THEN
            PERFORM compliance_hold_refuse_ddl(g.nspname, g.relname, 'disabling its hold guard');
        END IF;
        IF g.tgname NOT IN ('compliance_hold_guard', 'compliance_hold_guard_truncate') THEN
            PERFORM compliance_hold_refuse_ddl(g.nspname, g.relname, 'renaming its hold guard');
        END IF;
        args := string_to_array(encode(g.tgargs, 'escape'), '\000');
        scope := compliance_hold_table_scope(g.nspname, g.relname);
        IF args[1] IS DISTINCT FROM scope.category
           OR (g.nspname LIKE 'raw\_%' AND args[2] IS DISTINCT FROM scope.merchant_id::text) THEN
            RAISE EXCEPTION 'the hold guard of %.% must name its own store and data category (%, %)',
                g.nspname, g.relname, scope.merchant_id, scope.category
                USING ERRCODE = 'HL001', HINT = 'Install it with compliance_hold_guard_install (compliance/guards.py).';
        END IF;
    END LOOP;
END;
$$;

CREATE FUNCTION compliance_hold_ddl_drop() RETURNS event_trigger
LANGUAGE plpgsql AS $$
DECLARE
    o record;
BEGIN
    FOR o IN
        SELECT d.address_names FROM pg_event_trigger_dropped_objects() d
        WHERE d.object_type = 'trigger'
          AND d.address_names[3] IN ('compliance_hold_guard', 'compliance_hold_guard_truncate')
    LOOP
        PERFORM compliance_hold_refuse_ddl(o.address_names[1], o.address_names[2], 'dropping its hold guard');
    END LOOP;
END;
$$;

DO $pin$
DECLARE
    path text := format('%I, pg_temp', current_schema());
BEGIN
    EXECUTE format('ALTER FUNCTION compliance_hold_any(bigint, text) SET search_path = %s', path);
    EXECUTE format('ALTER FUNCTION compliance_hold_guard_truncate() SET search_path = %s', path);
    EXECUTE format('ALTER FUNCTION compliance_hold_table_scope(text, text) SET search_path = %s', path);
    EXECUTE format('ALTER FUNCTION compliance_hold_refuse_ddl(text, text, text) SET search_path = %s', path);
    EXECUTE format('ALTER FUNCTION compliance_hold_ddl_end() SET search_path = %s', path);
    EXECUTE format('ALTER FUNCTION compliance_hold_ddl_drop() SET search_path = %s', path);
    IF (SELECT rolsuper FROM pg_roles WHERE rolname = current_user) THEN
        CREATE EVENT TRIGGER compliance_hold_ddl_end ON ddl_command_end
            WHEN TAG IN ('ALTER TABLE', 'CREATE TRIGGER', 'ALTER TRIGGER')
            EXECUTE FUNCTION compliance_hold_ddl_end();
        CREATE EVENT TRIGGER compliance_hold_ddl_drop ON sql_drop EXECUTE FUNCTION compliance_hold_ddl_drop();
    ELSE
        RAISE NOTICE 'compliance: not a superuser, so the event triggers guarding the hold guard were not created';
    END IF;
END;
$pin$;

-- The install (0003's) now adds the TRUNCATE guard too. Not on the outbox: the app may not truncate a table it
-- does not own, and the owner's `flush` (tests) truncates every table at once.
CREATE OR REPLACE FUNCTION compliance_hold_guard_install(
    p_table regclass, p_merchant_key text, p_category text, p_customer text, p_email text, p_date text, p_watch text
) RETURNS boolean
LANGUAGE plpgsql AS $$
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
    EXECUTE format(
        'CREATE OR REPLACE TRIGGER compliance_hold_guard_truncate BEFORE TRUNCATE ON %s FOR EACH STATEMENT'
        ' EXECUTE FUNCTION compliance_hold_guard_truncate(%L, %L)',
        p_table, p_category, merchant
    );
    RETURN true;
END;
$$;
"""

BACKWARD = """
DROP EVENT TRIGGER IF EXISTS compliance_hold_ddl_drop;
DROP EVENT TRIGGER IF EXISTS compliance_hold_ddl_end;
DROP FUNCTION IF EXISTS compliance_hold_ddl_drop();
DROP FUNCTION IF EXISTS compliance_hold_ddl_end();
DROP FUNCTION IF EXISTS compliance_hold_refuse_ddl(text, text, text);
DROP FUNCTION IF EXISTS compliance_hold_table_scope(text, text);
DROP FUNCTION IF EXISTS compliance_hold_guard_truncate() CASCADE;
DROP FUNCTION IF EXISTS compliance_hold_any(bigint, text);
"""


class Migration(migrations.Migration):
    dependencies = [("compliance", "0003_legal_holds")]

    operations = [
        migrations.RunSQL(FORWARD, BACKWARD),
        # CREATE OR REPLACE kept the install's pinned search_path only if restated.
        migrations.RunSQL(
            "DO $pin$ BEGIN EXECUTE format('ALTER FUNCTION compliance_hold_guard_install(regclass, text, text, text,"
            " text, text, text) SET search_path = %I, pg_temp', current_schema()); END; $pin$;",
            migrations.RunSQL.noop,
        ),
    ]
