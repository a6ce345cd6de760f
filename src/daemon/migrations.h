/* migrations.h -- the SQL migrations embedded in the binary and the runner that applies them.
 *
 * A migration is a numbered SQL file (sql/NNN_name.sql) compiled into the
 * binary by cmake/embed_files.cmake (see common/embedded.h).  The runner applies, in order, every
 * file whose number is not yet recorded in a ledger table in schema hms_sync, each file and its
 * ledger row in one transaction, under a session advisory lock so concurrent runs against one
 * database apply each file exactly once.  A recorded file whose text has since changed is refused,
 * never re-run.
 *
 * Ownership: the runner borrows everything it is given; it keeps no state
 * between calls.  Progress lines go to the caller's FILE; errors come back as
 * one line in the caller's hms_err_t. */
#ifndef HMS_DAEMON_MIGRATIONS_H
#define HMS_DAEMON_MIGRATIONS_H

#include <stdio.h>
#include <stddef.h>

#include <libpq-fe.h>

#include "common/embedded.h"
#include "core/status.h"

/* The ledger of the publisher-side set: hms_sync.schema_migrations. */
#define HMS_MIGRATE_LEDGER "schema_migrations"

/* Applies files[0..count) to the database behind conn, recording them in
 * hms_sync.<ledger> (created if missing; ledger must be a plain lower-case
 * identifier).  Files must be sorted with strictly increasing leading
 * numbers.  conn stays owned by the caller and must not be inside a
 * transaction; the session advisory lock is released before returning.
 * Prints one line per applied file to out (may be NULL).  Returns HMS_OK,
 * HMS_ERR_PG (server error, a failed file, a changed file) or HMS_ERR_CONFIG
 * (a malformed file list). */
hms_status_t hms_migrate_apply(PGconn *conn, const hms_sql_file_t *files, size_t count,
                               const char *ledger, FILE *out, hms_err_t *err);

/* `hms-sync migrate --pg CONNINFO [--publication NAME]`: connects, applies
 * hms_sql_migrations with ledger HMS_MIGRATE_LEDGER, makes sure publication
 * (NULL: only the migrations' own hms_sync_incidents) exists and carries
 * public.incidents, disconnects; connect_timeout_s as hms_pg_open.  Same
 * returns as above. */
hms_status_t hms_migrate_run(const char *conninfo, const char *publication, int connect_timeout_s,
                             FILE *out, hms_err_t *err);

#endif
