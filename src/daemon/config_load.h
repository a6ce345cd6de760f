/* config_load.h -- gathers hms-sync's settings for one subcommand: reads the
 * config file, then layers file < environment < command line through the
 * pure core/config.h.
 *
 * Ownership: the caller owns cfg and must call hms_config_free() on it after
 * hms_config_load(), whatever it returned.  argv and envp are only read. */
#ifndef HMS_DAEMON_CONFIG_LOAD_H
#define HMS_DAEMON_CONFIG_LOAD_H

#include <stdio.h>

#include "core/config.h"

/* Loads the settings of subcommand cmd (one HMS_CMD_ bit).  argv holds the
 * arguments after the subcommand name; envp is the process environment
 * (environ).  On HMS_ERR_CONFIG err holds one line to print after
 * "hms-sync: " before exiting 2.  With --help, flags->help is set and
 * nothing else is read or checked: print hms_config_usage() and exit 0. */
hms_status_t hms_config_load(hms_config_t *cfg, unsigned cmd, int argc, char **argv, char **envp,
                             hms_cli_flags_t *flags, hms_err_t *err);

/* Reads the file at path (at most 1 MiB) into a NUL-terminated string the
 * caller frees (it may hold a password: wipe it first), and its st_mode.
 * Refuses a file that is not regular or holds a NUL byte. */
hms_status_t hms_config_read_file(const char *path, char **text, unsigned *mode, hms_err_t *err);

/* Opens and reads every file the settings of cmd name (hms_config_files()),
 * the way the process would use it: read whole, or for log_file opened for
 * appending (or, when missing, its directory writable; nothing is created).
 * HMS_ERR_CONFIG with one line naming the setting, the file and the reason.
 * What only a TLS library can judge (PEM contents, a key that fits its
 * certificate, the password file's rules) is hms_amqp_tls_check_files(). */
hms_status_t hms_config_open_files(const hms_config_t *cfg, unsigned cmd, hms_err_t *err);

/* The renderers of core/config.h, written to a stream.  Return HMS_ERR_IO
 * when the stream fails. */
hms_status_t hms_config_print(const hms_config_t *cfg, unsigned cmd, FILE *out);
hms_status_t hms_config_usage(unsigned cmd, FILE *out);
hms_status_t hms_config_write_example(FILE *out);
hms_status_t hms_config_write_markdown(FILE *out);
/* Writes the one-line warning about unknown HMS_SYNC_* variables, if any
 * (for run --check-config). */
hms_status_t hms_config_warn_env(char **envp, FILE *out);

#endif
