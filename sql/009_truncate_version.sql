-- 009_truncate_version.sql -- a TRUNCATE takes a version, so subscribers know which rows it removed.
--
-- A truncation event has no row, and until now it carried version 0.  A
-- subscriber that receives it late, after events committed after it (its
-- queue redelivered it, or events were spread over several queues), could
-- not tell the rows the TRUNCATE removed from the rows written after it,
-- and tombstoned them all: a live incident stayed deleted downstream.
--
-- Now a TRUNCATE of public.incidents draws a version from
-- hms_sync.incidents_version_seq, as every write does, and writes it into
-- the WAL as a transactional logical message with prefix
-- hms_sync.truncate, which the connector puts into the truncation event's
-- version.  That one number divides the rows: TRUNCATE locks the table
-- (ACCESS EXCLUSIVE) before its BEFORE TRUNCATE triggers run, so every
-- write that drew a smaller version had committed or rolled back before it,
-- and every write that draws a greater one comes after it (in a later
-- transaction, or later in the truncating one).  A subscriber tombstones
-- only its rows whose version is below the truncation's.
--
-- Where the trigger does not fire (session_replication_role = replica), the
-- event still carries version 0, which subscribers read as "every row".
CREATE OR REPLACE FUNCTION hms_sync.incidents_truncate_version()
    RETURNS trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog
AS $fn$
BEGIN
    PERFORM pg_catalog.pg_logical_emit_message(true, 'hms_sync.truncate',
                                               nextval('hms_sync.incidents_version_seq')::text);
    RETURN NULL;
END
$fn$;

DROP TRIGGER IF EXISTS hms_sync_truncate_version ON public.incidents;
CREATE TRIGGER hms_sync_truncate_version
    BEFORE TRUNCATE ON public.incidents
    FOR EACH STATEMENT EXECUTE FUNCTION hms_sync.incidents_truncate_version();
