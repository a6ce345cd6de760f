/* main.c -- the hms-sync command line: table-driven subcommand dispatch.
 *
 * Exit codes (docs/hms-sync.1): 0 clean stop, 1 runtime failure, 2 usage or
 * configuration error. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/commands.h"
#include "cli/reload.h"
#include "common/log.h"
#include "core/config.h"
#include "daemon/config_load.h"

extern char **environ;

typedef struct {
    const char *name;
    unsigned bit;
    int (*fn)(const hms_config_t *cfg, const hms_cli_flags_t *flags);
    const char *summary;
} command_t;

static const command_t commands[] = {
    {"migrate", HMS_CMD_MIGRATE, hms_cli_migrate,
     "install or upgrade the SQL migrations (idempotent)"},
    {"run", HMS_CMD_RUN, hms_cli_run, "stream committed changes to RabbitMQ until stopped"},
    {"status", HMS_CMD_STATUS, hms_cli_status, "slot position, lag and WAL retained"},
    {"consume", HMS_CMD_CONSUME, hms_cli_consume, "a subscriber: validate, dedupe, apply, ack"},
    {"snapshot", HMS_CMD_SNAPSHOT, hms_cli_snapshot,
     "ask the connector for a snapshot of existing rows; follow, cancel or list them"},
};

static void usage(FILE *out)
{
    fprintf(out, "usage: hms-sync COMMAND [OPTIONS]\n\ncommands:\n");
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        fprintf(out, "  %-8s %s\n", commands[i].name, commands[i].summary);
    fprintf(out, "\n`hms-sync COMMAND --help` lists a command's options.  Every option can also\n"
                 "come from a config file (--config FILE) or HMS_SYNC_<NAME> variables.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return HMS_EXIT_USAGE;
    }
    const char *name = argv[1];
    if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0 || strcmp(name, "help") == 0) {
        usage(stdout);
        return HMS_EXIT_OK;
    }
    if (strcmp(name, "--version") == 0 || strcmp(name, "version") == 0) {
        printf("hms-sync %s\n", HMS_VERSION);
        return HMS_EXIT_OK;
    }
    const command_t *cmd = NULL;
    for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++)
        if (strcmp(commands[i].name, name) == 0)
            cmd = &commands[i];
    if (cmd == NULL) {
        fprintf(stderr, "hms-sync: unknown command '%s' (try hms-sync --help)\n", name);
        return HMS_EXIT_USAGE;
    }
    hms_config_t cfg;
    hms_cli_flags_t flags;
    hms_err_t err;
    memset(&flags, 0, sizeof(flags));
    if (hms_config_load(&cfg, cmd->bit, argc - 2, argv + 2, environ, &flags, &err) != HMS_OK) {
        fprintf(stderr, "hms-sync: %s\n", err.msg);
        hms_config_free(&cfg);
        return HMS_EXIT_USAGE;
    }
    if (flags.help) {
        printf("usage: hms-sync %s [OPTIONS]\n\n", cmd->name);
        hms_config_usage(cmd->bit, stdout);
        hms_config_free(&cfg);
        return HMS_EXIT_OK;
    }
    /* Only the services log to a file: a one-shot command's errors, and a
     * configuration check (which must create nothing), stay on the terminal
     * of whoever ran it. */
    bool service = (cmd->bit == HMS_CMD_RUN || cmd->bit == HMS_CMD_CONSUME) &&
                   !flags.check_config && !flags.print_config;
    if (service && hms_log_open(cfg.log_file, &err) != HMS_OK) {
        fprintf(stderr, "hms-sync: %s\n", err.msg);
        hms_config_free(&cfg);
        return HMS_EXIT_USAGE;
    }
    hms_log_setup((hms_log_level_t)cfg.log_level, cfg.log_format == HMS_CONFIG_LOG_JSON);
    hms_cli_reload_remember(argc - 2, argv + 2);
    int rc = cmd->fn(&cfg, &flags);
    hms_config_free(&cfg);
    return rc;
}
