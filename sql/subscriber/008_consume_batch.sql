-- 008_consume_batch.sql -- hms_sync.consume_batch(): many events in one transaction, one bad
-- event never costing the others.
--
-- One transaction per event holds a subscriber to about a thousand events a
-- second: each pays a round trip, a commit (a WAL flush) and an ack.  A batch
-- pays them once.  Every event keeps hms_sync.consume()'s rules: recorded in
-- the inbox and applied in the same transaction, applied at most once per
-- (subscriber, source, id), in the order given, so a batch that repeats an
-- event (a redelivery that arrived next to the first copy) applies the first
-- and reports the second as a duplicate.
--
-- The common case runs set-based: one INSERT records every event of the batch
-- in the inbox (ON CONFLICT DO NOTHING finds the duplicates), one statement
-- calls the apply function for each new event in order (planned once, not
-- once per event), and one UPDATE stores the outcomes.  This cuts the
-- inbox's share of a subscriber's time about tenfold.  When anything in it
-- fails (an apply that raises, a malformed member), it is rolled back and the
-- batch runs again event by event through hms_sync.consume(), which reports
-- which event failed and why.
--
-- An event whose apply raises an error is reported, not raised: its row
-- carries the SQLSTATE and message and no outcome, and nothing of it is
-- kept.  The events around it are applied.  This is done without a savepoint
-- per event: each one that writes would take a subtransaction id, and past 64
-- of them in one transaction every other session's snapshots have to look
-- them up in pg_subtrans, which slows the whole database.  Instead the
-- event-by-event pass runs in one savepoint; when an event fails, that
-- savepoint is rolled back and the pass runs again from the start without it.
-- A batch with k bad events runs k + 2 times and never holds more than one
-- open subtransaction.
--
-- Transient failures (serialization failure, deadlock, lost connection,
-- shutdown, out of resources) are raised as they are, so the whole
-- statement fails and the caller retries the batch: they are no fault of the
-- event, and retrying one alone would reorder it.
--
-- events is a JSON array of event objects.  One row per element, in order:
--   outcome   what the apply function returned (or 'duplicate'), NULL for a
--             failed event;
--   sqlstate  the failed event's SQLSTATE, else NULL;
--   message   its error message, else NULL.

-- Whether a SQLSTATE is a transient failure, as the consumer retries them.
CREATE OR REPLACE FUNCTION hms_sync.is_transient(state text)
    RETURNS boolean
    LANGUAGE sql
    IMMUTABLE PARALLEL SAFE
    SET search_path = pg_catalog, pg_temp
AS $fn$
    SELECT state LIKE '08%' OR state LIKE '53%' OR state LIKE '57P%' OR state IN ('40001', '40P01')
$fn$;

-- The set-based pass: the outcomes of every event, in order, or an error
-- (the caller's savepoint then undoes everything it did).
CREATE OR REPLACE FUNCTION hms_sync.consume_batch_set(subscriber text, apply regprocedure,
                                                      events jsonb)
    RETURNS text[]
    LANGUAGE plpgsql
    VOLATILE
AS $fn$
DECLARE
    n integer := jsonb_array_length(events);
    outcomes text[] := array_fill('duplicate'::text, ARRAY[n]);
    fresh bigint[];
    fn text;
    r record;
BEGIN
    -- The same checks as consume(): a malformed member or apply function
    -- raises, and the event-by-event pass reports it for its event.
    SELECT format('%I.%I', ns.nspname, p.proname) INTO fn
      FROM pg_catalog.pg_proc p
      JOIN pg_catalog.pg_namespace ns ON ns.oid = p.pronamespace
     WHERE p.oid = apply AND p.prokind = 'f' AND p.pronargs = 1
       AND p.proargtypes[0] = 'pg_catalog.jsonb'::pg_catalog.regtype
       AND p.prorettype = 'pg_catalog.text'::pg_catalog.regtype AND NOT p.proretset;
    IF fn IS NULL OR subscriber IS NULL OR subscriber = '' OR EXISTS (
        SELECT 1 FROM jsonb_array_elements(events) AS x (ev)
         WHERE jsonb_typeof(x.ev) IS DISTINCT FROM 'object'
            OR EXISTS (SELECT 1 FROM unnest(ARRAY['source', 'id', 'type', 'subject']) AS m (k)
                        WHERE jsonb_typeof(x.ev -> m.k) IS DISTINCT FROM 'string'
                           OR x.ev ->> m.k = '')) THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'hms_sync.consume_batch: a malformed event or apply function';
    END IF;

    -- The first copy of each (source, id) that is new to the inbox.
    WITH e AS (
        SELECT x.k, x.ev ->> 'source' AS s, x.ev ->> 'id' AS i, x.ev ->> 'type' AS t,
               x.ev ->> 'subject' AS subj
          FROM jsonb_array_elements(events) WITH ORDINALITY AS x (ev, k)),
    firsts AS (
        SELECT DISTINCT ON (e.s, e.i) e.k, e.s, e.i, e.t, e.subj FROM e ORDER BY e.s, e.i, e.k),
    ins AS (
        INSERT INTO hms_sync.inbox AS b (subscriber, source, id, type, subject, outcome)
        SELECT consume_batch_set.subscriber, f.s, f.i, f.t, f.subj, 'pending'
          FROM firsts f ORDER BY f.k
        ON CONFLICT DO NOTHING
        RETURNING b.source AS s, b.id AS i)
    SELECT coalesce(array_agg(f.k ORDER BY f.k), '{}') INTO fresh
      FROM firsts f JOIN ins USING (s, i);

    -- In array order: each call sees what the ones before it wrote.  The
    -- outcome is stored by key, one row at a time: joining the batch to the
    -- inbox would have the planner guess, and a guessed hash join reads the
    -- whole inbox for every batch.
    FOR r IN EXECUTE format('SELECT x.k, x.ev ->> ''source'' AS s, x.ev ->> ''id'' AS i, '
                            '%s(x.ev) AS o '
                            'FROM jsonb_array_elements($1) WITH ORDINALITY AS x (ev, k) '
                            'WHERE x.k = ANY ($2)', fn)
        USING events, fresh LOOP
        IF r.o IS NULL OR r.o = '' THEN
            RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
                MESSAGE = format('hms_sync.consume: %s returned no outcome', apply::text);
        END IF;
        outcomes[r.k] := r.o;
        UPDATE hms_sync.inbox AS b SET outcome = r.o
         WHERE b.subscriber = consume_batch_set.subscriber AND b.source = r.s AND b.id = r.i;
    END LOOP;
    RETURN outcomes;
END
$fn$;

CREATE OR REPLACE FUNCTION hms_sync.consume_batch(subscriber text, apply regprocedure, events jsonb)
    RETURNS TABLE (outcome text, sqlstate text, message text)
    LANGUAGE plpgsql
    VOLATILE
AS $fn$
DECLARE
    n integer;
    outcomes text[];
    states text[];
    messages text[];
    cur integer;
    v_state text;
    v_message text;
BEGIN
    IF jsonb_typeof(events) IS DISTINCT FROM 'array' THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('hms_sync.consume_batch: events must be a JSON array, got %s',
                             coalesce(jsonb_typeof(events), 'NULL'));
    END IF;
    n := jsonb_array_length(events);
    BEGIN
        outcomes := hms_sync.consume_batch_set(subscriber, apply, events);
    EXCEPTION WHEN OTHERS THEN
        GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE;
        IF hms_sync.is_transient(v_state) THEN
            RAISE;
        END IF;
        outcomes := NULL;
    END;
    IF outcomes IS NOT NULL THEN
        RETURN QUERY SELECT o.v, NULL::text, NULL::text
                       FROM unnest(outcomes) WITH ORDINALITY AS o (v, k) ORDER BY o.k;
        RETURN;
    END IF;

    -- Event by event, to find the ones that fail.
    outcomes := array_fill(NULL::text, ARRAY[n]);
    states := outcomes;
    messages := outcomes;
    LOOP
        BEGIN
            FOR i IN 1 .. n LOOP
                CONTINUE WHEN states[i] IS NOT NULL;
                cur := i;
                outcomes[i] := hms_sync.consume(consume_batch.subscriber, apply, events -> (i - 1));
            END LOOP;
            EXIT;
        EXCEPTION WHEN OTHERS THEN
            GET STACKED DIAGNOSTICS v_state = RETURNED_SQLSTATE, v_message = MESSAGE_TEXT;
            IF hms_sync.is_transient(v_state) THEN
                RAISE;
            END IF;
            -- Everything since the savepoint was rolled back: the events
            -- before cur run again on the next pass.
            outcomes := array_fill(NULL::text, ARRAY[n]);
            states[cur] := v_state;
            messages[cur] := v_message;
        END;
    END LOOP;
    RETURN QUERY
        SELECT o.v, s.v, m.v
          FROM unnest(outcomes) WITH ORDINALITY AS o (v, k)
          JOIN unnest(states) WITH ORDINALITY AS s (v, k) USING (k)
          JOIN unnest(messages) WITH ORDINALITY AS m (v, k) USING (k)
         ORDER BY k;
END
$fn$;

COMMENT ON FUNCTION hms_sync.consume_batch(text, regprocedure, jsonb) IS
    'hms-sync: consume() for each event of a JSON array in one transaction; a failing event is reported with its SQLSTATE, not applied';

REVOKE EXECUTE ON FUNCTION
    hms_sync.consume_batch(text, regprocedure, jsonb),
    hms_sync.consume_batch_set(text, regprocedure, jsonb)
    FROM PUBLIC;
GRANT EXECUTE ON FUNCTION
    hms_sync.consume_batch(text, regprocedure, jsonb),
    hms_sync.consume_batch_set(text, regprocedure, jsonb)
    TO hms_sync_subscriber;
