-- 002_lww.sql -- last-write-wins in SQL: the order, the outcome rule, and a generic upsert with tombstones.
--
-- The order (DESIGN.md) of two events of one subject: higher version wins; on
-- a tie the later updatedat; on a tie the greater origin, compared bytewise
-- (collation "C") so every database, whatever its default collation, and
-- src/core/lww.c agree.
--
-- The outcome of an incoming event over what a replica holds for its subject
-- (nothing, a live row, or a tombstone):
--   nothing held                          -> applied
--   incoming tuple greater                -> applied (a live row or a tombstone is replaced)
--   incoming tuple smaller                -> stale
--   equal tuple, delete over a live row   -> applied (a delete carries the version of the
--                                            row it removed, so it must win that tie)
--   equal tuple, delete over a tombstone  -> duplicate
--   equal tuple, update over a live row   -> duplicate
--   equal tuple, update over a tombstone  -> stale (a late update cannot resurrect it)
-- Equivalently: order events by (tuple, is_delete) with false < true; an event
-- applies only when strictly greater than what is held.  That is a total order,
-- so the final state is the greatest event whatever the delivery order.
--
-- Writing a subscriber for a table of your own: give it a unique key column and
-- the four columns version bigint, updated_at timestamptz, origin text and
-- deleted boolean (the tuple and the tombstone flag of the event it holds), and
-- call hms_sync.lww_upsert() from your apply function; see docs/subscribers.md.

-- -1, 0 or 1 as tuple a sorts before, equal to, or after tuple b.  NULL when
-- any argument is NULL.
CREATE OR REPLACE FUNCTION hms_sync.lww_compare(a_version bigint, a_updatedat timestamptz,
                                                a_origin text, b_version bigint,
                                                b_updatedat timestamptz, b_origin text)
    RETURNS integer
    LANGUAGE sql
    IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT CASE
        WHEN a_version IS NULL OR a_updatedat IS NULL OR a_origin IS NULL
          OR b_version IS NULL OR b_updatedat IS NULL OR b_origin IS NULL THEN NULL
        WHEN a_version > b_version THEN 1
        WHEN a_version < b_version THEN -1
        WHEN a_updatedat > b_updatedat THEN 1
        WHEN a_updatedat < b_updatedat THEN -1
        WHEN a_origin COLLATE "C" > b_origin COLLATE "C" THEN 1
        WHEN a_origin COLLATE "C" < b_origin COLLATE "C" THEN -1
        ELSE 0
    END
$fn$;

-- The outcome ('applied', 'stale' or 'duplicate') of an incoming event
-- (in_*, in_deleted true for a delete) over the state held for its subject
-- (cur_*; cur_version NULL means nothing is held, cur_deleted true a
-- tombstone).  Pure: it decides, it changes nothing.  The incoming tuple must
-- be complete.
CREATE OR REPLACE FUNCTION hms_sync.lww_outcome(in_version bigint, in_updatedat timestamptz,
                                                in_origin text, in_deleted boolean,
                                                cur_version bigint, cur_updatedat timestamptz,
                                                cur_origin text, cur_deleted boolean)
    RETURNS text
    LANGUAGE plpgsql
    IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    c integer;
BEGIN
    IF in_version IS NULL OR in_updatedat IS NULL OR in_origin IS NULL OR in_deleted IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'hms_sync.lww_outcome: the incoming version, updatedat, origin and deleted must not be NULL';
    END IF;
    IF cur_version IS NULL THEN
        RETURN 'applied';
    END IF;
    IF cur_updatedat IS NULL OR cur_origin IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'hms_sync.lww_outcome: the held row has a version but no updated_at or origin';
    END IF;
    c := hms_sync.lww_compare(in_version, in_updatedat, in_origin,
                              cur_version, cur_updatedat, cur_origin);
    IF c > 0 THEN
        RETURN 'applied';
    ELSIF c < 0 THEN
        RETURN 'stale';
    END IF;
    cur_deleted := coalesce(cur_deleted, false);
    IF in_deleted AND NOT cur_deleted THEN
        RETURN 'applied';
    ELSIF in_deleted = cur_deleted THEN
        RETURN 'duplicate';
    END IF;
    RETURN 'stale';
END
$fn$;

-- The LWW tuple of an event envelope and whether it is a delete, checked:
-- version a non-negative integer, updatedat an RFC 3339 time, origin a
-- string, type ending in Created.vN, Updated.vN or Deleted.vN.  Anything
-- else raises one clear error naming the event and the member, so a
-- malformed event that got past validation is rejected, never half-applied.
CREATE OR REPLACE FUNCTION hms_sync.lww_event(event jsonb, OUT version bigint,
                                              OUT updatedat timestamptz, OUT origin text,
                                              OUT deleted boolean)
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    ev_id text := coalesce(event ->> 'id', '(no id)');
    v jsonb;
    n numeric;
    kind text;
BEGIN
    IF jsonb_typeof(event) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('hms_sync: the event must be a JSON object, got %s',
                             coalesce(jsonb_typeof(event), 'NULL'));
    END IF;

    v := event -> 'version';
    IF jsonb_typeof(v) = 'number' THEN
        n := v::text::numeric;
    END IF;
    IF n IS NULL OR n <> trunc(n) OR n < 0 OR n > 9223372036854775807 THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('hms_sync: event %s: "version" must be a non-negative integer, got %s',
                             ev_id, coalesce(v::text, 'nothing'));
    END IF;
    version := n::bigint;

    -- The contract's form is UTC with six fraction digits and Z; any RFC 3339
    -- time is taken, and always with its own offset, so the session's
    -- TimeZone never changes what it means.
    v := event -> 'updatedat';
    IF jsonb_typeof(v) IS DISTINCT FROM 'string'
       OR (v #>> '{}') !~ '^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([Zz]|[+-]\d{2}:\d{2})$' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('hms_sync: event %s: "updatedat" must be an RFC 3339 time with microseconds at most, got %s',
                             ev_id, coalesce(v::text, 'nothing'));
    END IF;
    updatedat := (v #>> '{}')::timestamptz;

    v := event -> 'origin';
    IF jsonb_typeof(v) IS DISTINCT FROM 'string' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('hms_sync: event %s: "origin" must be a string, got %s', ev_id,
                             coalesce(v::text, 'nothing'));
    END IF;
    origin := v #>> '{}';

    kind := substring(event ->> 'type' from '(Created|Updated|Deleted)\.v[0-9]+$');
    IF kind IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('hms_sync: event %s: unknown event type %s', ev_id,
                             coalesce((event -> 'type')::text, 'nothing'));
    END IF;
    deleted := kind = 'Deleted';
END
$fn$;

-- hms_sync.lww_upsert(target, key_column, event, row_data): the generic
-- last-write-wins upsert with tombstones, for any table shaped like
-- public.incident_facts.
--
--   target      the replica table.  It needs a unique index on key_column
--               and the columns version bigint, updated_at timestamptz,
--               origin text and deleted boolean.
--   key_column  the column that identifies the subject (usually the
--               event's subject as a uuid).
--   event       the whole event: its version, updatedat, origin and type
--               (hms_sync.lww_event) decide, and are written to version,
--               updated_at, origin and deleted.  They override any keys of
--               those names in row_data.
--   row_data    a JSON object, column name -> value, of the replica columns
--               to write; it must hold key_column.  Values are converted to
--               the columns' types as jsonb_populate_record does.  Columns it
--               does not name are never touched by an update (so the
--               subscriber's own columns, e.g. an assignee, survive) and take
--               their defaults on insert.  For a delete pass what the
--               tombstone row should hold (e.g. status 'cancelled').
--
-- Returns 'applied' (the row was inserted or replaced), 'stale' or
-- 'duplicate' (nothing changed), per hms_sync.lww_outcome.  Rows are never
-- deleted: a delete leaves the row with deleted = true as the tombstone.
--
-- Concurrency: the held state is read with SELECT ... FOR UPDATE, so two
-- sessions applying events of one subject at once take turns on the row and
-- the second compares against what the first committed (READ COMMITTED
-- re-reads the newest row version after the wait).  When no row exists yet,
-- INSERT ... ON CONFLICT DO NOTHING decides which session creates it; the
-- loser, after waiting for the winner's commit, loops and compares under the
-- row lock.  Under REPEATABLE READ or SERIALIZABLE the loser gets a
-- serialization failure instead, which callers retry.
--
-- Errors: a row_data key that is not a column of target, a value that does
-- not convert to its column's type (named in the message), a missing key, a
-- malformed envelope (lww_event).  All raise; nothing is written.
CREATE OR REPLACE FUNCTION hms_sync.lww_upsert(target regclass, key_column text, event jsonb,
                                               row_data jsonb)
    RETURNS text
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    ev record;
    ev_id text := coalesce(event ->> 'id', '(no id)');
    full_row jsonb;
    bad text;
    cols text;
    vals text;
    set_cols text;
    set_vals text;
    cur record;
    outcome text;
    n bigint;
    k text;
    kv jsonb;
    msg text;
BEGIN
    IF target IS NULL OR key_column IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'hms_sync.lww_upsert: target and key_column must not be NULL';
    END IF;
    SELECT * INTO ev FROM hms_sync.lww_event(event);
    IF jsonb_typeof(row_data) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('hms_sync.lww_upsert: event %s: the row for %s must be a JSON object',
                             ev_id, target);
    END IF;
    IF coalesce(jsonb_typeof(row_data -> key_column), 'null') = 'null' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('hms_sync.lww_upsert: event %s: no value for the key column %s of %s',
                             ev_id, key_column, target);
    END IF;
    full_row := row_data || jsonb_build_object('version', ev.version, 'updated_at', ev.updatedat,
                                               'origin', ev.origin, 'deleted', ev.deleted);

    SELECT j.k INTO bad
      FROM jsonb_object_keys(full_row) AS j(k)
     WHERE NOT EXISTS (SELECT 1 FROM pg_attribute a
                        WHERE a.attrelid = target AND a.attname = j.k
                          AND a.attnum > 0 AND NOT a.attisdropped)
     ORDER BY j.k
     LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'undefined_column',
            MESSAGE = format('hms_sync.lww_upsert: %s has no column %s', target, bad);
    END IF;
    SELECT string_agg(format('%I', j.k), ', ' ORDER BY j.k),
           string_agg(format('hms_r.%I', j.k), ', ' ORDER BY j.k),
           string_agg(format('%I', j.k), ', ' ORDER BY j.k) FILTER (WHERE j.k <> key_column),
           string_agg(format('hms_r.%I', j.k), ', ' ORDER BY j.k) FILTER (WHERE j.k <> key_column)
      INTO cols, vals, set_cols, set_vals
      FROM jsonb_object_keys(full_row) AS j(k);

    -- Convert once up front so that a bad value is reported with its column
    -- (jsonb_populate_record's own message does not name it).
    BEGIN
        EXECUTE format('SELECT 1 FROM jsonb_populate_record(NULL::%s, $1)', target) USING full_row;
    EXCEPTION WHEN data_exception THEN
        FOR k, kv IN SELECT * FROM jsonb_each(full_row) ORDER BY 1 LOOP
            BEGIN
                EXECUTE format('SELECT 1 FROM jsonb_populate_record(NULL::%s, $1)', target)
                    USING jsonb_build_object(k, kv);
            EXCEPTION WHEN data_exception THEN
                GET STACKED DIAGNOSTICS msg = MESSAGE_TEXT;
                RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                    MESSAGE = format('hms_sync.lww_upsert: event %s: column %s of %s: %s (value %s)',
                                     ev_id, k, target, msg, left(kv::text, 80));
            END;
        END LOOP;
        RAISE;
    END;

    -- Three rounds are plenty: a round ends without an answer only when our
    -- INSERT lost to a concurrent one, after which the row exists; rows are
    -- never deleted by the helper.
    FOR attempt IN 1..3 LOOP
        EXECUTE format('SELECT hms_t.version, hms_t.updated_at, hms_t.origin, hms_t.deleted '
                       'FROM %s hms_t WHERE hms_t.%I = (SELECT hms_r.%I FROM jsonb_populate_record(NULL::%s, $1) hms_r) '
                       'FOR UPDATE OF hms_t',
                       target, key_column, key_column, target)
            INTO cur USING full_row;
        GET DIAGNOSTICS n = ROW_COUNT;
        IF n > 0 THEN
            outcome := hms_sync.lww_outcome(ev.version, ev.updatedat, ev.origin, ev.deleted,
                                            cur.version, cur.updated_at, cur.origin, cur.deleted);
            IF outcome = 'applied' THEN
                EXECUTE format('UPDATE %s hms_t SET (%s) = ROW(%s) '
                               'FROM jsonb_populate_record(NULL::%s, $1) hms_r '
                               'WHERE hms_t.%I = hms_r.%I',
                               target, set_cols, set_vals, target, key_column, key_column)
                    USING full_row;
            END IF;
            RETURN outcome;
        END IF;
        EXECUTE format('INSERT INTO %s (%s) SELECT %s FROM jsonb_populate_record(NULL::%s, $1) hms_r '
                       'ON CONFLICT (%I) DO NOTHING',
                       target, cols, vals, target, key_column)
            USING full_row;
        GET DIAGNOSTICS n = ROW_COUNT;
        IF n > 0 THEN
            RETURN 'applied';
        END IF;
    END LOOP;
    -- Someone deleted the row between our lost INSERT and the re-read:
    -- nothing was decided, so let the caller retry the whole event.
    RAISE EXCEPTION USING ERRCODE = 'serialization_failure',
        MESSAGE = format('hms_sync.lww_upsert: event %s: the row of %s keeps disappearing; retry',
                         ev_id, target);
END
$fn$;
