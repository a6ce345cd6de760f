-- 005_truncate.sql -- a TRUNCATE of the source tombstones every row a replica holds, and nothing committed before it brings a row back.
--
-- A truncation event (type ...Truncated.vN, data {}) carries no rows, so it
-- cannot take part in last-write-wins row by row.  Two rules instead, per
-- replica table and source:
--
-- 1. The truncation tombstones every row the table holds and gives each the
--    truncation's own tuple: version 0, updatedat its commit time, origin
--    hms-ehr.  Version 0 is below any row's version, so every change made
--    after the truncation wins over these tombstones by the ordinary rule,
--    a key inserted again (version 1) included.
-- 2. The truncation's stream position (commit LSN, then ordinal, from the
--    event's lsn and id) is kept as the table's truncation watermark.  A
--    row event positioned before the watermark was committed before the
--    truncation: it is 'stale' whatever its tuple, so a late or redelivered
--    event cannot resurrect a truncated row.  A truncation positioned before
--    the watermark is 'stale' too (the newer one already tombstoned more),
--    and one at the watermark is a 'duplicate'.
--
-- Positions compare numerically (pg_lsn, then the ordinal as a number), never
-- as text.  Rows carry no source, so a replica table is assumed to be fed by
-- one source database, as the seed subscribers are.
--
-- Concurrency: a truncation locks its table in SHARE ROW EXCLUSIVE mode and a
-- row event takes ROW EXCLUSIVE before it reads the watermark.  The two
-- conflict, so a row event either reads the watermark the truncation wrote,
-- or finishes before the truncation tombstones; row events do not block
-- one another.
--
-- The seed subscribers' apply functions keep their names: the old bodies
-- become apply_*_change and the new apply_* run the two rules around them.

CREATE TABLE IF NOT EXISTS hms_sync.truncations (
    target regclass NOT NULL,
    source text NOT NULL,
    lsn pg_lsn NOT NULL,
    ordinal bigint NOT NULL,
    id text NOT NULL,
    truncated_at timestamptz NOT NULL,
    PRIMARY KEY (target, source)
);

COMMENT ON TABLE hms_sync.truncations IS
    'hms-sync subscriber: the newest truncation applied to each replica table, per source';

-- Whether the event is a truncation (type ending in Truncated.vN).
CREATE OR REPLACE FUNCTION hms_sync.is_truncation(event jsonb)
    RETURNS boolean
    LANGUAGE sql
    IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT coalesce(event ->> 'type' ~ 'Truncated\.v[0-9]+$', false)
$fn$;

-- The event's stream position: its commit LSN (lsn) and its ordinal (the id
-- after the last '-'), or one clear error naming the event.
CREATE OR REPLACE FUNCTION hms_sync.event_position(event jsonb, OUT lsn pg_lsn,
                                                   OUT ordinal bigint)
    LANGUAGE plpgsql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    ev_id text := coalesce(event ->> 'id', '(no id)');
    l text := event ->> 'lsn';
    o text := substring(event ->> 'id' from '-([0-9]{1,18})$');
BEGIN
    IF l IS NULL OR l !~ '^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$' OR o IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('hms_sync: event %s: "lsn" and the ordinal of "id" must give a stream position, got lsn %s',
                             ev_id, coalesce((event -> 'lsn')::text, 'nothing'));
    END IF;
    lsn := l::pg_lsn;
    ordinal := o::bigint;
END
$fn$;

-- hms_sync.lww_truncation(target, event, tombstone): the truncation rules for
-- one replica table shaped as hms_sync.lww_upsert wants it.
--   For a truncation event: tombstones every row (see rule 1), writing the
--   columns of tombstone (a JSON object, column -> value, e.g. a status) into
--   the rows that were live, and records the watermark; returns 'applied',
--   'stale' or 'duplicate'.
--   For a row event: 'stale' when it was committed before the table's
--   truncation watermark from its source, NULL otherwise (the caller then
--   applies it by last-write-wins).
CREATE OR REPLACE FUNCTION hms_sync.lww_truncation(target regclass, event jsonb, tombstone jsonb)
    RETURNS text
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    pos record;
    wm record;
    ev record;
    v_source text := hms_sync.event_member(event, 'source');
    cols text;
    vals text;
BEGIN
    IF target IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'hms_sync.lww_truncation: target must not be NULL';
    END IF;
    SELECT * INTO pos FROM hms_sync.event_position(event);
    IF NOT hms_sync.is_truncation(event) THEN
        EXECUTE format('LOCK TABLE %s IN ROW EXCLUSIVE MODE', target);
        PERFORM 1 FROM hms_sync.truncations t
          WHERE t.target = lww_truncation.target AND t.source = v_source
            AND (pos.lsn, pos.ordinal) < (t.lsn, t.ordinal);
        RETURN CASE WHEN FOUND THEN 'stale' END;
    END IF;

    -- A truncation: its tuple, checked as any event's (the type aside).
    SELECT * INTO ev
      FROM hms_sync.lww_event(event || jsonb_build_object('type', 'Deleted.v1'));
    IF jsonb_typeof(tombstone) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('hms_sync.lww_truncation: the tombstone columns for %s must be a JSON object',
                             target);
    END IF;
    EXECUTE format('LOCK TABLE %s IN SHARE ROW EXCLUSIVE MODE', target);
    SELECT t.lsn, t.ordinal INTO wm FROM hms_sync.truncations t
     WHERE t.target = lww_truncation.target AND t.source = v_source
       FOR UPDATE;
    IF FOUND THEN
        IF (pos.lsn, pos.ordinal) < (wm.lsn, wm.ordinal) THEN
            RETURN 'stale';
        ELSIF (pos.lsn, pos.ordinal) = (wm.lsn, wm.ordinal) THEN
            RETURN 'duplicate';
        END IF;
    END IF;
    INSERT INTO hms_sync.truncations AS t (target, source, lsn, ordinal, id, truncated_at)
    VALUES (target, v_source, pos.lsn, pos.ordinal, event ->> 'id', ev.updatedat)
    ON CONFLICT ON CONSTRAINT truncations_pkey DO UPDATE
       SET lsn = excluded.lsn, ordinal = excluded.ordinal, id = excluded.id,
           truncated_at = excluded.truncated_at;

    IF tombstone <> '{}'::jsonb THEN
        SELECT string_agg(format('%I', j.k), ', ' ORDER BY j.k),
               string_agg(format('hms_r.%I', j.k), ', ' ORDER BY j.k)
          INTO cols, vals
          FROM jsonb_object_keys(tombstone) AS j(k);
        EXECUTE format('UPDATE %s hms_t SET (%s) = (SELECT %s FROM jsonb_populate_record(NULL::%s, $1) hms_r) '
                       'WHERE NOT hms_t.deleted',
                       target, cols, vals, target)
            USING tombstone;
    END IF;
    EXECUTE format('UPDATE %s SET version = $1, updated_at = $2, origin = $3, deleted = true', target)
        USING ev.version, ev.updatedat, ev.origin;
    RETURN 'applied';
END
$fn$;

-- The seed subscribers: the row-change bodies of 003 under new names, and
-- the truncation rules in front of them.
ALTER FUNCTION hms_sync.apply_warehouse(jsonb) RENAME TO apply_warehouse_change;
ALTER FUNCTION hms_sync.apply_scheduling(jsonb) RENAME TO apply_scheduling_change;
ALTER FUNCTION hms_sync.apply_casemgmt(jsonb) RENAME TO apply_casemgmt_change;

CREATE FUNCTION hms_sync.apply_warehouse(event jsonb)
    RETURNS text
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RETURN coalesce(hms_sync.lww_truncation('public.incident_facts', event, '{}'),
                    hms_sync.apply_warehouse_change(event));
END
$fn$;

-- A truncated incident's task is cancelled, as a deleted one's is.
CREATE FUNCTION hms_sync.apply_scheduling(event jsonb)
    RETURNS text
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RETURN coalesce(hms_sync.lww_truncation('public.investigation_tasks', event,
                                            '{"status": "cancelled"}'),
                    hms_sync.apply_scheduling_change(event));
END
$fn$;

-- A truncated incident's case is closed at the truncation's commit time.
CREATE FUNCTION hms_sync.apply_casemgmt(event jsonb)
    RETURNS text
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    RETURN coalesce(hms_sync.lww_truncation('public.cases', event,
                                            jsonb_build_object('state', 'closed',
                                                               'closed_at', event -> 'time')),
                    hms_sync.apply_casemgmt_change(event));
END
$fn$;

GRANT SELECT, INSERT, UPDATE ON hms_sync.truncations TO hms_sync_subscriber;
REVOKE EXECUTE ON FUNCTION
    hms_sync.lww_truncation(regclass, jsonb, jsonb),
    hms_sync.apply_warehouse(jsonb),
    hms_sync.apply_scheduling(jsonb),
    hms_sync.apply_casemgmt(jsonb)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    hms_sync.lww_truncation(regclass, jsonb, jsonb),
    hms_sync.apply_warehouse(jsonb),
    hms_sync.apply_scheduling(jsonb),
    hms_sync.apply_casemgmt(jsonb)
    TO hms_sync_subscriber;
