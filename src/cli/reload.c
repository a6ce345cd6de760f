/* reload.c -- SIGHUP: settings read again, the log's applied, the rest
 * reported until a restart. */
#include "cli/reload.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "core/buf.h"
#include "daemon/config_load.h"

extern char **environ;

/* The command line is the process's: a reload reads the same one again. */
static int saved_argc;
static char **saved_argv;

void hms_cli_reload_remember(int argc, char **argv)
{
    saved_argc = argc;
    saved_argv = argv;
}

static hms_status_t load(hms_config_t *cfg, unsigned cmd, hms_err_t *err)
{
    hms_cli_flags_t flags;
    memset(&flags, 0, sizeof(flags));
    return hms_config_load(cfg, cmd, saved_argc, saved_argv, environ, &flags, err);
}

hms_status_t hms_cli_reload_init(hms_cli_reload_t *r, unsigned cmd, hms_err_t *err)
{
    memset(r, 0, sizeof(*r));
    r->cmd = cmd;
    return load(&r->current, cmd, err);
}

void hms_cli_reload_free(hms_cli_reload_t *r)
{
    hms_config_free(&r->current);
}

/* The line of rendered (--print-config) text that sets name, or NULL. */
static const char *rendered_line(const char *text, const char *name, size_t *len)
{
    size_t n = strlen(name);
    for (const char *p = text; p != NULL && *p != '\0';) {
        const char *end = strchr(p, '\n');
        size_t l = end ? (size_t)(end - p) : strlen(p);
        if ((l > n && strncmp(p, name, n) == 0 && p[n] == ' ') ||
            (l > n + 2 && strncmp(p, "# ", 2) == 0 && strncmp(p + 2, name, n) == 0 &&
             p[n + 2] == ' ')) {
            *len = l;
            return p;
        }
        p = end ? end + 1 : NULL;
    }
    return NULL;
}

/* Logs every setting whose rendered value differs between a and b and that
 * a reload cannot apply.  Secrets render as ***, so a changed password is
 * not seen here; it needs a restart like every connection setting. */
static void report_restart_needed(const hms_config_t *a, const hms_config_t *b, unsigned cmd)
{
    hms_buf_t ra = HMS_BUF_INIT, rb = HMS_BUF_INIT;
    if (hms_config_render(a, cmd, &ra) != HMS_OK || hms_config_render(b, cmd, &rb) != HMS_OK ||
        ra.data == NULL || rb.data == NULL)
        goto done;
    for (int i = 0; i < hms_config_setting_count(); i++) {
        const char *name = hms_config_setting_name(i);
        size_t la = 0, lb = 0;
        const char *pa = rendered_line(ra.data, name, &la);
        const char *pb = rendered_line(rb.data, name, &lb);
        bool same = (pa == NULL && pb == NULL) ||
                    (pa != NULL && pb != NULL && la == lb && memcmp(pa, pb, la) == 0);
        if (!same && !hms_config_setting_reloadable(i))
            hms_log(HMS_LOG_WARN, "reload: setting changed; it takes effect after a restart",
                    "setting", name, NULL);
    }
done:
    hms_buf_free(&ra);
    hms_buf_free(&rb);
}

void hms_cli_reload(void *arg)
{
    hms_cli_reload_t *r = arg;
    hms_config_t fresh;
    hms_err_t err;
    if (load(&fresh, r->cmd, &err) != HMS_OK) {
        hms_config_free(&fresh);
        hms_log(HMS_LOG_ERROR, "reload failed; keeping the current settings", "error", err.msg,
                NULL);
        return;
    }
    /* The log file first, so the lines below land in the new one. */
    if (hms_log_open(fresh.log_file, &err) != HMS_OK) {
        hms_log(HMS_LOG_ERROR, "reload: cannot reopen the log; keeping the current settings",
                "error", err.msg, NULL);
        hms_config_free(&fresh);
        return;
    }
    hms_log_setup((hms_log_level_t)fresh.log_level, fresh.log_format == HMS_CONFIG_LOG_JSON);
    report_restart_needed(&r->current, &fresh, r->cmd);
    hms_config_free(&r->current);
    r->current = fresh;
    hms_log(HMS_LOG_INFO, "reloaded", "log_level",
            hms_log_enabled(HMS_LOG_DEBUG)  ? "debug"
            : hms_log_enabled(HMS_LOG_INFO) ? "info"
            : hms_log_enabled(HMS_LOG_WARN) ? "warn"
                                            : "error",
            NULL);
}
