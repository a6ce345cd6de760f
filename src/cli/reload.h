/* reload.h -- what SIGHUP does in a long-running command (run, consume):
 * the settings are layered again from the same file, environment and
 * command line as at start; the reloadable ones (the log's) take effect,
 * log_file is reopened, and a changed setting that needs a restart is
 * logged and otherwise left as it was. */
#ifndef HMS_CLI_RELOAD_H
#define HMS_CLI_RELOAD_H

#include "core/config.h"

typedef struct {
    unsigned cmd;         /* HMS_CMD_RUN or HMS_CMD_CONSUME */
    hms_config_t current; /* what is in effect; owned here */
} hms_cli_reload_t;

/* Keeps the command's own arguments (main's, after the command name) for
 * every later reload; argv is borrowed for the life of the process. */
void hms_cli_reload_remember(int argc, char **argv);
/* Starts r with the settings loaded again from the remembered sources, so r
 * owns its strings.  HMS_OK, or an error when they no longer load. */
hms_status_t hms_cli_reload_init(hms_cli_reload_t *r, unsigned cmd, hms_err_t *err);
/* The reload hook for hms_run_opts_t / hms_consumer_opts_t: arg is an
 * hms_cli_reload_t.  Logs what it did; never fails the process. */
void hms_cli_reload(void *arg);
void hms_cli_reload_free(hms_cli_reload_t *r);

#endif
