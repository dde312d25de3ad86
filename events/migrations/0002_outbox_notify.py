"""On PostgreSQL, every INSERT into the outbox notifies channel ``outbox`` when its transaction
commits, so the relay wakes at once instead of at its next idle poll (``events.relay``).
Nothing on other databases."""

from django.db import migrations

CHANNEL = "outbox"

CREATE = f"""
CREATE OR REPLACE FUNCTION events_outbox_notify() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('{CHANNEL}', '');
    RETURN NULL;
END;
$$;
CREATE TRIGGER events_outbox_notify AFTER INSERT ON events_outboxevent
    FOR EACH STATEMENT EXECUTE FUNCTION events_outbox_notify();
"""

DROP = """
DROP TRIGGER IF EXISTS events_outbox_notify ON events_outboxevent;
DROP FUNCTION IF EXISTS events_outbox_notify();
"""


def _on_postgresql(sql: str):
    def run(apps, schema_editor):
        if schema_editor.connection.vendor == "postgresql":
            schema_editor.execute(sql)

    return run


class Migration(migrations.Migration):
    dependencies = [("events", "0001_initial")]

    operations = [migrations.RunPython(_on_postgresql(CREATE), _on_postgresql(DROP))]
