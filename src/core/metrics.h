/* metrics.h -- the connector's figures and their Prometheus text rendering.
 *
 * Pure: the event loop fills an hms_metrics_t as it goes; the HTTP side
 * renders a copy.  hms_metrics_t holds no pointers except the type names,
 * which point to strings that live as long as the process (the encoder's
 * type names), so a struct copy is a consistent snapshot. */
#ifndef HMS_CORE_METRICS_H
#define HMS_CORE_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/reject.h"
#include "core/status.h"

#define HMS_METRICS_MAX_TYPES 8
/* "schema.table": two identifiers of at most 63 bytes and a dot. */
#define HMS_METRICS_TABLE_MAX 128
/* A host name of at most 253 bytes, a colon and a port. */
#define HMS_METRICS_NODE_MAX 264

typedef struct {
    /* Events published per CloudEvents type (first publishes and retries). */
    const char *type_name[HMS_METRICS_MAX_TYPES];
    uint64_t published[HMS_METRICS_MAX_TYPES];
    uint64_t confirms;
    uint64_t nacks;
    uint64_t returns;
    uint64_t reconnects_pg;
    uint64_t reconnects_amqp;
    uint64_t channel_reopens;  /* republish rounds started on a new channel */
    uint64_t slot_recreations; /* slots made again after a loss (on_slot_loss = resnapshot) */
    /* "host:port" of the RabbitMQ node in use; "" while disconnected. */
    char amqp_node[HMS_METRICS_NODE_MAX];
    uint64_t inflight;            /* published, awaiting the broker's verdict */
    uint64_t lag_bytes;           /* server's WAL end - confirmed flush position */
    double lag_seconds;           /* now - commit time of the newest confirmed tx, while pending */
    uint64_t confirmed_flush_lsn; /* what the slot was last told */
    double last_feedback_unix;    /* seconds since the epoch of the last standby status; 0: never */
    bool pg_up;
    bool amqp_up;
    bool streaming;
    bool standby; /* waiting for another process to let go of the slot */
    /* The captured table ("schema.table"; "" until a session has checked it)
     * and its replica identity as pg_class.relreplident spells it, as the
     * session's start or the newest Relation message reported it.  Anything
     * but 'f' (FULL) makes the connector not ready: a DELETE would then
     * carry only its key, and no valid event can be made from that. */
    char identity_table[HMS_METRICS_TABLE_MAX];
    char identity;
    /* The snapshot being served ("" when none): rows confirmed and recorded,
     * and rows to read (-1 while unknown). */
    char snapshot_id[64];
    int64_t snapshot_rows_done;
    int64_t snapshot_rows_total;
    uint64_t snapshot_rows_published;  /* snapshot events queued, all snapshots */
    uint64_t snapshot_rows_superseded; /* rows read but newer in the stream */
    /* Changes published as rejections instead of events, by reason. */
    uint64_t rejected[HMS_REJECT_NREASONS];
    /* The slot's WAL retention, read every 10 s: bytes kept (current WAL -
     * restart_lsn; -1 until read), the server's max_slot_wal_keep_size in
     * bytes (-1: no limit) and wal_status ("" until read). */
    int64_t wal_retained_bytes;
    int64_t wal_keep_max_bytes;
    char wal_status[16];
    char slot[64]; /* for the status page */
} hms_metrics_t;

/* Counts one published event of type name (a string that outlives m).
 * Types past HMS_METRICS_MAX_TYPES are counted under the last slot. */
void hms_metrics_count_published(hms_metrics_t *m, const char *type);

/* Appends the Prometheus text exposition (version 0.0.4) of m to out. */
hms_status_t hms_metrics_render(const hms_metrics_t *m, const char *version, hms_buf_t *out);

/* True when both connections are up, the slot is streaming and the captured
 * table's replica identity is FULL; otherwise false with a one-line reason
 * (what is wrong, and for the replica identity the SQL that fixes it) in
 * why, cut to whylen - 1 bytes.  why may be NULL. */
bool hms_metrics_ready(const hms_metrics_t *m, char *why, size_t whylen);

#endif
