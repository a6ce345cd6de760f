-- 007_truncate_version.sql -- a truncation tombstones only the rows written before it.
--
-- 005 tombstoned every row a replica table holds.  That is right only when
-- the truncation is applied before every event committed after it.  Where it
-- arrives late (redelivered, or after events that came by another queue), it
-- also tombstoned rows written after it, and an older event of such a row
-- could then apply over that tombstone: the replica ended with a live
-- incident deleted, or behind the source.
--
-- A truncation event now carries the version the TRUNCATE drew from the
-- source's version sequence (the source's migration 009).  Every row written
-- before the TRUNCATE has a smaller version and every row written after it a
-- greater one, so the truncation tombstones exactly the rows whose version is
-- below its own, and gives them its tuple (its version, its commit time,
-- hms-ehr).  A row written after it keeps its state whatever the order of
-- delivery.  A truncation with version 0 (a source without that migration,
-- or where its trigger did not fire) still tombstones every row, as before.
--
-- Rule 2 of 005 (the watermark by stream position) is unchanged.  Only
-- lww_truncation is replaced; its signature, rights and callers stay.

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

    -- The rows it removed: every row written before it (version 0: every row).
    IF tombstone <> '{}'::jsonb THEN
        SELECT string_agg(format('%I', j.k), ', ' ORDER BY j.k),
               string_agg(format('hms_r.%I', j.k), ', ' ORDER BY j.k)
          INTO cols, vals
          FROM jsonb_object_keys(tombstone) AS j(k);
        EXECUTE format('UPDATE %s hms_t SET (%s) = (SELECT %s FROM jsonb_populate_record(NULL::%s, $1) hms_r) '
                       'WHERE NOT hms_t.deleted AND ($2 = 0 OR hms_t.version < $2)',
                       target, cols, vals, target)
            USING tombstone, ev.version;
    END IF;
    EXECUTE format('UPDATE %s SET version = $1, updated_at = $2, origin = $3, deleted = true '
                   'WHERE $1 = 0 OR version < $1', target)
        USING ev.version, ev.updatedat, ev.origin;
    RETURN 'applied';
END
$fn$;
