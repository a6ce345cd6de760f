/* fault.h -- the fault suite's shared pieces: the ledger of committed
 * changes (ground truth), the load generator that writes it, the checker
 * that consumes events and compares them with it, and one scenario's
 * fixture (connector, slot, exchange, queue, threads).
 *
 * Threads: the load generator and the checker each run in a thread of their
 * own with their own connections; the main thread injects faults.  The
 * ledger and the arrivals are shared under their mutexes. */
#ifndef HMS_FAULT_H
#define HMS_FAULT_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "it.h"

#define FAULT_ID_LEN 37 /* a uuid and its NUL */

enum { CH_COMMITTED = 1, CH_UNCERTAIN = 2, CH_SKIPPED = 3 };

/* One committed (or commit-uncertain) row change, as the database reported
 * it through RETURNING. */
typedef struct {
    char subj[FAULT_ID_LEN];
    char op; /* 'C', 'U', 'D' */
    unsigned char state;
    int64_t version;
} fault_change_t;

typedef struct {
    pthread_mutex_t mu;
    fault_change_t *v;
    size_t n, cap;
    size_t n_tx, n_uncertain_tx, n_aborted_tx, max_tx;
} fault_ledger_t;

/* One copy of an event as the checker received it. */
typedef struct {
    char id[40];
    char subj[FAULT_ID_LEN];
    char op;
    bool redelivered; /* the broker redelivered it to the checker */
    int64_t version;
    uint64_t hash; /* of the body */
    double t_ms;
} fault_arrival_t;

typedef struct {
    pthread_mutex_t mu;
    fault_arrival_t *v;
    size_t n, cap;
    size_t contract_bad;
    char first_bad[1200];
    size_t finding_bad; /* contract failures of rows with summary 'finding' */
    char first_finding[1200];
    int reopens;
} fault_arrivals_t;

/* One row of the summary table. */
typedef struct {
    char scenario[48];
    int trials;
    size_t changes;      /* committed changes in the ledger */
    size_t events;       /* distinct event ids received */
    size_t copies;       /* every copy received */
    size_t lost;         /* committed changes never received */
    size_t dups;         /* copies beyond the first, from the connector */
    size_t redeliveries; /* copies the broker redelivered to the checker */
    size_t dup_bound;    /* 0: not bounded by the window */
    size_t unknown;      /* events matching no change */
    size_t id_conflicts; /* one change under two ids, or one id with two bodies */
    size_t first_inversions, last_inversions;
    size_t contract_bad;
    double max_detect_ms, max_recovery_ms;
    bool connector_died;
    bool pass;
    char note[2000];
} fault_row_t;

/* A scenario's fixture. */
typedef struct {
    const char *name;
    char super[IT_CONNINFO_MAX];     /* superuser, to the scenario's database */
    char conn_pg[IT_CONNINFO_MAX];   /* what the connector gets (maybe via a proxy) */
    char conn_amqp[IT_CONNINFO_MAX]; /* what the connector gets (maybe via a proxy) */
    char source[300];                /* the expected event source */
    char slot[64], exchange[128], queue[160];
    long queue_max_length; /* > 0: x-max-length with reject-publish */
    bool quorum;           /* the checker's queue is a quorum queue (a cluster) */
    int window;
    const char *extra[16]; /* more connector arguments */
    PGconn *admin;         /* superuser session for markers and slot queries */
    it_proc_t conn;
    int conn_starts;
    fault_ledger_t led;
    fault_arrivals_t arr;
    size_t marker_cursor;
    char last_marker[FAULT_ID_LEN]; /* the subject of the newest marker */
    pthread_t lg_thr, ck_thr;
    bool lg_running, ck_running;
    volatile int lg_stop, lg_pause, ck_stop, ck_pause;
    volatile int lg_paused; /* acknowledgement of lg_pause */
    int lg_pace_ms, lg_max_rows;
    int faults;
    bool dups_unbounded;
    double max_detect_ms, max_recovery_ms;
    int sample_every; /* schema-check one event in this many (1: all) */
    char note[2000];
} fault_sc_t;

extern it_env_t g_env;
extern int g_break; /* 1: the checker drops one event; 2: it reorders two */

/* Ledger, load generator, checker (check.c). */
void fault_ledger_add(fault_ledger_t *l, const fault_change_t *c, size_t n);
void *fault_loadgen_main(void *arg);
void *fault_checker_main(void *arg);
/* Waits until every committed change arrived (or the timeout), then fills
 * row with the comparison. */
void fault_check(fault_sc_t *S, int timeout_ms, fault_row_t *row);
/* Commits one marker incident through S->admin and waits until its event
 * arrives; returns the wait in ms from `since` (it_now_ms()), or -1. */
double fault_marker(fault_sc_t *S, double since, int timeout_ms);
/* Runs sql on S->admin, reconnecting once if the session is gone; its
 * returned (id, version) rows go into the ledger as changes op. */
int fault_admin_change(fault_sc_t *S, char op, const char *sql);
bool fault_admin_ok(fault_sc_t *S);

/* The fixture (fault.c), for scenarios kept in files of their own. */
int fault_rnd(int lo, int hi);
void fault_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fault_note(fault_sc_t *S, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void fault_sc_init(fault_sc_t *S, const char *name, const char *super, const char *conn_pg);
/* Starts checker, connector and (when load) the load generator. */
int fault_sc_start(fault_sc_t *S, bool load);
/* Starts the load generator of a scenario started without it. */
void fault_sc_start_load(fault_sc_t *S);
void fault_sc_stop_load(fault_sc_t *S);
/* Stops the load, checks, records the summary row, tears down.  alive:
 * the connector should still be running. */
void fault_sc_finish(fault_sc_t *S, int trials, bool alive, int check_timeout_ms);
/* A marker's round trip after a fault: ms since `since`, or -1 (noted as
 * a failure). */
double fault_recover(fault_sc_t *S, double since, const char *what);
int fault_count_in_log(const it_proc_t *p, const char *needle);
void fault_dump_tail(const it_proc_t *p, const char *what);

/* The cluster scenarios (cluster.c): the connector and a subscriber on a
 * three-node RabbitMQ cluster (tests/cluster.sh), one node at a time
 * killed, cut off or restarted.  False when the cluster is not there. */
bool fault_cluster_available(void);
void fault_cluster_run(bool (*want)(const char *name), bool long_mode);

#endif
