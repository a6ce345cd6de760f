/* pgconn.c -- checking, naming and error lines of PostgreSQL connections. */
#include "common/pgconn.h"

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

hms_status_t hms_pg_open(const char *conninfo, const char *what, PGconn **out, hms_err_t *err)
{
    char line[HMS_ERR_MSG_MAX];
    char target[256];
    PGconn *conn = NULL;
    PGresult *res = NULL;

    *out = NULL;
    hms_status_t st = hms_pg_check_conninfo(conninfo, err);
    if (st != HMS_OK)
        return st;

    /* Keywords are processed in order and the expanded dbname overrides what
     * came before it, so the user's own connect_timeout still wins over this
     * default, which keeps a black-holed host from hanging the command. */
    const char *keys[4], *vals[4];
    int n = 0;
    if (getenv("PGCONNECT_TIMEOUT") == NULL) {
        keys[n] = "connect_timeout";
        vals[n++] = "10";
    }
    keys[n] = "dbname";
    vals[n++] = conninfo;
    keys[n] = "fallback_application_name";
    vals[n++] = "hms-sync";
    keys[n] = NULL;
    vals[n] = NULL;
    conn = PQconnectdbParams(keys, vals, 1);
    if (conn == NULL)
        return hms_err_set(err, HMS_ERR_NOMEM, "%s: out of memory connecting", what);
    hms_pg_target(conn, target, sizeof(target));
    if (PQstatus(conn) != CONNECTION_OK) {
        hms_pg_one_line(PQerrorMessage(conn), line, sizeof(line));
        hms_err_set(err, HMS_ERR_PG, "%s: cannot connect to %s: %s", what, target, line);
        goto fail;
    }
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
