-- 004_progress.sql -- where the connector reports how far it has confirmed.
--
-- The slot itself records only LSNs; "how many seconds behind" needs the
-- commit time of the last transaction the broker confirmed.  The connector
-- upserts one row per slot, at most about once a second, from a normal
-- (non-replication) connection, and `hms-sync status` reads it.  It is not
-- the source of truth for resuming: the slot's confirmed_flush_lsn is.
CREATE TABLE IF NOT EXISTS hms_sync.slot_progress (
    slot_name text PRIMARY KEY,
    confirmed_lsn pg_lsn NOT NULL,
    last_commit_lsn pg_lsn,
    last_commit_time timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now()
);

GRANT SELECT, INSERT, UPDATE ON hms_sync.slot_progress TO hms_sync;
