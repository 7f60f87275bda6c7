"""PostgreSQL only: the audit table refuses UPDATE, DELETE and TRUNCATE.

Triggers do not bind the table's owner or a superuser (they can disable
them), so production also runs the application under a role that holds only
INSERT and SELECT on the table (docs/operations.md, "Audit trail"). SQLite
has no such roles; there, verify_audit is the protection.
"""

from django.db import migrations

INSTALL = """
CREATE OR REPLACE FUNCTION audit_auditevent_reject_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'audit_auditevent is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_auditevent_no_update_or_delete
    BEFORE UPDATE OR DELETE ON audit_auditevent
    FOR EACH ROW EXECUTE FUNCTION audit_auditevent_reject_change();
CREATE TRIGGER audit_auditevent_no_truncate
    BEFORE TRUNCATE ON audit_auditevent
    FOR EACH STATEMENT EXECUTE FUNCTION audit_auditevent_reject_change();
"""

REMOVE = """
DROP TRIGGER IF EXISTS audit_auditevent_no_truncate ON audit_auditevent;
DROP TRIGGER IF EXISTS audit_auditevent_no_update_or_delete ON audit_auditevent;
DROP FUNCTION IF EXISTS audit_auditevent_reject_change();
"""


def _on_postgresql(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, params=None)  # no parameters: the "%" in RAISE stays literal

    return run


class Migration(migrations.Migration):
    dependencies = [("audit", "0001_audit_trail")]

    operations = [
        migrations.RunPython(_on_postgresql(INSTALL), _on_postgresql(REMOVE), elidable=False),
    ]
