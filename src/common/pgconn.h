/* pgconn.h -- the one PostgreSQL connection layer of every program: how a
 * conninfo is checked, how a connection is named in messages, and how
 * libpq's multi-line messages become one log or error line.
 *
 * Ownership: functions borrow their arguments for the call; strings they
 * write go into the caller's buffers. */
#ifndef HMS_COMMON_PGCONN_H
#define HMS_COMMON_PGCONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

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

/* How a program connects.  Every connection, blocking or not, is made from
 * these, so they share one policy: the user's conninfo keywords win over
 * the defaults here; TCP keepalives are on (10 s idle, 5 s apart, 3 probes)
 * so a vanished server is noticed; the attempt ends after the conninfo's
 * connect_timeout, else PGCONNECT_TIMEOUT, else connect_timeout_s (0 in any
 * of them: wait as long as it takes, as libpq does). */
typedef struct {
    const char *conninfo;         /* the user's connection string or URI */
    const char *application_name; /* fallback_application_name */
    bool replication;             /* a replication=database (walsender) connection */
    const char *options;          /* "-c name=value" settings added to the user's own; NULL: none */
    int connect_timeout_s;        /* the default attempt limit, seconds */
} hms_pg_params_t;

/* A connection attempt driven by the caller's poll loop, so that a server
 * that accepts TCP and never answers stalls nothing else. */
typedef struct {
    PGconn *conn;        /* NULL when no attempt is under way */
    int fd;              /* wait on this ... */
    short events;        /* ... for POLLIN or POLLOUT */
    int64_t deadline_ms; /* hms_clock_ms() after which the attempt fails; 0: none */
    char target[300];    /* host:port/db, for messages */
} hms_pg_connecting_t;

/* Starts an attempt.  HMS_OK: poll c->fd for c->events until c->deadline_ms,
 * then call hms_pg_connect_poll (also call it on timeout, never before one
 * or the other: while the TCP connect is in progress libpq would take the
 * connection for made).  Errors leave no attempt.  now_ms is hms_clock_ms(). */
hms_status_t hms_pg_connect_start(hms_pg_connecting_t *c, const hms_pg_params_t *p, int64_t now_ms,
                                  hms_err_t *err);
/* Advances an attempt: 1 when connected (*out is the caller's connection,
 * non-blocking off, and c is idle again), 0 while it goes on (c->fd and
 * c->events may have changed), or a negative status when it failed or
 * passed its deadline (checked first, libpq not asked then; c is idle
 * again; err names the server and why). */
int hms_pg_connect_poll(hms_pg_connecting_t *c, int64_t now_ms, PGconn **out, hms_err_t *err);
/* Abandons an attempt under way, if any. */
void hms_pg_connect_cancel(hms_pg_connecting_t *c);
/* The same attempt, waited for here: for commands with nothing else to serve. */
hms_status_t hms_pg_connect(const hms_pg_params_t *p, PGconn **out, hms_err_t *err);

/* Opens a blocking libpq connection for a command's own work (migrate,
 * status): connect_timeout_s unless the conninfo or PGCONNECT_TIMEOUT says
 * otherwise, client_min_messages = warning.  On
 * success *out is a connection the caller owns and must PQfinish.  Errors
 * are prefixed with `what` (e.g. "migrate") and name the server as
 * host:port/db: HMS_ERR_CONFIG for a conninfo that does not parse, HMS_ERR_PG
 * when the server cannot be reached or refuses the login. */
hms_status_t hms_pg_open(const char *conninfo, const char *what, int connect_timeout_s,
                         PGconn **out, hms_err_t *err);

#endif
