/* config.h -- hms-sync's settings: one table, a typed struct, and the pure
 * layering of defaults < config file < environment < command line.
 *
 * Every setting is one row of the table in config_table.c (name, type,
 * default, range, whether SIGHUP applies it, description, secret, which
 * subcommands use it).  Usage text, the example config file, the reference
 * page and --print-config are all rendered from that table, so adding a
 * setting is a field here plus one table row.  config_int.h says which file
 * of the configuration does what.
 *
 * Pure: no I/O, no globals.  The daemon side (daemon/config_load.h) reads the
 * file, hands its text and mode here, and passes the process environment as
 * an array.  Renderers write into an hms_buf_t.
 *
 * Ownership: an hms_config_t owns every string in it.  hms_config_init()
 * fills defaults; every later set copies the value it is given (replacing and
 * freeing the old one); hms_config_free() releases them all.  Inputs (argv,
 * envp, file text) are only borrowed for the duration of a call.
 *
 * Errors are one line in err->msg, starting with "config: " and naming the
 * setting, where the value came from (FILE:LINE, env HMS_SYNC_X, flag --x)
 * and what is allowed; the caller prefixes "hms-sync: ".  Secret values are
 * never echoed in errors. */
#ifndef HMS_CORE_CONFIG_H
#define HMS_CORE_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "core/buf.h"
#include "core/status.h"

/* Subcommands, as a bitmask: each setting lists the subcommands that accept
 * it on their command line. */
enum {
    HMS_CMD_RUN = 1u << 0,
    HMS_CMD_STATUS = 1u << 1,
    HMS_CMD_MIGRATE = 1u << 2,
    HMS_CMD_CONSUME = 1u << 3,
    HMS_CMD_SNAPSHOT = 1u << 4,
    HMS_CMD_ALL =
        HMS_CMD_RUN | HMS_CMD_STATUS | HMS_CMD_MIGRATE | HMS_CMD_CONSUME | HMS_CMD_SNAPSHOT,
};

typedef enum {
    HMS_CONFIG_LOG_DEBUG,
    HMS_CONFIG_LOG_INFO,
    HMS_CONFIG_LOG_WARN,
    HMS_CONFIG_LOG_ERROR,
} hms_config_log_level_t;

typedef enum {
    HMS_CONFIG_LOG_LOGFMT,
    HMS_CONFIG_LOG_JSON,
} hms_config_log_format_t;

/* Whether a slot that run creates starts with a snapshot of every row. */
typedef enum {
    HMS_CONFIG_SNAPSHOT_INITIAL,
    HMS_CONFIG_SNAPSHOT_NEVER,
} hms_config_snapshot_t;

/* What run does when the slot it streamed from is gone (a failover). */
typedef enum {
    HMS_CONFIG_SLOT_LOSS_FAIL,
    HMS_CONFIG_SLOT_LOSS_RESNAPSHOT,
} hms_config_slot_loss_t;

typedef enum {
    HMS_CONFIG_QUEUE_QUORUM,
    HMS_CONFIG_QUEUE_CLASSIC,
} hms_config_queue_type_t;

/* How consume and run log in to RabbitMQ. */
typedef enum {
    HMS_CONFIG_AMQP_AUTH_PLAIN,    /* user and password (from the URL or amqp_password_file) */
    HMS_CONFIG_AMQP_AUTH_EXTERNAL, /* SASL EXTERNAL: the TLS client certificate */
} hms_config_amqp_auth_t;

typedef enum {
    HMS_CONFIG_SINK_AMQP,
    HMS_CONFIG_SINK_DISCARD, /* encode, drop, count as confirmed: never in production */
} hms_config_sink_t;

/* Where a setting's current value came from. */
typedef enum {
    HMS_CONFIG_FROM_DEFAULT,
    HMS_CONFIG_FROM_FILE,
    HMS_CONFIG_FROM_ENV,
    HMS_CONFIG_FROM_FLAG,
} hms_config_origin_t;

typedef struct {
    hms_config_origin_t origin;
    int line; /* FILE only; the file is cfg->config */
} hms_config_source_t;

#define HMS_CONFIG_MAX_SETTINGS 48

typedef struct {
    char *pg;                 /* libpq conninfo or URI; NULL when unset; secret */
    char *amqp;               /* amqp:// or amqps:// URL; NULL when unset; secret */
    char *amqp_cacert;        /* PEM CA bundle for amqps://; NULL: OpenSSL's default CAs */
    char *amqp_cert;          /* TLS client certificate (PEM); NULL: none */
    char *amqp_key;           /* its private key (PEM); set together with amqp_cert */
    int amqp_auth;            /* hms_config_amqp_auth_t */
    char *amqp_password_file; /* first line is the AMQP password; NULL: the URL's */
    char *slot;
    char *publication;
    char *exchange;
    char *fanout_exchange; /* bound to exchange for fanout clients; NULL: none */
    char *events_exchange; /* where hms_sync.emit's events go */
    char *schemas;         /* directory of emitted types' data schemas; NULL: none */
    int window;
    int max_event_bytes; /* larger events go to the rejected exchange as a reference */
    int64_t feedback_interval_ms;
    int64_t replication_timeout_ms; /* 0 disables */
    char *metrics;                  /* HOST:PORT of the metrics endpoint; NULL: off */
    bool standby;                   /* run waits as a hot standby for a busy slot */
    int snapshot;                   /* hms_config_snapshot_t: a new slot starts with one? */
    int snapshot_chunk;             /* rows per snapshot chunk */
    int on_slot_loss;               /* hms_config_slot_loss_t */
    int64_t slot_wait_ms;
    int64_t shutdown_timeout_ms;
    int64_t heartbeat_ms; /* 0 disables AMQP heartbeats */
    int64_t connect_timeout_ms;
    int64_t retry_min_ms;
    int64_t retry_max_ms;
    int log_level;  /* hms_config_log_level_t */
    int log_format; /* hms_config_log_format_t */
    char *log_file; /* append the log here; NULL: stderr */
    int sink;       /* hms_config_sink_t */
    char *config;   /* the config file's path; NULL when none */
    /* consume */
    char *queue;                /* the subscriber's queue; NULL when unset */
    char *apply;                /* SQL function f(event jsonb) returns text; NULL when unset */
    int prefetch;               /* basic.qos prefetch count */
    int partitions;             /* ordered partitions of the queue; 0: none */
    int partition;              /* the one partition applied; 0: all (a worker each) */
    int batch;                  /* most events per apply transaction */
    int64_t batch_linger_ms;    /* wait for a fuller batch; 0: none */
    char *bind;                 /* routing keys, comma-separated; repeated flags accumulate */
    int queue_type;             /* hms_config_queue_type_t */
    int delivery_limit;         /* deliveries before a failing event is dead-lettered */
    char *origin;               /* skip events with this origin (echoes); NULL: none */
    char *dead_letter_exchange; /* the DLX every subscriber's queue dead-letters to */
    /* Indexed like the table (hms_config_setting_index()). */
    hms_config_source_t source[HMS_CONFIG_MAX_SETTINGS];
} hms_config_t;

/* Command-line options that are not settings: they never come from a file or
 * the environment, because each names one action of one invocation.  No
 * subcommand takes positional arguments (yet): one is an error.  Strings
 * borrow from argv (NULL when not given). */
typedef struct {
    bool check_config;  /* run: validate and exit */
    bool print_config;  /* run: print effective settings, secrets redacted */
    bool json;          /* status, snapshot --list: machine-readable output */
    bool subscriber;    /* migrate: install the subscriber side */
    bool help;          /* all: print usage */
    const char *where;  /* snapshot: the rows to read, an SQL condition */
    bool wait;          /* snapshot: follow the request until it ends */
    const char *cancel; /* snapshot: the request to cancel */
    bool list;          /* snapshot: list the slot's requests */
    const char *watch;  /* status: refresh every this many seconds ("": the default) */
} hms_cli_flags_t;

/* Fills cfg with the defaults.  Returns HMS_ERR_NOMEM on allocation failure
 * (cfg is then safe to free).  Call hms_config_free() when done. */
hms_status_t hms_config_init(hms_config_t *cfg);

/* Releases every string cfg owns and leaves it zeroed. */
void hms_config_free(hms_config_t *cfg);

/* The name of one subcommand bit ("run", ...), or "hms-sync" for others. */
const char *hms_config_cmd_name(unsigned cmd);

/* How many settings the table has. */
int hms_config_setting_count(void);

/* Index of a setting in the table, or -1 for an unknown name. */
int hms_config_setting_index(const char *name);

/* The name of the setting at index i (static), or NULL out of range. */
const char *hms_config_setting_name(int i);

/* True when a running process may take a new value of the setting at index
 * i on SIGHUP (log_level, log_format, log_file); every other setting needs
 * a restart.  False out of range. */
bool hms_config_setting_reloadable(int i);

/* Parses and validates one value for the setting `name` and stores a copy in
 * cfg.  src says where the value came from (for FILE, file is the path to
 * name in errors).  On error cfg is unchanged.  A list setting (bind) given
 * as a flag is appended to a value that came from a flag too, so the option
 * may repeat; from anywhere else a value replaces the list. */
hms_status_t hms_config_set(hms_config_t *cfg, const char *name, const char *value,
                            hms_config_origin_t origin, const char *file, int line, hms_err_t *err);

/* Applies the INI text of the config file at `path`; `mode` is the file's
 * st_mode, used to refuse a file readable by group or others that holds a
 * password.  The file is flat (no sections), one `name = value` per line, #
 * or ; comments; an unknown name, a repeated name or a bad line is an error
 * with path:line.  cfg->config is set to path.  Borrows text and path. */
hms_status_t hms_config_apply_file(hms_config_t *cfg, const char *text, const char *path,
                                   unsigned mode, hms_err_t *err);

/* Applies HMS_SYNC_<NAME> variables from envp (a NULL-terminated array of
 * "NAME=value", like environ).  Empty values count as unset; unknown
 * HMS_SYNC_ names are ignored here (see hms_config_env_warnings()).
 * HMS_SYNC_CONFIG is not applied: hms_config_find_file() reads it. */
hms_status_t hms_config_apply_env(hms_config_t *cfg, char **envp, hms_err_t *err);

/* Finds the config file to read: the last --config on the command line, or
 * else HMS_SYNC_CONFIG; *path is NULL when there is none and otherwise
 * borrows from argv or envp.  Also checks the command line's syntax (argv
 * are the arguments after the subcommand name) and fills flags, so --help
 * can be honoured before anything else is read. */
hms_status_t hms_config_find_file(unsigned cmd, int argc, char **argv, char **envp,
                                  const char **path, hms_cli_flags_t *flags, hms_err_t *err);

/* Applies the command line of subcommand `cmd` (argv: the arguments after
 * the subcommand name): --name VALUE, --name=VALUE, bare --flag for
 * booleans; '-' and '_' are interchangeable in names.  An option the
 * subcommand does not accept is an error naming it.  Fills flags. */
hms_status_t hms_config_apply_argv(hms_config_t *cfg, unsigned cmd, int argc, char **argv,
                                   hms_cli_flags_t *flags, hms_err_t *err);

/* Checks what one setting alone cannot: required settings of cmd are set,
 * retry_min <= retry_max, replication_timeout 0 or more than twice
 * feedback_interval, the amqp_* TLS settings only with amqps://,
 * amqp_cert and amqp_key together, amqp_auth = external only with a client
 * certificate, and amqp_password_file only with a URL without a password. */
hms_status_t hms_config_check(const hms_config_t *cfg, unsigned cmd, hms_err_t *err);

/* A file a setting names. */
typedef struct {
    const char *setting; /* the setting's name (static) */
    const char *path;    /* borrowed from the hms_config_t */
    bool write;          /* the process appends to it (log_file); the others it reads */
} hms_config_file_t;

/* Fills out with up to max files that the settings of cmd name (every path
 * setting that is set, the config file included), in table order; returns
 * how many.  For run --check-config, which opens each. */
int hms_config_files(const hms_config_t *cfg, unsigned cmd, hms_config_file_t *out, int max);

/* Appends one line naming every HMS_SYNC_* variable in envp that is not a
 * setting (nothing when there is none). */
hms_status_t hms_config_env_warnings(char **envp, hms_buf_t *out);

/* Appends `name = value` lines for the settings cmd uses (all when cmd is
 * 0), secrets with their password replaced by ***. */
hms_status_t hms_config_render(const hms_config_t *cfg, unsigned cmd, hms_buf_t *out);

/* Appends the options of subcommand cmd, one per line, for --help. */
hms_status_t hms_config_render_usage(unsigned cmd, hms_buf_t *out);

/* Appends the fully commented example config file (deploy/hms-sync.ini.example). */
hms_status_t hms_config_render_example(hms_buf_t *out);

/* Appends the settings reference (docs/configuration.md). */
hms_status_t hms_config_render_markdown(hms_buf_t *out);

/* Appends s with the password in it replaced by ***: password=... in libpq
 * key=value form, user:PASS@ and ?password= in a postgres:// URI, user:PASS@
 * in an amqp(s):// URL.  Text it cannot make sense of is replaced whole. */
hms_status_t hms_config_redact(const char *s, hms_buf_t *out);

#endif
