/* config_check.c -- what one setting alone cannot say: the settings a
 * subcommand requires, ranges that depend on another setting, the amqp_*
 * settings that only work together; and which files the settings name, for
 * run --check-config to open. */
#include <stdio.h>

#include "core/config_int.h"

/* The amqp_* settings that only make sense together: a TLS option over plain
 * amqp:// would silently protect nothing, and two passwords leave the reader
 * guessing which one is used. */
static hms_status_t check_amqp_auth(const hms_config_t *cfg, unsigned cmd, hms_err_t *err)
{
    if (!(cmd & HMS_CONFIG_CMD_AMQP) || cfg->amqp == NULL)
        return HMS_OK;
    bool tls = hms_config_starts_with(cfg->amqp, "amqps://");
    const char *tls_only[] = {"amqp_cacert", "amqp_cert", "amqp_key"};
    for (size_t k = 0; k < sizeof(tls_only) / sizeof(tls_only[0]) && !tls; k++) {
        const hms_config_setting_t *s = &hms_config_settings[hms_config_setting_index(tls_only[k])];
        if (hms_config_str(cfg, s) != NULL)
            return hms_err_set(err, HMS_ERR_CONFIG,
                               "config: %s: set, but the amqp URL is amqp:// (no TLS); use "
                               "amqps://",
                               s->name);
    }
    if ((cfg->amqp_cert == NULL) != (cfg->amqp_key == NULL))
        return hms_err_set(err, HMS_ERR_CONFIG,
                           "config: %s: set without %s; a client certificate needs both",
                           cfg->amqp_cert != NULL ? "amqp_cert" : "amqp_key",
                           cfg->amqp_cert != NULL ? "amqp_key" : "amqp_cert");
    if (cfg->amqp_auth == HMS_CONFIG_AMQP_AUTH_EXTERNAL) {
        if (!tls || cfg->amqp_cert == NULL)
            return hms_err_set(err, HMS_ERR_CONFIG,
                               "config: amqp_auth: external logs in with a TLS client "
                               "certificate; it needs an amqps:// URL and amqp_cert/amqp_key");
        if (cfg->amqp_password_file != NULL)
            return hms_err_set(err, HMS_ERR_CONFIG,
                               "config: amqp_password_file: set, but amqp_auth = external uses "
                               "no password");
    }
    if (cfg->amqp_password_file != NULL && hms_config_has_password(cfg->amqp))
        return hms_err_set(err, HMS_ERR_CONFIG,
                           "config: amqp_password_file: set, but the amqp URL has a password "
                           "too; remove it from the URL (amqps://USER@HOST/VHOST)");
    return HMS_OK;
}

/* "40s from /etc/hms-sync.ini:2": a duration setting's value and where it
 * came from, for an error that names two settings. */
static void describe(const hms_config_t *cfg, const char *name, char *out, size_t n)
{
    int i = hms_config_setting_index(name);
    const hms_config_setting_t *s = &hms_config_settings[i];
    char value[32], src[300];
    hms_config_format_duration(*(const int64_t *)((const char *)cfg + s->offset), value,
                               sizeof(value));
    hms_config_format_source(s, cfg->source[i].origin, cfg->config, cfg->source[i].line, src,
                             sizeof(src));
    snprintf(out, n, "%s from %s", value, src);
}

/* Ranges that depend on another setting.  A backoff that starts above its
 * cap is not a backoff; and on a quiet stream run asks PostgreSQL for a
 * keepalive only once feedback_interval has passed in silence, at the next
 * status message (up to another feedback_interval later), so a
 * replication_timeout of twice that or less takes a healthy idle
 * connection for dead. */
static hms_status_t check_durations(const hms_config_t *cfg, hms_err_t *err)
{
    char a[340], b[340];
    if (cfg->retry_min_ms > cfg->retry_max_ms) {
        describe(cfg, "retry_min", a, sizeof(a));
        describe(cfg, "retry_max", b, sizeof(b));
        return hms_err_set(err, HMS_ERR_CONFIG,
                           "config: retry_min: %s is greater than retry_max %s (allowed: "
                           "retry_min <= retry_max)",
                           a, b);
    }
    if (cfg->replication_timeout_ms != 0 &&
        cfg->replication_timeout_ms <= 2 * cfg->feedback_interval_ms) {
        describe(cfg, "replication_timeout", a, sizeof(a));
        describe(cfg, "feedback_interval", b, sizeof(b));
        return hms_err_set(err, HMS_ERR_CONFIG,
                           "config: replication_timeout: %s is not more than twice "
                           "feedback_interval %s (allowed: 0 (off) or more than twice "
                           "feedback_interval)",
                           a, b);
    }
    return HMS_OK;
}

/* A partition names one of the queue's partitions. */
static hms_status_t check_partition(const hms_config_t *cfg, hms_err_t *err)
{
    if (cfg->partition == 0 || cfg->partition <= cfg->partitions)
        return HMS_OK;
    return hms_err_set(err, HMS_ERR_CONFIG,
                       "config: partition: %d is not one of the %d partitions (allowed: 0 for "
                       "all, or 1..partitions)",
                       cfg->partition, cfg->partitions);
}

/* The fanout exchange is bound to the topic exchange: naming that one, or
 * the rejected exchange beside it, would bind an exchange to itself or mix
 * rejections into the events. */
static hms_status_t check_fanout(const hms_config_t *cfg, hms_err_t *err)
{
    const char *f = cfg->fanout_exchange, *x = cfg->exchange;
    if (f == NULL || x == NULL)
        return HMS_OK;
    size_t n = strlen(x);
    if (strcmp(f, x) == 0 || (strncmp(f, x, n) == 0 && strcmp(f + n, ".rejected") == 0))
        return hms_err_set(err, HMS_ERR_CONFIG,
                           "config: fanout_exchange: \"%s\" is the events' exchange or its "
                           "rejected exchange (allowed: another name, e.g. incidents)",
                           f);
    return HMS_OK;
}

hms_status_t hms_config_check(const hms_config_t *cfg, unsigned cmd, hms_err_t *err)
{
    for (int i = 0; i < hms_config_nsettings; i++) {
        const hms_config_setting_t *s = &hms_config_settings[i];
        if (!(s->required & cmd) || hms_config_str(cfg, s) != NULL)
            continue;
        /* The discard sink publishes nothing, so it needs no broker. */
        if (cmd == HMS_CMD_RUN && strcmp(s->name, "amqp") == 0 &&
            cfg->sink == HMS_CONFIG_SINK_DISCARD)
            continue;
        char env[96], opt[96];
        hms_config_env_name(s->name, env, sizeof(env));
        hms_config_option_name(s->name, opt, sizeof(opt));
        return hms_err_set(err, HMS_ERR_CONFIG,
                           "config: %s: not set; %s needs it (use --%s, %s or \"%s = ...\" in "
                           "the config file)",
                           s->name, hms_config_cmd_name(cmd), opt, env, s->name);
    }
    hms_status_t st = check_amqp_auth(cfg, cmd, err);
    if (st == HMS_OK)
        st = check_fanout(cfg, err);
    if (st == HMS_OK)
        st = check_partition(cfg, err);
    if (st != HMS_OK)
        return st;
    return check_durations(cfg, err);
}

int hms_config_files(const hms_config_t *cfg, unsigned cmd, hms_config_file_t *out, int max)
{
    int n = 0;
    for (int i = 0; i < hms_config_nsettings && n < max; i++) {
        const hms_config_setting_t *s = &hms_config_settings[i];
        if (s->type != HMS_CONFIG_T_PATH || !(s->cmds & cmd) || hms_config_str(cfg, s) == NULL)
            continue;
        out[n].setting = s->name;
        out[n].path = hms_config_str(cfg, s);
        out[n].write = (s->flags & HMS_CONFIG_F_WRITE) != 0;
        n++;
    }
    return n;
}
