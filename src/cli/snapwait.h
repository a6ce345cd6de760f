/* snapwait.h -- `hms-sync snapshot --wait`: follow one request until the
 * connector finishes it. */
#ifndef HMS_CLI_SNAPWAIT_H
#define HMS_CLI_SNAPWAIT_H

#include <stdbool.h>
#include <stdio.h>

#include <libpq-fe.h>

/* How often the request's row is read again. */
#define HMS_SNAPWAIT_POLL_MS 250

/* Reads request id on conn every poll_ms until it is done, cancelled or
 * failed, reporting on out: on a terminal (tty) one status line redrawn in
 * place with a bar; otherwise a line when it starts and one each time the
 * share of rows done reaches a further tenth, for logs.  Returns the exit
 * code: 0 done; 1 cancelled, failed, gone or unreadable (one line on stderr
 * says which; the connector goes on regardless).  conn is borrowed. */
int hms_cli_snapshot_wait(PGconn *conn, const char *id, FILE *out, bool tty, int poll_ms);

#endif
