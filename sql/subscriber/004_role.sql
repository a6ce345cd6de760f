-- 004_role.sql -- the role a subscriber (hms-sync consume) logs in as, with only what consume needs.
--
-- Roles are cluster-wide: another database of the cluster, or a concurrent
-- migration, may already have created it, and neither may make this fail.  No
-- password is set here; the operator sets one (or configures certificate or
-- peer authentication) out of band, so no secret lives in a migration.  An
-- existing role keeps whatever the operator configured.
DO $do$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'hms_sync_subscriber') THEN
        BEGIN
            CREATE ROLE hms_sync_subscriber LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE
                NOREPLICATION NOBYPASSRLS;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL; -- created concurrently by a migration of another database
        END;
    END IF;
END
$do$;

DO $do$
BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO hms_sync_subscriber', current_database());
END
$do$;

-- Everything runs with the caller's rights (SECURITY INVOKER), so the role
-- needs the tables the seed subscribers write.  It gets no DELETE or
-- TRUNCATE anywhere: the inbox only grows and replicas keep tombstones.
GRANT USAGE ON SCHEMA hms_sync TO hms_sync_subscriber;
GRANT USAGE ON SCHEMA public TO hms_sync_subscriber;
GRANT SELECT, INSERT, UPDATE ON hms_sync.inbox TO hms_sync_subscriber;
GRANT SELECT, INSERT, UPDATE ON public.incident_facts, public.investigation_tasks, public.cases
    TO hms_sync_subscriber;

-- Functions are executable by PUBLIC by default; keep the writing ones to the
-- subscriber role (and the owner).  The pure LWW helpers stay public: they
-- read nothing.
REVOKE EXECUTE ON FUNCTION
    hms_sync.consume(text, regprocedure, jsonb),
    hms_sync.lww_upsert(regclass, text, jsonb, jsonb),
    hms_sync.apply_warehouse(jsonb),
    hms_sync.apply_scheduling(jsonb),
    hms_sync.apply_casemgmt(jsonb)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    hms_sync.consume(text, regprocedure, jsonb),
    hms_sync.lww_upsert(regclass, text, jsonb, jsonb),
    hms_sync.apply_warehouse(jsonb),
    hms_sync.apply_scheduling(jsonb),
    hms_sync.apply_casemgmt(jsonb)
    TO hms_sync_subscriber;
