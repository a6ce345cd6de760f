-- 003_publication_role.sql -- the publication the connector reads and the role it logs in as.

-- The connector names this publication in START_REPLICATION.  An existing
-- publication of that name is kept (the operator may have widened it) but
-- must carry the incidents table.
DO $do$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_publication WHERE pubname = 'hms_sync_incidents') THEN
        CREATE PUBLICATION hms_sync_incidents FOR TABLE public.incidents;
    ELSIF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_publication_tables
                      WHERE pubname = 'hms_sync_incidents'
                        AND schemaname = 'public' AND tablename = 'incidents') THEN
        ALTER PUBLICATION hms_sync_incidents ADD TABLE public.incidents;
    END IF;
END
$do$;

-- Roles are cluster-wide: a second database attached to the same cluster
-- finds the role already there, and two databases migrating at once may race
-- to create it.  Neither may fail.  No password is set here: the operator
-- sets one (or configures certificate or peer authentication) out of band, so
-- no secret ever lives in a migration.  An existing role is left as the
-- operator configured it, with a warning if it cannot stream.
DO $do$
DECLARE
    r record;
BEGIN
    SELECT rolcanlogin, rolreplication INTO r FROM pg_catalog.pg_roles WHERE rolname = 'hms_sync';
    IF NOT FOUND THEN
        BEGIN
            CREATE ROLE hms_sync LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL; -- created concurrently by a migration of another database
        END;
    ELSIF NOT (r.rolcanlogin AND r.rolreplication) THEN
        RAISE WARNING 'role hms_sync exists without LOGIN REPLICATION; the connector cannot stream until a superuser runs ALTER ROLE hms_sync LOGIN REPLICATION';
    END IF;
END
$do$;

-- Least privilege: the connector reads the captured table (for the
-- publication's column metadata and any snapshot) and nothing else of the
-- EHR's.  Its write access is limited to hms_sync.slot_progress (004).
DO $do$
BEGIN
    EXECUTE format('GRANT CONNECT ON DATABASE %I TO hms_sync', current_database());
END
$do$;
GRANT USAGE ON SCHEMA public TO hms_sync;
GRANT USAGE ON SCHEMA hms_sync TO hms_sync;
GRANT SELECT ON public.incidents TO hms_sync;
