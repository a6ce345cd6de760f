-- 002_incidents.sql -- the captured table and the metadata the event contract needs.
--
-- The EHR may already own public.incidents, so the table is created only when
-- missing and the three last-write-wins columns are then added if absent; an
-- existing table keeps its rows and gains version = 1, updated_at = now() and
-- origin = 'hms-ehr' on every row.
CREATE TABLE IF NOT EXISTS public.incidents (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    occurred_at timestamptz NOT NULL DEFAULT now(),
    region text NOT NULL,
    severity smallint NOT NULL DEFAULT 3 CHECK (severity BETWEEN 1 AND 5),
    status text NOT NULL DEFAULT 'open',
    summary text,
    reported_by text,
    version bigint NOT NULL DEFAULT 1,
    updated_at timestamptz NOT NULL DEFAULT now(),
    origin text NOT NULL DEFAULT 'hms-ehr'
);

ALTER TABLE public.incidents
    ADD COLUMN IF NOT EXISTS version bigint NOT NULL DEFAULT 1,
    ADD COLUMN IF NOT EXISTS updated_at timestamptz NOT NULL DEFAULT now(),
    ADD COLUMN IF NOT EXISTS origin text NOT NULL DEFAULT 'hms-ehr';

-- Subscribers order two events of one incident by (version, updated_at,
-- origin), so every UPDATE must move version forward whatever the writer
-- says; a trigger is the one place no writer can forget.
--
-- Origin: a system other than the EHR that writes to this table declares
-- itself for the session (or the transaction, with SET LOCAL) before it
-- writes:
--
--     SET hms_sync.origin = 'casemgmt';
--
-- An UPDATE that sets origin explicitly keeps the value it set.  Any other
-- UPDATE takes the session's hms_sync.origin, or 'hms-ehr' when that is unset
-- or empty, so an EHR edit of a row last written by casemgmt is attributed
-- to the EHR again.  INSERTs use the column default unless they name origin.
CREATE OR REPLACE FUNCTION hms_sync.incidents_before_update()
    RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog
AS $fn$
BEGIN
    NEW.version := OLD.version + 1;
    NEW.updated_at := now();
    IF NEW.origin IS NOT DISTINCT FROM OLD.origin THEN
        NEW.origin := coalesce(nullif(current_setting('hms_sync.origin', true), ''), 'hms-ehr');
    END IF;
    RETURN NEW;
END
$fn$;

DROP TRIGGER IF EXISTS hms_sync_before_update ON public.incidents;
CREATE TRIGGER hms_sync_before_update
    BEFORE UPDATE ON public.incidents
    FOR EACH ROW EXECUTE FUNCTION hms_sync.incidents_before_update();

-- A DELETE event carries the whole old row (DESIGN: data is the row before
-- the change) and the routing key needs its region, so the WAL must log
-- every old column, not just the key.
ALTER TABLE public.incidents REPLICA IDENTITY FULL;
