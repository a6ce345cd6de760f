/* commands.h -- the subcommands of hms-sync; each returns an exit code. */
#ifndef HMS_CLI_COMMANDS_H
#define HMS_CLI_COMMANDS_H

#include "common/amqp_tls.h"
#include "core/config.h"

enum { HMS_EXIT_OK = 0, HMS_EXIT_FAILURE = 1, HMS_EXIT_USAGE = 2 };

int hms_cli_migrate(const hms_config_t *cfg, const hms_cli_flags_t *flags);
int hms_cli_run(const hms_config_t *cfg, const hms_cli_flags_t *flags);
int hms_cli_status(const hms_config_t *cfg, const hms_cli_flags_t *flags);
int hms_cli_consume(const hms_config_t *cfg, const hms_cli_flags_t *flags);
int hms_cli_snapshot(const hms_config_t *cfg, const hms_cli_flags_t *flags);

/* The amqp_* settings as a connection takes them (borrowed from cfg). */
hms_amqp_tls_t hms_cli_amqp_tls(const hms_config_t *cfg);

/* Prints "hms-sync: <msg>" and maps a status to an exit code:
 * HMS_ERR_CONFIG -> 2, anything else -> 1. */
int hms_cli_fail(hms_status_t st, const hms_err_t *err);

#endif
