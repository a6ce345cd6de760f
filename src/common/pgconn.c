/* pgconn.c -- checking, naming and error lines of PostgreSQL connections. */
#include "common/pgconn.h"

#include "common/clock.h"

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *hms_pg_one_line(const char *msg, char *out, size_t outlen)
{
    size_t o = 0;
    bool space = false, newline = false;
    if (outlen == 0)
        return out;
    for (const char *p = msg != NULL ? msg : ""; *p && o + 1 < outlen; p++) {
        if (*p == '\n' || *p == '\t' || *p == '\r' || *p == ' ') {
            space = o > 0;
            newline = newline || *p == '\n';
            continue;
        }
        if (space && o + 3 < outlen) {
            if (newline && out[o - 1] != ':' && out[o - 1] != '.' && out[o - 1] != ';')
                out[o++] = ';';
            out[o++] = ' ';
        }
        space = newline = false;
        out[o++] = *p;
    }
    out[o] = '\0';
    return out;
}

void hms_pg_target(PGconn *conn, char *buf, size_t len)
{
    const char *host = conn != NULL ? PQhost(conn) : NULL;
    const char *port = conn != NULL ? PQport(conn) : NULL;
    const char *db = conn != NULL ? PQdb(conn) : NULL;
    snprintf(buf, len, "%s:%s/%s", host != NULL && *host ? host : "localhost",
             port != NULL && *port ? port : "5432", db != NULL ? db : "?");
}

/* A conninfo that libpq cannot parse may be echoed in its message; when the
 * string holds a password, say less rather than print part of it. */
static bool conninfo_has_secret(const char *conninfo)
{
    if (strstr(conninfo, "password") != NULL)
        return true;
    const char *scheme = strstr(conninfo, "://");
    if (scheme == NULL)
        return false;
    const char *at = strchr(scheme + 3, '@');
    const char *colon = strchr(scheme + 3, ':');
    return at != NULL && colon != NULL && colon < at;
}

hms_status_t hms_pg_check_conninfo(const char *conninfo, hms_err_t *err)
{
    char *msg = NULL;
    char line[400];
    if (conninfo == NULL || conninfo[0] == '\0')
        return hms_err_set(err, HMS_ERR_CONFIG,
                           "pg: no PostgreSQL connection string given (set --pg or HMS_SYNC_PG)");
    PQconninfoOption *opts = PQconninfoParse(conninfo, &msg);
    if (opts != NULL) {
        PQconninfoFree(opts);
        return HMS_OK;
    }
    if (msg == NULL)
        return hms_err_set(err, HMS_ERR_NOMEM, "pg: out of memory parsing --pg");
    hms_pg_one_line(msg, line, sizeof(line));
    PQfreemem(msg);
    if (conninfo_has_secret(conninfo))
        return hms_err_set(err, HMS_ERR_CONFIG,
                           "pg: --pg: malformed connection string (details withheld: it holds a "
                           "password)");
    return hms_err_set(err, HMS_ERR_CONFIG, "pg: --pg: malformed connection string: %s", line);
}

/* The value the user gave for keyword in conninfo, or NULL.  Copied. */
static char *conninfo_value(const char *conninfo, const char *keyword)
{
    PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
    char *v = NULL;
    if (opts == NULL)
        return NULL;
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++)
        if (strcmp(o->keyword, keyword) == 0 && o->val != NULL && o->val[0] != '\0')
            v = strdup(o->val);
    PQconninfoFree(opts);
    return v;
}

/* The attempt limit libpq settled on for conn, in seconds (0: none).  It is
 * read back rather than recomputed so the conninfo, the environment and our
 * default rank exactly as libpq ranks them. */
static int effective_timeout_s(PGconn *conn)
{
    PQconninfoOption *opts = PQconninfo(conn);
    int t = 0;
    if (opts == NULL)
        return 0;
    for (PQconninfoOption *o = opts; o->keyword != NULL; o++)
        if (strcmp(o->keyword, "connect_timeout") == 0 && o->val != NULL)
            t = atoi(o->val);
    PQconninfoFree(opts);
    if (t > 0 && t < 2)
        t = 2; /* libpq's own floor */
    return t > 0 ? t : 0;
}

hms_status_t hms_pg_connect_start(hms_pg_connecting_t *c, const hms_pg_params_t *p, int64_t now_ms,
                                  hms_err_t *err)
{
    char timeout[16], options[1024];
    hms_status_t st = hms_pg_check_conninfo(p->conninfo, err);
    if (st != HMS_OK)
        return st;
    memset(c, 0, sizeof(*c));
    c->fd = -1;
    char *user_options = conninfo_value(p->conninfo, "options");
    snprintf(timeout, sizeof(timeout), "%d", p->connect_timeout_s);
    snprintf(options, sizeof(options), "%s%s%s", user_options ? user_options : "",
             user_options && p->options ? " " : "", p->options ? p->options : "");
    free(user_options);

    /* Keywords before dbname are defaults the expanded conninfo overrides;
     * those after it are ours alone.  connect_timeout is given only when the
     * environment does not set it, so PGCONNECT_TIMEOUT keeps its meaning. */
    const char *keys[12], *vals[12];
    int n = 0;
#define KV(k, v) (keys[n] = (k), vals[n++] = (v))
    if (getenv("PGCONNECT_TIMEOUT") == NULL)
        KV("connect_timeout", timeout);
    KV("keepalives", "1");
    KV("keepalives_idle", "10");
    KV("keepalives_interval", "5");
    KV("keepalives_count", "3");
    KV("dbname", p->conninfo);
    if (p->replication)
        KV("replication", "database");
    if (options[0] != '\0')
        KV("options", options);
    KV("fallback_application_name", p->application_name ? p->application_name : "hms-sync");
    KV(NULL, NULL);
#undef KV
    c->conn = PQconnectStartParams(keys, vals, 1);
    if (c->conn == NULL)
        return hms_err_set(err, HMS_ERR_NOMEM, "pg: out of memory connecting");
    hms_pg_target(c->conn, c->target, sizeof(c->target));
    if (PQstatus(c->conn) == CONNECTION_BAD) {
        char line[HMS_ERR_MSG_MAX];
        hms_err_set(err, HMS_ERR_PG, "pg: cannot connect to %s: %s", c->target,
                    hms_pg_one_line(PQerrorMessage(c->conn), line, sizeof(line)));
        hms_pg_connect_cancel(c);
        return HMS_ERR_PG;
    }
    int t = effective_timeout_s(c->conn);
    c->deadline_ms = t > 0 ? now_ms + (int64_t)t * 1000 : 0;
    /* libpq's first step after PQconnectStart is to wait for the socket to
     * become writable (the TCP connect). */
    c->fd = PQsocket(c->conn);
    c->events = POLLOUT;
    return HMS_OK;
}

int hms_pg_connect_poll(hms_pg_connecting_t *c, int64_t now_ms, PGconn **out, hms_err_t *err)
{
    char line[HMS_ERR_MSG_MAX];
    if (c->conn == NULL)
        return hms_err_set(err, HMS_ERR_STATE, "pg: no connection attempt under way");
    if (c->deadline_ms != 0 && now_ms >= c->deadline_ms) { /* libpq not asked: see pgconn.h */
        hms_err_set(err, HMS_ERR_PG, "pg: cannot connect to %s: no answer within connect_timeout",
                    c->target);
        hms_pg_connect_cancel(c);
        return HMS_ERR_PG;
    }
    switch (PQconnectPoll(c->conn)) {
    case PGRES_POLLING_OK:
        *out = c->conn;
        c->conn = NULL;
        c->fd = -1;
        return 1;
    case PGRES_POLLING_READING: c->events = POLLIN; break;
    case PGRES_POLLING_WRITING: c->events = POLLOUT; break;
    default:
        hms_err_set(err, HMS_ERR_PG, "pg: cannot connect to %s: %s", c->target,
                    hms_pg_one_line(PQerrorMessage(c->conn), line, sizeof(line)));
        hms_pg_connect_cancel(c);
        return HMS_ERR_PG;
    }
    /* The socket may change as libpq moves from one address or host to the
     * next. */
    hms_pg_target(c->conn, c->target, sizeof(c->target));
    c->fd = PQsocket(c->conn);
    return 0;
}

void hms_pg_connect_cancel(hms_pg_connecting_t *c)
{
    if (c->conn != NULL)
        PQfinish(c->conn);
    c->conn = NULL;
    c->fd = -1;
}

hms_status_t hms_pg_connect(const hms_pg_params_t *p, PGconn **out, hms_err_t *err)
{
    hms_pg_connecting_t c;
    *out = NULL;
    hms_status_t st = hms_pg_connect_start(&c, p, hms_clock_ms(), err);
    if (st != HMS_OK)
        return st;
    for (;;) {
        int64_t now = hms_clock_ms();
        int wait = -1;
        if (c.deadline_ms != 0)
            wait = c.deadline_ms > now ? (int)(c.deadline_ms - now) : 0;
        struct pollfd pfd = {.fd = c.fd, .events = c.events};
        int ready = poll(&pfd, 1, wait);
        if (ready < 0 && errno != EINTR) {
            hms_pg_connect_cancel(&c);
            return hms_err_set(err, HMS_ERR_IO, "pg: poll: %s", strerror(errno));
        }
        if (ready <= 0 && (c.deadline_ms == 0 || hms_clock_ms() < c.deadline_ms))
            continue; /* EINTR, or woken a little early */
        int r = hms_pg_connect_poll(&c, hms_clock_ms(), out, err);
        if (r != 0)
            return r > 0 ? HMS_OK : (hms_status_t)r;
    }
}

hms_status_t hms_pg_open(const char *conninfo, const char *what, int connect_timeout_s,
                         PGconn **out, hms_err_t *err)
{
    char line[HMS_ERR_MSG_MAX];
    char target[256];
    PGconn *conn = NULL;
    PGresult *res = NULL;

    *out = NULL;
    hms_pg_params_t p = {.conninfo = conninfo, .connect_timeout_s = connect_timeout_s};
    hms_err_t e;
    hms_status_t st = hms_pg_connect(&p, &conn, &e);
    if (st != HMS_OK) /* e names the server; say which command failed */
        return hms_err_set(err, st, "%s: %s", what, e.msg);
    hms_pg_target(conn, target, sizeof(target));
    /* IF NOT EXISTS notices are noise to an operator; warnings still show. */
    res = PQexec(conn, "SET client_min_messages = warning");
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        hms_pg_one_line(PQerrorMessage(conn), line, sizeof(line));
        hms_err_set(err, HMS_ERR_PG, "%s: %s: %s", what, target, line);
        goto fail;
    }
    PQclear(res);
    *out = conn;
    return HMS_OK;

fail:
    PQclear(res);
    PQfinish(conn);
    return HMS_ERR_PG;
}
