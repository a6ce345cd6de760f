/* snapreq.h -- snapshot requests in hms_sync.snapshots as the command line
 * sees them: check a --where condition the way the connector will run it,
 * queue a request, cancel one, and read them back for `snapshot --list`,
 * `snapshot --wait` and `status`.  The connector serves the requests
 * (daemon/snapshot.h); this side only asks and watches.
 *
 * Every function works on a blocking connection the caller opened and owns;
 * strings are borrowed for the call unless said otherwise.  Errors are one
 * line naming the table, the request or the server. */
#ifndef HMS_DAEMON_SNAPREQ_H
#define HMS_DAEMON_SNAPREQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <json-c/json.h>
#include <libpq-fe.h>

#include "core/event.h"
#include "core/status.h"

/* One row of hms_sync.snapshots.  Times are RFC 3339 UTC ("" when NULL);
 * counts are -1 when NULL.  The strings it points to are owned: release
 * with hms_snapreq_clear. */
typedef struct {
    char id[64];
    char slot[64];
    char state[16];  /* pending, running, done, cancelled, failed */
    char *where_sql; /* NULL: every row */
    char *queue;     /* NULL: the exchange */
    int64_t rows_total;
    int64_t rows_done;
    int64_t chunks_done;
    char requested_at[40], started_at[40], finished_at[40], updated_at[40];
    char *error; /* NULL unless failed */
    bool initial;
} hms_snapreq_t;

void hms_snapreq_clear(hms_snapreq_t *r);

/* True for a state the connector will not change any more. */
bool hms_snapreq_finished(const hms_snapreq_t *r);

/* HMS_OK when hms_sync.snapshots exists; otherwise HMS_ERR_PG saying to run
 * `hms-sync migrate`.  target names the server in messages. */
hms_status_t hms_snapreq_table_ok(PGconn *conn, const char *target, hms_err_t *err);

/* Whether a connector can serve slot's requests now. */
typedef enum {
    HMS_SNAPREQ_SLOT_MISSING,  /* no such replication slot (yet) */
    HMS_SNAPREQ_SLOT_IDLE,     /* the slot exists; nothing streams from it */
    HMS_SNAPREQ_SLOT_STREAMING /* a connector holds it */
} hms_snapreq_slot_t;

hms_status_t hms_snapreq_slot(PGconn *conn, const char *slot, hms_snapreq_slot_t *state,
                              hms_err_t *err);

/* Checks that where is one SQL condition on cap's table that the server
 * accepts (core/wherecheck.h, then EXPLAIN of the connector's kind of query
 * in a read-only transaction that is rolled back).  HMS_ERR_CONFIG with the
 * reason, the server's own message when it refused the condition;
 * HMS_ERR_PG when the server could not be asked. */
hms_status_t hms_snapreq_check_where(PGconn *conn, const hms_capture_t *cap, const char *where,
                                     hms_err_t *err);

/* Queues a request for the connector of slot (where and queue may be NULL)
 * and writes its id into id.  HMS_ERR_PG on failure. */
hms_status_t hms_snapreq_insert(PGconn *conn, const char *slot, const char *where,
                                const char *queue, char *id, size_t idlen, hms_err_t *err);

/* Reads request id into *r (cleared first); *found false when there is no
 * such row. */
hms_status_t hms_snapreq_get(PGconn *conn, const char *id, hms_snapreq_t *r, bool *found,
                             hms_err_t *err);

/* Marks request id cancelled if it is pending or running, and reads it back
 * into *r; *cancelled says whether this call cancelled it (false: it had
 * already finished, r->state says how, or *found is false). */
hms_status_t hms_snapreq_cancel(PGconn *conn, const char *id, hms_snapreq_t *r, bool *found,
                                bool *cancelled, hms_err_t *err);

/* The requests of slot, oldest first: all of them, or with current only
 * the pending and running ones and the one that finished last.  *out is an
 * array of *n requests the caller frees with hms_snapreq_free_list. */
hms_status_t hms_snapreq_list(PGconn *conn, const char *slot, bool current, hms_snapreq_t **out,
                              size_t *n, hms_err_t *err);
void hms_snapreq_free_list(hms_snapreq_t *list, size_t n);

/* The request as a JSON object (counts as numbers, unknowns as null); NULL
 * on out of memory.  The caller puts it. */
json_object *hms_snapreq_json(const hms_snapreq_t *r);

/* The requests as a JSON array of hms_snapreq_json objects; NULL on out of
 * memory.  The caller puts it. */
json_object *hms_snapreq_json_list(const hms_snapreq_t *reqs, size_t n);

/* "4608/10240 rows" or "4608 rows" while the total is unknown, into out. */
void hms_snapreq_rows(const hms_snapreq_t *r, char *out, size_t outlen);

#endif
