-- 006_snapshot.sql -- snapshot events are applied as upserts under last-write-wins.
--
-- A snapshot event (type ...Snapshot.vN) carries a row as the connector read
-- it from the source table, with the row's own version, updated_at and
-- origin, like a Created event.  So it is an upsert, never a delete: it
-- applies when its tuple is greater than what the replica holds, and
-- otherwise it is 'stale' (a newer change, or a tombstone with a greater or
-- equal tuple, was applied first) or a 'duplicate' (the replica holds this
-- very version, e.g. from the change stream or an earlier snapshot).
--
-- A deleted row is never resurrected by a snapshot: the row the snapshot read
-- carries the version the delete later removed, so its tuple is at most the
-- tombstone's, and an equal tuple over a tombstone is 'stale'.  Against a
-- truncation watermark (005) a snapshot event is positioned by its lsn, the
-- commit LSN of the watermark its chunk was published at, which is later
-- than every change the read saw: a row read after a truncation applies, and
-- one read before it is stale.
--
-- Only the type check changes: lww_event now also takes Snapshot as a
-- non-delete.  Every apply function built on lww_event or lww_upsert (the
-- seed subscribers, and subscribers written after docs/subscribers.md)
-- applies snapshot events without a change of its own.

-- The LWW tuple of an event envelope and whether it is a delete, checked:
-- version a non-negative integer, updatedat an RFC 3339 time, origin a
-- string, type ending in Created.vN, Updated.vN, Snapshot.vN or Deleted.vN.
-- Anything else raises one clear error naming the event and the member, so
-- a malformed event that got past validation is rejected, never
-- half-applied.
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

    kind := substring(event ->> 'type' from '(Created|Updated|Snapshot|Deleted)\.v[0-9]+$');
    IF kind IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('hms_sync: event %s: unknown event type %s', ev_id,
                             coalesce((event -> 'type')::text, 'nothing'));
    END IF;
    deleted := kind = 'Deleted';
END
$fn$;
