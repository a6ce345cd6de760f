-- 011_slot_fence.sql -- a slot recreated after a failover starts past every event already published.
--
-- An event's id is its transaction's commit LSN and ordinal, and subscribers
-- keep one inbox row per (source, id).  After an asynchronous standby is
-- promoted, its WAL goes on from where it stopped replaying, which can be
-- below the positions the connector already published from the old primary
-- (transactions the standby never received).  A slot created there at once
-- would give new transactions ids that subscribers already hold, and they
-- would drop them as duplicates.
--
-- With on_slot_loss = resnapshot the connector calls hms_sync.fence_wal with
-- the greatest position it knows it published before it creates the new
-- slot.  The function ends WAL segments (a small non-transactional logical
-- message first, so that each switch has something to end) until the
-- server's insert position is past that position; each switch moves to the
-- next segment boundary, so a fence of n segments costs n switches.  It
-- refuses, before switching anything, a fence more than 1,024 segments away
-- (16 GiB with the default segment size): a position that far ahead is not
-- this server's past, and each switch may cost a new segment file.
--
-- SECURITY DEFINER: pg_switch_wal is for superusers unless granted; the
-- connector's role may call only this one bounded use of it.
CREATE OR REPLACE FUNCTION hms_sync.fence_wal(past pg_lsn)
    RETURNS pg_lsn
    LANGUAGE plpgsql
    VOLATILE
    SECURITY DEFINER
    SET search_path = pg_catalog, pg_temp
AS $fn$
DECLARE
    segment numeric := pg_size_bytes(current_setting('wal_segment_size'));
BEGIN
    IF past IS NULL THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = 'hms_sync.fence_wal: past must not be NULL';
    END IF;
    IF pg_is_in_recovery() THEN
        RAISE EXCEPTION USING ERRCODE = 'read_only_sql_transaction',
            MESSAGE = 'hms_sync.fence_wal: the server is a standby; fence the primary';
    END IF;
    IF past - pg_current_wal_insert_lsn() > 1024 * segment THEN
        RAISE EXCEPTION USING ERRCODE = 'invalid_parameter_value',
            MESSAGE = format('hms_sync.fence_wal: %s is more than 1024 WAL segments past this '
                             'server''s position %s', past, pg_current_wal_insert_lsn());
    END IF;
    WHILE pg_current_wal_insert_lsn() <= past LOOP
        PERFORM pg_logical_emit_message(false, 'hms_sync.fence', past::text);
        PERFORM pg_switch_wal();
    END LOOP;
    RETURN pg_current_wal_insert_lsn();
END
$fn$;

REVOKE ALL ON FUNCTION hms_sync.fence_wal(pg_lsn) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION hms_sync.fence_wal(pg_lsn) TO hms_sync;
