-- 001_inbox.sql -- the subscriber's inbox and hms_sync.consume(), the one statement a consumer runs per event.
--
-- The subscriber side may live in a database of its own, where none of the
-- publisher's migrations ran (no public.incidents, no hms_sync.schema_migrations):
-- nothing here depends on them, and the schema is created when missing.  In a
-- database that holds both sides the two sets share the schema and keep
-- separate ledgers (schema_migrations, subscriber_migrations).
CREATE SCHEMA IF NOT EXISTS hms_sync;

-- One row per event a subscriber has taken in.  "subscriber" is the
-- consumer's queue name, so several subscribers can share one database while
-- each keeps its own (source, id) key: CloudEvents make an event unique by
-- source and id together, and hms-sync's ids (commit LSN and ordinal) repeat
-- across source databases.
--
-- The row is written in the same transaction as the replica change it
-- records, so "recorded" and "applied" can never disagree: after a crash
-- between commit and ack, the redelivered event finds its row and is
-- skipped.  Rows are never deleted by hms-sync; an operator may prune old
-- ones once redelivery of them is impossible (e.g. older than the queues'
-- message TTL).
CREATE TABLE IF NOT EXISTS hms_sync.inbox (
    subscriber text NOT NULL,
    source text NOT NULL,
    id text NOT NULL,
    type text NOT NULL,
    subject text NOT NULL,
    outcome text NOT NULL,
    received_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (subscriber, source, id)
);

COMMENT ON TABLE hms_sync.inbox IS
    'hms-sync subscriber inbox: one row per (subscriber, source, id) taken in, with the apply function''s outcome';

-- A required string member of an event envelope, or a clear error naming the
-- member and the event.  Validation in the consumer normally guarantees these;
-- this keeps a hand-written or malformed event from being half-recorded.
CREATE OR REPLACE FUNCTION hms_sync.event_member(event jsonb, member text)
    RETURNS text
    LANGUAGE plpgsql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    v jsonb := event -> member;
BEGIN
    IF jsonb_typeof(v) IS DISTINCT FROM 'string' OR v #>> '{}' = '' THEN
        RAISE EXCEPTION USING
            ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('hms_sync: event %s: "%s" must be a non-empty string, got %s',
                             coalesce(event ->> 'id', '(no id)'), member,
                             coalesce(v::text, 'nothing'));
    END IF;
    RETURN v #>> '{}';
END
$fn$;

-- hms_sync.consume(subscriber, apply, event): records the event in the inbox
-- and applies it, in the caller's transaction (one autocommit statement in
-- the consumer).  Returns
--   'duplicate'  when (subscriber, source, id) is already recorded: apply is
--                not called and nothing changes;
--   otherwise    whatever apply(event) returned ('applied', 'stale' or
--                'duplicate' for the LWW helpers in 002), which is also
--                stored in the inbox row.
-- An error raised by apply propagates: the statement's transaction rolls
-- back, so neither the inbox row nor any partial replica change survives and
-- a redelivery tries again.
--
-- Concurrency: two sessions taking in the same event at once both reach the
-- INSERT; the second waits for the first's transaction and then either finds
-- the row (first committed: 'duplicate') or inserts it (first rolled back).
-- So apply runs at most once per committed inbox row.
--
-- apply must be a function (event jsonb) RETURNS text; it runs with the
-- caller's privileges (SECURITY INVOKER everywhere: a definer-rights consume
-- would let any caller run any function of that shape as the owner).  No
-- search_path is pinned here so that apply sees the caller's.
CREATE OR REPLACE FUNCTION hms_sync.consume(subscriber text, apply regprocedure, event jsonb)
    RETURNS text
    LANGUAGE plpgsql
    VOLATILE
AS $fn$
DECLARE
    v_source text;
    v_id text;
    v_type text;
    v_subject text;
    v_schema name;
    v_name name;
    v_outcome text;
BEGIN
    IF subscriber IS NULL OR subscriber = '' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'hms_sync.consume: the subscriber name must not be empty';
    END IF;
    IF jsonb_typeof(event) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('hms_sync.consume: the event must be a JSON object, got %s',
                             coalesce(jsonb_typeof(event), 'NULL'));
    END IF;
    SELECT n.nspname, p.proname INTO v_schema, v_name
      FROM pg_catalog.pg_proc p
      JOIN pg_catalog.pg_namespace n ON n.oid = p.pronamespace
     WHERE p.oid = apply
       AND p.prokind = 'f'
       AND p.pronargs = 1
       AND p.proargtypes[0] = 'pg_catalog.jsonb'::pg_catalog.regtype
       AND p.prorettype = 'pg_catalog.text'::pg_catalog.regtype
       AND NOT p.proretset;
    IF NOT FOUND THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('hms_sync.consume: %s is not a function (event jsonb) RETURNS text',
                             coalesce(apply::text, 'NULL'));
    END IF;

    v_source := hms_sync.event_member(event, 'source');
    v_id := hms_sync.event_member(event, 'id');
    v_type := hms_sync.event_member(event, 'type');
    v_subject := hms_sync.event_member(event, 'subject');

    -- 'pending' is never visible to anyone else: it is replaced below in the
    -- same transaction, or the transaction rolls back.
    INSERT INTO hms_sync.inbox AS i (subscriber, source, id, type, subject, outcome)
    VALUES (consume.subscriber, v_source, v_id, v_type, v_subject, 'pending')
    ON CONFLICT DO NOTHING;
    IF NOT FOUND THEN
        RETURN 'duplicate';
    END IF;

    EXECUTE format('SELECT %I.%I($1)', v_schema, v_name) INTO v_outcome USING event;
    IF v_outcome IS NULL OR v_outcome = '' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('hms_sync.consume: %s returned no outcome for event %s', apply::text,
                             v_id);
    END IF;

    UPDATE hms_sync.inbox AS i
       SET outcome = v_outcome
     WHERE i.subscriber = consume.subscriber AND i.source = v_source AND i.id = v_id;
    RETURN v_outcome;
END
$fn$;

COMMENT ON FUNCTION hms_sync.consume(text, regprocedure, jsonb) IS
    'hms-sync: record an event in the inbox and apply it once; returns the outcome or duplicate';
