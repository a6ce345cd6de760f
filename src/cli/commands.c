/* commands.c -- migrate, run and status: turn settings into calls. */
#include "cli/commands.h"

#include <stdio.h>
#include <stdlib.h>

#include "cli/reload.h"
#include "cli/watch.h"
#include "common/amqp_tls.h"
#include "common/pgconn.h"
#include "daemon/config_load.h"
#include "daemon/loop.h"
#include "daemon/migrations.h"
#include "daemon/scrape.h"
#include "daemon/slotstatus.h"

extern char **environ;

int hms_cli_fail(hms_status_t st, const hms_err_t *err)
{
    fprintf(stderr, "hms-sync: %s\n", err->msg);
    return st == HMS_ERR_CONFIG ? HMS_EXIT_USAGE : HMS_EXIT_FAILURE;
}

/* connect_timeout in libpq's whole seconds, rounded up. */
static int timeout_s(const hms_config_t *cfg)
{
    return (int)((cfg->connect_timeout_ms + 999) / 1000);
}

int hms_cli_migrate(const hms_config_t *cfg, const hms_cli_flags_t *flags)
{
    hms_err_t err;
    hms_status_t st;
    if ((st = hms_pg_check_conninfo(cfg->pg, &err)) != HMS_OK)
        return hms_cli_fail(st, &err);
    if (flags->subscriber) {
        /* The subscriber's database need not be the source's: its set has a
         * ledger of its own and depends on nothing the publisher set made. */
        PGconn *conn = NULL;
        if ((st = hms_pg_open(cfg->pg, "migrate --subscriber", timeout_s(cfg), &conn, &err)) !=
            HMS_OK)
            return hms_cli_fail(st, &err);
        st = hms_migrate_apply(conn, hms_sql_subscriber_migrations,
                               hms_sql_subscriber_migrations_count, "subscriber_migrations", stdout,
                               &err);
        PQfinish(conn);
        return st == HMS_OK ? HMS_EXIT_OK : hms_cli_fail(st, &err);
    }
    if ((st = hms_migrate_run(cfg->pg, cfg->publication, timeout_s(cfg), stdout, &err)) != HMS_OK)
        return hms_cli_fail(st, &err);
    return HMS_EXIT_OK;
}

/* One status: the slot's figures and, with --metrics, the running
 * connector's (for JSON as a "connector" member of the same object),
 * written to out.  *lag_bytes gets the slot's lag (-1 when unknown). */
static hms_status_t status_once(const hms_config_t *cfg, bool json, FILE *out, double *lag_bytes,
                                hms_err_t *err)
{
    json_object *obj, *m = NULL, *lag;
    *lag_bytes = -1;
    if (cfg->metrics != NULL && (m = hms_scrape_metrics(cfg->metrics, err)) == NULL)
        return HMS_ERR_IO;
    hms_status_t st = hms_slot_status_read(cfg->pg, cfg->slot, timeout_s(cfg), &obj, err);
    if (st != HMS_OK) {
        json_object_put(m);
        return st;
    }
    if (json_object_object_get_ex(obj, "lag_bytes", &lag) && lag != NULL)
        *lag_bytes = json_object_get_double(lag);
    if (json && m != NULL) {
        json_object_object_add(obj, "connector", m);
        m = NULL;
    }
    hms_slot_status_print(obj, json, out);
    if (m != NULL) {
        json_object_object_foreach(m, key, val)
        {
            fprintf(out, "%-*s %.17g\n", 27, key, json_object_get_double(val));
        }
        json_object_put(m);
    }
    json_object_put(obj);
    return HMS_OK;
}

/* status --watch's way to draw one frame. */
static hms_status_t watch_frame(const void *arg, bool json, FILE *out, double *lag_bytes,
                                hms_err_t *err)
{
    return status_once(arg, json, out, lag_bytes, err);
}

int hms_cli_status(const hms_config_t *cfg, const hms_cli_flags_t *flags)
{
    hms_err_t err;
    hms_status_t st;
    if ((st = hms_pg_check_conninfo(cfg->pg, &err)) != HMS_OK)
        return hms_cli_fail(st, &err);
    if (flags->watch != NULL) {
        int seconds;
        if ((st = hms_cli_watch_seconds(flags->watch, &seconds, &err)) != HMS_OK)
            return hms_cli_fail(st, &err);
        return hms_cli_watch(seconds, flags->json, watch_frame, cfg);
    }
    double lag;
    if ((st = status_once(cfg, flags->json, stdout, &lag, &err)) != HMS_OK)
        return hms_cli_fail(st, &err);
    return HMS_EXIT_OK;
}

hms_amqp_tls_t hms_cli_amqp_tls(const hms_config_t *cfg)
{
    return (hms_amqp_tls_t){.cacert = cfg->amqp_cacert,
                            .cert = cfg->amqp_cert,
                            .key = cfg->amqp_key,
                            .external = cfg->amqp_auth == HMS_CONFIG_AMQP_AUTH_EXTERNAL,
                            .password_file = cfg->amqp_password_file};
}

/* run --check-config opens every file the settings name, and loads the TLS
 * files as a connection would, so a missing key or a password file others
 * can read fails the check rather than the first connection. */
static hms_status_t check_files(const hms_config_t *cfg, hms_err_t *err)
{
    hms_status_t st = hms_config_open_files(cfg, HMS_CMD_RUN, err);
    if (st != HMS_OK || cfg->amqp == NULL)
        return st; /* without a URL the amqp_* pairs were never checked */
    hms_amqp_tls_t tls = hms_cli_amqp_tls(cfg);
    return hms_amqp_tls_check_files(&tls, err);
}

int hms_cli_run(const hms_config_t *cfg, const hms_cli_flags_t *flags)
{
    hms_err_t err;
    hms_status_t st;
    if (flags->print_config) {
        hms_config_print(cfg, HMS_CMD_RUN, stdout);
        return HMS_EXIT_OK;
    }
    if ((st = hms_pg_check_conninfo(cfg->pg, &err)) != HMS_OK)
        return hms_cli_fail(st, &err);
    if (cfg->sink != HMS_CONFIG_SINK_DISCARD && (st = hms_pub_check_url(cfg->amqp, &err)) != HMS_OK)
        return hms_cli_fail(st, &err);
    if (flags->check_config) {
        if ((st = check_files(cfg, &err)) != HMS_OK)
            return hms_cli_fail(st, &err);
        hms_config_warn_env(environ, stderr);
        printf("configuration ok\n");
        return HMS_EXIT_OK;
    }
    hms_run_opts_t o = {
        .repl = {.conninfo = cfg->pg,
                 .slot = cfg->slot,
                 .publication = cfg->publication,
                 .connect_timeout_s = timeout_s(cfg),
                 .slot_wait_ms = (int)cfg->slot_wait_ms,
                 .create_slot = true,
                 .initial_snapshot = cfg->snapshot == HMS_CONFIG_SNAPSHOT_INITIAL,
                 .resnapshot = cfg->on_slot_loss == HMS_CONFIG_SLOT_LOSS_RESNAPSHOT,
                 .captures = &hms_capture_incidents,
                 .ncaptures = 1},
        .pub = {.url = cfg->amqp,
                .tls = hms_cli_amqp_tls(cfg),
                .exchange = cfg->exchange,
                .fanout_exchange = cfg->fanout_exchange,
                .events_exchange = cfg->events_exchange,
                .heartbeat_s = (int)(cfg->heartbeat_ms / 1000),
                .connect_timeout_ms = (int)cfg->connect_timeout_ms},
        .window = cfg->window,
        .max_event_bytes = (size_t)cfg->max_event_bytes,
        .schemas = cfg->schemas,
        .snapshot_chunk = cfg->snapshot_chunk,
        .feedback_interval_ms = (int)cfg->feedback_interval_ms,
        .replication_timeout_ms = (int)cfg->replication_timeout_ms,
        .shutdown_timeout_ms = (int)cfg->shutdown_timeout_ms,
        .retry_min_ms = (int)cfg->retry_min_ms,
        .retry_max_ms = (int)cfg->retry_max_ms,
        .discard = cfg->sink == HMS_CONFIG_SINK_DISCARD,
        .metrics = cfg->metrics,
        .standby = cfg->standby,
        .reload = hms_cli_reload,
    };
    hms_cli_reload_t reload;
    if ((st = hms_cli_reload_init(&reload, HMS_CMD_RUN, &err)) != HMS_OK) {
        hms_cli_reload_free(&reload);
        return hms_cli_fail(st, &err);
    }
    o.reload_arg = &reload;
    st = hms_run(&o, &err);
    hms_cli_reload_free(&reload);
    if (st != HMS_OK)
        return hms_cli_fail(st, &err);
    return HMS_EXIT_OK;
}
