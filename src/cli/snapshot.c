/* snapshot.c -- `hms-sync snapshot`: ask the running connector for a
 * snapshot (and follow it), cancel one, or list them.
 *
 * The command never talks to the connector: it writes a request into
 * hms_sync.snapshots and the connector of the slot picks it up, so a request
 * survives restarts of either.  What can be checked before the request is
 * queued is checked here, so a mistake fails now, at the terminal, rather
 * than later inside the connector: the --where condition (by the server
 * itself) and, given --amqp, that the --queue exists. */
#include <amqp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli/commands.h"
#include "cli/snapwait.h"
#include "common/amqp_tls.h"
#include "common/pgconn.h"
#include "daemon/snapreq.h"

#define CHANNEL 1

/* connect_timeout in libpq's whole seconds, rounded up. */
static int timeout_s(const hms_config_t *cfg)
{
    return (int)((cfg->connect_timeout_ms + 999) / 1000);
}

/* A passive declare: the queue must exist, and nothing is created (the
 * user needs no configure permission).  HMS_ERR_CONFIG when it is missing:
 * the connector would have every event of the snapshot returned. */
static hms_status_t check_queue(const hms_config_t *cfg, const char *queue, hms_err_t *err)
{
    hms_amqp_tls_opts_t o = {.url = cfg->amqp,
                             .tls = hms_cli_amqp_tls(cfg),
                             .frame_max = 131072,
                             .connect_timeout_ms = (int)cfg->connect_timeout_ms};
    amqp_connection_state_t c = NULL;
    char target[300], why[300];
    hms_status_t st = hms_amqp_tls_connect(&o, &c, target, sizeof(target), NULL, err);
    if (st != HMS_OK)
        return st;
    amqp_channel_open(c, CHANNEL);
    amqp_rpc_reply_t r = amqp_get_rpc_reply(c);
    if (r.reply_type == AMQP_RESPONSE_NORMAL) {
        amqp_queue_declare(c, CHANNEL, amqp_cstring_bytes(queue), 1, 0, 0, 0, amqp_empty_table);
        r = amqp_get_rpc_reply(c);
    }
    if (r.reply_type == AMQP_RESPONSE_SERVER_EXCEPTION && r.reply.id == AMQP_CHANNEL_CLOSE_METHOD &&
        ((amqp_channel_close_t *)r.reply.decoded)->reply_code == AMQP_NOT_FOUND) {
        st = hms_err_set(err, HMS_ERR_CONFIG,
                         "snapshot: --queue: queue \"%s\" does not exist on %s; a snapshot for "
                         "one subscriber goes to its existing queue (hms-sync consume declares "
                         "it)",
                         queue, target);
    } else if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        hms_amqp_reply_text(r, why, sizeof(why));
        st = hms_err_set(err, HMS_ERR_AMQP, "snapshot: cannot check queue \"%s\" on %s: %s", queue,
                         target, why);
    } else {
        amqp_channel_close(c, CHANNEL, AMQP_REPLY_SUCCESS);
    }
    amqp_connection_close(c, AMQP_REPLY_SUCCESS);
    amqp_destroy_connection(c);
    return st;
}

/* Says on stderr when no connector can take the request now: it is queued
 * all the same and starts when one does. */
static void note_slot(PGconn *conn, const char *slot, const char *target)
{
    hms_snapreq_slot_t state;
    hms_err_t err;
    if (hms_snapreq_slot(conn, slot, &state, &err) != HMS_OK)
        return; /* only a courtesy: the request itself decides */
    if (state == HMS_SNAPREQ_SLOT_MISSING)
        fprintf(stderr,
                "hms-sync: note: replication slot \"%s\" does not exist on %s; the snapshot "
                "starts once `hms-sync run` has created it\n",
                slot, target);
    else if (state == HMS_SNAPREQ_SLOT_IDLE)
        fprintf(stderr,
                "hms-sync: note: no connector streams from replication slot \"%s\" now; the "
                "snapshot starts when one does\n",
                slot);
}

static int request(PGconn *conn, const char *target, const hms_config_t *cfg,
                   const hms_cli_flags_t *flags)
{
    hms_err_t err;
    hms_status_t st;
    if (flags->where != NULL &&
        (st = hms_snapreq_check_where(conn, &hms_capture_incidents, flags->where, &err)) != HMS_OK)
        return hms_cli_fail(st, &err);
    if (cfg->queue != NULL && cfg->amqp != NULL &&
        (st = check_queue(cfg, cfg->queue, &err)) != HMS_OK)
        return hms_cli_fail(st, &err);
    if (cfg->queue != NULL && cfg->amqp == NULL)
        fprintf(stderr,
                "hms-sync: note: queue \"%s\" was not checked; give --amqp to check that it "
                "exists\n",
                cfg->queue);
    note_slot(conn, cfg->slot, target);
    char id[64];
    if ((st = hms_snapreq_insert(conn, cfg->slot, flags->where, cfg->queue, id, sizeof(id),
                                 &err)) != HMS_OK)
        return hms_cli_fail(st, &err);
    printf("%s\n", id);
    fflush(stdout);
    if (!flags->wait)
        return HMS_EXIT_OK;
    return hms_cli_snapshot_wait(conn, id, stderr, isatty(STDERR_FILENO) == 1,
                                 HMS_SNAPWAIT_POLL_MS);
}

static int cancel(PGconn *conn, const char *id)
{
    hms_err_t err;
    hms_snapreq_t r = {0};
    bool found = false, cancelled = false;
    hms_status_t st = hms_snapreq_cancel(conn, id, &r, &found, &cancelled, &err);
    int rc = HMS_EXIT_OK;
    if (st != HMS_OK) {
        rc = hms_cli_fail(st, &err);
    } else if (!found) {
        fprintf(stderr,
                "hms-sync: snapshot: no snapshot \"%s\" in hms_sync.snapshots (see "
                "hms-sync snapshot --list)\n",
                id);
        rc = HMS_EXIT_FAILURE;
    } else if (cancelled) {
        printf("%s cancelled\n", id);
    } else if (strcmp(r.state, "cancelled") == 0) {
        printf("%s was already cancelled\n", id);
    } else {
        fprintf(stderr, "hms-sync: snapshot: %s cannot be cancelled: it is already %s\n", id,
                r.state);
        rc = HMS_EXIT_FAILURE;
    }
    hms_snapreq_clear(&r);
    return rc;
}

/* Where a request's events go, for people. */
static void destination(const hms_snapreq_t *r, char *out, size_t outlen)
{
    if (r->queue != NULL)
        snprintf(out, outlen, "queue %s", r->queue);
    else
        snprintf(out, outlen, "exchange");
}

static int list(PGconn *conn, const char *slot, bool json)
{
    hms_err_t err;
    hms_snapreq_t *reqs = NULL;
    size_t n = 0;
    hms_status_t st = hms_snapreq_list(conn, slot, false, &reqs, &n, &err);
    if (st != HMS_OK)
        return hms_cli_fail(st, &err);
    if (json) {
        json_object *arr = hms_snapreq_json_list(reqs, n);
        if (arr == NULL) {
            hms_snapreq_free_list(reqs, n);
            return hms_cli_fail(hms_err_set(&err, HMS_ERR_NOMEM, "snapshot: out of memory"), &err);
        }
        printf("%s\n", json_object_to_json_string_ext(arr, JSON_C_TO_STRING_PLAIN |
                                                               JSON_C_TO_STRING_NOSLASHESCAPE));
        json_object_put(arr);
    } else if (n == 0) {
        printf("no snapshots for slot %s\n", slot);
    } else {
        printf("%-30s %-9s %-24s %-22s %-27s %s\n", "ID", "STATE", "ROWS", "TO", "REQUESTED",
               "WHERE");
        for (size_t i = 0; i < n; i++) {
            const hms_snapreq_t *r = &reqs[i];
            char rows[64], to[280];
            hms_snapreq_rows(r, rows, sizeof(rows));
            destination(r, to, sizeof(to));
            printf("%-30s %-9s %-24s %-22s %-27s %s\n", r->id, r->state, rows, to, r->requested_at,
                   r->where_sql ? r->where_sql
                   : r->initial ? "(initial: every row)"
                                : "(every row)");
            if (r->error != NULL)
                printf("%-30s error: %s\n", "", r->error);
        }
    }
    hms_snapreq_free_list(reqs, n);
    return HMS_EXIT_OK;
}

/* Which action the options ask for, or an error naming the clash. */
static hms_status_t check_action(const hms_cli_flags_t *flags, hms_err_t *err)
{
    if (flags->cancel != NULL && flags->list)
        return hms_err_set(err, HMS_ERR_CONFIG,
                           "config: snapshot: --cancel and --list are two actions; give one");
    bool other = flags->cancel != NULL || flags->list;
    if (other && (flags->where != NULL || flags->wait))
        return hms_err_set(
            err, HMS_ERR_CONFIG, "config: snapshot: --%s belongs to a new request, not to --%s",
            flags->where != NULL ? "where" : "wait", flags->list ? "list" : "cancel");
    if (flags->json && !flags->list)
        return hms_err_set(err, HMS_ERR_CONFIG, "config: snapshot: --json goes with --list");
    return HMS_OK;
}

int hms_cli_snapshot(const hms_config_t *cfg, const hms_cli_flags_t *flags)
{
    hms_err_t err;
    hms_status_t st;
    if ((st = check_action(flags, &err)) != HMS_OK ||
        (st = hms_pg_check_conninfo(cfg->pg, &err)) != HMS_OK)
        return hms_cli_fail(st, &err);
    PGconn *conn = NULL;
    char target[300];
    if ((st = hms_pg_open(cfg->pg, "snapshot", timeout_s(cfg), &conn, &err)) != HMS_OK)
        return hms_cli_fail(st, &err);
    hms_pg_target(conn, target, sizeof(target));
    int rc;
    if ((st = hms_snapreq_table_ok(conn, target, &err)) != HMS_OK)
        rc = hms_cli_fail(st, &err);
    else if (flags->cancel != NULL)
        rc = cancel(conn, flags->cancel);
    else if (flags->list)
        rc = list(conn, cfg->slot, flags->json);
    else
        rc = request(conn, target, cfg, flags);
    PQfinish(conn);
    return rc;
}
