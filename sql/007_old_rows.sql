-- 007_old_rows.sql -- the whole old row of a DELETE or key change, whatever the REPLICA IDENTITY.
--
-- hms-sync publishes a deletion with the whole row it removed: subscribers
-- need the row's version to order the delete under last-write-wins, and the
-- Deleted data schema requires every column.  PostgreSQL writes the whole
-- old row into the WAL only while the table's REPLICA IDENTITY is FULL.  A
-- DBA who sets it back to DEFAULT (a routine change) would leave deletes,
-- and updates that change the key, with only the old key, which no valid
-- event can carry.
--
-- So while the identity is not FULL, this trigger writes the old row into
-- the WAL itself, as a transactional logical message with prefix
-- hms_sync.old_row and the row in its composite text form (row::text),
-- just before the change.  The connector matches it to the key-only change
-- that follows and publishes the whole row as before.  A rolled-back
-- change takes its message with it.  While the identity is FULL (as the
-- connector requires at its start) the trigger writes nothing, so it costs
-- a catalog lookup per deleted row and no WAL.
--
-- It cannot help where triggers do not fire (session_replication_role =
-- replica, or the trigger disabled): the connector then still stops before
-- such a delete, naming it.
CREATE OR REPLACE FUNCTION hms_sync.incidents_old_row()
    RETURNS trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog
AS $fn$
BEGIN
    IF (TG_OP = 'DELETE' OR NEW.id IS DISTINCT FROM OLD.id)
       AND (SELECT c.relreplident FROM pg_catalog.pg_class c WHERE c.oid = TG_RELID) <> 'f' THEN
        PERFORM pg_catalog.pg_logical_emit_message(true, 'hms_sync.old_row', OLD::text);
    END IF;
    IF TG_OP = 'DELETE' THEN
        RETURN OLD;
    END IF;
    RETURN NEW;
END
$fn$;

DROP TRIGGER IF EXISTS hms_sync_old_row ON public.incidents;
CREATE TRIGGER hms_sync_old_row
    BEFORE DELETE OR UPDATE OF id ON public.incidents
    FOR EACH ROW EXECUTE FUNCTION hms_sync.incidents_old_row();
