-- 008_consume_batch.sql -- hms_sync.consume_batch(): many events in one transaction, one bad
-- event never costing the others.
--
-- One transaction per event holds a subscriber to about a thousand events a
-- second: each pays a round trip, a commit (a WAL flush) and an ack.  A batch
-- pays them once.  The events are taken in the order given, each through
-- hms_sync.consume(), so the inbox dedupe and every apply function's rules
-- stay exactly as they are for one event; a batch that repeats an event (a
-- redelivery that arrived next to the first copy) records it once and
-- reports the second as a duplicate, because the transaction sees its own
-- inbox rows.
--
-- An event whose apply raises an error is reported, not raised: its row
-- carries the SQLSTATE and message and no outcome, and nothing of it is
-- kept.  The events around it are applied.  This is done without a savepoint
-- per event: each one that writes would take a subtransaction id, and past 64
-- of them in one transaction every other session's snapshots have to look
-- them up in pg_subtrans, which slows the whole database.  Instead the batch
-- runs in one savepoint; when an event fails, that savepoint is rolled back
-- and the batch runs again from the start without it.  A batch with k bad
-- events runs k + 1 times and never holds more than one open subtransaction.
--
-- Transient failures (serialization failure, deadlock, lost connection,
-- shutdown, out of resources) are raised as they are, so the whole
-- statement fails and the caller retries the batch: they are no fault of the
-- event, and retrying one alone would reorder it.
--
-- events is a JSON array of event objects.  One row per element, in order:
--   outcome   what hms_sync.consume() returned, NULL for a failed event;
--   sqlstate  the failed event's SQLSTATE, else NULL;
--   message   its error message, else NULL.
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
            IF v_state LIKE '08%' OR v_state LIKE '53%' OR v_state LIKE '57P%'
               OR v_state IN ('40001', '40P01') THEN
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

REVOKE EXECUTE ON FUNCTION hms_sync.consume_batch(text, regprocedure, jsonb) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hms_sync.consume_batch(text, regprocedure, jsonb) TO hms_sync_subscriber;
