-- 009_static_seeds.sql -- the seed subscribers' row changes in static SQL.
--
-- hms_sync.lww_upsert serves any table, so it builds its statements as text
-- and has PostgreSQL parse and plan them for every event: about 180 us of
-- the server's time per event here, most of what a subscriber spent.  The
-- three seed subscribers each write one known table, so their row changes
-- are written out here as static statements, which PL/pgSQL plans once per
-- session.  The rules are lww_upsert's, unchanged:
--   - the event's row is converted as jsonb_populate_record converts it, and
--     a value that does not convert is reported with its column;
--   - when nothing is held for the subject, the row is inserted; otherwise it
--     replaces the held row only when hms_sync.lww_outcome says 'applied',
--     and then only the columns the event determines (an assignee, notes:
--     the external system's own columns are never touched);
--   - the outcome is 'applied', 'stale' or 'duplicate'.
-- One statement decides and writes: INSERT ... ON CONFLICT DO UPDATE ...
-- WHERE lww_outcome(...) = 'applied' locks the held row, compares under the
-- lock (READ COMMITTED re-reads the newest row version after waiting for a
-- concurrent writer), and writes only when the event wins.
--
-- lww_upsert stays as it was, for subscribers of your own; the truncation
-- rules in front of the seeds (005, 007) are unchanged.

-- The column a value of row_data does not convert for, as lww_upsert
-- reports it; returns quietly when every value converts (the caller then
-- re-raises its own error).  Only called after a conversion failed.
CREATE OR REPLACE FUNCTION hms_sync.lww_explain(target regclass, row_data jsonb, ev_id text)
    RETURNS void
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    k text;
    kv jsonb;
    msg text;
BEGIN
    FOR k, kv IN SELECT * FROM jsonb_each(row_data) ORDER BY 1 LOOP
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
END
$fn$;

-- The warehouse's row change: a faithful copy of the incident.
CREATE OR REPLACE FUNCTION hms_sync.apply_warehouse_change(event jsonb)
    RETURNS text
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    d jsonb := hms_sync.incident_data(event);
    ev record;
    full_row jsonb;
    r public.incident_facts;
    cur record;
BEGIN
    SELECT * INTO ev FROM hms_sync.lww_event(event);
    full_row := jsonb_build_object('incident_id', event -> 'subject',
                                   'occurred_at', d -> 'occurred_at',
                                   'region', d -> 'region',
                                   'severity', d -> 'severity',
                                   'status', d -> 'status',
                                   'summary', d -> 'summary',
                                   'reported_by', d -> 'reported_by',
                                   'version', ev.version, 'updated_at', ev.updatedat,
                                   'origin', ev.origin, 'deleted', ev.deleted);
    -- No write in this block, so it takes no subtransaction id.
    BEGIN
        r := jsonb_populate_record(NULL::public.incident_facts, full_row);
    EXCEPTION WHEN data_exception THEN
        PERFORM hms_sync.lww_explain('public.incident_facts', full_row, event ->> 'id');
        RAISE;
    END;
    INSERT INTO public.incident_facts AS t
        (incident_id, occurred_at, region, severity, status, summary, reported_by,
         version, updated_at, origin, deleted)
    VALUES (r.incident_id, r.occurred_at, r.region, r.severity, r.status, r.summary,
            r.reported_by, r.version, r.updated_at, r.origin, r.deleted)
    ON CONFLICT (incident_id) DO UPDATE
       SET occurred_at = excluded.occurred_at, region = excluded.region,
           severity = excluded.severity, status = excluded.status, summary = excluded.summary,
           reported_by = excluded.reported_by, version = excluded.version,
           updated_at = excluded.updated_at, origin = excluded.origin, deleted = excluded.deleted
     WHERE hms_sync.lww_outcome(excluded.version, excluded.updated_at, excluded.origin,
                                excluded.deleted, t.version, t.updated_at, t.origin,
                                t.deleted) = 'applied';
    IF FOUND THEN
        RETURN 'applied';
    END IF;
    -- The held row won; it is locked by the statement above.
    SELECT t.version, t.updated_at, t.origin, t.deleted INTO cur
      FROM public.incident_facts t WHERE t.incident_id = r.incident_id;
    RETURN hms_sync.lww_outcome(ev.version, ev.updatedat, ev.origin, ev.deleted,
                                cur.version, cur.updated_at, cur.origin, cur.deleted);
END
$fn$;

-- Scheduling's row change: the investigation task; assignee is never touched.
CREATE OR REPLACE FUNCTION hms_sync.apply_scheduling_change(event jsonb)
    RETURNS text
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    d jsonb := hms_sync.incident_data(event);
    ev record;
    full_row jsonb;
    r public.investigation_tasks;
    cur record;
BEGIN
    SELECT * INTO ev FROM hms_sync.lww_event(event);
    full_row := jsonb_build_object('incident_id', event -> 'subject',
                                   'region', d -> 'region',
                                   'severity', d -> 'severity',
                                   -- text of the JSON number, so no cast can fail here;
                                   -- a bad severity is reported by the severity column
                                   'priority', CASE d ->> 'severity'
                                                   WHEN '1' THEN 'urgent' WHEN '2' THEN 'high'
                                                   WHEN '3' THEN 'normal' ELSE 'low' END,
                                   'title', coalesce(nullif(d ->> 'summary', ''),
                                                     'Investigate incident ' || (event ->> 'subject')),
                                   'incident_status', d -> 'status',
                                   'status', CASE WHEN ev.deleted THEN 'cancelled' ELSE 'open' END,
                                   'version', ev.version, 'updated_at', ev.updatedat,
                                   'origin', ev.origin, 'deleted', ev.deleted);
    BEGIN
        r := jsonb_populate_record(NULL::public.investigation_tasks, full_row);
    EXCEPTION WHEN data_exception THEN
        PERFORM hms_sync.lww_explain('public.investigation_tasks', full_row, event ->> 'id');
        RAISE;
    END;
    INSERT INTO public.investigation_tasks AS t
        (incident_id, region, severity, priority, title, incident_status, status,
         version, updated_at, origin, deleted)
    VALUES (r.incident_id, r.region, r.severity, r.priority, r.title, r.incident_status,
            r.status, r.version, r.updated_at, r.origin, r.deleted)
    ON CONFLICT (incident_id) DO UPDATE
       SET region = excluded.region, severity = excluded.severity,
           priority = excluded.priority, title = excluded.title,
           incident_status = excluded.incident_status, status = excluded.status,
           version = excluded.version, updated_at = excluded.updated_at,
           origin = excluded.origin, deleted = excluded.deleted
     WHERE hms_sync.lww_outcome(excluded.version, excluded.updated_at, excluded.origin,
                                excluded.deleted, t.version, t.updated_at, t.origin,
                                t.deleted) = 'applied';
    IF FOUND THEN
        RETURN 'applied';
    END IF;
    SELECT t.version, t.updated_at, t.origin, t.deleted INTO cur
      FROM public.investigation_tasks t WHERE t.incident_id = r.incident_id;
    RETURN hms_sync.lww_outcome(ev.version, ev.updatedat, ev.origin, ev.deleted,
                                cur.version, cur.updated_at, cur.origin, cur.deleted);
END
$fn$;

-- Case management's row change: the case; notes are never touched.
CREATE OR REPLACE FUNCTION hms_sync.apply_casemgmt_change(event jsonb)
    RETURNS text
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    d jsonb := hms_sync.incident_data(event);
    ev record;
    full_row jsonb;
    r public.cases;
    cur record;
BEGIN
    SELECT * INTO ev FROM hms_sync.lww_event(event);
    full_row := jsonb_build_object('incident_id', event -> 'subject',
                                   'region', d -> 'region',
                                   'severity', d -> 'severity',
                                   'summary', d -> 'summary',
                                   'reported_by', d -> 'reported_by',
                                   'incident_status', d -> 'status',
                                   'state', CASE WHEN ev.deleted THEN 'closed' ELSE 'open' END,
                                   'opened_at', d -> 'occurred_at',
                                   'closed_at', CASE WHEN ev.deleted THEN event -> 'time' END,
                                   'version', ev.version, 'updated_at', ev.updatedat,
                                   'origin', ev.origin, 'deleted', ev.deleted);
    BEGIN
        r := jsonb_populate_record(NULL::public.cases, full_row);
    EXCEPTION WHEN data_exception THEN
        PERFORM hms_sync.lww_explain('public.cases', full_row, event ->> 'id');
        RAISE;
    END;
    INSERT INTO public.cases AS t
        (incident_id, region, severity, summary, reported_by, incident_status, state,
         opened_at, closed_at, version, updated_at, origin, deleted)
    VALUES (r.incident_id, r.region, r.severity, r.summary, r.reported_by, r.incident_status,
            r.state, r.opened_at, r.closed_at, r.version, r.updated_at, r.origin, r.deleted)
    ON CONFLICT (incident_id) DO UPDATE
       SET region = excluded.region, severity = excluded.severity,
           summary = excluded.summary, reported_by = excluded.reported_by,
           incident_status = excluded.incident_status, state = excluded.state,
           opened_at = excluded.opened_at, closed_at = excluded.closed_at,
           version = excluded.version, updated_at = excluded.updated_at,
           origin = excluded.origin, deleted = excluded.deleted
     WHERE hms_sync.lww_outcome(excluded.version, excluded.updated_at, excluded.origin,
                                excluded.deleted, t.version, t.updated_at, t.origin,
                                t.deleted) = 'applied';
    IF FOUND THEN
        RETURN 'applied';
    END IF;
    SELECT t.version, t.updated_at, t.origin, t.deleted INTO cur
      FROM public.cases t WHERE t.incident_id = r.incident_id;
    RETURN hms_sync.lww_outcome(ev.version, ev.updatedat, ev.origin, ev.deleted,
                                cur.version, cur.updated_at, cur.origin, cur.deleted);
END
$fn$;

-- Whether a row event was committed before the newest truncation of target
-- from its source: lww_truncation's rule for row events, in static SQL.  The
-- caller takes ROW EXCLUSIVE on target first (static, so each seed names its
-- table), so that a truncation being applied concurrently commits before the
-- watermark is read.
CREATE OR REPLACE FUNCTION hms_sync.truncated_after(target regclass, event jsonb)
    RETURNS boolean
    LANGUAGE plpgsql
    STABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    pos record;
BEGIN
    SELECT * INTO pos FROM hms_sync.event_position(event);
    RETURN EXISTS (SELECT 1 FROM hms_sync.truncations t
                    WHERE t.target = truncated_after.target AND t.source = event ->> 'source'
                      AND (pos.lsn, pos.ordinal) < (t.lsn, t.ordinal));
END
$fn$;

-- The seeds themselves: a truncation goes through hms_sync.lww_truncation as
-- before; a row change older than the table's truncation is stale; any other
-- is applied by the static row change above.
CREATE OR REPLACE FUNCTION hms_sync.apply_warehouse(event jsonb)
    RETURNS text
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF hms_sync.is_truncation(event) THEN
        RETURN hms_sync.lww_truncation('public.incident_facts', event, '{}');
    END IF;
    LOCK TABLE public.incident_facts IN ROW EXCLUSIVE MODE;
    IF hms_sync.truncated_after('public.incident_facts', event) THEN
        RETURN 'stale';
    END IF;
    RETURN hms_sync.apply_warehouse_change(event);
END
$fn$;

CREATE OR REPLACE FUNCTION hms_sync.apply_scheduling(event jsonb)
    RETURNS text
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF hms_sync.is_truncation(event) THEN
        RETURN hms_sync.lww_truncation('public.investigation_tasks', event,
                                       '{"status": "cancelled"}');
    END IF;
    LOCK TABLE public.investigation_tasks IN ROW EXCLUSIVE MODE;
    IF hms_sync.truncated_after('public.investigation_tasks', event) THEN
        RETURN 'stale';
    END IF;
    RETURN hms_sync.apply_scheduling_change(event);
END
$fn$;

CREATE OR REPLACE FUNCTION hms_sync.apply_casemgmt(event jsonb)
    RETURNS text
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF hms_sync.is_truncation(event) THEN
        RETURN hms_sync.lww_truncation('public.cases', event,
                                       jsonb_build_object('state', 'closed',
                                                          'closed_at', event -> 'time'));
    END IF;
    LOCK TABLE public.cases IN ROW EXCLUSIVE MODE;
    IF hms_sync.truncated_after('public.cases', event) THEN
        RETURN 'stale';
    END IF;
    RETURN hms_sync.apply_casemgmt_change(event);
END
$fn$;
