-- 010_snapshot_version_bound.sql -- a snapshot reads only rows written before it started.
--
-- Every INSERT and UPDATE of the captured table draws its version from one
-- sequence (005), and a transaction that commits after a snapshot starts
-- commits after the slot's start too, so its change event is in the stream
-- that every subscriber reads.  A row whose version is greater than every
-- version the snapshot could see when it started is therefore already on
-- its way as a change: reading it again only repeats it.  Without this
-- bound a snapshot of a table taking random-keyed inserts (the uuid key)
-- reads every insert that lands ahead of its position, and on a busy table
-- it ran for several times as long as the table's size needed.
--
-- The connector fills version_bound when it starts a request: the greatest
-- version among the rows the request matches then (NULL: none matched).
-- Chunks read only rows at or below it.  A request started before this
-- migration gets its bound when the connector next starts it.
ALTER TABLE hms_sync.snapshots ADD COLUMN IF NOT EXISTS version_bound bigint;

COMMENT ON COLUMN hms_sync.snapshots.version_bound IS
    'hms-sync: greatest row version the snapshot reads (rows written later reach subscribers as changes)';
