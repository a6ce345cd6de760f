-- 012_emit.sql -- the transactional outbox: hms_sync.emit(type, subject, data).
--
-- An application publishes its own domain event (an investigator assigned,
-- a report escalated) by calling hms_sync.emit inside the transaction that
-- makes the change.  The call writes a transactional logical message into
-- the WAL, with no table behind it and nothing to clean up: it reaches the
-- connector when, and only when, the transaction commits, and disappears
-- with a rolled-back transaction or savepoint.  The connector turns it into
-- one CloudEvent of that type on the events exchange (hms.events).
--
-- Everything the connector would have to refuse is refused here, in the
-- caller's transaction, where the application sees the error: a type that
-- is not a reverse-DNS name with a version suffix, a type in hms-sync's own
-- namespace, an empty or multi-line subject, a NULL data.
--
-- The message's content is three parts, split at the first two line
-- breaks: the type, the subject, and the data as jsonb's text (which never
-- holds a raw line break).  Its prefix is hms_sync.emit.

-- The role an application is granted to emit: GRANT hms_sync_emitter TO <app role>.
DO $do$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles WHERE rolname = 'hms_sync_emitter') THEN
        BEGIN
            CREATE ROLE hms_sync_emitter NOLOGIN;
        EXCEPTION WHEN duplicate_object OR unique_violation THEN
            NULL; -- created concurrently by a migration of another database
        END;
    END IF;
END
$do$;

-- SECURITY DEFINER: writing a logical message is not every role's right;
-- through this function a role may write exactly this kind of message.
CREATE OR REPLACE FUNCTION hms_sync.emit(type text, subject text, data jsonb)
    RETURNS void
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog
AS $fn$
BEGIN
    IF type IS NULL OR subject IS NULL OR data IS NULL THEN
        RAISE EXCEPTION 'hms_sync.emit: % is NULL', CASE WHEN type IS NULL THEN 'type'
                                                          WHEN subject IS NULL THEN 'subject'
                                                          ELSE 'data' END
            USING ERRCODE = 'null_value_not_allowed';
    END IF;
    -- A routing key holds at most 255 bytes; a type is one.
    IF octet_length(type) > 200
       OR type !~ '^[a-z][a-z0-9-]*(\.[A-Za-z0-9][A-Za-z0-9_-]*){2,}\.v[1-9][0-9]*$' THEN
        RAISE EXCEPTION 'hms_sync.emit: type "%" is not a reverse-DNS name with a version suffix',
                        left(type, 200)
            USING ERRCODE = 'invalid_parameter_value',
                  HINT = 'for example org.example.cases.InvestigatorAssigned.v1: at least three dot-separated names, the first lower-case, then .v<number>; at most 200 bytes';
    END IF;
    IF type LIKE 'gov.hms.ehr.%' THEN
        RAISE EXCEPTION 'hms_sync.emit: type "%" is in gov.hms.ehr, the namespace of hms-sync''s own change events', type
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    IF subject = '' OR octet_length(subject) > 1000 OR subject ~ '[[:cntrl:]]' THEN
        RAISE EXCEPTION 'hms_sync.emit: subject must be 1 to 1000 bytes without control characters'
            USING ERRCODE = 'invalid_parameter_value';
    END IF;
    PERFORM pg_catalog.pg_logical_emit_message(true, 'hms_sync.emit',
                                               type || E'\n' || subject || E'\n' || data::text);
END
$fn$;

REVOKE ALL ON FUNCTION hms_sync.emit(text, text, jsonb) FROM PUBLIC;
GRANT USAGE ON SCHEMA hms_sync TO hms_sync_emitter;
GRANT EXECUTE ON FUNCTION hms_sync.emit(text, text, jsonb) TO hms_sync_emitter;
