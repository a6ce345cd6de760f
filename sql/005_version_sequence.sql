-- 005_version_sequence.sql -- versions drawn from one sequence, so a re-inserted key beats its tombstone.
--
-- Until now version counted the UPDATEs of one row and an INSERT started at
-- 1.  Subscribers keep a deleted incident as a tombstone carrying the version
-- of the row it removed, so an incident deleted at version 4 and inserted
-- again with the same key (restored) came back at version 1, lost against
-- its own tombstone and never reappeared downstream.
--
-- Now every INSERT and every UPDATE of public.incidents takes its version
-- from hms_sync.incidents_version_seq.  Versions still only grow for one key
-- (which is all last-write-wins needs), they grow across a delete and a
-- re-insert too, and a DELETE still carries the version of the row it
-- removes.  They are no longer consecutive: one row's versions have gaps
-- where other rows (or rolled-back writes) drew from the sequence.  The
-- column stays bigint NOT NULL DEFAULT 1; the default only matters where the
-- trigger does not fire (session_replication_role = replica).
--
-- The trigger owns version: a value the writer sets, on INSERT or UPDATE, is
-- replaced.  Honouring it would let a restore that brings back the old
-- version lose again, and a writer that sets a huge one would leave every
-- later write of that key behind it.
--
-- Why the version is drawn only once the row is safe to write, one writer of
-- a key after another (commit order must be version order per key):
--
-- * UPDATE: PostgreSQL locks the row before BEFORE UPDATE triggers run, and
--   waits there for any transaction that holds it, re-reading the newest
--   version of the row afterwards.  So the previous writer of the row has
--   committed (or rolled back) before this one calls nextval, and its
--   version is smaller.  The same row lock orders DELETEs.
-- * INSERT: a BEFORE INSERT trigger runs before the unique check, and that
--   check, when it meets an uncommitted row with the same key, waits and
--   then lets the insert through if that row ends up deleted.  Drawing the
--   version straight away is then wrong: while this insert waits, the other
--   transaction may insert, update and delete the key, leaving a tombstone
--   newer than this insert's version.  So before it draws, the trigger
--   (a) locks the key in hms_sync.incident_key_locks, which serializes every
--   insert of one key (the lock is a row lock, not an advisory lock, so a
--   bulk load of a million rows does not fill the lock table), and
--   (b) locks the live row of that key, if there is one, FOR UPDATE, which
--   waits for a transaction that is updating or deleting it and stops any
--   other from starting (this insert then fails on the unique key, or takes
--   its ON CONFLICT branch, whose UPDATE draws its own version).
--   After both, every earlier write of the key has committed or rolled back,
--   so this version is above all of them.  An UPDATE that moves a row to
--   another key takes the same two locks on the new key.
--
-- hms_sync.incident_key_locks holds one row per key ever inserted.  It is
-- only a place to lock: emptying it (TRUNCATE) at any time is safe.
--
-- Cost: an INSERT also writes (or locks) one row of incident_key_locks and
-- probes the primary key once; COPY into the table loses its multi-row
-- insert path, as with any BEFORE INSERT trigger.
CREATE SEQUENCE IF NOT EXISTS hms_sync.incidents_version_seq AS bigint MINVALUE 1 NO CYCLE;
-- Deliberately not OWNED BY the column: TRUNCATE ... RESTART IDENTITY would
-- otherwise rewind it, and every later write would lose against the
-- tombstones subscribers already hold.

-- The first version drawn must beat every version already published.  The
-- live rows give max(version).  Rows deleted before this migration are gone,
-- but their old versions counted one row's updates, so the table's update
-- count bounds them, as long as its statistics were not reset (or lost in a
-- crash).  Where that is in doubt, raise the sequence past the highest
-- version any subscriber holds, e.g. max(version) of a warehouse's
-- incident_facts: SELECT setval('hms_sync.incidents_version_seq', N);
SELECT pg_catalog.setval('hms_sync.incidents_version_seq',
                         greatest(coalesce((SELECT max(version) FROM public.incidents), 0),
                                  CASE WHEN pg_catalog.pg_stat_get_tuples_inserted(t.oid) > 0
                                       THEN pg_catalog.pg_stat_get_tuples_updated(t.oid) + 1
                                       ELSE 0 END) + 1,
                         false)
  FROM (SELECT 'public.incidents'::regclass::oid AS oid) t;

CREATE TABLE IF NOT EXISTS hms_sync.incident_key_locks (
    id uuid PRIMARY KEY
);

-- SECURITY DEFINER so that the EHR's own roles, which write incidents but
-- have no rights in schema hms_sync, can draw versions and take key locks.
-- A trigger function cannot be called directly, and the search_path is
-- pinned, so it lends those rights to nothing else.
CREATE OR REPLACE FUNCTION hms_sync.incidents_before_write()
    RETURNS trigger
    LANGUAGE plpgsql
    SECURITY DEFINER
    SET search_path = pg_catalog
AS $fn$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.id IS DISTINCT FROM OLD.id THEN
        -- DO UPDATE ... WHERE false changes nothing but still locks an
        -- existing row, waiting for its holder; a new row is ours until we
        -- commit, and a concurrent insert of the key waits on it.
        INSERT INTO hms_sync.incident_key_locks (id) VALUES (NEW.id)
            ON CONFLICT (id) DO UPDATE SET id = excluded.id WHERE false;
        PERFORM 1 FROM public.incidents i WHERE i.id = NEW.id FOR UPDATE;
    END IF;
    NEW.version := nextval('hms_sync.incidents_version_seq');
    IF TG_OP = 'UPDATE' THEN
        NEW.updated_at := now();
        -- Origin, as 002 describes: an UPDATE that sets it keeps it; any
        -- other takes the session's hms_sync.origin, or 'hms-ehr'.
        IF NEW.origin IS NOT DISTINCT FROM OLD.origin THEN
            NEW.origin := coalesce(nullif(current_setting('hms_sync.origin', true), ''),
                                   'hms-ehr');
        END IF;
    END IF;
    RETURN NEW;
END
$fn$;

DROP TRIGGER IF EXISTS hms_sync_before_update ON public.incidents;
DROP FUNCTION IF EXISTS hms_sync.incidents_before_update();
DROP TRIGGER IF EXISTS hms_sync_before_write ON public.incidents;
CREATE TRIGGER hms_sync_before_write
    BEFORE INSERT OR UPDATE ON public.incidents
    FOR EACH ROW EXECUTE FUNCTION hms_sync.incidents_before_write();
