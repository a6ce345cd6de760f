/* event.c -- encodes one pgoutput row change as a CloudEvents 1.0 JSON event
 * (contract v1), writing JSON text straight into reusable buffers; each
 * column value's JSON comes from pgvalue.c. */
#include "core/event.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "core/event_int.h"
#include "core/lsn.h"
#include "core/pgvalue.h"

/* AMQP short strings, routing keys among them, hold at most 255 bytes. */
#define ROUTING_KEY_MAX 255
#define USEC_PER_SEC INT64_C(1000000)

/* The properties of schemas/Incident{Created,Updated,Deleted}.v1.json. */
static const char *const incident_columns[] = {
    "id",          "occurred_at", "region",     "severity", "status", "summary",
    "reported_by", "version",     "updated_at", "origin",   NULL,
};

const hms_capture_t hms_capture_incidents = {
    .schema = "public",
    .table = "incidents",
    .type_prefix = "gov.hms.ehr.Incident",
    .routing_prefix = "incident",
    .key_column = "id",
    .region_column = "region",
    .version_column = "version",
    .updated_column = "updated_at",
    .origin_column = "origin",
    .schema_base = "https://hms.gov/schemas/ehr/",
    .truncated_name = "IncidentsTruncated",
    .columns = incident_columns,
};

enum { KIND_CREATED, KIND_UPDATED, KIND_DELETED, KIND_TRUNCATED, KIND_SNAPSHOT, NKINDS };
static const char *const kind_word[NKINDS] = {"Created", "Updated", "Deleted", "Truncated",
                                              "Snapshot"};
static const char *const kind_route[NKINDS] = {"created", "updated", "deleted", "truncated",
                                               "snapshot"};

/* A truncation has no row to take an origin from, and the truncating
 * session's hms_sync.origin setting is not in the stream: it carries the
 * EHR's own default. */
#define TRUNCATE_ORIGIN "hms-ehr"

/* Everything about a capture that does not change per event, built once. */
typedef struct {
    char *type[NKINDS];     /* "gov.hms.ehr.IncidentCreated.v1": what hms_event_t.type points to */
    hms_buf_t head[NKINDS]; /* `{"specversion":"1.0","type":...,"source":...,...,"id":"` */
} capnames_t;

/* Per-relation lookups, cached by relid and checked against the relation on
 * every use: a Relation message describing the table again (after a DDL
 * change, or on a new session) gives it a new generation. */
typedef struct {
    uint32_t relid;
    const hms_pgo_relation_t *rel;
    uint64_t generation;
    size_t cap;                                /* index into the captures */
    int key, region, version, updated, origin; /* column index, -1 when absent */
    hms_buf_t keys;                            /* `"name":` for every column */
    size_t *key_off;                           /* ncols + 1 offsets */
    /* The columns `data` carries, in order (the contract's, or all), and
     * whether the rest go under `_extra`; a contract column the relation
     * lacks is `missing` (NULL: none). */
    int *data_cols;
    size_t ndata;
    bool *extra; /* per relation column; NULL when no column is extra */
    const char *missing;
} relinfo_t;

struct hms_encoder {
    char *sysid, *dbname;
    const hms_capture_t *captures;
    size_t ncaptures;
    capnames_t *names;
    relinfo_t *rels;
    size_t nrels;
    hms_pgvalue_scratch_t scratch; /* grows once, then serves every value */
};

/* ---- small formatting helpers ---- */

static char *dup_str(const char *s)
{
    size_t n = strlen(s) + 1;
    char *p = malloc(n);
    if (p != NULL)
        memcpy(p, s, n);
    return p;
}

/* ---- encoder and relation cache ---- */

static void relinfo_clear(relinfo_t *ri)
{
    hms_buf_free(&ri->keys);
    free(ri->key_off);
    free(ri->data_cols);
    free(ri->extra);
    memset(ri, 0, sizeof *ri);
}

static const char *rel_nspname(const hms_pgo_relation_t *rel)
{
    /* pgoutput sends an empty namespace for pg_catalog. */
    return rel->nspname == NULL || rel->nspname[0] == '\0' ? "pg_catalog" : rel->nspname;
}

static const char *col_name(const hms_pgo_relation_t *rel, size_t i)
{
    return rel->cols[i].name != NULL ? rel->cols[i].name : "";
}

static bool capture_matches(const hms_capture_t *c, const hms_pgo_relation_t *rel)
{
    return rel->relname != NULL && strcmp(c->table, rel->relname) == 0 &&
           strcmp(c->schema, rel_nspname(rel)) == 0;
}

const hms_capture_t *hms_encoder_capture(const hms_encoder_t *e, const hms_pgo_relation_t *rel)
{
    for (size_t i = 0; rel != NULL && i < e->ncaptures; i++)
        if (capture_matches(&e->captures[i], rel))
            return &e->captures[i];
    return NULL;
}

static int find_col(const hms_pgo_relation_t *rel, const char *name)
{
    if (name == NULL)
        return -1;
    for (int i = 0; i < rel->ncols; i++)
        if (strcmp(col_name(rel, (size_t)i), name) == 0)
            return i;
    return -1;
}

static bool relinfo_current(const relinfo_t *ri, const hms_pgo_relation_t *rel)
{
    return ri->rel == rel && ri->generation == rel->generation;
}

/* Which columns go in `data` and which under `_extra`.  The split is by
 * name, made again for every Relation message: pgoutput describes the table
 * again after each DDL change, so an added, dropped, renamed or retyped
 * column shows up here before the first row that has it. */
static hms_status_t relinfo_split(relinfo_t *ri, const hms_pgo_relation_t *rel,
                                  const hms_capture_t *c)
{
    size_t n = 0;
    if (c->columns == NULL) {
        if ((ri->data_cols = malloc(((size_t)rel->ncols + 1) * sizeof(int))) == NULL)
            return HMS_ERR_NOMEM;
        for (int i = 0; i < rel->ncols; i++)
            ri->data_cols[ri->ndata++] = i;
        return HMS_OK;
    }
    while (c->columns[n] != NULL)
        n++;
    ri->data_cols = malloc((n + 1) * sizeof(int));
    ri->extra = malloc(((size_t)rel->ncols + 1) * sizeof(bool));
    if (ri->data_cols == NULL || ri->extra == NULL)
        return HMS_ERR_NOMEM;
    for (int i = 0; i < rel->ncols; i++)
        ri->extra[i] = true;
    for (size_t k = 0; k < n; k++) {
        int col = find_col(rel, c->columns[k]);
        if (col < 0) {
            if (ri->missing == NULL)
                ri->missing = c->columns[k];
            continue;
        }
        ri->data_cols[ri->ndata++] = col;
        ri->extra[col] = false;
    }
    return HMS_OK;
}

static hms_status_t relinfo_build(relinfo_t *ri, const hms_pgo_relation_t *rel, size_t cap,
                                  const hms_capture_t *c)
{
    hms_status_t st = HMS_ERR_NOMEM;
    relinfo_clear(ri);
    ri->relid = rel->relid;
    ri->rel = rel;
    ri->generation = rel->generation;
    ri->cap = cap;
    ri->key = find_col(rel, c->key_column);
    ri->region = find_col(rel, c->region_column);
    ri->version = find_col(rel, c->version_column);
    ri->updated = find_col(rel, c->updated_column);
    ri->origin = find_col(rel, c->origin_column);
    ri->key_off = malloc(((size_t)rel->ncols + 1) * sizeof(size_t));
    if (ri->key_off == NULL)
        goto fail;
    for (size_t i = 0; i < rel->ncols; i++) {
        const char *name = col_name(rel, i);
        ri->key_off[i] = ri->keys.len;
        if ((st = hms_buf_append_json_str(&ri->keys, name, strlen(name))) != HMS_OK ||
            (st = hms_buf_append_char(&ri->keys, ':')) != HMS_OK)
            goto fail;
    }
    ri->key_off[rel->ncols] = ri->keys.len;
    if ((st = relinfo_split(ri, rel, c)) != HMS_OK)
        goto fail;
    return HMS_OK;
fail:
    relinfo_clear(ri);
    return st;
}

/* The cached lookups for rel, rebuilt when rel changed; *out NULL when the
 * relation is not captured. */
static hms_status_t relinfo_get(hms_encoder_t *e, const hms_pgo_relation_t *rel, relinfo_t **out)
{
    relinfo_t *ri = NULL;
    *out = NULL;
    for (size_t i = 0; i < e->nrels; i++) {
        if (e->rels[i].relid == rel->relid) {
            ri = &e->rels[i];
            break;
        }
    }
    if (ri != NULL && relinfo_current(ri, rel)) {
        *out = ri;
        return HMS_OK;
    }
    const hms_capture_t *c = hms_encoder_capture(e, rel);
    if (c == NULL)
        return HMS_OK;
    if (ri == NULL) {
        relinfo_t *grown = realloc(e->rels, (e->nrels + 1) * sizeof *grown);
        if (grown == NULL)
            return HMS_ERR_NOMEM;
        e->rels = grown;
        ri = &e->rels[e->nrels++];
        memset(ri, 0, sizeof *ri);
    }
    hms_status_t st = relinfo_build(ri, rel, (size_t)(c - e->captures), c);
    if (st != HMS_OK) {
        /* Keep the array dense: move the last entry into the hole. */
        *ri = e->rels[--e->nrels];
        return st;
    }
    *out = ri;
    return HMS_OK;
}

static hms_status_t capnames_build(capnames_t *cn, const hms_capture_t *c, const char *sysid,
                                   const char *dbname)
{
    hms_status_t st = HMS_OK;
    hms_buf_t tmp = HMS_BUF_INIT, word = HMS_BUF_INIT;
    /* "gov.hms.ehr.Incident" names the file "IncidentCreated.v1.json". */
    const char *dot = strrchr(c->type_prefix, '.');
    const char *stem = dot != NULL ? dot + 1 : c->type_prefix;
    int ns_len = (int)(stem - c->type_prefix);
    for (int k = 0; k < NKINDS; k++) {
        hms_buf_t *h = &cn->head[k];
        hms_buf_reset(&tmp);
        hms_buf_reset(&word);
        if (k == KIND_TRUNCATED && c->truncated_name != NULL)
            st = hms_buf_append_str(&word, c->truncated_name);
        else
            st = hms_buf_printf(&word, "%s%s", stem, kind_word[k]);
        if (st != HMS_OK ||
            (st = hms_buf_printf(&tmp, "%.*s%s.v1", ns_len, c->type_prefix, word.data)) != HMS_OK)
            goto fail;
        if ((cn->type[k] = dup_str(tmp.data)) == NULL) {
            st = HMS_ERR_NOMEM;
            goto fail;
        }
        if ((st = hms_buf_append_str(h, "{\"specversion\":\"1.0\",\"type\":")) != HMS_OK ||
            (st = hms_buf_append_json_str(h, tmp.data, tmp.len)) != HMS_OK)
            goto fail;
        hms_buf_reset(&tmp);
        if ((st = hms_buf_printf(&tmp, "/hms-ehr/%s/%s/%s.%s", sysid, dbname, c->schema,
                                 c->table)) != HMS_OK ||
            (st = hms_buf_append_str(h, ",\"source\":")) != HMS_OK ||
            (st = hms_buf_append_json_str(h, tmp.data, tmp.len)) != HMS_OK)
            goto fail;
        hms_buf_reset(&tmp);
        if ((st = hms_buf_printf(&tmp, "%s%s.v1.json", c->schema_base, word.data)) != HMS_OK ||
            (st = hms_buf_append_str(h, ",\"datacontenttype\":\"application/json\","
                                        "\"dataschema\":")) != HMS_OK ||
            (st = hms_buf_append_json_str(h, tmp.data, tmp.len)) != HMS_OK ||
            (st = hms_buf_append_str(h, ",\"id\":\"")) != HMS_OK)
            goto fail;
    }
fail:
    hms_buf_free(&tmp);
    hms_buf_free(&word);
    return st;
}

hms_encoder_t *hms_encoder_new(const char *sysid, const char *dbname, const hms_capture_t *captures,
                               size_t ncaptures)
{
    hms_encoder_t *e = calloc(1, sizeof *e);
    if (e == NULL)
        return NULL;
    e->captures = captures;
    e->ncaptures = ncaptures;
    e->sysid = dup_str(sysid);
    e->dbname = dup_str(dbname);
    e->names = calloc(ncaptures > 0 ? ncaptures : 1, sizeof *e->names);
    if (e->sysid == NULL || e->dbname == NULL || e->names == NULL)
        goto fail;
    for (size_t i = 0; i < ncaptures; i++)
        if (capnames_build(&e->names[i], &captures[i], sysid, dbname) != HMS_OK)
            goto fail;
    return e;
fail:
    hms_encoder_free(e);
    return NULL;
}

void hms_encoder_free(hms_encoder_t *e)
{
    if (e == NULL)
        return;
    for (size_t i = 0; e->names != NULL && i < e->ncaptures; i++) {
        for (int k = 0; k < NKINDS; k++) {
            free(e->names[i].type[k]);
            hms_buf_free(&e->names[i].head[k]);
        }
    }
    for (size_t i = 0; i < e->nrels; i++)
        relinfo_clear(&e->rels[i]);
    free(e->rels);
    free(e->names);
    free(e->sysid);
    free(e->dbname);
    hms_pgvalue_scratch_free(&e->scratch);
    free(e);
}

/* ---- encoding one change ---- */

/* What one encode call works on. */
typedef struct {
    hms_encoder_t *e;
    const relinfo_t *ri;
    const hms_pgo_relation_t *rel;
    const hms_pgo_tuple_t *row; /* the row that becomes data */
    const hms_pgo_tuple_t *old; /* the full old row, when sent (REPLICA IDENTITY FULL) */
    bool keyonly;               /* row carries the replica identity columns only */
    const char *id;
    hms_err_t *err;
} encctx_t;

static hms_status_t col_fail(const encctx_t *c, int col, const char *what)
{
    return hms_err_set(c->err, HMS_ERR_ENCODE, "%s.%s column %s: %s (event %s)",
                       rel_nspname(c->rel), c->rel->relname, col_name(c->rel, (size_t)col), what,
                       c->id);
}

/* Column col of the row being encoded; *v NULL when the row does not carry
 * it (a key-only old row).  An unchanged TOASTed value comes from the full
 * old row, or the change fails: a guessed value would be a wrong one. */
static bool row_carries(const encctx_t *c, int col)
{
    return col >= 0 && !(c->keyonly && !(c->rel->cols[col].flags & 1));
}

static hms_status_t column_value(const encctx_t *c, int col, const hms_pgo_value_t **v)
{
    *v = NULL;
    if (!row_carries(c, col))
        return HMS_OK;
    const hms_pgo_value_t *val = &c->row->values[col];
    if (val->kind == HMS_PGO_VAL_UNCHANGED) {
        if (c->old == NULL || c->old->values[col].kind != HMS_PGO_VAL_TEXT)
            return col_fail(c, col,
                            "an unchanged TOASTed value and the table's REPLICA IDENTITY is not "
                            "FULL");
        val = &c->old->values[col];
    }
    if (val->kind == HMS_PGO_VAL_BINARY)
        return col_fail(c, col, "binary-format value (only text format is supported)");
    if (val->kind == HMS_PGO_VAL_TEXT && val->data == NULL && val->len > 0)
        return col_fail(c, col, "text value without data");
    if (val->kind != HMS_PGO_VAL_TEXT && val->kind != HMS_PGO_VAL_NULL)
        return col_fail(c, col, "unknown value kind");
    *v = val;
    return HMS_OK;
}

static bool has_text(const hms_pgo_value_t *v)
{
    return v != NULL && v->kind == HMS_PGO_VAL_TEXT;
}

/* A region that does not fit fails the change rather than being cut: a cut
 * key would route the event by a region the row does not have. */
static hms_status_t put_routing_key(hms_buf_t *rk, const hms_capture_t *cap, int kind,
                                    const hms_pgo_value_t *region, const char *id, hms_err_t *err)
{
    hms_status_t st;
    if ((st = hms_buf_append_str(rk, cap->routing_prefix)) != HMS_OK ||
        (st = hms_buf_append_char(rk, '.')) != HMS_OK ||
        (st = hms_buf_append_str(rk, kind_route[kind])) != HMS_OK ||
        (st = hms_buf_append_char(rk, '.')) != HMS_OK)
        return st;
    size_t n = has_text(region) ? region->len : 0;
    if (n == 0)
        return hms_buf_append_char(rk, '_');
    /* Routing keys are AMQP short strings of at most 255 bytes.  '.', '*'
     * and '#' would split or match topic words, so they become '_'. */
    size_t room = rk->len < ROUTING_KEY_MAX ? ROUTING_KEY_MAX - rk->len : 0;
    if (n > room)
        return hms_err_set(err, HMS_ERR_ENCODE,
                           "%s column %s: the region is %zu bytes, and the routing key %.*s "
                           "leaves room for %zu (event %s)",
                           cap->table, cap->region_column, n, (int)rk->len, rk->data, room, id);
    size_t start = rk->len;
    if ((st = hms_buf_append(rk, region->data, n)) != HMS_OK)
        return st;
    for (size_t i = start; i < rk->len; i++)
        if (rk->data[i] == '.' || rk->data[i] == '*' || rk->data[i] == '#')
            rk->data[i] = '_';
    return HMS_OK;
}

static hms_status_t put_value(const encctx_t *c, hms_buf_t *out, int col, const hms_pgo_value_t *v)
{
    hms_err_t why;
    if (v == NULL || v->kind == HMS_PGO_VAL_NULL)
        return hms_buf_append(out, "null", 4);
    hms_status_t st =
        hms_pgvalue_put_json(out, c->rel->cols[col].type_oid, v->data != NULL ? v->data : "",
                             v->len, &c->e->scratch, &why);
    if (st == HMS_ERR_ENCODE)
        return col_fail(c, col, why.msg);
    return st;
}

/* The LWW extension attributes; each is omitted when its column is absent
 * from the relation (or SQL NULL), so other captured tables need not have
 * them.  The incidents schema requires all three. */
static hms_status_t put_extensions(const encctx_t *c, hms_buf_t *b)
{
    const relinfo_t *ri = c->ri;
    const hms_pgo_value_t *v;
    hms_status_t st;
    char ts[HMS_PGVALUE_RFC3339_LEN + 1];
    if ((st = column_value(c, ri->version, &v)) != HMS_OK)
        return st;
    if (has_text(v)) {
        if (!hms_pgvalue_is_integer(v->data, v->len))
            return col_fail(c, ri->version, "version is not an integer");
        if ((st = hms_buf_append_str(b, ",\"version\":")) != HMS_OK ||
            (st = hms_buf_append(b, v->data, v->len)) != HMS_OK)
            return st;
    }
    if ((st = column_value(c, ri->updated, &v)) != HMS_OK)
        return st;
    if (has_text(v)) {
        /* updatedat orders events (last-write-wins): a value we cannot put
         * in RFC 3339 must stop the line rather than travel as junk. */
        if (!hms_pgvalue_timestamp_rfc3339(v->data, v->len, ts))
            return col_fail(c, ri->updated, "updated_at cannot be expressed in RFC 3339");
        if ((st = hms_buf_append_str(b, ",\"updatedat\":\"")) != HMS_OK ||
            (st = hms_buf_append(b, ts, HMS_PGVALUE_RFC3339_LEN)) != HMS_OK ||
            (st = hms_buf_append_char(b, '"')) != HMS_OK)
            return st;
    }
    if ((st = column_value(c, ri->origin, &v)) != HMS_OK)
        return st;
    if (has_text(v)) {
        if ((st = hms_buf_append_str(b, ",\"origin\":")) != HMS_OK ||
            (st = hms_buf_append_json_str(b, v->data, v->len)) != HMS_OK)
            return st;
    }
    return HMS_OK;
}

/* `"name":value` for column col, after a comma unless *first; a column the
 * row does not carry is left out. */
static hms_status_t put_member(const encctx_t *c, hms_buf_t *b, int col, bool *first)
{
    const relinfo_t *ri = c->ri;
    const hms_pgo_value_t *v;
    hms_status_t st;
    if ((st = column_value(c, col, &v)) != HMS_OK || v == NULL)
        return st;
    if (!*first && (st = hms_buf_append_char(b, ',')) != HMS_OK)
        return st;
    *first = false;
    if ((st = hms_buf_append(b, ri->keys.data + ri->key_off[col],
                             ri->key_off[col + 1] - ri->key_off[col])) != HMS_OK)
        return st;
    return put_value(c, b, col, v);
}

/* The columns outside the contract, as data member `_extra` (the one member
 * the data schemas allow beside the contract's columns); left out when the
 * row carries none. */
static hms_status_t put_extra(const encctx_t *c, hms_buf_t *b, bool first)
{
    const relinfo_t *ri = c->ri;
    bool any = false, inner_first = true;
    hms_status_t st = HMS_OK;
    for (int i = 0; ri->extra != NULL && i < c->rel->ncols && !any; i++)
        any = ri->extra[i] && row_carries(c, i);
    if (!any)
        return HMS_OK;
    if ((st = hms_buf_append_str(b, first ? "\"_extra\":{" : ",\"_extra\":{")) != HMS_OK)
        return st;
    for (int i = 0; st == HMS_OK && i < c->rel->ncols; i++)
        if (ri->extra[i])
            st = put_member(c, b, i, &inner_first);
    return st == HMS_OK ? hms_buf_append_char(b, '}') : st;
}

static hms_status_t put_data(const encctx_t *c, hms_buf_t *b)
{
    const relinfo_t *ri = c->ri;
    hms_status_t st = hms_buf_append_str(b, ",\"data\":{");
    bool first = true;
    for (size_t k = 0; st == HMS_OK && k < ri->ndata; k++)
        st = put_member(c, b, ri->data_cols[k], &first);
    if (st == HMS_OK)
        st = put_extra(c, b, first);
    if (st == HMS_OK)
        st = hms_buf_append(b, "}}", 2);
    return st;
}

/* A contract column the relation no longer has would make every event
 * invalid, and leaving it out would make subscribers lose it silently: the
 * change fails, naming what is gone. */
static hms_status_t contract_check(const encctx_t *c)
{
    if (c->ri->missing == NULL)
        return HMS_OK;
    return hms_err_set(c->err, HMS_ERR_ENCODE,
                       "column %s is missing from %s.%s (dropped or renamed?) (event %s)",
                       c->ri->missing, rel_nspname(c->rel), c->rel->relname, c->id);
}

/* The envelope up to and including txid: head, id, subject, time, lsn.
 * The subject also goes to ev->subject (the header partitions hash), unless
 * the caller wrote it there already and passes that. */
static hms_status_t put_envelope(hms_buf_t *b, const hms_buf_t *head, hms_event_t *ev,
                                 const char *subject, size_t subject_len, const char *ts,
                                 const hms_txctx_t *tx)
{
    char lsn[HMS_LSN_STR_MAX];
    size_t lsn_len = hms_ev_lsn_text(tx->commit_lsn, lsn);
    hms_status_t st;
    if (subject != ev->subject.data) {
        hms_buf_reset(&ev->subject);
        if ((st = hms_buf_append(&ev->subject, subject, subject_len)) != HMS_OK)
            return st;
    }
    if ((st = hms_buf_append(b, head->data, head->len)) != HMS_OK ||
        (st = hms_buf_append_str(b, ev->id)) != HMS_OK ||
        (st = hms_buf_append_str(b, "\",\"subject\":")) != HMS_OK ||
        (st = hms_buf_append_json_str(b, subject, subject_len)) != HMS_OK ||
        (st = hms_buf_append_str(b, ",\"time\":\"")) != HMS_OK ||
        (st = hms_buf_append(b, ts, HMS_PGVALUE_RFC3339_LEN)) != HMS_OK ||
        (st = hms_buf_append_str(b, "\",\"lsn\":\"")) != HMS_OK ||
        (st = hms_buf_append(b, lsn, lsn_len)) != HMS_OK ||
        (st = hms_buf_append_str(b, "\",\"txid\":")) != HMS_OK)
        return st;
    return hms_ev_put_u64(b, tx->xid);
}

/* Whether an Update moves its row to another key: the old row (or old key)
 * was sent and its key value differs from the new row's.  PostgreSQL sends
 * each value in its type's canonical text form, so bytes compare. */
static bool key_changed(const relinfo_t *ri, const hms_pgo_msg_t *msg)
{
    const hms_pgo_tuple_t *o = &msg->u.change.oldtup, *n = &msg->u.change.newtup;
    if (msg->kind != HMS_PGO_UPDATE || msg->u.change.old_kind == 0 || ri->key < 0 ||
        o->ncols <= ri->key || n->ncols <= ri->key || o->values == NULL || n->values == NULL)
        return false;
    const hms_pgo_value_t *a = &o->values[ri->key], *b = &n->values[ri->key];
    if (b->kind == HMS_PGO_VAL_UNCHANGED)
        return false;
    if (a->kind != b->kind)
        return true;
    if (a->kind != HMS_PGO_VAL_TEXT && a->kind != HMS_PGO_VAL_BINARY)
        return false;
    return a->len != b->len || (a->len > 0 && memcmp(a->data, b->data, a->len) != 0);
}

/* Which event, from which row, part `part` of msg is. */
static hms_status_t choose_kind(encctx_t *c, const hms_pgo_msg_t *msg, unsigned part, int *kind,
                                unsigned *nparts)
{
    *nparts = key_changed(c->ri, msg) ? 2 : 1;
    if (part >= *nparts)
        return hms_err_set(c->err, HMS_ERR_STATE, "encoder: the change has %u event(s), not %u",
                           *nparts, part + 1);
    switch (msg->kind) {
    case HMS_PGO_INSERT: *kind = KIND_CREATED; break;
    case HMS_PGO_UPDATE:
        *kind = *nparts == 1 ? KIND_UPDATED : part == 0 ? KIND_DELETED : KIND_CREATED;
        break;
    default: *kind = KIND_DELETED; break;
    }
    if (*kind == KIND_DELETED) {
        /* The Deleted data of a DELETE is the whole old row, and
         * last-write-wins needs its version: a key alone (REPLICA IDENTITY
         * not FULL) makes no valid event, and an invalid one must never be
         * published. */
        if (msg->u.change.old_kind != 'O')
            return hms_err_set(c->err, HMS_ERR_ENCODE,
                               "%s.%s: a %s arrived with only its key (REPLICA IDENTITY is not "
                               "FULL); a Deleted event needs the whole old row",
                               rel_nspname(c->rel), c->rel->relname,
                               msg->kind == HMS_PGO_DELETE ? "deleted row"
                                                           : "key change's old row");
        c->row = &msg->u.change.oldtup;
        c->keyonly = msg->u.change.old_kind != 'O';
    } else {
        c->row = &msg->u.change.newtup;
        if (msg->kind == HMS_PGO_UPDATE && msg->u.change.old_kind == 'O')
            c->old = &msg->u.change.oldtup;
    }
    return HMS_OK;
}

hms_status_t hms_encoder_encode(hms_encoder_t *e, const hms_txctx_t *tx, const hms_pgo_msg_t *msg,
                                hms_event_t *ev, hms_err_t *err)
{
    unsigned nparts;
    return hms_encoder_encode_part(e, tx, msg, 0, ev, &nparts, err);
}

hms_status_t hms_encoder_encode_part(hms_encoder_t *e, const hms_txctx_t *tx,
                                     const hms_pgo_msg_t *msg, unsigned part, hms_event_t *ev,
                                     unsigned *nparts, hms_err_t *err)
{
    encctx_t c = {.e = e, .err = err, .id = ev->id};
    const hms_pgo_relation_t *rel = msg->u.change.rel;
    relinfo_t *ri;
    hms_status_t st;
    int kind;
    char ts[HMS_PGVALUE_RFC3339_LEN + 1];

    *nparts = 1;
    hms_ev_clear(ev);
    ev->type = NULL;
    ev->time_unix = 0;
    if (msg->kind != HMS_PGO_INSERT && msg->kind != HMS_PGO_UPDATE && msg->kind != HMS_PGO_DELETE)
        return hms_err_set(err, HMS_ERR_STATE, "encoder: message kind '%c' is not a row change",
                           (char)msg->kind);
    if (rel == NULL)
        return hms_err_set(err, HMS_ERR_ENCODE, "encoder: change without a relation");
    if ((st = relinfo_get(e, rel, &ri)) != HMS_OK)
        return hms_err_set(err, st, "encoder: out of memory caching relation %u", rel->relid);
    if (ri == NULL)
        return hms_err_set(err, HMS_ERR_STATE, "encoder: relation %s.%s is not captured",
                           rel_nspname(rel), rel->relname != NULL ? rel->relname : "?");
    c.ri = ri;
    c.rel = rel;
    if ((st = choose_kind(&c, msg, part, &kind, nparts)) != HMS_OK)
        return st;
    if ((st = hms_ev_start(ev, tx, ts, err)) != HMS_OK)
        return st;
    ev->type = e->names[ri->cap].type[kind];

    if (c.row->ncols != rel->ncols || (c.row->ncols > 0 && c.row->values == NULL))
        return hms_err_set(err, HMS_ERR_ENCODE,
                           "%s.%s: change carries %u columns, the relation has %u (event %s)",
                           rel_nspname(rel), rel->relname, c.row->ncols, rel->ncols, ev->id);
    if (c.old != NULL && (c.old->ncols != rel->ncols || c.old->values == NULL))
        c.old = NULL;
    if ((st = contract_check(&c)) != HMS_OK)
        return st;

    const hms_pgo_value_t *key, *region;
    if ((st = column_value(&c, ri->key, &key)) != HMS_OK ||
        (st = column_value(&c, ri->region, &region)) != HMS_OK)
        return st;
    if (ri->key < 0)
        return hms_err_set(err, HMS_ERR_ENCODE, "%s.%s has no key column %s (event %s)",
                           rel_nspname(rel), rel->relname, e->captures[ri->cap].key_column, ev->id);
    if (!has_text(key))
        return col_fail(&c, ri->key, "the key is NULL");

    if ((st = put_envelope(&ev->body, &e->names[ri->cap].head[kind], ev, key->data, key->len, ts,
                           tx)) != HMS_OK ||
        (st = put_extensions(&c, &ev->body)) != HMS_OK ||
        (st = put_data(&c, &ev->body)) != HMS_OK ||
        (st = put_routing_key(&ev->routing_key, &e->captures[ri->cap], kind, region, ev->id,
                              err)) != HMS_OK)
        return hms_ev_fail(ev, st, err);
    return HMS_OK;
}

hms_status_t hms_encoder_encode_truncate(hms_encoder_t *e, const hms_txctx_t *tx,
                                         const hms_pgo_relation_t *rel, uint64_t version,
                                         hms_event_t *ev, hms_err_t *err)
{
    char ts[HMS_PGVALUE_RFC3339_LEN + 1];
    hms_buf_t *b = &ev->body;
    hms_status_t st;
    ev->id[0] = '\0';
    const hms_capture_t *cap = rel != NULL ? hms_encoder_capture(e, rel) : NULL;
    if (cap == NULL) {
        hms_buf_reset(&ev->body);
        hms_buf_reset(&ev->routing_key);
        return hms_err_set(err, HMS_ERR_STATE, "encoder: truncated relation is not captured");
    }
    size_t ci = (size_t)(cap - e->captures);
    if ((st = hms_ev_start(ev, tx, ts, err)) != HMS_OK)
        return st;
    ev->type = e->names[ci].type[KIND_TRUNCATED];
    /* The subject is the table: "public.incidents". */
    if ((st = hms_buf_printf(&ev->routing_key, "%s.%s", cap->routing_prefix,
                             kind_route[KIND_TRUNCATED])) == HMS_OK &&
        (st = hms_buf_printf(&ev->subject, "%s.%s", cap->schema, cap->table)) == HMS_OK)
        st = put_envelope(b, &e->names[ci].head[KIND_TRUNCATED], ev, ev->subject.data,
                          ev->subject.len, ts, tx);
    if (st != HMS_OK ||
        (st = hms_buf_printf(b, ",\"version\":%" PRIu64 ",\"updatedat\":\"", version)) != HMS_OK ||
        (st = hms_buf_append(b, ts, HMS_PGVALUE_RFC3339_LEN)) != HMS_OK ||
        (st = hms_buf_append_str(b, "\",\"origin\":\"" TRUNCATE_ORIGIN "\",\"data\":{}}")) !=
            HMS_OK)
        return hms_ev_fail(ev, st, err);
    return HMS_OK;
}

hms_status_t hms_encoder_encode_snapshot(hms_encoder_t *e, const hms_txctx_t *tx,
                                         const hms_pgo_relation_t *rel, const hms_pgo_tuple_t *row,
                                         const char *snapshot_id, const char *queue,
                                         hms_event_t *ev, hms_err_t *err)
{
    encctx_t c = {.e = e, .err = err, .id = ev->id, .rel = rel, .row = row};
    relinfo_t *ri;
    hms_status_t st;
    char ts[HMS_PGVALUE_RFC3339_LEN + 1];
    hms_ev_clear(ev);
    if ((st = relinfo_get(e, rel, &ri)) != HMS_OK)
        return hms_err_set(err, st, "encoder: out of memory describing a snapshot's columns");
    if (ri == NULL)
        return hms_err_set(err, HMS_ERR_STATE, "encoder: snapshot of %s.%s, which is not captured",
                           rel_nspname(rel), rel->relname);
    c.ri = ri;
    if ((st = hms_ev_start(ev, tx, ts, err)) != HMS_OK)
        return st;
    ev->type = e->names[ri->cap].type[KIND_SNAPSHOT];
    if (row->ncols != rel->ncols || (row->ncols > 0 && row->values == NULL))
        return hms_err_set(err, HMS_ERR_ENCODE,
                           "%s.%s: snapshot row carries %u columns, the result has %u (event %s)",
                           rel_nspname(rel), rel->relname, row->ncols, rel->ncols, ev->id);
    if ((st = contract_check(&c)) != HMS_OK)
        return st;
    const hms_pgo_value_t *key, *region;
    if ((st = column_value(&c, ri->key, &key)) != HMS_OK ||
        (st = column_value(&c, ri->region, &region)) != HMS_OK)
        return st;
    if (!has_text(key))
        return hms_err_set(err, HMS_ERR_ENCODE, "%s.%s: snapshot row without its key %s (event %s)",
                           rel_nspname(rel), rel->relname, e->captures[ri->cap].key_column, ev->id);
    if ((st = put_envelope(&ev->body, &e->names[ri->cap].head[KIND_SNAPSHOT], ev, key->data,
                           key->len, ts, tx)) != HMS_OK ||
        (st = put_extensions(&c, &ev->body)) != HMS_OK ||
        (st = hms_buf_append_str(&ev->body, ",\"snapshot\":")) != HMS_OK ||
        (st = hms_buf_append_json_str(&ev->body, snapshot_id, strlen(snapshot_id))) != HMS_OK ||
        (st = put_data(&c, &ev->body)) != HMS_OK ||
        (st = put_routing_key(&ev->routing_key, &e->captures[ri->cap], KIND_SNAPSHOT, region,
                              ev->id, err)) != HMS_OK ||
        (queue != NULL && (st = hms_buf_append_str(&ev->queue, queue)) != HMS_OK))
        return hms_ev_fail(ev, st, err);
    return HMS_OK;
}
