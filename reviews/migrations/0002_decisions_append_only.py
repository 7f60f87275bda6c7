"""PostgreSQL only: the decisions table refuses UPDATE and DELETE.

A decision is changed by recording a new one that supersedes it, never by editing it. As
with the audit trail (audit migration 0002), triggers do not bind the table's owner or a
superuser, so production runs the application under a role that holds INSERT and SELECT
only on this table. TRUNCATE stays possible for that owner: the test framework empties
tables with it. On SQLite the model and its query set refuse updates and deletes.
"""

from django.db import migrations

INSTALL = """
CREATE OR REPLACE FUNCTION reviews_decision_reject_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'reviews_decision is append-only: % is not allowed', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER reviews_decision_no_update_or_delete
    BEFORE UPDATE OR DELETE ON reviews_decision
    FOR EACH ROW EXECUTE FUNCTION reviews_decision_reject_change();
"""

REMOVE = """
DROP TRIGGER IF EXISTS reviews_decision_no_update_or_delete ON reviews_decision;
DROP FUNCTION IF EXISTS reviews_decision_reject_change();
"""


def _on_postgresql(sql):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql, params=None)  # no parameters: the "%" in RAISE stays literal

    return run


class Migration(migrations.Migration):
    dependencies = [("reviews", "0001_projects_readings_decisions")]

    operations = [
        migrations.RunPython(_on_postgresql(INSTALL), _on_postgresql(REMOVE), elidable=False),
    ]
