/* config.c -- the settings table and everything derived from it: parsing,
 * layering, checking, redaction, usage, the example file and the docs. */
#include "core/config.h"

#include <ini.h>
#include <stdarg.h>
#include <stddef.h>
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef enum {
    T_CONNINFO, /* libpq key=value or postgres:// URI */
    T_URL,      /* amqp:// or amqps:// */
    T_IDENT,    /* PostgreSQL object name: [a-z0-9_], min..max chars */
    T_EXCHANGE, /* AMQP exchange name: [A-Za-z0-9._:-], min..max chars */
    T_PATH,
    T_INT,
    T_DURATION, /* stored as int64_t milliseconds */
    T_ENUM,     /* stored as int: index into choices */
    T_BOOL,     /* stored as bool; a bare --name on the command line is true */
    T_KEYS,     /* AMQP binding keys, comma-separated; flags accumulate */
    T_FUNC,     /* SQL function name, optionally schema-qualified and with "(jsonb)" */
    T_LISTEN,   /* HOST:PORT to listen on (an IPv4 address or a name, port 1..65535) */
} cfg_type_t;

enum {
    F_SECRET = 1u << 0,  /* redacted when printed, never echoed in errors */
    F_NO_FILE = 1u << 1, /* only from the command line or the environment */
};

typedef struct {
    const char *name;
    cfg_type_t type;
    size_t offset;
    const char *def; /* parsed like any other value; NULL: unset */
    int64_t min, max;
    const char *const *choices; /* T_ENUM, NULL-terminated */
    unsigned cmds;              /* subcommands that accept it as an option */
    unsigned required;          /* subcommands that cannot do without it */
    unsigned flags;
    const char *example; /* shown in the example file when there is no default */
    const char *summary; /* one line for --help */
    const char *help;    /* prose for the example file and the docs */
} cfg_setting_t;

#define MS_SEC 1000LL
#define MS_MIN (60 * MS_SEC)
#define MS_HOUR (60 * MS_MIN)
#define OFF(field) offsetof(hms_config_t, field)
#define CMD_NET (HMS_CMD_RUN | HMS_CMD_CONSUME)

static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const log_formats[] = {"logfmt", "json", NULL};
static const char *const sinks[] = {"amqp", "discard", NULL};
static const char *const queue_types[] = {"quorum", "classic", NULL};
static const char *const amqp_auths[] = {"plain", "external", NULL};

/* The one table.  Order is the order of --help, --print-config, the example
 * file and the docs. */
static const cfg_setting_t settings[] = {
    {"pg", T_CONNINFO, OFF(pg), NULL, 0, 0, NULL, HMS_CMD_ALL, HMS_CMD_ALL, F_SECRET,
     "host=db.example.org dbname=ehr user=hms_sync password=CHANGE-ME sslmode=verify-full",
     "PostgreSQL connection (libpq conninfo or postgresql:// URI)",
     "How to reach the EHR database: a libpq connection string (key=value pairs) or a "
     "postgresql:// URI.  run connects with replication=database; status, migrate and consume "
     "open ordinary sessions.  When printed, only the password is replaced by ***.  libpq's "
     "own keys apply: sslmode=verify-full with sslrootcert=CA-FILE verifies the server's "
     "certificate and host name, sslcert and sslkey present a client certificate, and "
     "passfile=FILE (a .pgpass-format file, chmod 600) keeps the password out of this "
     "setting."},
    {"amqp", T_URL, OFF(amqp), NULL, 0, 0, NULL, CMD_NET, CMD_NET, F_SECRET,
     "amqps://hms_sync@mq.example.org:5671/hms", "RabbitMQ URL (amqp:// or amqps://)",
     "How to reach RabbitMQ: amqp://USER:PASSWORD@HOST:PORT/VHOST, or amqps:// for TLS.  Not "
     "needed by run when sink = discard.  When printed, only the password is replaced by ***.  "
     "amqps:// always verifies the broker's certificate and host name and allows TLS 1.2 or "
     "later only.  Keep the password out of the URL with amqp_password_file."},
    {"amqp_cacert", T_PATH, OFF(amqp_cacert), NULL, 0, 0, NULL, CMD_NET, 0, 0,
     "/etc/hms-sync/rabbitmq-ca.pem", "CA certificates (PEM) that amqps:// trusts",
     "The CA bundle the broker's certificate must chain to.  Unset: OpenSSL's default "
     "system CAs.  Only with an amqps:// URL."},
    {"amqp_cert", T_PATH, OFF(amqp_cert), NULL, 0, 0, NULL, CMD_NET, 0, 0,
     "/etc/hms-sync/client.pem", "TLS client certificate (PEM) for amqps://",
     "A client certificate to present to the broker (needs amqp_key).  Required by "
     "amqp_auth = external, where the broker takes the user name from it."},
    {"amqp_key", T_PATH, OFF(amqp_key), NULL, 0, 0, NULL, CMD_NET, 0, 0, "/etc/hms-sync/client.key",
     "private key (PEM) of amqp_cert",
     "The private key of amqp_cert, unencrypted PEM.  Keep it readable only by the service "
     "user."},
    {"amqp_auth", T_ENUM, OFF(amqp_auth), "plain", 0, 0, amqp_auths, CMD_NET, 0, 0, NULL,
     "RabbitMQ login: plain (user, password) or external (client certificate)",
     "plain logs in with the URL's user and the password from the URL or amqp_password_file.  "
     "external logs in with SASL EXTERNAL: the broker (plugin rabbitmq_auth_mechanism_ssl) "
     "maps the TLS client certificate (amqp_cert) to a user, so no password exists at all."},
    {"amqp_password_file", T_PATH, OFF(amqp_password_file), NULL, 0, 0, NULL, CMD_NET, 0, 0,
     "/etc/hms-sync/amqp-password", "file holding the RabbitMQ password",
     "Read the RabbitMQ password from the first line of this file instead of the URL (which "
     "then has no password: amqps://hms_sync@host/vhost).  The file must be readable by its "
     "owner only (chmod 600) or hms-sync refuses it; it is re-read on every reconnect, so a "
     "rotated password takes effect without a restart."},
    {"slot", T_IDENT, OFF(slot), "hms_sync", 1, 63, NULL, HMS_CMD_RUN | HMS_CMD_STATUS, 0, 0, NULL,
     "logical replication slot name",
     "The logical replication slot run streams from (created by run when missing) and status "
     "reports on.  One slot per running hms-sync: two processes cannot share one."},
    {"publication", T_IDENT, OFF(publication), "hms_sync_incidents", 1, 63, NULL,
     HMS_CMD_RUN | HMS_CMD_MIGRATE, 0, 0, NULL, "PostgreSQL publication name",
     "The publication that selects the captured tables; migrate creates it, run subscribes "
     "to it."},
    {"exchange", T_EXCHANGE, OFF(exchange), "hms.incidents", 1, 255, NULL, CMD_NET, 0, 0, NULL,
     "RabbitMQ topic exchange for events",
     "The durable topic exchange run publishes events to and consume binds its queue to."},
    {"window", T_INT, OFF(window), "1000", 1, 65535, NULL, HMS_CMD_RUN, 0, 0, NULL,
     "most unconfirmed events in flight",
     "How many published events may await the broker's confirm at once.  A larger window "
     "means more throughput and more events republished after a crash (never lost)."},
    {"feedback_interval", T_DURATION, OFF(feedback_interval_ms), "10s", 100, MS_HOUR, NULL,
     HMS_CMD_RUN, 0, 0, NULL, "longest gap between standby status messages",
     "run tells PostgreSQL its confirmed position as soon as it advances, and at least this "
     "often otherwise, so an idle slot still moves and WAL is not retained.  When the "
     "server's wal_sender_timeout is shorter than three times this, run reports every third "
     "of wal_sender_timeout instead, so a broker that holds publishing back never gets the "
     "replication connection dropped."},
    {"replication_timeout", T_DURATION, OFF(replication_timeout_ms), "30s", 0, MS_HOUR, NULL,
     HMS_CMD_RUN, 0, 0, NULL,
     "how long PostgreSQL may stay silent before run reconnects (0: never)",
     "When nothing arrives on the replication connection for this long while run is ready "
     "to read, the connection is taken for dead (a silent network stall) and re-established.  "
     "run asks the server for a keepalive when the stream is quiet, so a healthy idle "
     "connection never trips it.  Keep it above feedback_interval."},
    {"metrics", T_LISTEN, OFF(metrics), NULL, 0, 0, NULL, HMS_CMD_RUN | HMS_CMD_STATUS, 0, 0,
     "127.0.0.1:9187", "serve Prometheus metrics, /healthz and /readyz on HOST:PORT",
     "status with this setting also reads the running connector's figures from it.  "
     "When set, run serves GET /metrics (Prometheus text format), /healthz (the process is "
     "alive) and /readyz (both connections are up and the slot is streaming) over plain "
     "HTTP on this address.  Bind it to loopback or a management network."},
    {"standby", T_BOOL, OFF(standby), "false", 0, 0, NULL, HMS_CMD_RUN, 0, 0, NULL,
     "wait as a hot standby while another process holds the slot",
     "For high availability run two connectors on the same slot: the one that gets the slot "
     "streams; the other, with standby = true, keeps polling once a second (reporting not "
     "ready) and takes over within seconds of the active one dying.  Without it, run fails "
     "after slot_wait."},
    {"slot_wait", T_DURATION, OFF(slot_wait_ms), "30s", 0, MS_HOUR, NULL, HMS_CMD_RUN, 0, 0, NULL,
     "how long run waits for a slot held by another process",
     "After a crash the old walsender may hold the slot for a while; run retries for this "
     "long, saying so, before it fails.  0 fails at once."},
    {"shutdown_timeout", T_DURATION, OFF(shutdown_timeout_ms), "10s", 0, 10 * MS_MIN, NULL, CMD_NET,
     0, 0, NULL, "how long a clean stop waits for outstanding confirms",
     "On SIGTERM or SIGINT, how long to wait for the broker to confirm events in flight "
     "before closing.  Unconfirmed events are republished on the next start, never lost."},
    {"heartbeat", T_DURATION, OFF(heartbeat_ms), "30s", 0, MS_HOUR, NULL, CMD_NET, 0, 0, NULL,
     "AMQP heartbeat interval (0 disables)",
     "The AMQP heartbeat proposed to the broker, so a dead connection is noticed.  0 "
     "disables heartbeats."},
    {"connect_timeout", T_DURATION, OFF(connect_timeout_ms), "10s", MS_SEC, 10 * MS_MIN, NULL,
     HMS_CMD_ALL, 0, 0, NULL, "timeout for each connection attempt",
     "How long one attempt to connect to PostgreSQL or RabbitMQ may take before it counts "
     "as failed."},
    {"retry_min", T_DURATION, OFF(retry_min_ms), "500ms", 0, MS_HOUR, NULL, CMD_NET, 0, 0, NULL,
     "first reconnect/republish delay",
     "Reconnects and republishing of refused events back off exponentially from retry_min "
     "to retry_max.  retry_min must not exceed retry_max."},
    {"retry_max", T_DURATION, OFF(retry_max_ms), "30s", 0, MS_HOUR, NULL, CMD_NET, 0, 0, NULL,
     "longest reconnect/republish delay", "The cap of the exponential backoff (see retry_min)."},
    {"log_level", T_ENUM, OFF(log_level), "info", 0, 0, log_levels, HMS_CMD_ALL, 0, 0, NULL,
     "least severe log level written", "Log lines below this level are not written."},
    {"log_format", T_ENUM, OFF(log_format), "logfmt", 0, 0, log_formats, HMS_CMD_ALL, 0, 0, NULL,
     "log line format", "logfmt (key=value pairs) or json (one object per line)."},
    {"sink", T_ENUM, OFF(sink), "amqp", 0, 0, sinks, HMS_CMD_RUN, 0, 0, NULL,
     "where events go (discard is UNSAFE, for benchmarks only)",
     "amqp publishes events to RabbitMQ.  WARNING: discard is for debugging and benchmarks ONLY: "
     "events are encoded, then dropped and counted as confirmed, so the slot advances past "
     "changes nobody received.  NEVER use discard in production: it loses every event."},
    {"queue", T_EXCHANGE, OFF(queue), NULL, 1, 200, NULL, HMS_CMD_CONSUME, HMS_CMD_CONSUME, 0,
     "scheduling", "the subscriber's queue (also its inbox name)",
     "The durable queue consume declares, binds and reads.  The name also keys the "
     "subscriber's rows in hms_sync.inbox, so several subscribers can share one database, and "
     "names its dead-letter queue <queue>.dlq."},
    {"apply", T_FUNC, OFF(apply), NULL, 1, 127, NULL, HMS_CMD_CONSUME, HMS_CMD_CONSUME, 0,
     "hms_sync.apply_scheduling", "SQL function f(event jsonb) returns text to apply events",
     "The function consume calls, through hms_sync.consume(), for every valid event, in the "
     "same transaction as the inbox row: it returns applied, stale or duplicate.  The seed "
     "subscribers are hms_sync.apply_scheduling, hms_sync.apply_casemgmt and "
     "hms_sync.apply_warehouse."},
    {"prefetch", T_INT, OFF(prefetch), "100", 1, 65535, NULL, HMS_CMD_CONSUME, 0, 0, NULL,
     "most unacknowledged deliveries at once",
     "The basic.qos prefetch count: how many messages the broker sends ahead of the "
     "subscriber's acknowledgements."},
    {"bind", T_KEYS, OFF(bind), "#", 1, 4096, NULL, HMS_CMD_CONSUME, 0, 0, NULL,
     "routing key to bind the queue with (repeatable)",
     "The binding keys of the queue on the exchange, e.g. incident.*.north.  On the command "
     "line --bind may be given several times; in the file or the environment the keys are "
     "a comma-separated list.  # receives every event."},
    {"queue_type", T_ENUM, OFF(queue_type), "quorum", 0, 0, queue_types, HMS_CMD_CONSUME, 0, 0,
     NULL, "queue type of the subscriber's queue",
     "quorum (replicated, counts deliveries) or classic.  An existing queue must have been "
     "declared with the same type and arguments."},
    {"delivery_limit", T_INT, OFF(delivery_limit), "5", 1, 1000, NULL, HMS_CMD_CONSUME, 0, 0, NULL,
     "deliveries before a failing event is dead-lettered",
     "An event whose apply keeps failing (not a transient database failure) is tried this "
     "many times, then published to the dead-letter queue with the error as its reason."},
    {"origin", T_EXCHANGE, OFF(origin), NULL, 1, 63, NULL, HMS_CMD_CONSUME, 0, 0, "casemgmt",
     "skip events with this origin (own writes echoed back)",
     "For two-way sync: a subscriber that also writes to the EHR with this origin skips the "
     "events of its own changes, acknowledging them and counting them as echo.  Unset: "
     "nothing is skipped."},
    {"dead_letter_exchange", T_EXCHANGE, OFF(dead_letter_exchange), "hms.incidents.dlx", 1, 255,
     NULL, HMS_CMD_CONSUME, 0, 0, NULL, "direct exchange for dead-lettered events",
     "Where events that fail validation or keep failing are published, with routing key "
     "<queue> and a header x-hms-reason saying why; consume declares it and binds <queue>.dlq "
     "to it."},
    {"config", T_PATH, OFF(config), NULL, 0, 0, NULL, HMS_CMD_ALL, 0, F_NO_FILE, NULL,
     "config file to read (INI: name = value lines)",
     "The config file, from --config or HMS_SYNC_CONFIG only.  Values in it are overridden "
     "by the environment, which is overridden by the command line."},
};

#define NSETTINGS ((int)(sizeof(settings) / sizeof(settings[0])))
_Static_assert(sizeof(settings) / sizeof(settings[0]) <= HMS_CONFIG_MAX_SETTINGS,
               "raise HMS_CONFIG_MAX_SETTINGS");

int hms_config_setting_count(void)
{
    return (int)(sizeof(settings) / sizeof(settings[0]));
}

/* Options that are not settings: command line only, booleans. */
typedef struct {
    const char *name;
    size_t offset;
    unsigned cmds;
    const char *summary;
} cli_flag_t;

static const cli_flag_t cli_flags[] = {
    {"check_config", offsetof(hms_cli_flags_t, check_config), HMS_CMD_RUN,
     "validate the settings, print any problem, exit 0 (valid) or 2"},
    {"print_config", offsetof(hms_cli_flags_t, print_config), HMS_CMD_RUN,
     "print the effective settings (secrets redacted) and exit"},
    {"json", offsetof(hms_cli_flags_t, json), HMS_CMD_STATUS, "print the status as JSON"},
    {"subscriber", offsetof(hms_cli_flags_t, subscriber), HMS_CMD_MIGRATE,
     "install the subscriber-side objects instead of the publisher side"},
    {"help", offsetof(hms_cli_flags_t, help), HMS_CMD_ALL, "print this help and exit"},
};

#define NCLI_FLAGS ((int)(sizeof(cli_flags) / sizeof(cli_flags[0])))

/* ---- small helpers ---------------------------------------------------- */

/* HOST:PORT with a non-empty host of letters, digits, '.', '-' and a port
 * 1..65535. */
static bool parse_listen(const char *v)
{
    const char *colon = strrchr(v, ':');
    if (colon == NULL || colon == v || colon[1] == '\0' || strlen(colon + 1) > 5)
        return false;
    for (const char *p = v; p < colon; p++)
        if (!isalnum((unsigned char)*p) && *p != '.' && *p != '-')
            return false;
    long port = 0;
    for (const char *p = colon + 1; *p; p++) {
        if (!isdigit((unsigned char)*p))
            return false;
        port = port * 10 + (*p - '0');
    }
    return port >= 1 && port <= 65535;
}

static bool is_string_type(cfg_type_t t)
{
    return t == T_CONNINFO || t == T_URL || t == T_IDENT || t == T_EXCHANGE || t == T_PATH ||
           t == T_KEYS || t == T_FUNC || t == T_LISTEN;
}

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Appends to out unless an earlier append failed; lets renderers check once. */
static void put(hms_buf_t *out, hms_status_t *st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void put(hms_buf_t *out, hms_status_t *st, const char *fmt, ...)
{
    if (*st != HMS_OK)
        return;
    va_list ap;
    va_start(ap, fmt);
    char small[256];
    int n = vsnprintf(small, sizeof(small), fmt, ap);
    va_end(ap);
    if (n < 0) {
        *st = HMS_ERR_NOMEM;
        return;
    }
    if ((size_t)n < sizeof(small)) {
        *st = hms_buf_append(out, small, (size_t)n);
        return;
    }
    *st = hms_buf_reserve(out, (size_t)n);
    if (*st != HMS_OK)
        return;
    va_start(ap, fmt);
    vsnprintf(out->data + out->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    out->len += (size_t)n;
}

static void format_duration(int64_t ms, char *out, size_t n)
{
    if (ms != 0 && ms % MS_HOUR == 0)
        snprintf(out, n, "%lldh", (long long)(ms / MS_HOUR));
    else if (ms != 0 && ms % MS_MIN == 0)
        snprintf(out, n, "%lldm", (long long)(ms / MS_MIN));
    else if (ms % MS_SEC == 0)
        snprintf(out, n, "%llds", (long long)(ms / MS_SEC));
    else
        snprintf(out, n, "%lldms", (long long)ms);
}

/* Writes the setting name with '_' turned into '-', as options spell it. */
static void option_name(const char *name, char *out, size_t n)
{
    size_t i = 0;
    for (; name[i] != '\0' && i + 1 < n; i++)
        out[i] = name[i] == '_' ? '-' : name[i];
    out[i] = '\0';
}

static void env_name(const char *name, char *out, size_t n)
{
    int w = snprintf(out, n, "HMS_SYNC_");
    for (size_t i = 0; name[i] != '\0' && (size_t)w + 1 < n; i++, w++)
        out[w] = (char)(name[i] >= 'a' && name[i] <= 'z' ? name[i] - 'a' + 'A' : name[i]);
    out[w] = '\0';
}

/* "FILE:LINE", "env HMS_SYNC_X", "flag --x" or "default". */
static void format_source(const cfg_setting_t *s, hms_config_origin_t origin, const char *file,
                          int line, char *out, size_t n)
{
    char name[96];
    switch (origin) {
    case HMS_CONFIG_FROM_FILE:
        snprintf(out, n, "%s:%d", file != NULL ? file : "config file", line);
        return;
    case HMS_CONFIG_FROM_ENV:
        env_name(s->name, name, sizeof(name));
        snprintf(out, n, "env %s", name);
        return;
    case HMS_CONFIG_FROM_FLAG:
        option_name(s->name, name, sizeof(name));
        snprintf(out, n, "flag --%s", name);
        return;
    case HMS_CONFIG_FROM_DEFAULT: break;
    }
    snprintf(out, n, "default");
}

/* What a setting accepts, for the "(allowed: ...)" part of errors and docs. */
static void format_allowed(const cfg_setting_t *s, char *out, size_t n)
{
    char lo[32], hi[32];
    size_t w = 0;
    switch (s->type) {
    case T_CONNINFO: snprintf(out, n, "libpq key=value pairs or a postgresql:// URI"); return;
    case T_URL:
        snprintf(out, n, "amqp://[USER[:PASSWORD]@]HOST[:PORT][/VHOST], or amqps://");
        return;
    case T_IDENT:
        snprintf(out, n, "%lld..%lld characters of a-z, 0-9, _", (long long)s->min,
                 (long long)s->max);
        return;
    case T_EXCHANGE:
        snprintf(out, n, "%lld..%lld characters of A-Z, a-z, 0-9, '.', '_', ':', '-'",
                 (long long)s->min, (long long)s->max);
        return;
    case T_PATH: snprintf(out, n, "a file path"); return;
    case T_LISTEN: snprintf(out, n, "HOST:PORT, e.g. 127.0.0.1:9187"); return;
    case T_KEYS:
        snprintf(out, n, "comma-separated binding keys of A-Z, a-z, 0-9, '.', '_', '-', '*', '#'");
        return;
    case T_FUNC:
        snprintf(out, n,
                 "a function name, [schema.]name of a-z, A-Z, 0-9, _, optionally with "
                 "(jsonb)");
        return;
    case T_INT: snprintf(out, n, "%lld..%lld", (long long)s->min, (long long)s->max); return;
    case T_DURATION:
        format_duration(s->min, lo, sizeof(lo));
        format_duration(s->max, hi, sizeof(hi));
        snprintf(out, n, "%s..%s, as 500ms, 10s, 2m, 1h; a bare number is seconds", lo, hi);
        return;
    case T_BOOL: snprintf(out, n, "true|false"); return;
    case T_ENUM:
        out[0] = '\0';
        for (int i = 0; s->choices[i] != NULL && w < n; i++)
            w += (size_t)snprintf(out + w, n - w, "%s%s", i ? "|" : "", s->choices[i]);
        return;
    }
}

static const char *type_metavar(const cfg_setting_t *s)
{
    switch (s->type) {
    case T_CONNINFO: return "CONNINFO";
    case T_URL: return "URL";
    case T_IDENT:
    case T_EXCHANGE: return "NAME";
    case T_PATH: return "FILE";
    case T_LISTEN: return "HOST:PORT";
    case T_KEYS: return "KEY";
    case T_FUNC: return "SQLFUNC";
    case T_INT: return "N";
    case T_DURATION: return "DURATION";
    case T_BOOL: return "";
    case T_ENUM: return NULL; /* the choices */
    }
    return "";
}

static const char *type_name(const cfg_setting_t *s)
{
    switch (s->type) {
    case T_CONNINFO: return "connection string";
    case T_URL: return "AMQP URL";
    case T_IDENT: return "identifier";
    case T_EXCHANGE: return "exchange name";
    case T_PATH: return "path";
    case T_LISTEN: return "listen address";
    case T_KEYS: return "binding keys";
    case T_FUNC: return "SQL function";
    case T_INT: return "integer";
    case T_DURATION: return "duration";
    case T_BOOL: return "boolean";
    case T_ENUM: return "choice";
    }
    return "";
}

const char *hms_config_cmd_name(unsigned cmd)
{
    switch (cmd) {
    case HMS_CMD_RUN: return "run";
    case HMS_CMD_STATUS: return "status";
    case HMS_CMD_MIGRATE: return "migrate";
    case HMS_CMD_CONSUME: return "consume";
    default: return "hms-sync";
    }
}

static void format_cmds(unsigned cmds, char *out, size_t n)
{
    size_t w = 0;
    out[0] = '\0';
    for (unsigned bit = 1; bit <= HMS_CMD_CONSUME && w < n; bit <<= 1)
        if (cmds & bit)
            w += (size_t)snprintf(out + w, n - w, "%s%s", w ? ", " : "", hms_config_cmd_name(bit));
}

int hms_config_setting_index(const char *name)
{
    for (int i = 0; i < NSETTINGS; i++)
        if (strcmp(settings[i].name, name) == 0)
            return i;
    return -1;
}

/* ---- libpq conninfo and URLs ------------------------------------------ */

/* One step of a libpq key=value scanner, following libpq's own rules:
 * whitespace around '=', values single-quoted or bare, backslash escapes.
 * Returns 1 with key/value spans, 0 at the end, -1 with *why on a malformed
 * string (naming a position, never the text, which may hold a password). */
static int kv_next(const char *base, const char **p, const char **key, size_t *klen,
                   const char **val, size_t *vlen, char *why, size_t whyn)
{
    const char *c = *p;
    while (*c == ' ' || *c == '\t' || *c == '\n' || *c == '\r')
        c++;
    if (*c == '\0')
        return 0;
    *key = c;
    while (*c != '\0' && *c != '=' && *c != ' ' && *c != '\t' && *c != '\n' && *c != '\r')
        c++;
    *klen = (size_t)(c - *key);
    for (size_t i = 0; i < *klen; i++)
        if (!(((*key)[i] >= 'a' && (*key)[i] <= 'z') || (*key)[i] == '_')) {
            snprintf(why, whyn, "a key must be lower-case letters and _ (at character %d)",
                     (int)(*key - base) + 1);
            return -1;
        }
    while (*c == ' ' || *c == '\t')
        c++;
    if (*klen == 0 || *c != '=') {
        snprintf(why, whyn, "expected key=value at character %d", (int)(*key - base) + 1);
        return -1;
    }
    c++;
    while (*c == ' ' || *c == '\t')
        c++;
    *val = c;
    if (*c == '\'') {
        for (c++; *c != '\''; c++) {
            if (*c == '\\' && c[1] != '\0')
                c++;
            else if (*c == '\0') {
                snprintf(why, whyn, "unterminated quoted value at character %d",
                         (int)(*val - base) + 1);
                return -1;
            }
        }
        c++;
    } else {
        for (; *c != '\0' && *c != ' ' && *c != '\t' && *c != '\n' && *c != '\r'; c++)
            if (*c == '\\' && c[1] != '\0')
                c++;
    }
    *vlen = (size_t)(c - *val);
    *p = c;
    return 1;
}

static bool is_pg_uri(const char *s)
{
    return starts_with(s, "postgresql://") || starts_with(s, "postgres://");
}

static bool check_conninfo(const char *s, char *why, size_t whyn)
{
    if (is_pg_uri(s))
        return true; /* libpq reports the details of a bad URI at connect time */
    const char *p = s, *key, *val;
    size_t klen, vlen;
    int r;
    while ((r = kv_next(s, &p, &key, &klen, &val, &vlen, why, whyn)) == 1) {
    }
    return r == 0;
}

/* Splits a URL's authority (between "://" and the first '/', '?' or '#'). */
static void split_authority(const char *s, const char **auth, size_t *alen, const char **at)
{
    *auth = strstr(s, "://") + 3;
    *alen = strcspn(*auth, "/?#");
    *at = NULL;
    for (size_t i = 0; i < *alen; i++)
        if ((*auth)[i] == '@')
            *at = *auth + i;
}

static bool check_amqp_url(const char *s, char *why, size_t whyn)
{
    if (!starts_with(s, "amqp://") && !starts_with(s, "amqps://")) {
        snprintf(why, whyn, "the scheme must be amqp:// or amqps://");
        return false;
    }
    const char *auth, *at;
    size_t alen;
    split_authority(s, &auth, &alen, &at);
    const char *host = at != NULL ? at + 1 : auth;
    const char *end = auth + alen, *port = NULL, *hend;
    if (*host == '[') {
        hend = memchr(host, ']', (size_t)(end - host));
        if (hend == NULL) {
            snprintf(why, whyn, "an IPv6 host needs a closing ]");
            return false;
        }
        hend++;
        if (hend < end && *hend != ':') {
            snprintf(why, whyn, "unexpected text after the host");
            return false;
        }
    } else {
        hend = memchr(host, ':', (size_t)(end - host));
        if (hend == NULL)
            hend = end;
    }
    if (hend == host) {
        snprintf(why, whyn, "no host");
        return false;
    }
    for (const char *c = host; c < hend; c++)
        if ((unsigned char)*c <= ' ' || *c == 0x7f) {
            snprintf(why, whyn, "the host contains a space or control character");
            return false;
        }
    if (hend < end)
        port = hend + 1;
    if (port != NULL) {
        long v = 0;
        const char *c = port;
        for (; c < end && *c >= '0' && *c <= '9' && v <= 65535; c++)
            v = v * 10 + (*c - '0');
        if (c == port || c != end || v < 1 || v > 65535) {
            snprintf(why, whyn, "the port is not a number 1..65535");
            return false;
        }
    }
    return true;
}

static hms_status_t redact_kv(const char *s, hms_buf_t *out)
{
    const char *p = s, *key, *val, *copied = s;
    size_t klen, vlen;
    char why[128];
    int r;
    hms_status_t st = HMS_OK;
    while ((r = kv_next(s, &p, &key, &klen, &val, &vlen, why, sizeof(why))) == 1) {
        if (klen == 8 && memcmp(key, "password", 8) == 0) {
            st = hms_buf_append(out, copied, (size_t)(val - copied));
            if (st == HMS_OK)
                st = hms_buf_append_str(out, "***");
            copied = val + vlen;
        }
    }
    if (r < 0) /* cannot tell where the password is: hide everything */
        return hms_buf_append_str(out, "***");
    if (st == HMS_OK)
        st = hms_buf_append_str(out, copied);
    return st;
}

static hms_status_t redact_url(const char *s, hms_buf_t *out)
{
    const char *auth, *at;
    size_t alen;
    hms_status_t st = HMS_OK;
    split_authority(s, &auth, &alen, &at);
    const char *colon = at != NULL ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    if (colon != NULL) {
        put(out, &st, "%.*s***", (int)(colon + 1 - s), s);
        s = at;
    }
    /* libpq also takes ?password=... in a URI's query. */
    const char *q = strchr(s, '?');
    if (q == NULL)
        return st == HMS_OK ? hms_buf_append_str(out, s) : st;
    put(out, &st, "%.*s", (int)(q + 1 - s), s);
    for (const char *p = q + 1; *p != '\0' && st == HMS_OK;) {
        size_t n = strcspn(p, "&#");
        if (n >= 9 && strncmp(p, "password=", 9) == 0)
            put(out, &st, "password=***");
        else
            put(out, &st, "%.*s", (int)n, p);
        p += n;
        if (*p == '&') {
            put(out, &st, "&");
            p++;
        } else if (*p == '#') {
            put(out, &st, "%s", p);
            break;
        }
    }
    return st;
}

hms_status_t hms_config_redact(const char *s, hms_buf_t *out)
{
    if (is_pg_uri(s) || starts_with(s, "amqp://") || starts_with(s, "amqps://"))
        return redact_url(s, out);
    return redact_kv(s, out);
}

/* True when redaction would hide something: the value carries a password. */
static bool has_password(const char *s)
{
    hms_buf_t b = HMS_BUF_INIT;
    bool differs = hms_config_redact(s, &b) != HMS_OK || strcmp(b.data, s) != 0;
    hms_buf_free(&b);
    return differs;
}

/* ---- one value -------------------------------------------------------- */

static bool parse_int64(const char *s, int64_t *out)
{
    int64_t v = 0;
    bool neg = *s == '-';
    const char *c = s + neg;
    if (*c == '\0')
        return false;
    for (; *c >= '0' && *c <= '9'; c++) {
        if (v > (INT64_MAX - 9) / 10)
            return false;
        v = v * 10 + (*c - '0');
    }
    if (*c != '\0')
        return false;
    *out = neg ? -v : v;
    return true;
}

static bool parse_duration(const char *s, int64_t *ms)
{
    int64_t v = 0;
    const char *c = s;
    if (*c < '0' || *c > '9')
        return false;
    for (; *c >= '0' && *c <= '9'; c++) {
        if (v > 1000000000000LL) /* beyond any range: keep the multiply from overflowing */
            return false;
        v = v * 10 + (*c - '0');
    }
    int64_t unit;
    if (*c == '\0' || strcmp(c, "s") == 0)
        unit = MS_SEC;
    else if (strcmp(c, "ms") == 0)
        unit = 1;
    else if (strcmp(c, "m") == 0)
        unit = MS_MIN;
    else if (strcmp(c, "h") == 0)
        unit = MS_HOUR;
    else
        return false;
    if (v > INT64_MAX / unit) /* 9999999999999h: the digit cap alone lets this overflow */
        return false;
    *ms = v * unit;
    return true;
}

static bool parse_name(const char *s, const cfg_setting_t *st, bool upper_and_punct)
{
    size_t n = strlen(s);
    if ((int64_t)n < st->min || (int64_t)n > st->max)
        return false;
    for (const char *c = s; *c != '\0'; c++) {
        bool ok = (*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_';
        if (upper_and_punct)
            ok = ok || (*c >= 'A' && *c <= 'Z') || *c == '.' || *c == ':' || *c == '-';
        if (!ok)
            return false;
    }
    return true;
}

/* A comma-separated list of AMQP binding keys, each non-empty. */
static bool parse_keys(const char *s, const cfg_setting_t *st)
{
    size_t n = strlen(s);
    if ((int64_t)n < st->min || (int64_t)n > st->max)
        return false;
    size_t word = 0;
    for (const char *c = s;; c++) {
        if (*c == ',' || *c == '\0') {
            if (word == 0 || word > 255)
                return false;
            if (*c == '\0')
                return true;
            word = 0;
            continue;
        }
        bool ok = (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                  (*c >= '0' && *c <= '9') || *c == '.' || *c == '_' || *c == '-' || *c == '*' ||
                  *c == '#';
        if (!ok)
            return false;
        word++;
    }
}

/* [schema.]name, optionally followed by "(jsonb)": what consume casts to
 * regprocedure, so no quoting or other argument list is needed. */
static bool parse_func(const char *s, const cfg_setting_t *st)
{
    size_t n = strlen(s);
    if ((int64_t)n < st->min || (int64_t)n > st->max)
        return false;
    const char *paren = strchr(s, '(');
    size_t name_len = paren != NULL ? (size_t)(paren - s) : n;
    if (paren != NULL && strcmp(paren, "(jsonb)") != 0)
        return false;
    int dots = 0;
    for (size_t i = 0; i < name_len; i++) {
        char c = s[i];
        if (c == '.') {
            if (++dots > 1 || i == 0 || i + 1 == name_len)
                return false;
            continue;
        }
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_'))
            return false;
    }
    return name_len > 0;
}

/* Parses value for s into *slot (a scratch of the field's type).  On failure
 * writes a phrase like "is not an integer" into why. */
static bool parse_value(const cfg_setting_t *s, const char *value, void *slot, char *why,
                        size_t whyn)
{
    int64_t v = 0;
    if (value[0] == '\0') {
        snprintf(why, whyn, "is empty");
        return false;
    }
    switch (s->type) {
    case T_CONNINFO: {
        char detail[160];
        if (!check_conninfo(value, detail, sizeof(detail))) {
            snprintf(why, whyn, "is not a connection string: %s", detail);
            return false;
        }
        break;
    }
    case T_URL: {
        char detail[160];
        if (!check_amqp_url(value, detail, sizeof(detail))) {
            snprintf(why, whyn, "is not an AMQP URL: %s", detail);
            return false;
        }
        break;
    }
    case T_IDENT:
        if (!parse_name(value, s, false)) {
            snprintf(why, whyn, "is not a valid name");
            return false;
        }
        break;
    case T_EXCHANGE:
        if (!parse_name(value, s, true)) {
            snprintf(why, whyn, "is not a valid exchange name");
            return false;
        }
        break;
    case T_PATH: break;
    case T_LISTEN:
        if (!parse_listen(value)) {
            snprintf(why, whyn, "is not HOST:PORT");
            return false;
        }
        break;
    case T_KEYS:
        if (!parse_keys(value, s)) {
            snprintf(why, whyn, "is not a list of binding keys");
            return false;
        }
        break;
    case T_FUNC:
        if (!parse_func(value, s)) {
            snprintf(why, whyn, "is not a function name");
            return false;
        }
        break;
    case T_INT:
        if (!parse_int64(value, &v)) {
            snprintf(why, whyn, "is not an integer");
            return false;
        }
        if (v < s->min || v > s->max) {
            snprintf(why, whyn, "is out of range");
            return false;
        }
        *(int *)slot = (int)v;
        return true;
    case T_DURATION:
        if (!parse_duration(value, &v)) {
            snprintf(why, whyn, "is not a duration");
            return false;
        }
        if (v < s->min || v > s->max) {
            snprintf(why, whyn, "is out of range");
            return false;
        }
        *(int64_t *)slot = v;
        return true;
    case T_BOOL:
        if (strcmp(value, "true") == 0 || strcmp(value, "yes") == 0 || strcmp(value, "on") == 0 ||
            strcmp(value, "1") == 0)
            *(bool *)slot = true;
        else if (strcmp(value, "false") == 0 || strcmp(value, "no") == 0 ||
                 strcmp(value, "off") == 0 || strcmp(value, "0") == 0)
            *(bool *)slot = false;
        else {
            snprintf(why, whyn, "is not a boolean");
            return false;
        }
        return true;
    case T_ENUM:
        for (int i = 0; s->choices[i] != NULL; i++)
            if (strcmp(value, s->choices[i]) == 0) {
                *(int *)slot = i;
                return true;
            }
        snprintf(why, whyn, "is not one of the choices");
        return false;
    }
    /* A string type: the caller copies the value itself. */
    return true;
}

hms_status_t hms_config_set(hms_config_t *cfg, const char *name, const char *value,
                            hms_config_origin_t origin, const char *file, int line, hms_err_t *err)
{
    int i = hms_config_setting_index(name);
    if (i < 0)
        return hms_err_set(err, HMS_ERR_CONFIG, "config: unknown setting \"%.64s\"", name);
    const cfg_setting_t *s = &settings[i];
    union {
        int i;
        int64_t ms;
        bool b;
    } scratch = {0}; /* zeroed: gcc -O3 cannot see parse_value() always fills it */
    char why[200], src[300], allowed[160];
    if (!parse_value(s, value, &scratch, why, sizeof(why))) {
        format_source(s, origin, file, line, src, sizeof(src));
        format_allowed(s, allowed, sizeof(allowed));
        if (s->flags & F_SECRET)
            return hms_err_set(err, HMS_ERR_CONFIG, "config: %s: value from %s %s (allowed: %s)",
                               s->name, src, why, allowed);
        return hms_err_set(err, HMS_ERR_CONFIG, "config: %s: \"%.100s%s\" from %s %s (allowed: %s)",
                           s->name, value, strlen(value) > 100 ? "..." : "", src, why, allowed);
    }
    char *field = (char *)cfg + s->offset;
    if (s->type == T_KEYS && origin == HMS_CONFIG_FROM_FLAG &&
        cfg->source[i].origin == HMS_CONFIG_FROM_FLAG && *(char **)field != NULL) {
        /* A repeated --bind adds a key instead of replacing the list. */
        const char *old = *(char **)field;
        size_t total = strlen(old) + 1 + strlen(value);
        if ((int64_t)total > s->max)
            return hms_err_set(err, HMS_ERR_CONFIG,
                               "config: %s: the keys from flag --%s are longer than %lld "
                               "characters together",
                               s->name, s->name, (long long)s->max);
        char *joined = malloc(total + 1);
        if (joined == NULL)
            return hms_err_set(err, HMS_ERR_NOMEM, "config: %s: out of memory", s->name);
        snprintf(joined, total + 1, "%s,%s", old, value);
        free(*(char **)field);
        *(char **)field = joined;
    } else if (is_string_type(s->type)) {
        char *copy = strdup(value);
        if (copy == NULL)
            return hms_err_set(err, HMS_ERR_NOMEM, "config: %s: out of memory", s->name);
        free(*(char **)field);
        *(char **)field = copy;
    } else if (s->type == T_INT || s->type == T_ENUM) {
        *(int *)field = scratch.i;
    } else if (s->type == T_DURATION) {
        *(int64_t *)field = scratch.ms;
    } else {
        *(bool *)field = scratch.b;
    }
    cfg->source[i].origin = origin;
    cfg->source[i].line = line;
    return HMS_OK;
}

hms_status_t hms_config_init(hms_config_t *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    for (int i = 0; i < NSETTINGS; i++) {
        if (settings[i].def == NULL)
            continue;
        hms_status_t st = hms_config_set(cfg, settings[i].name, settings[i].def,
                                         HMS_CONFIG_FROM_DEFAULT, NULL, 0, NULL);
        if (st != HMS_OK)
            return st; /* only NOMEM: the table test proves every default valid */
    }
    return HMS_OK;
}

void hms_config_free(hms_config_t *cfg)
{
    for (int i = 0; i < NSETTINGS; i++)
        if (is_string_type(settings[i].type))
            free(*(char **)((char *)cfg + settings[i].offset));
    memset(cfg, 0, sizeof(*cfg));
}

/* ---- the config file -------------------------------------------------- */

/* Feeds inih one line at a time from a string, counting lines, because
 * Debian's inih does not pass line numbers to the handler. */
typedef struct {
    const char *p;
    int line;
    int too_long; /* the line that did not fit inih's buffer, or 0 */
    int max;
} line_reader_t;

static char *read_line(char *str, int num, void *stream)
{
    line_reader_t *r = stream;
    if (*r->p == '\0' || r->too_long != 0)
        return NULL;
    size_t n = strcspn(r->p, "\n");
    size_t take = n + (r->p[n] == '\n');
    r->line++;
    /* inih needs room for the NUL; a longer line would be split in two and
     * the tail parsed as a line of its own, so stop instead. */
    if (take + 1 > (size_t)num) {
        r->too_long = r->line;
        r->max = num - 2;
        return NULL;
    }
    memcpy(str, r->p, take);
    str[take] = '\0';
    r->p += take;
    return str;
}

typedef struct {
    hms_config_t *cfg;
    const char *path;
    line_reader_t rd;
    hms_err_t *err;
    hms_status_t st;
    int err_line;
    bool password;
    int seen[HMS_CONFIG_MAX_SETTINGS];
} file_ctx_t;

static int on_pair(void *user, const char *section, const char *name, const char *value)
{
    file_ctx_t *x = user;
    if (x->st != HMS_OK)
        return 0; /* report only the first problem */
    int line = x->rd.line;
    x->err_line = line;
    int i = hms_config_setting_index(name);
    if (section[0] != '\0') {
        x->st = hms_err_set(x->err, HMS_ERR_CONFIG,
                            "config: %s:%d: %.64s is in section [%.64s]; the config file has "
                            "no sections",
                            x->path, line, name, section);
    } else if (i < 0) {
        char names[400];
        size_t w = 0;
        for (int k = 0; k < NSETTINGS && w < sizeof(names); k++)
            if (!(settings[k].flags & F_NO_FILE))
                w += (size_t)snprintf(names + w, sizeof(names) - w, "%s%s", w ? ", " : "",
                                      settings[k].name);
        x->st = hms_err_set(x->err, HMS_ERR_CONFIG,
                            "config: %s:%d: unknown setting \"%.64s\" (allowed: %s)", x->path, line,
                            name, names);
    } else if (settings[i].flags & F_NO_FILE) {
        char env[96];
        env_name(name, env, sizeof(env));
        x->st = hms_err_set(x->err, HMS_ERR_CONFIG,
                            "config: %s: cannot be set in a config file (%s:%d); use --%s or %s",
                            name, x->path, line, name, env);
    } else if (x->seen[i] != 0) {
        x->st = hms_err_set(x->err, HMS_ERR_CONFIG, "config: %s: set twice in %s (lines %d and %d)",
                            name, x->path, x->seen[i], line);
    } else {
        x->seen[i] = line;
        x->st = hms_config_set(x->cfg, name, value, HMS_CONFIG_FROM_FILE, x->path, line, x->err);
        if (x->st == HMS_OK && (settings[i].flags & F_SECRET) && has_password(value))
            x->password = true;
    }
    return x->st == HMS_OK;
}

hms_status_t hms_config_apply_file(hms_config_t *cfg, const char *text, const char *path,
                                   unsigned mode, hms_err_t *err)
{
    char *copy = strdup(path);
    if (copy == NULL)
        return hms_err_set(err, HMS_ERR_NOMEM, "config: out of memory");
    free(cfg->config);
    cfg->config = copy;

    file_ctx_t x = {.cfg = cfg, .path = path, .rd = {.p = text}, .err = err, .st = HMS_OK};
    int rc = ini_parse_stream(read_line, &x.rd, on_pair, &x);
    if (x.st != HMS_OK && (rc <= 0 || x.err_line <= rc))
        return x.st;
    if (rc == -2)
        return hms_err_set(err, HMS_ERR_NOMEM, "config: %s: out of memory", path);
    if (rc > 0)
        return hms_err_set(err, HMS_ERR_CONFIG,
                           "config: %s:%d: expected a \"name = value\" line or a # comment", path,
                           rc);
    if (x.rd.too_long != 0)
        return hms_err_set(err, HMS_ERR_CONFIG, "config: %s:%d: line is longer than %d characters",
                           path, x.rd.too_long, x.rd.max);
    if (x.password && (mode & 0044) != 0)
        return hms_err_set(err, HMS_ERR_CONFIG,
                           "config: %s holds a password but is readable by group or others "
                           "(mode %04o); run chmod 600 %s",
                           path, mode & 07777, path);
    return HMS_OK;
}

/* ---- environment and command line ------------------------------------- */

/* Maps "HMS_SYNC_LOG_LEVEL=..." to the setting index; -1 when it is not an
 * HMS_SYNC_ variable, -2 when it is one but names no setting. */
static int env_setting(const char *entry, const char **value)
{
    static const char prefix[] = "HMS_SYNC_";
    if (strncmp(entry, prefix, sizeof(prefix) - 1) != 0)
        return -1;
    const char *name = entry + sizeof(prefix) - 1;
    const char *eq = strchr(name, '=');
    if (eq == NULL)
        return -1;
    char lower[64];
    size_t n = (size_t)(eq - name);
    if (n == 0 || n >= sizeof(lower))
        return -2;
    for (size_t i = 0; i < n; i++) {
        char c = name[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
            return -2;
        lower[i] = (char)(c >= 'A' && c <= 'Z' ? c - 'A' + 'a' : c);
    }
    lower[n] = '\0';
    *value = eq + 1;
    int i = hms_config_setting_index(lower);
    return i >= 0 ? i : -2;
}

hms_status_t hms_config_apply_env(hms_config_t *cfg, char **envp, hms_err_t *err)
{
    for (char **e = envp; e != NULL && *e != NULL; e++) {
        const char *value;
        int i = env_setting(*e, &value);
        /* Container tools often pass a variable empty to mean "not set". */
        if (i < 0 || (settings[i].flags & F_NO_FILE) || value[0] == '\0')
            continue;
        hms_status_t st =
            hms_config_set(cfg, settings[i].name, value, HMS_CONFIG_FROM_ENV, NULL, 0, err);
        if (st != HMS_OK)
            return st;
    }
    return HMS_OK;
}

hms_status_t hms_config_env_warnings(char **envp, hms_buf_t *out)
{
    hms_status_t st = HMS_OK;
    int n = 0;
    for (char **e = envp; e != NULL && *e != NULL; e++) {
        const char *value;
        if (env_setting(*e, &value) != -2)
            continue;
        put(out, &st, "%s%.*s", n++ ? ", " : "warning: config: ignoring unknown variables ",
            (int)strcspn(*e, "="), *e);
    }
    if (n > 0)
        put(out, &st, "\n");
    return st;
}

/* Walks the command line.  With cfg NULL it only checks the syntax and finds
 * --config; otherwise it applies every option except --config (the file was
 * applied before the environment). */
static hms_status_t walk_argv(hms_config_t *cfg, unsigned cmd, int argc, char **argv,
                              hms_cli_flags_t *flags, const char **config, hms_err_t *err)
{
    const char *cmdname = hms_config_cmd_name(cmd);
    for (int a = 0; a < argc; a++) {
        const char *arg = argv[a];
        if (strcmp(arg, "-h") == 0)
            arg = "--help";
        if (!starts_with(arg, "--") || arg[2] == '\0')
            return hms_err_set(err, HMS_ERR_CONFIG,
                               "config: unexpected argument \"%.64s\" (see hms-sync %s --help)",
                               arg, cmdname);
        char name[64];
        size_t n = strcspn(arg + 2, "=");
        const char *value = arg[2 + n] == '=' ? arg + 3 + n : NULL;
        if (n >= sizeof(name))
            n = sizeof(name) - 1;
        for (size_t k = 0; k < n; k++)
            name[k] = arg[2 + k] == '-' ? '_' : arg[2 + k];
        name[n] = '\0';
        char opt[64];
        option_name(name, opt, sizeof(opt));

        for (int k = 0; k < NCLI_FLAGS; k++) {
            if (strcmp(cli_flags[k].name, name) != 0)
                continue;
            if (!(cli_flags[k].cmds & cmd))
                return hms_err_set(err, HMS_ERR_CONFIG,
                                   "config: option --%s is not accepted by %s (see hms-sync %s "
                                   "--help)",
                                   opt, cmdname, cmdname);
            if (value != NULL)
                return hms_err_set(err, HMS_ERR_CONFIG, "config: option --%s takes no value", opt);
            *(bool *)((char *)flags + cli_flags[k].offset) = true;
            goto next;
        }
        int i = hms_config_setting_index(name);
        if (i < 0)
            return hms_err_set(err, HMS_ERR_CONFIG,
                               "config: unknown option --%s for %s (see hms-sync %s --help)", opt,
                               cmdname, cmdname);
        const cfg_setting_t *s = &settings[i];
        if (!(s->cmds & cmd))
            return hms_err_set(err, HMS_ERR_CONFIG,
                               "config: option --%s is not accepted by %s (see hms-sync %s "
                               "--help)",
                               opt, cmdname, cmdname);
        if (value == NULL && s->type == T_BOOL)
            value = "true";
        if (value == NULL) {
            if (a + 1 >= argc) {
                char allowed[160];
                format_allowed(s, allowed, sizeof(allowed));
                return hms_err_set(err, HMS_ERR_CONFIG,
                                   "config: %s: option --%s needs a value (allowed: %s)", s->name,
                                   opt, allowed);
            }
            value = argv[++a];
        }
        if (s->flags & F_NO_FILE) {
            if (cfg == NULL && config != NULL)
                *config = value;
        } else if (cfg != NULL) {
            hms_status_t st =
                hms_config_set(cfg, s->name, value, HMS_CONFIG_FROM_FLAG, NULL, 0, err);
            if (st != HMS_OK)
                return st;
        }
    next:;
    }
    return HMS_OK;
}

hms_status_t hms_config_find_file(unsigned cmd, int argc, char **argv, char **envp,
                                  const char **path, hms_cli_flags_t *flags, hms_err_t *err)
{
    memset(flags, 0, sizeof(*flags));
    *path = NULL;
    hms_status_t st = walk_argv(NULL, cmd, argc, argv, flags, path, err);
    if (st != HMS_OK || *path != NULL)
        return st;
    for (char **e = envp; e != NULL && *e != NULL; e++)
        if (starts_with(*e, "HMS_SYNC_CONFIG=") && (*e)[16] != '\0')
            *path = *e + 16;
    return HMS_OK;
}

hms_status_t hms_config_apply_argv(hms_config_t *cfg, unsigned cmd, int argc, char **argv,
                                   hms_cli_flags_t *flags, hms_err_t *err)
{
    memset(flags, 0, sizeof(*flags));
    return walk_argv(cfg, cmd, argc, argv, flags, NULL, err);
}

/* The amqp_* settings that only make sense together: a TLS option over plain
 * amqp:// would silently protect nothing, and two passwords leave the reader
 * guessing which one is used. */
static hms_status_t check_amqp_auth(const hms_config_t *cfg, unsigned cmd, hms_err_t *err)
{
    if (!(cmd & CMD_NET) || cfg->amqp == NULL)
        return HMS_OK;
    bool tls = starts_with(cfg->amqp, "amqps://");
    const char *tls_only[] = {"amqp_cacert", "amqp_cert", "amqp_key"};
    for (size_t k = 0; k < sizeof(tls_only) / sizeof(tls_only[0]) && !tls; k++) {
        const cfg_setting_t *s = &settings[hms_config_setting_index(tls_only[k])];
        if (*(char *const *)((const char *)cfg + s->offset) != NULL)
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
    if (cfg->amqp_password_file != NULL && has_password(cfg->amqp))
        return hms_err_set(err, HMS_ERR_CONFIG,
                           "config: amqp_password_file: set, but the amqp URL has a password "
                           "too; remove it from the URL (amqps://USER@HOST/VHOST)");
    return HMS_OK;
}

hms_status_t hms_config_check(const hms_config_t *cfg, unsigned cmd, hms_err_t *err)
{
    for (int i = 0; i < NSETTINGS; i++) {
        const cfg_setting_t *s = &settings[i];
        if (!(s->required & cmd) || *(char *const *)((const char *)cfg + s->offset) != NULL)
            continue;
        /* The discard sink publishes nothing, so it needs no broker. */
        if (cmd == HMS_CMD_RUN && strcmp(s->name, "amqp") == 0 &&
            cfg->sink == HMS_CONFIG_SINK_DISCARD)
            continue;
        char env[96], opt[96];
        env_name(s->name, env, sizeof(env));
        option_name(s->name, opt, sizeof(opt));
        return hms_err_set(err, HMS_ERR_CONFIG,
                           "config: %s: not set; %s needs it (use --%s, %s or \"%s = ...\" in "
                           "the config file)",
                           s->name, hms_config_cmd_name(cmd), opt, env, s->name);
    }
    hms_status_t st = check_amqp_auth(cfg, cmd, err);
    if (st != HMS_OK)
        return st;
    if (cfg->retry_min_ms > cfg->retry_max_ms) {
        int imin = hms_config_setting_index("retry_min");
        int imax = hms_config_setting_index("retry_max");
        char a[32], b[32], sa[300], sb[300];
        format_duration(cfg->retry_min_ms, a, sizeof(a));
        format_duration(cfg->retry_max_ms, b, sizeof(b));
        format_source(&settings[imin], cfg->source[imin].origin, cfg->config,
                      cfg->source[imin].line, sa, sizeof(sa));
        format_source(&settings[imax], cfg->source[imax].origin, cfg->config,
                      cfg->source[imax].line, sb, sizeof(sb));
        return hms_err_set(err, HMS_ERR_CONFIG,
                           "config: retry_min: %s from %s is greater than retry_max %s from %s "
                           "(allowed: retry_min <= retry_max)",
                           a, sa, b, sb);
    }
    return HMS_OK;
}

/* ---- rendering -------------------------------------------------------- */

static void put_value(const hms_config_t *cfg, const cfg_setting_t *s, hms_buf_t *out,
                      hms_status_t *st)
{
    const char *field = (const char *)cfg + s->offset;
    char d[32];
    switch (s->type) {
    case T_INT: put(out, st, "%d", *(const int *)field); return;
    case T_ENUM: put(out, st, "%s", s->choices[*(const int *)field]); return;
    case T_BOOL: put(out, st, "%s", *(const bool *)field ? "true" : "false"); return;
    case T_DURATION:
        format_duration(*(const int64_t *)field, d, sizeof(d));
        put(out, st, "%s", d);
        return;
    default: break;
    }
    const char *v = *(char *const *)field;
    if (*st == HMS_OK)
        *st = (s->flags & F_SECRET) ? hms_config_redact(v, out) : hms_buf_append_str(out, v);
}

hms_status_t hms_config_render(const hms_config_t *cfg, unsigned cmd, hms_buf_t *out)
{
    hms_status_t st = HMS_OK;
    for (int i = 0; i < NSETTINGS; i++) {
        const cfg_setting_t *s = &settings[i];
        if (cmd != 0 && !(s->cmds & cmd))
            continue;
        if (is_string_type(s->type) && *(char *const *)((const char *)cfg + s->offset) == NULL) {
            put(out, &st, "# %s is not set\n", s->name);
            continue;
        }
        put(out, &st, "%s = ", s->name);
        put_value(cfg, s, out, &st);
        put(out, &st, "\n");
    }
    return st;
}

static void put_option(hms_buf_t *out, hms_status_t *st, const char *opt, const char *summary)
{
    if (strlen(opt) <= 30)
        put(out, st, "  %-30s %s\n", opt, summary);
    else
        put(out, st, "  %s\n  %-30s %s\n", opt, "", summary);
}

hms_status_t hms_config_render_usage(unsigned cmd, hms_buf_t *out)
{
    hms_status_t st = HMS_OK;
    char opt[256], name[64], allowed[160], summary[320];
    put(out, &st, "Options of hms-sync %s:\n", hms_config_cmd_name(cmd));
    for (int i = 0; i < NSETTINGS; i++) {
        const cfg_setting_t *s = &settings[i];
        if (!(s->cmds & cmd))
            continue;
        option_name(s->name, name, sizeof(name));
        format_allowed(s, allowed, sizeof(allowed));
        const char *meta = type_metavar(s);
        snprintf(opt, sizeof(opt), "--%s %s", name, meta != NULL ? meta : allowed);
        if (s->def != NULL)
            snprintf(summary, sizeof(summary), "%s (default %s)", s->summary, s->def);
        else if (s->required & cmd)
            snprintf(summary, sizeof(summary), "%s (required)", s->summary);
        else
            snprintf(summary, sizeof(summary), "%s", s->summary);
        put_option(out, &st, opt, summary);
    }
    for (int k = 0; k < NCLI_FLAGS; k++) {
        if (!(cli_flags[k].cmds & cmd))
            continue;
        option_name(cli_flags[k].name, name, sizeof(name));
        snprintf(opt, sizeof(opt), "--%s", name);
        put_option(out, &st, opt, cli_flags[k].summary);
    }
    put(out, &st,
        "Every setting can also come from the environment (HMS_SYNC_<NAME>, e.g. HMS_SYNC_PG)\n"
        "or a config file (--config FILE, lines \"name = value\"); the command line wins over\n"
        "the environment, which wins over the file.\n");
    return st;
}

/* Appends text as comment lines ("# ...") wrapped before column 78. */
static void put_wrapped(hms_buf_t *out, hms_status_t *st, const char *lead, const char *text)
{
    const int width = 78 - (int)strlen(lead);
    const char *p = text;
    while (*p != '\0') {
        int n = (int)strlen(p);
        if (n > width) {
            n = width;
            while (n > 0 && p[n] != ' ')
                n--;
            if (n == 0)
                n = (int)strcspn(p, " ");
        }
        int line = n;
        while (line > 0 && p[line - 1] == ' ')
            line--;
        put(out, st, "%s%.*s\n", lead, line, p);
        p += n;
        while (*p == ' ')
            p++;
    }
}

hms_status_t hms_config_render_example(hms_buf_t *out)
{
    hms_status_t st = HMS_OK;
    char env[96], opt[96], allowed[160], cmds[96], text[512];
    put(out, &st,
        "# hms-sync.ini.example -- every hms-sync setting, with its default.\n"
        "#\n"
        "# Generated from the settings table in src/core/config.c; a unit test fails\n"
        "# when this file and the table disagree.  Copy it, uncomment what you change,\n"
        "# and pass it as --config FILE or HMS_SYNC_CONFIG=FILE.\n"
        "#\n"
        "# Format: one \"name = value\" per line, no sections; lines starting with # or\n"
        "# ; are comments, and \" ;\" starts a comment after a value.  Lines are at most\n"
        "# 198 characters.  An unknown or repeated name is an error.\n"
        "#\n"
        "# Precedence: defaults < this file < environment (HMS_SYNC_<NAME>) < command\n"
        "# line (--name VALUE).  A file that holds a password must not be readable by\n"
        "# group or others: chmod 600 it, or hms-sync refuses to start.\n"
        "# Durations take a unit: 500ms, 10s, 2m, 1h; a bare number is seconds.\n");
    for (int i = 0; i < NSETTINGS; i++) {
        const cfg_setting_t *s = &settings[i];
        if (s->flags & F_NO_FILE)
            continue;
        env_name(s->name, env, sizeof(env));
        option_name(s->name, opt, sizeof(opt));
        format_allowed(s, allowed, sizeof(allowed));
        format_cmds(s->cmds, cmds, sizeof(cmds));
        put(out, &st, "\n# ---- %s: %s\n", s->name, s->summary);
        put_wrapped(out, &st, "# ", s->help);
        snprintf(text, sizeof(text), "Type: %s (%s).  Default: %s.", type_name(s), allowed,
                 s->def != NULL ? s->def : "none");
        put_wrapped(out, &st, "# ", text);
        snprintf(text, sizeof(text), "Environment: %s.  Option: --%s (%s).%s", env, opt, cmds,
                 (s->flags & F_SECRET) ? "  Secret: chmod 600 a file that holds it." : "");
        put_wrapped(out, &st, "# ", text);
        put(out, &st, "#%s = %s\n", s->name, s->def != NULL ? s->def : s->example);
    }
    return st;
}

hms_status_t hms_config_render_markdown(hms_buf_t *out)
{
    hms_status_t st = HMS_OK;
    char env[96], opt[96], allowed[160], cmds[96];
    put(out, &st,
        "# Configuration\n\n"
        "<!-- Generated from the settings table in src/core/config.c by\n"
        "     hms_config_write_markdown(); a unit test fails when they disagree. -->\n\n"
        "Every setting comes from, in increasing precedence: its default, the config\n"
        "file (`--config FILE` or `HMS_SYNC_CONFIG`), the environment\n"
        "(`HMS_SYNC_<NAME>`, e.g. `HMS_SYNC_LOG_LEVEL`; an empty variable counts as\n"
        "unset) and the command line (`--name VALUE` or `--name=VALUE`; `-` and `_`\n"
        "are interchangeable in option names).\n\n"
        "The config file is flat INI: one `name = value` per line, no sections, `#` or\n"
        "`;` comments.  An unknown or repeated name is an error naming the file and\n"
        "line.  A file that holds a password (in `pg` or `amqp`) must not be readable\n"
        "by group or others (`chmod 600 FILE`).  See `deploy/hms-sync.ini.example`.\n\n"
        "An invalid value is a one-line error naming the setting, where the value came\n"
        "from and what is allowed, and the process exits 2, e.g.\n\n"
        "    hms-sync: config: window: \"abc\" from /etc/hms-sync.ini:12 is not an integer "
        "(allowed: 1..65535)\n\n"
        "`hms-sync run --check-config` validates and exits; `hms-sync run --print-config`\n"
        "prints the effective settings with every password replaced by `***`.\n\n"
        "Durations take a unit: `500ms`, `10s`, `2m`, `1h`; a bare number is seconds.\n\n"
        "| Setting | Type | Default | Environment | Option | Used by |\n"
        "| --- | --- | --- | --- | --- | --- |\n");
    for (int i = 0; i < NSETTINGS; i++) {
        const cfg_setting_t *s = &settings[i];
        env_name(s->name, env, sizeof(env));
        option_name(s->name, opt, sizeof(opt));
        format_cmds(s->cmds, cmds, sizeof(cmds));
        put(out, &st, "| [`%s`](#%s) | %s | %s%s%s | `%s` | `--%s` | %s |\n", s->name, s->name,
            type_name(s), s->def != NULL ? "`" : "", s->def != NULL ? s->def : "none",
            s->def != NULL ? "`" : "", env, opt, cmds);
    }
    for (int i = 0; i < NSETTINGS; i++) {
        const cfg_setting_t *s = &settings[i];
        format_allowed(s, allowed, sizeof(allowed));
        put(out, &st, "\n## %s\n\n%s\n\nAllowed: %s.", s->name, s->help, allowed);
        if (s->required != 0) {
            format_cmds(s->required, cmds, sizeof(cmds));
            put(out, &st, "  Required by: %s.", cmds);
        }
        if (s->flags & F_SECRET)
            put(out, &st, "  Secret: redacted when printed.");
        if (s->flags & F_NO_FILE)
            put(out, &st, "  Not accepted in the config file.");
        put(out, &st, "\n");
    }
    put(out, &st,
        "\n## Command-line-only options\n\n| Option | Subcommands | Meaning |\n"
        "| --- | --- | --- |\n");
    for (int k = 0; k < NCLI_FLAGS; k++) {
        option_name(cli_flags[k].name, opt, sizeof(opt));
        format_cmds(cli_flags[k].cmds, cmds, sizeof(cmds));
        put(out, &st, "| `--%s` | %s | %s |\n", opt, cmds, cli_flags[k].summary);
    }
    return st;
}
