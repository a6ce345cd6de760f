/* config_int.h -- what the configuration's files share and nothing outside
 * them (and their unit test) may use: the row type of the settings table,
 * the table itself and the spellings every message and renderer uses.
 *
 * The configuration is split the way PostgreSQL splits guc.c from
 * guc_tables.c, one concern a file:
 *   config_table.c    the table: which settings exist, their types, defaults,
 *                     ranges, subcommands and prose
 *   config_value.c    one value: parsing, range checks, storing (set, init, free)
 *   config_connstr.c  libpq conninfo and AMQP URL syntax; hiding passwords
 *   config_layer.c    the layers: config file < environment < command line
 *   config_check.c    what one setting alone cannot say; the files settings name
 *   config_text.c     how a setting is spelled in text: option and variable
 *                     names, where a value came from, what is allowed
 *   config_render.c   --print-config, --help, the example file and the docs */
#ifndef HMS_CORE_CONFIG_INT_H
#define HMS_CORE_CONFIG_INT_H

#include <stddef.h>
#include <string.h>

#include "core/config.h"

typedef enum {
    HMS_CONFIG_T_CONNINFO, /* libpq key=value or postgres:// URI */
    HMS_CONFIG_T_URL,      /* amqp:// or amqps:// */
    HMS_CONFIG_T_IDENT,    /* PostgreSQL object name: [a-z0-9_], min..max chars */
    HMS_CONFIG_T_EXCHANGE, /* AMQP exchange name: [A-Za-z0-9._:-], min..max chars */
    HMS_CONFIG_T_PATH,
    HMS_CONFIG_T_DIR, /* a directory, read by the command that uses it */
    HMS_CONFIG_T_INT,
    HMS_CONFIG_T_DURATION, /* stored as int64_t milliseconds */
    HMS_CONFIG_T_ENUM,     /* stored as int: index into choices */
    HMS_CONFIG_T_BOOL,     /* stored as bool; a bare --name on the command line is true */
    HMS_CONFIG_T_KEYS,     /* AMQP binding keys, comma-separated; flags accumulate */
    HMS_CONFIG_T_FUNC,     /* SQL function name, optionally schema-qualified and with "(jsonb)" */
    HMS_CONFIG_T_LISTEN,   /* HOST:PORT or [IPV6]:PORT (core/hostport.h) */
} hms_config_type_t;

enum {
    HMS_CONFIG_F_SECRET = 1u << 0,  /* redacted when printed, never echoed in errors */
    HMS_CONFIG_F_NO_FILE = 1u << 1, /* only from the command line or the environment */
    /* A running process applies a new value on SIGHUP; without the flag a
     * change takes a restart. */
    HMS_CONFIG_F_RELOAD = 1u << 2,
    HMS_CONFIG_F_ZERO_OFF = 1u << 3, /* 0 (off) is allowed besides min..max */
    HMS_CONFIG_F_SECONDS = 1u << 4,  /* a duration in whole seconds (the protocol has no finer) */
    HMS_CONFIG_F_WRITE = 1u << 5,    /* a path the process writes to, not reads */
};

/* One row of the table, PgBouncer-style: name, type, default, range,
 * reloadable (a flag), with the type as the validator. */
typedef struct {
    const char *name;
    hms_config_type_t type;
    size_t offset;              /* of the field in hms_config_t */
    const char *def;            /* parsed like any other value; NULL: unset */
    int64_t min, max;           /* numbers: the range; names and lists: the length */
    const char *const *choices; /* HMS_CONFIG_T_ENUM, NULL-terminated */
    unsigned cmds;              /* subcommands that accept it as an option */
    unsigned required;          /* subcommands that cannot do without it */
    unsigned flags;             /* HMS_CONFIG_F_* */
    const char *example;        /* shown in the example file when there is no default */
    const char *summary;        /* one line for --help */
    const char *help;           /* prose for the example file and the docs */
} hms_config_setting_t;

/* Options that are not settings: command line only.  Without a metavar a
 * flag is a bool; with one it takes a value, a const char * borrowed from
 * argv. */
typedef struct {
    const char *name;
    size_t offset; /* of the field in hms_cli_flags_t */
    unsigned cmds;
    const char *summary;
    /* The value's placeholder in --help; NULL: a bool; in brackets, as
     * "[SECONDS]", the value may be left out. */
    const char *metavar;
} hms_config_cli_flag_t;

extern const hms_config_setting_t hms_config_settings[];
extern const int hms_config_nsettings;
extern const hms_config_cli_flag_t hms_config_cli_flags[];
extern const int hms_config_ncli_flags;

/* The subcommands that talk to RabbitMQ. */
#define HMS_CONFIG_CMD_NET (HMS_CMD_RUN | HMS_CMD_CONSUME)
/* ... and those that may: snapshot checks that a --queue exists when it is
 * given the broker's address, so it takes the connection settings only. */
#define HMS_CONFIG_CMD_AMQP (HMS_CONFIG_CMD_NET | HMS_CMD_SNAPSHOT)

#define HMS_CONFIG_SEC 1000LL
#define HMS_CONFIG_MIN (60 * HMS_CONFIG_SEC)
#define HMS_CONFIG_HOUR (60 * HMS_CONFIG_MIN)

static inline bool hms_config_starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Settings of these types are a char * in hms_config_t, NULL when unset. */
static inline bool hms_config_is_string(hms_config_type_t t)
{
    return t != HMS_CONFIG_T_INT && t != HMS_CONFIG_T_DURATION && t != HMS_CONFIG_T_ENUM &&
           t != HMS_CONFIG_T_BOOL;
}

/* The value of a string setting in cfg (borrowed), or NULL when unset. */
static inline const char *hms_config_str(const hms_config_t *cfg, const hms_config_setting_t *s)
{
    return *(char *const *)((const char *)cfg + s->offset);
}

/* ---- config_connstr.c ---- */

/* Whether s is a libpq connection string (key=value pairs or a URI) or a
 * list of AMQP URLs (core/amqpnodes.h); if not, a phrase saying why, naming a position and never
 * the text (it may hold a password). */
bool hms_config_check_conninfo(const char *s, char *why, size_t whyn);
bool hms_config_check_amqp_url(const char *s, char *why, size_t whyn);
/* True when redaction would hide something: s carries a password. */
bool hms_config_has_password(const char *s);

/* ---- config_text.c ---- */

/* The name as an option spells it ('_' turned into '-'), and as its
 * environment variable (HMS_SYNC_ and upper case). */
void hms_config_option_name(const char *name, char *out, size_t n);
void hms_config_env_name(const char *name, char *out, size_t n);
/* Where a value came from: "FILE:LINE", "env HMS_SYNC_X", "flag --x" or
 * "default". */
void hms_config_format_source(const hms_config_setting_t *s, hms_config_origin_t origin,
                              const char *file, int line, char *out, size_t n);
/* What s accepts, for the "(allowed: ...)" part of errors and the docs. */
void hms_config_format_allowed(const hms_config_setting_t *s, char *out, size_t n);
/* A duration the way a user writes it: 500ms, 10s, 2m, 1h. */
void hms_config_format_duration(int64_t ms, char *out, size_t n);
/* "run, status": the subcommands of a mask. */
void hms_config_format_cmds(unsigned cmds, char *out, size_t n);
/* The placeholder of the value in --help (NULL for a choice: list them),
 * and the type's name in the docs. */
const char *hms_config_type_metavar(const hms_config_setting_t *s);
const char *hms_config_type_name(const hms_config_setting_t *s);
/* Appends to out unless an earlier append failed, so a renderer checks *st
 * once at the end. */
void hms_config_put(hms_buf_t *out, hms_status_t *st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
