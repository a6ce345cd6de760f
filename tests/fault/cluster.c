/* cluster.c -- the fault suite's cluster scenarios: the connector and a
 * real subscriber (`hms-sync consume`, the warehouse) on a three-node
 * RabbitMQ cluster that tests/cluster.sh runs, both given every node's URL.
 * One node at a time is killed, cut off or restarted while the load runs;
 * each scenario is checked like the others (the ledger against the
 * checker's arrivals: nothing lost, per-incident order) and, at the end,
 * the subscriber's table against the source's.
 *
 * Failover times: "publisher" is a marker's round trip (committed after the
 * fault, received by the checker); "subscriber" is from the fault until the
 * warehouse holds that marker. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/amqpnodes.h"
#include "fault.h"
#include "it_sub.h"

static const char *g_urls;   /* HMS_TEST_CLUSTER_AMQP: the nodes' URLs */
static const char *g_script; /* HMS_TEST_CLUSTER_SCRIPT: tests/cluster.sh */

bool fault_cluster_available(void)
{
    g_urls = getenv("HMS_TEST_CLUSTER_AMQP");
    g_script = getenv("HMS_TEST_CLUSTER_SCRIPT");
    return g_urls && *g_urls && g_script && *g_script;
}

/* Runs `cluster.sh cmd [arg]`; its last line of output goes to out (may be
 * NULL).  0 when it exited 0. */
static int cluster(const char *cmd, const char *arg, char *out, size_t outn)
{
    const char *argv[] = {"/bin/bash", g_script, cmd, arg, NULL};
    it_proc_t p;
    char tag[64];
    snprintf(tag, sizeof tag, "cluster-%s", cmd);
    if (it_cmd_spawn(&g_env, &p, tag, argv) != 0)
        return -1;
    int rc = it_proc_wait(&p, 300000);
    if (out != NULL && outn > 0) {
        out[0] = '\0';
        char *text = it_proc_output(&p);
        if (text != NULL) {
            size_t len = strlen(text);
            while (len > 0 && text[len - 1] == '\n')
                text[--len] = '\0';
            const char *last = strrchr(text, '\n');
            snprintf(out, outn, "%s", last ? last + 1 : text);
            free(text);
        }
    }
    if (rc != 0) {
        fault_say("cluster.sh %s %s failed (exit %d); see %s", cmd, arg ? arg : "", rc, p.log);
        it_proc_kill(&p);
    }
    return rc == 0 ? 0 : -1;
}

static int cluster_node(const char *cmd, int node)
{
    char n[8];
    snprintf(n, sizeof n, "%d", node);
    return cluster(cmd, n, NULL, 0);
}

/* The node (1..3) whose URL has "host:port" target; 0 when none has. */
static int node_of_target(const char *target)
{
    const char *url;
    size_t len, tlen = strlen(target);
    for (size_t i = 0; hms_amqp_nodes_get(g_urls, i, &url, &len); i++) {
        const char *host = memmem(url, len, "@", 1);
        host = host ? host + 1 : url + strlen("amqp://");
        if ((size_t)(url + len - host) >= tlen && memcmp(host, target, tlen) == 0)
            return (int)i + 1;
    }
    return 0;
}

/* The node the connector is attached to now, by its newest "connected to
 * RabbitMQ" line; 0 when it has none. */
static int connector_node(fault_sc_t *S)
{
    char *log = it_proc_output(&S->conn);
    if (log == NULL)
        return 0;
    const char *key = "msg=\"connected to RabbitMQ\" target=", *last = NULL;
    for (const char *p = log; (p = strstr(p, key)) != NULL; p++)
        last = p + strlen(key);
    char target[128] = "";
    if (last != NULL)
        sscanf(last, "%127[^ \n]", target);
    free(log);
    return target[0] ? node_of_target(target) : 0;
}

/* ---- the subscriber ---- */

typedef struct {
    it_subdb_t db;
    it_proc_t proc;
    char queue[200], dlx[200];
    bool up;
} sub_t;

static int sub_start(fault_sc_t *S, sub_t *u)
{
    memset(u, 0, sizeof *u);
    snprintf(u->queue, sizeof u->queue, "%s.sub", S->exchange);
    snprintf(u->dlx, sizeof u->dlx, "%s.dlx", S->exchange);
    if (it_subdb_create(&g_env, &u->db, "cluster-sub") != 0)
        return -1;
    it_amqp_t a;
    if (it_amqp_open(&a, g_env.amqp_url) != 0)
        return -1;
    int rc = it_amqp_declare_dlx(&a, u->dlx);
    it_amqp_close(&a);
    const char *extra[] = {"--retry_min", "100ms", "--retry_max", "1s", "--heartbeat", "2s", NULL};
    if (rc != 0 ||
        it_consume_start(&g_env, &u->proc, "cluster-consume", u->db.conninfo, S->exchange, u->dlx,
                         u->queue, "hms_sync.apply_warehouse", extra) != 0)
        return -1;
    u->up = true;
    return 0;
}

/* Waits until the warehouse holds the newest marker; ms since `since`. */
static double sub_marker(fault_sc_t *S, sub_t *u, double since)
{
    if (!S->last_marker[0])
        return -1;
    double end = it_now_ms() + 120000;
    while (it_now_ms() < end) {
        char *v =
            it_pg_value(u->db.pg, "SELECT count(*) FROM incident_facts WHERE incident_id = '%s'",
                        S->last_marker);
        bool found = v && strcmp(v, "1") == 0;
        free(v);
        if (found)
            return it_now_ms() - since;
        it_sleep_ms(20);
    }
    return -1;
}

/* One fault's failover times, in the note. */
static void failover(fault_sc_t *S, sub_t *u, double t0, const char *what)
{
    double pub = fault_recover(S, t0, what);
    double sub = pub >= 0 ? sub_marker(S, u, t0) : -1;
    if (pub >= 0 && sub < 0)
        fault_note(S, "FAIL: the subscriber did not apply the marker within 120 s after %s", what);
    fault_note(S, "%s: publisher %.0f ms, subscriber %.0f ms", what, pub, sub);
}

/* Counts the subscriber's stale-event lines: first deliveries and
 * redelivered copies. */
static void stale_lines(const it_proc_t *p, int *fresh, int *again)
{
    char *log = it_proc_output(p);
    const char *key = "msg=\"skipped a stale event";
    for (const char *q = log; q != NULL && (q = strstr(q, key)) != NULL; q++) {
        const char *eol = strchr(q, '\n');
        const char *r = strstr(q, "redelivered=true");
        if (r != NULL && (eol == NULL || r < eol))
            (*again)++;
        else
            (*fresh)++;
    }
    free(log);
}

/* After the load: the warehouse converges to the source, and no event
 * arrives stale on its first delivery. */
static void sub_finish(fault_sc_t *S, sub_t *u)
{
    fault_sc_stop_load(S);
    if (u->up) {
        double t0 = it_now_ms(), end = t0 + 180000;
        char *src = NULL, *dst = NULL;
        for (;;) {
            free(src);
            free(dst);
            src = it_pg_value(S->admin, "SELECT coalesce(string_agg(id || ':' || version, ',' "
                                        "ORDER BY id), '') FROM incidents");
            dst = it_pg_value(u->db.pg, "SELECT coalesce(string_agg(incident_id || ':' || "
                                        "version, ',' ORDER BY incident_id), '') FROM "
                                        "incident_facts WHERE NOT deleted");
            if ((src && dst && strcmp(src, dst) == 0) || it_now_ms() > end)
                break;
            it_sleep_ms(200);
        }
        char *stale = it_pg_value(u->db.pg,
                                  "SELECT count(*) FROM hms_sync.inbox WHERE subscriber = '%s' "
                                  "AND outcome = 'stale'",
                                  u->queue);
        char *taken = it_pg_value(
            u->db.pg, "SELECT count(*) FROM hms_sync.inbox WHERE subscriber = '%s'", u->queue);
        if (!src || !dst || strcmp(src, dst) != 0) {
            fault_note(S, "FAIL: the subscriber's warehouse did not converge to the source");
            fault_dump_tail(&u->proc, "subscriber");
        } else {
            fault_note(S, "subscriber: warehouse equals the source (%s events taken in, %s stale)",
                       taken ? taken : "?", stale ? stale : "?");
        }
        /* A first delivery older than what was applied is the stream out
         * of order.  A redelivered one is RabbitMQ handing back the
         * messages of the subscriber's failed consumer after newer ones
         * went out; last-write-wins skips it and the table ends right. */
        int fresh = 0, again = 0;
        stale_lines(&u->proc, &fresh, &again);
        if (!stale || atoi(stale) != fresh + again)
            fault_note(S, "FAIL: the inbox holds %s stale events, the subscriber logged %d",
                       stale ? stale : "?", fresh + again);
        if (fresh > 0)
            fault_note(S, "FAIL: %d events applied out of order (stale on first delivery)", fresh);
        if (again > 0)
            fault_note(S,
                       "subscriber: %d redelivered events arrived after newer ones and were "
                       "skipped as stale",
                       again);
        free(src);
        free(dst);
        free(stale);
        free(taken);
    }
    it_proc_kill(&u->proc);
    it_amqp_t a;
    if (it_amqp_open(&a, g_env.amqp_url) == 0) {
        char dlq[220];
        snprintf(dlq, sizeof dlq, "%s.dlq", u->queue);
        it_amqp_delete_queue(&a, u->queue);
        it_amqp_delete_queue(&a, dlq);
        it_amqp_delete_exchange(&a, u->dlx);
        it_amqp_close(&a);
    }
    it_subdb_drop(&u->db);
}

/* ---- scenarios ---- */

typedef enum { KILL_CONNECTED, KILL_LEADER, PARTITION, ROLLING } kind_t;

/* One fault on node: `cluster.sh fault node`, the failover times, then
 * `cluster.sh repair node`.  False when a step failed (noted). */
static bool node_fault(fault_sc_t *S, sub_t *u, int node, const char *fault, const char *repair,
                       const char *why)
{
    char what[160];
    if (node < 1 || node > 3 || cluster_node(fault, node) != 0) {
        fault_note(S, "FAIL: cannot %s node %d (%s)", fault, node, why);
        return false;
    }
    double t0 = it_now_ms();
    S->faults++;
    snprintf(what, sizeof what, "%s node %d (%s)", fault, node, why);
    failover(S, u, t0, what);
    if (cluster_node(repair, node) != 0) {
        fault_note(S, "FAIL: node %d did not come back (%s)", node, repair);
        return false;
    }
    return true;
}

static void scenario(const char *name, kind_t kind, int rounds)
{
    fault_sc_t S;
    sub_t u;
    fault_sc_init(&S, name, g_env.super_conninfo, g_env.conninfo);
    snprintf(S.conn_amqp, sizeof S.conn_amqp, "%s", g_urls);
    S.quorum = true;
    /* The source holds every scenario's rows; the subscriber, only this
     * one's.  Emptied before the slot exists, the table compares whole. */
    if (it_pg_exec(g_env.pg, "TRUNCATE incidents") != 0)
        fault_note(&S, "FAIL: cannot empty the source table");
    /* The load starts once the subscriber's queue is bound: an event
     * published before would reach the checker's queue only, and the
     * warehouse could never equal the source. */
    if (fault_sc_start(&S, false) != 0 || sub_start(&S, &u) != 0) {
        fault_note(&S, "FAIL: setup");
        sub_finish(&S, &u);
        fault_sc_finish(&S, 0, true, 1000);
        return;
    }
    fault_sc_start_load(&S);
    for (int r = 0; r < rounds; r++) {
        it_sleep_ms(fault_rnd(1500, 3000));
        char leader[16];
        switch (kind) {
        case KILL_CONNECTED:
            node_fault(&S, &u, connector_node(&S), "kill", "restart", "the connector's");
            break;
        case KILL_LEADER:
            node_fault(&S, &u,
                       cluster("leader", u.queue, leader, sizeof leader) == 0 ? atoi(leader) : 0,
                       "kill", "restart", "leads the subscriber's queue");
            break;
        case PARTITION:
            node_fault(&S, &u, connector_node(&S), "partition", "heal",
                       "the connector's, cut off from the other two");
            break;
        case ROLLING:
            for (int node = 1; node <= 3; node++)
                if (!node_fault(&S, &u, node, "stopnode", "restart", "rolling restart"))
                    break;
            break;
        }
    }
    sub_finish(&S, &u);
    fault_sc_finish(&S, S.faults, true, 120000);
}

void fault_cluster_run(bool (*want)(const char *name), bool long_mode)
{
    int rounds = long_mode ? 3 : 1;
    if (want("cluster-kill"))
        scenario("cluster-kill-connected-node", KILL_CONNECTED, rounds);
    if (want("cluster-leader"))
        scenario("cluster-kill-queue-leader", KILL_LEADER, rounds);
    if (want("cluster-partition"))
        scenario("cluster-minority-cut-off", PARTITION, rounds);
    if (want("cluster-rolling"))
        scenario("cluster-rolling-restart", ROLLING, 1);
}
