/* consume.c -- `hms-sync consume`: settings into hms_consumer_opts_t. */
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/consumeview.h"
#include "cli/reload.h"
#include "cli/workers.h"
#include "common/pgconn.h"
#include "core/hostport.h"
#include "daemon/http.h"
#include "daemon/publisher.h"
#include "hms_consumer.h"

#define MAX_BINDS 64

/* The library's public status as the CLI's, for its exit code. */
static hms_status_t cli_status(hms_consumer_status_t st)
{
    switch (st) {
    case HMS_CONSUMER_OK: return HMS_OK;
    case HMS_CONSUMER_ERR_CONFIG: return HMS_ERR_CONFIG;
    case HMS_CONSUMER_ERR_PG: return HMS_ERR_PG;
    case HMS_CONSUMER_ERR_AMQP: return HMS_ERR_AMQP;
    case HMS_CONSUMER_ERR_NOMEM: return HMS_ERR_NOMEM;
    default: return HMS_ERR_IO;
    }
}

static void publish(const hms_consumer_stats_t *s, void *http)
{
    hms_http_publish(http, s);
}

/* One consumer: its metrics listener (when metrics is set), then the
 * library until a stop signal.  An exit code. */
static int run_one(hms_consumer_opts_t *o, const char *metrics)
{
    hms_err_t err;
    hms_status_t st;
    hms_http_t *http = NULL;
    if (metrics != NULL) {
        if ((st = hms_http_start(metrics, &hms_consume_view, &http, &err)) != HMS_OK)
            return hms_cli_fail(st, &err);
        o->stats = publish;
        o->stats_arg = http;
    }
    hms_consumer_err_t cerr;
    st = cli_status(hms_consumer_run(o, NULL, &cerr));
    hms_http_stop(http);
    if (st != HMS_OK) {
        hms_err_set(&err, st, "%s", cerr.msg);
        return hms_cli_fail(st, &err);
    }
    return HMS_EXIT_OK;
}

/* What each worker of `--partitions N` starts from. */
typedef struct {
    hms_consumer_opts_t o;
    const char *metrics;
} workers_t;

/* Worker i applies partition i; with metrics set it listens i - 1 ports
 * above the setting's, so that every worker can be scraped. */
static int run_worker(int i, void *arg)
{
    workers_t *w = arg;
    char listen[HMS_HOSTPORT_HOST_MAX + 16], why[128];
    hms_hostport_t hp;
    w->o.partition = i;
    if (w->metrics == NULL)
        return run_one(&w->o, NULL);
    if (!hms_hostport_parse(w->metrics, &hp, why, sizeof(why)) || hp.port + i - 1 > 65535) {
        hms_err_t err;
        hms_err_set(&err, HMS_ERR_CONFIG, "config: metrics: \"%s\" leaves no port for worker %d",
                    w->metrics, i);
        return hms_cli_fail(HMS_ERR_CONFIG, &err);
    }
    snprintf(listen, sizeof(listen), hp.bracketed ? "[%s]:%d" : "%s:%d", hp.host, hp.port + i - 1);
    return run_one(&w->o, listen);
}

int hms_cli_consume(const hms_config_t *cfg, const hms_cli_flags_t *flags)
{
    hms_err_t err;
    hms_status_t st;
    if ((st = hms_pg_check_conninfo(cfg->pg, &err)) != HMS_OK)
        return hms_cli_fail(st, &err);
    if ((st = hms_pub_check_url(cfg->amqp, &err)) != HMS_OK)
        return hms_cli_fail(st, &err);
    /* The setting is one comma-separated list (config_value.c checked each key). */
    char *keys = strdup(cfg->bind);
    if (keys == NULL) {
        hms_err_set(&err, HMS_ERR_NOMEM, "consume: out of memory");
        return hms_cli_fail(HMS_ERR_NOMEM, &err);
    }
    const char *binds[MAX_BINDS];
    size_t nbinds = 0;
    for (char *save = NULL, *k = strtok_r(keys, ",", &save); k != NULL;
         k = strtok_r(NULL, ",", &save)) {
        if (nbinds == MAX_BINDS) {
            free(keys);
            hms_err_set(&err, HMS_ERR_CONFIG, "config: bind: more than %d keys", MAX_BINDS);
            return hms_cli_fail(HMS_ERR_CONFIG, &err);
        }
        binds[nbinds++] = k;
    }
    hms_consumer_opts_t o = {
        .amqp_url = cfg->amqp,
        .amqp_cacert = cfg->amqp_cacert,
        .amqp_cert = cfg->amqp_cert,
        .amqp_key = cfg->amqp_key,
        .amqp_external = cfg->amqp_auth == HMS_CONFIG_AMQP_AUTH_EXTERNAL,
        .amqp_password_file = cfg->amqp_password_file,
        .pg_conninfo = cfg->pg,
        .exchange = cfg->exchange,
        .queue = cfg->queue,
        .apply = cfg->apply,
        .schemas = cfg->schemas,
        .binds = binds,
        .nbinds = nbinds,
        .origin = cfg->origin,
        .dead_letter_exchange = cfg->dead_letter_exchange,
        .classic = cfg->queue_type == HMS_CONFIG_QUEUE_CLASSIC,
        .prefetch = cfg->prefetch,
        .batch = cfg->batch,
        .batch_linger_ms = (int)cfg->batch_linger_ms,
        .delivery_limit = cfg->delivery_limit,
        .heartbeat_s = (int)(cfg->heartbeat_ms / 1000),
        .connect_timeout_ms = (int)cfg->connect_timeout_ms,
        .retry_min_ms = (int)cfg->retry_min_ms,
        .retry_max_ms = (int)cfg->retry_max_ms,
        .partitions = cfg->partitions,
        .partition = cfg->partition,
        .stats_interval_ms = 10000,
        .reload = hms_cli_reload,
    };
    hms_cli_reload_t reload;
    if ((st = hms_cli_reload_init(&reload, HMS_CMD_CONSUME, &err)) != HMS_OK) {
        hms_cli_reload_free(&reload);
        free(keys);
        return hms_cli_fail(st, &err);
    }
    o.reload_arg = &reload;
    int code;
    if (cfg->partitions > 0 && cfg->partition == 0) {
        workers_t w = {o, cfg->metrics};
        code = hms_cli_workers(cfg->partitions, run_worker, &w);
    } else {
        code = run_one(&o, cfg->metrics);
    }
    hms_cli_reload_free(&reload);
    free(keys);
    return code;
}
