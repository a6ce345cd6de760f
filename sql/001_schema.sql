-- 001_schema.sql -- the schema that holds hms-sync's own objects.
--
-- Everything hms-sync owns lives in hms_sync, apart from the captured table
-- itself (public.incidents), so an EHR database can tell its own objects from
-- ours at a glance and a DROP SCHEMA hms_sync CASCADE removes the connector's
-- bookkeeping without touching patient data.
CREATE SCHEMA IF NOT EXISTS hms_sync;

COMMENT ON SCHEMA hms_sync IS
    'hms-sync change-data-capture connector: migrations ledger, triggers, progress';
