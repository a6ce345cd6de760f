-- 008_snapshots.sql -- the queue of snapshot requests and their progress.
--
-- A snapshot publishes rows that already exist (the initial snapshot of a
-- new slot, or a backfill an operator asks for with `hms-sync snapshot`).
-- The request is a row here rather than a message to the running connector
-- so that it survives restarts of either side, and so that its progress can
-- be kept in the same database as the rows it reads: the connector records
-- each chunk only once the broker has confirmed it (last_key, rows_done), and
-- after a kill -9 it resumes after last_key.
--
-- Who writes what:
--   `hms-sync snapshot`   inserts a request (state pending); sets state
--                         cancelled on --cancel;
--   `hms-sync run`        inserts the initial request when it creates its
--                         slot (initial = true); moves a request of its own
--                         slot through running to done or failed, filling
--                         rows_total, rows_done, last_key, chunks_done;
--   `hms-sync status`     reads.
-- A cancelled request is left alone by the connector: it stops at its next
-- chunk.  Rows are never deleted by hms-sync; an administrator may delete
-- finished ones.
CREATE TABLE IF NOT EXISTS hms_sync.snapshots (
    -- Sortable by time, readable in a terminal, and unique enough: two
    -- requests in the same second differ in the random suffix.
    id text PRIMARY KEY
        DEFAULT ('snap-' || to_char(now() AT TIME ZONE 'utc', 'YYYYMMDD"T"HH24MISS') || '-'
                 || substr(md5(random()::text), 1, 6)),
    slot name NOT NULL,          -- served by the connector of this replication slot
    where_sql text,              -- NULL: every row; else a boolean SQL expression on the row
    queue text,                  -- NULL: the exchange, like every event; else this one queue
    state text NOT NULL DEFAULT 'pending'
        CHECK (state IN ('pending', 'running', 'done', 'cancelled', 'failed')),
    rows_total bigint,           -- the rows matching when the connector started
    rows_done bigint NOT NULL DEFAULT 0 CHECK (rows_done >= 0),
    last_key text,               -- greatest key of a chunk the broker confirmed
    chunks_done bigint NOT NULL DEFAULT 0 CHECK (chunks_done >= 0),
    requested_at timestamptz NOT NULL DEFAULT now(),
    started_at timestamptz,
    finished_at timestamptz,
    updated_at timestamptz NOT NULL DEFAULT now(),
    error text,                  -- why it failed (state failed)
    initial boolean NOT NULL DEFAULT false,
    -- An empty condition or queue name would mean something else to each
    -- reader; say NULL instead.
    CHECK (where_sql IS NULL OR where_sql ~ '\S'),
    CHECK (queue IS NULL OR octet_length(queue) BETWEEN 1 AND 255)
);

COMMENT ON TABLE hms_sync.snapshots IS
    'hms-sync: snapshot requests (hms-sync snapshot, and the initial snapshot of a new slot) and their progress';

-- The connector looks for the oldest pending or running request of its slot.
CREATE INDEX IF NOT EXISTS snapshots_slot_state ON hms_sync.snapshots (slot, state);

-- A slot has at most one initial snapshot under way, even when two
-- connectors race to create it.
CREATE UNIQUE INDEX IF NOT EXISTS snapshots_one_initial ON hms_sync.snapshots (slot)
    WHERE initial AND state IN ('pending', 'running');

-- A connector that LISTENs on hms_sync_snapshot learns of a new request, or
-- of a cancelled one, at once instead of at its next look; the payload is
-- the slot.  Delivered on commit, like the row itself.
CREATE OR REPLACE FUNCTION hms_sync.snapshots_notify()
    RETURNS trigger
    LANGUAGE plpgsql
    SET search_path = pg_catalog, pg_temp
AS $fn$
BEGIN
    IF TG_OP = 'INSERT' OR (NEW.state = 'cancelled' AND OLD.state IS DISTINCT FROM 'cancelled') THEN
        PERFORM pg_notify('hms_sync_snapshot', NEW.slot::text);
    END IF;
    RETURN NULL;
END
$fn$;

DROP TRIGGER IF EXISTS snapshots_notify ON hms_sync.snapshots;
CREATE TRIGGER snapshots_notify
    AFTER INSERT OR UPDATE OF state ON hms_sync.snapshots
    FOR EACH ROW EXECUTE FUNCTION hms_sync.snapshots_notify();

GRANT SELECT, INSERT, UPDATE ON hms_sync.snapshots TO hms_sync;
