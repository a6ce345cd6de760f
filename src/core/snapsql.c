/* snapsql.c -- the text of a snapshot's statements (see snapsql.h). */
#include "core/snapsql.h"

#include <stdlib.h>

#include "core/buf.h"

/* The buffer's text, handed to the caller; NULL (and nothing kept) when an
 * append ran out of memory. */
static char *take(hms_buf_t *b, hms_status_t st)
{
    if (st == HMS_OK)
        return b->data;
    hms_buf_free(b);
    return NULL;
}

/* Appends "(<where>\n)", or "true" for every row. */
static hms_status_t condition(hms_buf_t *b, const char *where)
{
    return where == NULL || where[0] == '\0' ? hms_buf_append_str(b, "true")
                                             : hms_buf_printf(b, "(%s\n)", where);
}

char *hms_snapsql_start(const hms_capture_t *cap, const char *where)
{
    hms_buf_t b = HMS_BUF_INIT;
    hms_status_t st = hms_buf_printf(
        &b,
        "UPDATE hms_sync.snapshots SET state = 'running', started_at = coalesce(started_at, "
        "now()), "
        "updated_at = now(), rows_total = coalesce(rows_total, (SELECT count(*) FROM %s.%s WHERE ",
        cap->schema, cap->table);
    if (st == HMS_OK)
        st = condition(&b, where);
    if (st == HMS_OK && cap->version_column == NULL)
        st = hms_buf_append_str(&b, ")), version_bound = NULL");
    if (st == HMS_OK && cap->version_column != NULL) {
        st = hms_buf_printf(&b,
                            ")), version_bound = coalesce(version_bound, (SELECT max(%s) FROM "
                            "%s.%s WHERE ",
                            cap->version_column, cap->schema, cap->table);
        if (st == HMS_OK)
            st = condition(&b, where);
        if (st == HMS_OK)
            st = hms_buf_append_str(&b, "))");
    }
    if (st == HMS_OK)
        st = hms_buf_append_str(&b, " WHERE id = $1 AND state IN ('pending', 'running') RETURNING "
                                    "rows_total, rows_done, last_key, version_bound");
    return take(&b, st);
}

char *hms_snapsql_chunk(const hms_capture_t *cap, const char *where, bool after_key, int limit)
{
    hms_buf_t b = HMS_BUF_INIT;
    /* The request's state is a one-time filter: a cancelled request reads
     * no rows and ends as if done, with no statement of its own before each
     * chunk. */
    hms_status_t st = hms_buf_printf(&b,
                                     "SELECT * FROM %s.%s WHERE EXISTS (SELECT FROM "
                                     "hms_sync.snapshots WHERE id = $1 AND state = 'running') AND ",
                                     cap->schema, cap->table);
    /* Rows written after the start reach subscribers as changes
     * (sql/010_snapshot_version_bound.sql): a NULL bound reads them all. */
    if (st == HMS_OK)
        st = cap->version_column == NULL
                 ? hms_buf_append_str(&b, "$2::bigint IS NULL")
                 : hms_buf_printf(&b, "($2::bigint IS NULL OR %s <= $2::bigint)",
                                  cap->version_column);
    /* Keyset pagination on the key: a chunk costs the same at any depth. */
    if (st == HMS_OK)
        st = after_key ? hms_buf_printf(&b, " AND %s > $3 AND ", cap->key_column)
                       : hms_buf_append_str(&b, " AND $3::text IS NULL AND ");
    if (st == HMS_OK)
        st = condition(&b, where);
    if (st == HMS_OK)
        st = hms_buf_printf(&b, " ORDER BY %s LIMIT %d", cap->key_column, limit);
    return take(&b, st);
}

char *hms_snapsql_initial(const char *slot_lit)
{
    hms_buf_t b = HMS_BUF_INIT;
    return take(&b, hms_buf_printf(&b,
                                   "INSERT INTO hms_sync.snapshots (slot, initial) VALUES (%s, "
                                   "true) ON CONFLICT (slot) WHERE initial AND state IN "
                                   "('pending', 'running') DO NOTHING",
                                   slot_lit));
}

char *hms_snapsql_cancel_initial(const char *slot_lit)
{
    hms_buf_t b = HMS_BUF_INIT;
    return take(&b, hms_buf_printf(&b,
                                   "UPDATE hms_sync.snapshots SET state = 'cancelled', error = "
                                   "'the slot was lost; a new snapshot replaces this one', "
                                   "finished_at = now(), updated_at = now() WHERE slot = %s AND "
                                   "initial AND state IN ('pending', 'running')",
                                   slot_lit));
}
