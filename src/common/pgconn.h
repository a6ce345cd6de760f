/* pgconn.h -- the one PostgreSQL connection layer of every program: how a
 * conninfo is checked, how a connection is named in messages, and how
 * libpq's multi-line messages become one log or error line.
 *
 * Ownership: functions borrow their arguments for the call; strings they
 * write go into the caller's buffers. */
#ifndef HMS_COMMON_PGCONN_H
#define HMS_COMMON_PGCONN_H

#include <stddef.h>

#include <libpq-fe.h>

#include "core/status.h"

/* libpq messages span lines ("...failed: Connection refused\n\tIs the server
 * running..."): folds msg (NULL: "") into one line in out, lines joined by
 * "; ", runs of white space made one space.  Returns out. */
const char *hms_pg_one_line(const char *msg, char *out, size_t outlen);

/* Writes "host:port/db" for conn into buf (truncated to len): how messages
 * name a server, never with the password.  conn may be NULL or failed. */
void hms_pg_target(PGconn *conn, char *buf, size_t len);

/* Checks that conninfo is present and parses.  HMS_ERR_CONFIG names the
 * setting ("--pg") and libpq's reason; when the string holds a password the
 * reason is withheld, since libpq may echo part of the string. */
hms_status_t hms_pg_check_conninfo(const char *conninfo, hms_err_t *err);

/* Opens a blocking libpq connection for a command's own work (migrate,
 * status, the subscriber's setup): connect_timeout 10 s unless the conninfo
 * or PGCONNECT_TIMEOUT says otherwise, client_min_messages = warning.  On
 * success *out is a connection the caller owns and must PQfinish.  Errors
 * are prefixed with `what` (e.g. "migrate") and name the server as
 * host:port/db: HMS_ERR_CONFIG for a conninfo that does not parse, HMS_ERR_PG
 * when the server cannot be reached or refuses the login. */
hms_status_t hms_pg_open(const char *conninfo, const char *what, PGconn **out, hms_err_t *err);

#endif
