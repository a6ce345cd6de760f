/* test_failover.c -- hms-sync run through a real PostgreSQL failover: a
 * primary of the test's own, a streaming standby made from it with
 * pg_basebackup, the primary crashed (immediate stop) and the standby
 * promoted.  The connector is given a multi-host conninfo with
 * target_session_attrs=read-write, so libpq finds the promoted server by
 * itself; on PostgreSQL 15 its logical slot did not come along.
 *
 * (1) With on_slot_loss = fail (the default) it refuses to carry on: exit
 *     1, one line naming the vanished slot, no slot made on the new primary.
 * (2) With on_slot_loss = resnapshot it recreates the slot behind a WAL
 *     fence and re-sends every row as a snapshot: a real subscriber
 *     (`hms-sync consume` into the warehouse table) ends equal to the new
 *     primary, and no event id published after the promotion is at or
 *     below one published before the crash.
 * (3) The same after a failover that loses transactions, as an
 *     asynchronous one does: the standby is cut off, the primary commits
 *     and the connector publishes a last batch of inserts (some 4 MB of
 *     WAL), then the primary crashes.  The promoted server's WAL goes on
 *     from below positions subscribers already hold, so the fence must
 *     move it: every event after the promotion is past the fence, and the
 *     warehouse ends equal to the new primary plus exactly the lost rows
 *     (the documented limit of an asynchronous failover). */
#include <check.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "it.h"
#include "it_sub.h"

static it_env_t g_env;
static it_subdb_t g_sub;

#define PRIMARY_CONF                                                                               \
    "wal_level = logical\nmax_wal_senders = 10\nmax_replication_slots = 10\n"                      \
    "wal_keep_size = 256MB\nhot_standby = on\n"

/* One case's two servers, broker objects and processes, and what the
 * test's own queue saw. */
static struct {
    it_cluster_t primary, standby;
    char super[IT_CONNINFO_MAX]; /* superuser, to hms on the primary */
    char standby_super[IT_CONNINFO_MAX];
    char conn[IT_CONNINFO_MAX]; /* role hms_sync, both hosts: the connector's */
    char source[256];           /* the events' source */
    PGconn *pg;                 /* superuser session on the primary's hms */
    PGconn *spg;                /* on the standby's, the primary after the promotion */
    char slot[64], exchange[128], dlx[160], queue[200], tapq[200];
    it_amqp_t tap;
    it_proc_t run, sub;
    bool crashed;          /* events read from now on count as after the failover */
    long before, after;    /* events read before the crash, after it */
    uint64_t max_before;   /* greatest commit position read before the crash */
    uint64_t min_after;    /* least read after it; UINT64_MAX while none */
    uint64_t first_after;  /* the first read after it */
    double promoted_ms;    /* it_now_ms() when pg_ctl promote returned */
    double first_after_ms; /* when the first event after the crash was read; 0: none yet */
    char before_ts[64];    /* the standby's clock_timestamp() just before the crash */
    /* (3): the rows the old primary committed and published that the
     * promoted server never had, as ids (uuids separated by commas) and as
     * DIGESTS on the old primary; NULL: none. */
    char *lost_ids;
    json_object *lost_rows;
} F;

static void fx_setup(void)
{
    memset(&F, 0, sizeof F);
    F.min_after = UINT64_MAX;
    it_env_slot_name(&g_env, F.slot, sizeof F.slot);
    it_env_exchange_name(&g_env, F.exchange, sizeof F.exchange);
    snprintf(F.dlx, sizeof F.dlx, "%s.dlx", F.exchange);
    snprintf(F.tapq, sizeof F.tapq, "%s.tap", F.exchange);
    /* The test's own durable queue: it keeps every event while the test
     * is busy with the servers. */
    ck_assert_int_eq(it_amqp_open(&F.tap, g_env.amqp_url), 0);
    ck_assert_int_eq(it_amqp_declare_exchange(&F.tap, F.exchange), 0);
    ck_assert_int_eq(it_amqp_queue_durable(&F.tap, F.tapq, F.exchange), 0);
    ck_assert_int_eq(it_amqp_consume(&F.tap), 0);
}

static void fx_teardown(void)
{
    it_proc_kill(&F.sub);
    it_proc_kill(&F.run);
    if (F.pg)
        PQfinish(F.pg);
    if (F.spg)
        PQfinish(F.spg);
    F.pg = F.spg = NULL;
    it_cluster_stop(&F.standby);
    it_cluster_stop(&F.primary);
    it_amqp_close(&F.tap);
    free(F.lost_ids);
    json_object_put(F.lost_rows);
    it_amqp_drop_subscriber(g_env.amqp_url, F.tapq, NULL, NULL);
    if (F.queue[0])
        it_amqp_drop_subscriber(g_env.amqp_url, F.queue, NULL, NULL);
    it_amqp_drop_subscriber(g_env.amqp_url, NULL, F.exchange, F.dlx);
}

/* A primary with database hms migrated, then its standby, which copies
 * everything migrate made; the connector's conninfo names both. */
static void clusters_up(void)
{
    ck_assert_int_eq(it_cluster_start(&g_env, &F.primary, NULL, PRIMARY_CONF), 0);
    PGconn *admin = it_pg_connect(F.primary.super_conninfo);
    ck_assert_ptr_nonnull(admin);
    int rc = it_pg_exec(admin, "CREATE DATABASE hms");
    PQfinish(admin);
    ck_assert_int_eq(rc, 0);
    it_cluster_conninfo(&F.primary, "postgres", "hms", F.super, sizeof F.super);
    it_proc_t mig;
    const char *argv[] = {"migrate", "--pg", F.super, NULL};
    ck_assert_int_eq(it_proc_spawn(&g_env, &mig, "failover-migrate", argv), 0);
    int code = it_proc_wait(&mig, 120000);
    it_proc_kill(&mig);
    if (code != 0)
        it_proc_dump(&mig, "migrate");
    ck_assert_int_eq(code, 0);
    F.pg = it_pg_connect(F.super);
    ck_assert_ptr_nonnull(F.pg);
    char *sysid = it_pg_value(F.pg, "SELECT system_identifier FROM pg_control_system()");
    ck_assert_ptr_nonnull(sysid);
    snprintf(F.source, sizeof F.source, "/hms-ehr/%s/hms/public.incidents", sysid);
    free(sysid);

    ck_assert_int_eq(it_cluster_standby(&g_env, &F.primary, &F.standby, NULL), 0);
    it_cluster_conninfo(&F.standby, "postgres", "hms", F.standby_super, sizeof F.standby_super);
    F.spg = it_pg_connect(F.standby_super);
    ck_assert_ptr_nonnull(F.spg);
    char *rec = it_pg_value(F.spg, "SELECT pg_is_in_recovery()");
    ck_assert_msg(rec && strcmp(rec, "t") == 0, "the standby is not in recovery");
    free(rec);
    /* libpq tries the hosts in order and keeps the first that accepts
     * writes; connect_timeout bounds each host, so a dead one costs little. */
    snprintf(F.conn, sizeof F.conn,
             "host=127.0.0.1,127.0.0.1 port=%d,%d user=hms_sync dbname=hms "
             "target_session_attrs=read-write connect_timeout=2",
             F.primary.port, F.standby.port);
}

/* `hms-sync run` on the pair, reconnecting fast, plus extra arguments;
 * waits until it streams from the primary. */
static void start_connector(const char *tag, const char *const extra[])
{
    const char *argv[32] = {"run",    "--pg",        F.conn,       "--amqp",   g_env.amqp_url,
                            "--slot", F.slot,        "--exchange", F.exchange, "--retry_min",
                            "100ms",  "--retry_max", "1s"};
    size_t n = 13;
    for (size_t i = 0; extra && extra[i] && n < 31; i++)
        argv[n++] = extra[i];
    argv[n] = NULL;
    ck_assert_int_eq(it_proc_spawn(&g_env, &F.run, tag, argv), 0);
    if (it_pg_wait_slot_active(F.pg, F.slot, 30000) != 0) {
        it_proc_dump(&F.run, "connector");
        ck_abort_msg("the connector never streamed from %s on the primary", F.slot);
    }
}

/* Reads the test's queue until it has read want events in all (before +
 * after), or nothing came for quiet_ms; every event is checked against the
 * contract and its commit position filed before or after the crash.
 * Returns how many it read. */
static long tap_read(long want, int quiet_ms)
{
    long got = 0;
    it_msg_t m;
    char why[512];
    while (F.before + F.after < want) {
        int rc = it_amqp_get(&F.tap, quiet_ms, &m);
        ck_assert_int_ge(rc, 0);
        if (rc == 0)
            break;
        json_object *ev = it_event_check(&m, F.source, why, sizeof why);
        ck_assert_msg(ev != NULL, "published event breaks the contract: %s", why);
        uint64_t lsn;
        unsigned ordinal;
        const char *id = it_json_str(ev, "id");
        ck_assert_msg(id && it_event_id_parse(id, &lsn, &ordinal), "event id %s",
                      id ? id : "(none)");
        if (!F.crashed) {
            F.before++;
            if (lsn > F.max_before)
                F.max_before = lsn;
        } else {
            if (F.after++ == 0) {
                F.first_after_ms = it_now_ms();
                F.first_after = lsn;
            }
            if (lsn < F.min_after)
                F.min_after = lsn;
        }
        json_object_put(ev);
        it_msg_free(&m);
        got++;
    }
    return got;
}

/* Reads whatever is waiting on the test's queue, without waiting. */
static void tap_poll(void)
{
    tap_read(LONG_MAX, 0);
}

/* The standby has replayed everything the primary wrote so far: the crash
 * then loses nothing the connector published. */
static void await_replayed(void)
{
    char *lsn = it_pg_value(F.pg, "SELECT pg_current_wal_lsn()");
    ck_assert_ptr_nonnull(lsn);
    char *ok = NULL;
    for (double stop = it_now_ms() + 30000; it_now_ms() < stop; it_sleep_ms(50)) {
        free(ok);
        ok = it_pg_value(F.spg, "SELECT pg_last_wal_replay_lsn() >= '%s'::pg_lsn", lsn);
        if (ok && strcmp(ok, "t") == 0)
            break;
    }
    ck_assert_msg(ok && strcmp(ok, "t") == 0, "the standby never replayed up to %s", lsn);
    free(ok);
    free(lsn);
}

/* Everything written so far is published and confirmed, and the standby
 * has it. */
static void await_settled(long want_events)
{
    tap_read(want_events, 20000);
    ck_assert_int_eq(F.before, want_events);
    uint64_t lsn = it_pg_insert_lsn(F.pg);
    if (it_pg_wait_confirmed(F.pg, F.slot, lsn, 30000) != 0) {
        it_proc_dump(&F.run, "connector");
        ck_abort_msg("the slot never confirmed %s", it_lsn_str(lsn));
    }
    await_replayed();
}

static void crash_primary(void)
{
    ck_assert_int_eq(it_cluster_crash(&F.primary), 0);
    PQfinish(F.pg);
    F.pg = NULL;
    F.crashed = true;
}

static void promote_standby(void)
{
    double t = it_now_ms();
    ck_assert_int_eq(it_cluster_promote(&g_env, &F.standby), 0);
    F.promoted_ms = it_now_ms();
    char *rec = it_pg_value(F.spg, "SELECT pg_is_in_recovery()");
    ck_assert_msg(rec && strcmp(rec, "f") == 0, "the standby is still in recovery");
    free(rec);
    fprintf(stderr, "failover: pg_ctl promote took %.0f ms\n", F.promoted_ms - t);
}

static long slots_named(PGconn *c, const char *slot)
{
    return it_pg_count(c, "SELECT count(*) FROM pg_replication_slots WHERE slot_name = '%s'", slot);
}

/* The last non-empty line of s, into out. */
static void last_line(const char *s, char *out, size_t n)
{
    const char *end = s + strlen(s);
    while (end > s && end[-1] == '\n')
        end--;
    const char *start = end;
    while (start > s && start[-1] != '\n')
        start--;
    snprintf(out, n, "%.*s", (int)(end - start), start);
}

/* (1) on_slot_loss = fail: the promoted server has no slot; the connector
 * reaches it (and only it) and stops with one line, creating nothing. */
START_TEST(test_slot_lost_is_refused)
{
    clusters_up();
    start_connector("failover-refused", NULL);
    ck_assert_int_eq(it_pg_exec(F.pg, "INSERT INTO incidents (region, summary) SELECT 'f' || "
                                      "(g %% 3), 'before ' || g FROM generate_series(1, 20) g"),
                     0);
    await_settled(20);
    crash_primary();
    /* With the primary down and the standby still read-only, no host is
     * acceptable: the connector keeps trying rather than settle for the
     * standby, where the slot is missing too. */
    it_sleep_ms(1500);
    if (it_proc_wait(&F.run, 0) >= 0) {
        it_proc_dump(&F.run, "connector");
        ck_abort_msg("the connector ended before the promotion (it took the read-only standby?)");
    }
    promote_standby();

    int code = it_proc_wait(&F.run, 60000);
    double ms = it_now_ms() - F.promoted_ms;
    char *out = it_proc_output(&F.run);
    ck_assert_ptr_nonnull(out);
    if (code != 1)
        it_proc_dump(&F.run, "connector");
    ck_assert_msg(code == 1,
                  "connector exit %d (-1: still running 60 s after the promotion), "
                  "want 1",
                  code);
    char line[1024], want_slot[128], want_target[64];
    last_line(out, line, sizeof line);
    snprintf(want_slot, sizeof want_slot, "replication slot \"%s\"", F.slot);
    snprintf(want_target, sizeof want_target, "127.0.0.1:%d", F.standby.port);
    ck_assert_msg(strstr(line, want_slot) && strstr(line, "disappeared"),
                  "the last line does not say %s disappeared: %s", want_slot, line);
    ck_assert_msg(strstr(line, want_target),
                  "the last line does not name the promoted server %s: %s", want_target, line);
    fprintf(stderr, "failover (fail): the connector exited 1 %.0f ms after the promotion: %s\n", ms,
            line);
    free(out);
    ck_assert_int_eq(slots_named(F.spg, F.slot), 0);
}
END_TEST

/* ---- (2) and (3): on_slot_loss = resnapshot ---- */

/* The rows of the first batch, which both the old and the new primary have. */
#define FIRST_BATCH "region LIKE 'r%'"

/* One small write transaction on the promoted server: an insert, an update
 * of two random rows, and with deletes a delete of one; the rows updated or
 * deleted are among those the SQL condition pick selects. */
static void write_one(int i, bool deletes, const char *pick)
{
    int op = i % (deletes ? 4 : 3);
    if (op == 0)
        ck_assert_int_eq(it_pg_exec(F.spg,
                                    "INSERT INTO incidents (region, severity, summary) VALUES "
                                    "('after%d', %d, 'after %d')",
                                    i % 3, 1 + i % 5, i),
                         0);
    else if (op == 3)
        ck_assert_int_eq(it_pg_exec(F.spg,
                                    "DELETE FROM incidents WHERE id IN (SELECT id FROM incidents "
                                    "WHERE %s ORDER BY random() LIMIT 1)",
                                    pick),
                         0);
    else
        ck_assert_int_eq(it_pg_exec(F.spg,
                                    "UPDATE incidents SET severity = severity %% 5 + 1, summary = "
                                    "'edit %d' WHERE id IN (SELECT id FROM incidents WHERE %s "
                                    "ORDER BY random() LIMIT 2)",
                                    i, pick),
                         0);
    tap_poll();
}

/* The whole line of s that holds marker (the first such), into line;
 * false when none does. */
static bool line_of(const char *s, const char *marker, char *line, size_t n)
{
    const char *a = s ? strstr(s, marker) : NULL;
    if (!a)
        return false;
    const char *b = a, *e = strchr(a, '\n');
    while (b > s && b[-1] != '\n')
        b--;
    snprintf(line, n, "%.*s", (int)(e ? e - b : (long)strlen(b)), b);
    return true;
}

/* The LSN a log line gives as key=X/X; false when it gives none. */
static bool log_lsn(const char *line, const char *key, uint64_t *out)
{
    char pat[64], v[32];
    snprintf(pat, sizeof pat, " %s=", key);
    const char *p = strstr(line, pat);
    if (!p)
        return false;
    p += strlen(pat);
    size_t len = strcspn(p, " \n");
    if (len >= sizeof v)
        return false;
    memcpy(v, p, len);
    v[len] = '\0';
    return it_lsn_parse(v, out);
}

/* Waits until the connector's log says `first` and, after it, `then`
 * (the connector logged `then` when it started too), reading the test's
 * queue meanwhile; the line that says `first` goes to line.  Fails when
 * the connector ended or time ran out. */
static void await_log_after(const char *first, const char *then, int timeout_ms, char *line,
                            size_t n)
{
    for (double stop = it_now_ms() + timeout_ms;; it_sleep_ms(50)) {
        tap_poll();
        char *out = it_proc_output(&F.run);
        bool b = line_of(out, first, line, n) && strstr(strstr(out, first), then);
        free(out);
        if (b)
            return;
        if (it_proc_wait(&F.run, 0) >= 0 || it_now_ms() > stop) {
            it_proc_dump(&F.run, "connector");
            ck_abort_msg("the connector's log never said '%s' and then '%s' (exit %d)", first, then,
                         F.run.pid ? -1 : F.run.status);
        }
    }
}

#define ROWS                                                                                       \
    "SELECT id || '|' || region || '|' || severity || '|' || status || '|' || "                    \
    "coalesce(summary, '') || '|' || version FROM %s ORDER BY 1"
/* ROWS with a digest of the summary, for the lost rows' megabyte ones. */
#define DIGESTS                                                                                    \
    "SELECT id || '|' || region || '|' || severity || '|' || status || '|' || "                    \
    "md5(coalesce(summary, '')) || '|' || version FROM %s ORDER BY 1"
/* The warehouse's live rows whose ids are (IN: = ANY) or are not (<> ALL)
 * among those listed in %s (uuids separated by commas, or nothing). */
#define WAREHOUSE_LIVE(IN)                                                                         \
    "(SELECT incident_id AS id, region, severity, status, summary, version FROM incident_facts "   \
    "WHERE NOT deleted AND incident_id " IN " ('{%s}'::uuid[])) f"

/* Prints up to 10 rows that differ between the two sorted lists. */
static void show_diff(json_object *x, json_object *y)
{
    size_t nx = json_object_array_length(x), ny = json_object_array_length(y), shown = 0;
    for (size_t i = 0, j = 0; (i < nx || j < ny) && shown < 10;) {
        const char *sx = i < nx ? json_object_get_string(json_object_array_get_idx(x, i)) : NULL;
        const char *sy = j < ny ? json_object_get_string(json_object_array_get_idx(y, j)) : NULL;
        int c = sx && sy ? strcmp(sx, sy) : sx ? -1 : 1;
        if (c == 0) {
            i++, j++;
            continue;
        }
        fprintf(stderr, "failover: %s %s\n",
                c < 0 ? "source only:" : "warehouse only:", c < 0 ? sx : sy);
        shown++;
        c < 0 ? i++ : j++;
    }
}

/* Waits up to timeout_ms until the warehouse's live rows are the promoted
 * server's rows (same ids, versions and content, nothing more) plus
 * exactly the lost rows (F.lost_ids, F.lost_rows) as the old primary had
 * them.  Returns when they are, fails showing the difference when they
 * never were. */
static void await_converged(int timeout_ms)
{
    const char *ids = F.lost_ids ? F.lost_ids : "";
    char others[8192], lost[8192];
    ck_assert_int_lt(snprintf(others, sizeof others, WAREHOUSE_LIVE("<> ALL"), ids),
                     (int)sizeof others);
    ck_assert_int_lt(snprintf(lost, sizeof lost, WAREHOUSE_LIVE("= ANY"), ids), (int)sizeof lost);
    json_object *none = json_object_new_array();
    json_object *want_lost = F.lost_rows ? F.lost_rows : none;
    json_object *x = NULL, *y = NULL, *z = NULL;
    for (double stop = it_now_ms() + timeout_ms;; it_sleep_ms(250)) {
        tap_poll();
        json_object_put(x);
        json_object_put(y);
        json_object_put(z);
        x = it_pg_column(F.spg, ROWS, "incidents");
        y = it_pg_column(g_sub.pg, ROWS, others);
        z = it_pg_column(g_sub.pg, DIGESTS, lost);
        ck_assert_ptr_nonnull(x);
        ck_assert_ptr_nonnull(y);
        ck_assert_ptr_nonnull(z);
        if (json_object_equal(x, y) && json_object_equal(want_lost, z))
            break;
        if (it_now_ms() > stop) {
            show_diff(x, y);
            show_diff(want_lost, z);
            it_proc_dump(&F.sub, "subscriber");
            ck_abort_msg("the warehouse (%zu live rows, and %zu of the %zu lost ones) never "
                         "equalled the promoted server (%zu rows) within %d ms",
                         json_object_array_length(y), json_object_array_length(z),
                         json_object_array_length(want_lost), json_object_array_length(x),
                         timeout_ms);
        }
    }
    fprintf(stderr, "failover: %zu rows equal at the source and the warehouse",
            json_object_array_length(x));
    if (F.lost_rows)
        fprintf(stderr, ", which keeps the %zu lost rows besides", json_object_array_length(z));
    fputc('\n', stderr);
    json_object_put(x);
    json_object_put(y);
    json_object_put(z);
    json_object_put(none);
}

/* The warehouse subscriber (`hms-sync consume` into an empty
 * incident_facts) and the connector with on_slot_loss = resnapshot. */
static void resnapshot_up(const char *tag)
{
    ck_assert_int_eq(it_pg_exec(g_sub.pg, "TRUNCATE incident_facts, hms_sync.inbox"), 0);
    ck_assert_int_eq(it_amqp_declare_dlx(&F.tap, F.dlx), 0);
    snprintf(F.queue, sizeof F.queue, "%s.warehouse", F.exchange);
    if (it_consume_start(&g_env, &F.sub, "failover-warehouse", g_sub.conninfo, F.exchange, F.dlx,
                         F.queue, "hms_sync.apply_warehouse", NULL) != 0)
        ck_abort_msg("the warehouse subscriber never started consuming");
    /* Small chunks: the re-snapshot takes several, with live changes
     * in between. */
    const char *const extra[] = {"--on_slot_loss", "resnapshot", "--snapshot_chunk", "40", NULL};
    start_connector(tag, extra);
}

/* The first batch, on the primary: inserts (50 to a transaction; region
 * r0..r3, which FIRST_BATCH selects), then updates of some rows and
 * deletes of others, one statement each.  Returns the events they make. */
static long write_first_batch(int inserts, int updates, int deletes)
{
    ck_assert_int_le(updates + deletes, inserts);
    for (int i = 0; i < inserts; i += 50)
        ck_assert_int_eq(it_pg_exec(F.pg,
                                    "INSERT INTO incidents (region, severity, summary) SELECT 'r' "
                                    "|| (g %% 4), 1 + g %% 5, 'before ' || g FROM "
                                    "generate_series(%d, %d) g",
                                    i + 1, i + 50 < inserts ? i + 50 : inserts),
                         0);
    ck_assert_int_eq(it_pg_exec(F.pg,
                                "UPDATE incidents SET status = 'triaged', summary = summary || ' "
                                "(edited)' WHERE id IN (SELECT id FROM incidents ORDER BY id "
                                "LIMIT %d)",
                                updates),
                     0);
    ck_assert_int_eq(it_pg_exec(F.pg,
                                "DELETE FROM incidents WHERE id IN (SELECT id FROM incidents "
                                "ORDER BY id DESC LIMIT %d)",
                                deletes),
                     0);
    return inserts + updates + deletes;
}

/* Crashes the primary and promotes the standby, having noted the time:
 * snapshot requests made after it are the connector's answer. */
static void fail_over(void)
{
    char *ts = it_pg_value(F.spg, "SELECT clock_timestamp()");
    ck_assert_ptr_nonnull(ts);
    snprintf(F.before_ts, sizeof F.before_ts, "%s", ts);
    free(ts);
    crash_primary();
    promote_standby();
}

/* Waits until the connector has recreated its slot on the promoted server;
 * the warning that says it does (with the fence) goes to warn. */
static void await_recreated(char *warn, size_t n)
{
    await_log_after("recreating the replication slot", "created replication slot", 60000, warn, n);
    ck_assert_msg(strstr(warn, "level=warn"), "not a warning: %s", warn);
    fprintf(stderr, "failover: %s\nfailover: the new slot exists %.0f ms after the promotion\n",
            warn, it_now_ms() - F.promoted_ms);
    ck_assert_int_eq(slots_named(F.spg, F.slot), 1);
}

/* The end of (2) and (3): the re-snapshot (an initial request made after
 * the failover) is done, the warehouse converges (await_converged), the
 * connector still runs, and no position published after the promotion is
 * at or below one published before the crash.  Returns the milliseconds
 * from the promotion to convergence. */
static double await_recovered(void)
{
    char *state = NULL;
    for (double stop = it_now_ms() + 60000; it_now_ms() < stop; it_sleep_ms(100)) {
        tap_poll();
        free(state);
        state = it_pg_value(F.spg,
                            "SELECT state FROM hms_sync.snapshots WHERE slot = '%s' AND initial "
                            "AND requested_at > '%s' ORDER BY requested_at DESC LIMIT 1",
                            F.slot, F.before_ts);
        if (state && (strcmp(state, "done") == 0 || strcmp(state, "failed") == 0))
            break;
    }
    if (!state || strcmp(state, "done") != 0)
        it_proc_dump(&F.run, "connector");
    ck_assert_msg(state && strcmp(state, "done") == 0,
                  "the initial snapshot after the promotion is %s, want done",
                  state ? state : "(none)");
    free(state);

    await_converged(60000);
    double converged = it_now_ms() - F.promoted_ms;
    tap_read(LONG_MAX, 1000);
    ck_assert_msg(it_proc_wait(&F.run, 0) < 0, "the connector exited (%d)", F.run.status);

    /* Positions never go backwards across the failover. */
    ck_assert_int_gt(F.after, 0);
    ck_assert_msg(F.min_after > F.max_before,
                  "an event published after the promotion is at %s, not past %s, the greatest "
                  "position published before the crash",
                  it_lsn_str(F.min_after), it_lsn_str(F.max_before));
    return converged;
}

/* (2) on_slot_loss = resnapshot: the connector recreates its slot on the
 * promoted server and re-snapshots; the subscriber converges. */
START_TEST(test_slot_lost_resnapshots)
{
    clusters_up();
    resnapshot_up("failover-resnapshot");
    await_settled(write_first_batch(300, 50, 30));
    fail_over();

    /* While the connector finds the new primary: inserts and updates only.
     * A row deleted before the new slot exists is in neither the new
     * slot's changes nor the snapshot, and would stay at subscribers: the
     * window the connector logs (docs/configuration.md, on_slot_loss). */
    for (int i = 0; i < 100; i++)
        write_one(i, false, "true");
    char warn[1024] = "";
    await_recreated(warn, sizeof warn);

    /* Once it exists, deletes too, while the snapshot runs. */
    for (int i = 100; i < 200; i++)
        write_one(i, true, "true");

    double converged = await_recovered();
    fprintf(stderr,
            "failover (resnapshot): %ld events before the crash (up to %s), %ld after (from %s); "
            "first event from the new primary %.0f ms after the promotion, warehouse equal "
            "after %.0f ms\n",
            F.before, it_lsn_str(F.max_before), F.after, it_lsn_str(F.min_after),
            F.first_after_ms - F.promoted_ms, converged);
}
END_TEST

/* ---- (3) a lossy failover ---- */

/* Cuts the standby off, as a network partition would an asynchronous
 * standby: an empty primary_conninfo, reloaded, ends its WAL receiver and
 * starts none, so nothing the primary writes from now on reaches it.
 * (Pausing replay is not enough: the receiver goes on receiving, and
 * pg_ctl promote replays everything received before it ends recovery.) */
static void cut_off_standby(void)
{
    ck_assert_int_eq(it_pg_exec(F.spg, "ALTER SYSTEM SET primary_conninfo = ''"), 0);
    ck_assert_int_eq(it_pg_exec(F.spg, "SELECT pg_reload_conf()"), 0);
    long receivers = -1;
    for (double stop = it_now_ms() + 30000; it_now_ms() < stop; it_sleep_ms(50))
        if ((receivers = it_pg_count(F.spg, "SELECT count(*) FROM pg_stat_wal_receiver")) == 0)
            break;
    ck_assert_msg(receivers == 0, "the standby's WAL receiver never stopped");
}

/* Where the promoted server's timeline begins, from its newest timeline
 * history file: the end of the WAL the standby replayed. */
static uint64_t timeline_start(PGconn *c)
{
    char *v = it_pg_value(c, "SELECT (regexp_match(pg_read_file('pg_wal/' || "
                             "substr(pg_walfile_name(pg_current_wal_lsn()), 1, 8) || '.history'), "
                             "E'([0-9A-F]+/[0-9A-F]+)\\t[^\\n]*\\n?$'))[1]");
    uint64_t lsn = 0;
    ck_assert_msg(v && it_lsn_parse(v, &lsn), "no timeline switch point (%s)", v ? v : "NULL");
    free(v);
    return lsn;
}

/* (3) on_slot_loss = resnapshot after a failover that loses transactions:
 * the standby stops receiving, and the primary commits a last batch that
 * the connector publishes, then crashes.  The promoted server's WAL goes
 * on from below positions subscribers already hold; the connector must
 * fence past them before it creates its slot. */
START_TEST(test_lossy_failover_fenced)
{
    clusters_up();
    resnapshot_up("failover-lossy");
    long events = write_first_batch(200, 30, 20);
    await_settled(events);
    cut_off_standby();

    /* The lost batch: 100 new rows in 4 transactions, each with one row of
     * 1 MB (md5 text, which pglz does not compress), so that the positions
     * published go some 4 MB past the standby's end.  Inserts only: the
     * rows stay at subscribers as the one, documented, trace of the lost
     * transactions; a lost update or delete of a row the new primary has
     * would leave subscribers ahead of it in ways the snapshot cannot mend. */
    for (int t = 0; t < 4; t++)
        ck_assert_int_eq(it_pg_exec(F.pg,
                                    "INSERT INTO incidents (region, severity, summary) SELECT "
                                    "'lost', 1 + g %% 5, 'lost ' || g || CASE WHEN g %% 25 = 0 "
                                    "THEN ' ' || (SELECT string_agg(md5(g || '.' || h || "
                                    "random()), '') FROM generate_series(1, 32768) h) ELSE '' "
                                    "END FROM generate_series(%d, %d) g",
                                    t * 25 + 1, t * 25 + 25),
                         0);
    long nlost = 100;
    F.lost_ids = it_pg_value(
        F.pg, "SELECT string_agg(id::text, ',' ORDER BY id) FROM incidents WHERE region = 'lost'");
    F.lost_rows = it_pg_column(F.pg, DIGESTS, "incidents WHERE region = 'lost'");
    ck_assert_ptr_nonnull(F.lost_ids);
    ck_assert_ptr_nonnull(F.lost_rows);
    ck_assert_int_eq(json_object_array_length(F.lost_rows), nlost);
    events += nlost;
    tap_read(events, 30000);
    ck_assert_int_eq(F.before, events);
    uint64_t primary_end = it_pg_insert_lsn(F.pg);

    fail_over();
    uint64_t promoted_insert = it_pg_insert_lsn(F.spg);
    uint64_t standby_end = timeline_start(F.spg);
    fprintf(stderr,
            "failover (lossy): the old primary ended at %s, the greatest position published "
            "before the crash is %s, the promoted server's timeline begins at %s (insert "
            "position %s right after the promotion)\n",
            it_lsn_str(primary_end), it_lsn_str(F.max_before), it_lsn_str(standby_end),
            it_lsn_str(promoted_insert));
    long had = it_pg_count(F.spg, "SELECT count(*) FROM incidents WHERE id = ANY ('{%s}'::uuid[])",
                           F.lost_ids);
    ck_assert_msg(had == 0,
                  "the promoted server has %ld of the %ld lost rows: the failover lost "
                  "nothing, so this case tests no fence",
                  had, nlost);
    ck_assert_msg(standby_end < F.max_before,
                  "the promoted server's WAL begins at %s, not below %s, the greatest position "
                  "published before the crash: new transactions cannot collide with published "
                  "ones, so this case tests no fence",
                  it_lsn_str(standby_end), it_lsn_str(F.max_before));

    /* At once, inserts and updates of first-batch rows: those that commit
     * before the connector fences take positions between the standby's
     * end and the fence, which lost events hold at subscribers; only the
     * snapshot carries them.  No deletes yet, as in (2). */
    int early = 0; /* committed at positions lost events hold */
    for (int i = 0; i < 60; i++) {
        write_one(i, false, FIRST_BATCH);
        if (it_pg_insert_lsn(F.spg) <= F.max_before)
            early++;
    }
    char warn[1024] = "", window[1024] = "";
    await_recreated(warn, sizeof warn);
    uint64_t fence = 0;
    ck_assert_msg(log_lsn(warn, "fence", &fence), "no fence=X/X in: %s", warn);
    ck_assert_msg(fence >= F.max_before,
                  "the fence %s is below %s, the greatest position published before the crash",
                  it_lsn_str(fence), it_lsn_str(F.max_before));
    ck_assert_int_eq(it_proc_wait_log(&F.run, "changes between the lost slot", 5000), 0);
    char *out = it_proc_output(&F.run);
    ck_assert(line_of(out, "changes between the lost slot", window, sizeof window));
    free(out);
    fprintf(stderr, "failover: %s\n", window);

    /* Once the slot exists, deletes of first-batch rows too, while the
     * snapshot runs: they must reach the warehouse. */
    for (int i = 60; i < 100; i++)
        write_one(i, true, FIRST_BATCH);

    double converged = await_recovered();
    ck_assert_msg(F.min_after > fence,
                  "an event published after the promotion is at %s, not past "
                  "the fence %s",
                  it_lsn_str(F.min_after), it_lsn_str(fence));
    /* it_lsn_str has four buffers: more at once need copies. */
    char s_fence[32], s_max[32], s_first[32], s_min[32], s_end[32];
    snprintf(s_fence, sizeof s_fence, "%s", it_lsn_str(fence));
    snprintf(s_max, sizeof s_max, "%s", it_lsn_str(F.max_before));
    snprintf(s_first, sizeof s_first, "%s", it_lsn_str(F.first_after));
    snprintf(s_min, sizeof s_min, "%s", it_lsn_str(F.min_after));
    snprintf(s_end, sizeof s_end, "%s", it_lsn_str(standby_end));
    fprintf(stderr,
            "failover (lossy): the standby's end %s < greatest position published before the "
            "crash %s <= fence %s < first position published after the promotion %s (least "
            "%s); %ld events before the crash, %ld after; %d of the 60 writes made at once "
            "committed at or below %s; first event from the new primary %.0f ms after the "
            "promotion, warehouse equal after %.0f ms\n",
            s_end, s_max, s_fence, s_first, s_min, F.before, F.after, early, s_max,
            F.first_after_ms - F.promoted_ms, converged);
}
END_TEST

static Suite *failover_suite(void)
{
    Suite *s = suite_create("failover");
    it_tcase(s, "slot_lost_is_refused", fx_setup, fx_teardown, 120, test_slot_lost_is_refused);
    it_tcase(s, "slot_lost_resnapshots", fx_setup, fx_teardown, 180, test_slot_lost_resnapshots);
    it_tcase(s, "lossy_failover_fenced", fx_setup, fx_teardown, 180, test_lossy_failover_fenced);
    return s;
}

IT_MAIN(.name = "failover", .env = &g_env, .sub = &g_sub, .suite = failover_suite)
