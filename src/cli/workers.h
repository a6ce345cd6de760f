/* workers.h -- one process per partition under one command: `consume
 * --partitions N` without --partition forks a worker for each partition and
 * keeps them running, as a service manager would keep N units. */
#ifndef HMS_CLI_WORKERS_H
#define HMS_CLI_WORKERS_H

/* Runs workers 1..n, each a child process that calls run(i, arg) and exits
 * with what it returns.  SIGTERM and SIGINT stop them all (each finishes the
 * batch in hand) and return 0; SIGHUP is passed on to each.  A worker that
 * dies later is started again after a backoff (0.5 s doubling to 30 s); one
 * that fails within its first 10 s, the way a wrong setting or an
 * unreachable server fails at start, stops them all, and its exit code is
 * returned. */
int hms_cli_workers(int n, int (*run)(int i, void *arg), void *arg);

#endif
