-- 003_seed_subscribers.sql -- the three seed subscribers: scheduling, case management, reporting warehouse.
--
-- Each is an apply function f(event jsonb) RETURNS text for
-- `hms-sync consume --apply`, keeping one row per incident in a replica table
-- of its own through hms_sync.lww_upsert (002), so each converges on the
-- source's last write whatever the delivery order, and a deleted incident
-- stays deleted (a tombstone row with deleted = true).
--
-- The tables hold only what the event determines, plus columns the external
-- system owns (an assignee, notes) that the events never touch.  Nothing here
-- reads the clock, so two replicas fed the same events hold the same rows.

-- The data of an incident event, checked: a JSON object whose id is the
-- event's subject.  The typed columns are checked by lww_upsert on
-- conversion.
CREATE OR REPLACE FUNCTION hms_sync.incident_data(event jsonb)
    RETURNS jsonb
    LANGUAGE plpgsql
    IMMUTABLE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    ev_id text := coalesce(event ->> 'id', '(no id)');
    d jsonb := event -> 'data';
BEGIN
    IF jsonb_typeof(event -> 'subject') IS DISTINCT FROM 'string' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('hms_sync: event %s: "subject" must be a string, got %s', ev_id,
                             coalesce((event -> 'subject')::text, 'nothing'));
    END IF;
    IF jsonb_typeof(d) IS DISTINCT FROM 'object' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('hms_sync: event %s: "data" must be a JSON object, got %s', ev_id,
                             coalesce(jsonb_typeof(d), 'nothing'));
    END IF;
    IF (d -> 'id') IS DISTINCT FROM (event -> 'subject') THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('hms_sync: event %s: data.id (%s) is not the subject (%s)', ev_id,
                             coalesce((d -> 'id')::text, 'missing'), (event -> 'subject')::text);
    END IF;
    RETURN d;
END
$fn$;

-- Reporting warehouse: a faithful copy of every incident, deleted ones kept
-- as tombstones so dashboards can count them.
CREATE TABLE IF NOT EXISTS public.incident_facts (
    incident_id uuid PRIMARY KEY,
    occurred_at timestamptz NOT NULL,
    region text NOT NULL,
    severity smallint NOT NULL,
    status text NOT NULL,
    summary text,
    reported_by text,
    version bigint NOT NULL,
    updated_at timestamptz NOT NULL,
    origin text NOT NULL,
    deleted boolean NOT NULL DEFAULT false
);

CREATE OR REPLACE FUNCTION hms_sync.apply_warehouse(event jsonb)
    RETURNS text
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    d jsonb := hms_sync.incident_data(event);
BEGIN
    RETURN hms_sync.lww_upsert('public.incident_facts', 'incident_id', event,
        jsonb_build_object('incident_id', event -> 'subject',
                           'occurred_at', d -> 'occurred_at',
                           'region', d -> 'region',
                           'severity', d -> 'severity',
                           'status', d -> 'status',
                           'summary', d -> 'summary',
                           'reported_by', d -> 'reported_by'));
END
$fn$;

-- Scheduling: one investigation task per incident, kept in step with the
-- incident, cancelled (and tombstoned) when the incident is deleted.  The
-- scheduling system owns assignee; events never change it.  Severity 1 is
-- the most urgent.
CREATE TABLE IF NOT EXISTS public.investigation_tasks (
    incident_id uuid PRIMARY KEY,
    region text NOT NULL,
    severity smallint NOT NULL,
    priority text NOT NULL CHECK (priority IN ('urgent', 'high', 'normal', 'low')),
    title text NOT NULL,
    incident_status text NOT NULL,
    status text NOT NULL CHECK (status IN ('open', 'cancelled')),
    assignee text,
    version bigint NOT NULL,
    updated_at timestamptz NOT NULL,
    origin text NOT NULL,
    deleted boolean NOT NULL DEFAULT false
);

CREATE OR REPLACE FUNCTION hms_sync.apply_scheduling(event jsonb)
    RETURNS text
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    d jsonb := hms_sync.incident_data(event);
    ev record;
BEGIN
    SELECT * INTO ev FROM hms_sync.lww_event(event);
    RETURN hms_sync.lww_upsert('public.investigation_tasks', 'incident_id', event,
        jsonb_build_object('incident_id', event -> 'subject',
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
                           'status', CASE WHEN ev.deleted THEN 'cancelled' ELSE 'open' END));
END
$fn$;

-- Case management: one case per incident, kept current; closed (and
-- tombstoned) when the incident is deleted, at the delete's commit time.
-- The case-management system owns notes.
CREATE TABLE IF NOT EXISTS public.cases (
    incident_id uuid PRIMARY KEY,
    region text NOT NULL,
    severity smallint NOT NULL,
    summary text,
    reported_by text,
    incident_status text NOT NULL,
    state text NOT NULL CHECK (state IN ('open', 'closed')),
    opened_at timestamptz NOT NULL,
    closed_at timestamptz,
    notes text,
    version bigint NOT NULL,
    updated_at timestamptz NOT NULL,
    origin text NOT NULL,
    deleted boolean NOT NULL DEFAULT false
);

CREATE OR REPLACE FUNCTION hms_sync.apply_casemgmt(event jsonb)
    RETURNS text
    LANGUAGE plpgsql
    VOLATILE
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    d jsonb := hms_sync.incident_data(event);
    ev record;
BEGIN
    SELECT * INTO ev FROM hms_sync.lww_event(event);
    RETURN hms_sync.lww_upsert('public.cases', 'incident_id', event,
        jsonb_build_object('incident_id', event -> 'subject',
                           'region', d -> 'region',
                           'severity', d -> 'severity',
                           'summary', d -> 'summary',
                           'reported_by', d -> 'reported_by',
                           'incident_status', d -> 'status',
                           'state', CASE WHEN ev.deleted THEN 'closed' ELSE 'open' END,
                           'opened_at', d -> 'occurred_at',
                           'closed_at', CASE WHEN ev.deleted THEN event -> 'time' END));
END
$fn$;
