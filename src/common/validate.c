/* validate.c -- the contract check of an event (JSON, type, envelope, data
 * schema) and of a rejected change's document, against the embedded
 * schemas; an emitted event's data against the schema installed for its
 * type. */
#include "common/validate.h"

#include <dirent.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/embedded.h"
#include "core/emit.h"
#include "core/jsonschema.h"

/* One data schema and the type suffix it belongs to: the $id's last path
 * segment without ".json", e.g. "IncidentCreated.v1" for
 * gov.hms.ehr.IncidentCreated.v1. */
typedef struct {
    const hms_schema_t *schema; /* owned by the set */
    char suffix[96];
} data_schema_t;

#define MAX_DATA_SCHEMAS 16

/* The data schema installed for one emitted type. */
typedef struct {
    char *type;                 /* "org.example.cases.InvestigatorAssigned.v1" */
    const hms_schema_t *schema; /* owned by the set */
} type_schema_t;

struct hms_cval {
    hms_schema_set_t *set;
    const hms_schema_t *envelope;
    const hms_schema_t *emitted;  /* the envelope of hms.events */
    const hms_schema_t *rejected; /* RejectedChange: not an event's data schema */
    json_tokener *tok;            /* reused by the connector's checks; NULL until then */
    data_schema_t data[MAX_DATA_SCHEMAS];
    size_t ndata;
    type_schema_t *types;
    size_t ntypes, types_cap;
};

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

hms_cval_t *hms_cval_new(hms_err_t *err)
{
    hms_cval_t *v = calloc(1, sizeof(*v));
    if (v == NULL || (v->set = hms_schema_set_new()) == NULL) {
        hms_err_set(err, HMS_ERR_NOMEM, "schemas: out of memory loading the embedded schemas");
        goto fail;
    }
    for (size_t i = 0; i < hms_schema_files_count; i++) {
        const hms_sql_file_t *f = &hms_schema_files[i];
        hms_err_t e;
        hms_schema_t *s = hms_schema_from_text(f->name, f->sql, strlen(f->sql), &e);
        if (s == NULL) {
            hms_err_set(err, HMS_ERR_CONFIG, "schemas: embedded schema %s", e.msg);
            goto fail;
        }
        const char *id = hms_schema_id(s);
        if (id == NULL || hms_schema_set_add(v->set, s, &e) != HMS_OK) {
            if (id == NULL)
                hms_schema_free(s);
            hms_err_set(err, HMS_ERR_CONFIG, "schemas: embedded schema %s: %s", f->name,
                        id == NULL ? "no $id" : e.msg);
            goto fail;
        }
        if (ends_with(id, "/envelope.v1.json")) {
            v->envelope = s;
            continue;
        }
        if (ends_with(id, "/RejectedChange.v1.json")) {
            v->rejected = s;
            continue;
        }
        if (ends_with(id, "/emitted-envelope.v1.json")) {
            v->emitted = s;
            continue;
        }
        const char *slash = strrchr(id, '/');
        const char *base = slash != NULL ? slash + 1 : id;
        size_t n = strlen(base);
        if (n > 5 && ends_with(base, ".json") && n - 5 < sizeof(v->data[0].suffix) &&
            v->ndata < MAX_DATA_SCHEMAS) {
            data_schema_t *d = &v->data[v->ndata++];
            d->schema = s;
            memcpy(d->suffix, base, n - 5);
            d->suffix[n - 5] = '\0';
        }
    }
    if (v->envelope == NULL || v->rejected == NULL || v->emitted == NULL) {
        hms_err_set(err, HMS_ERR_CONFIG, "schemas: no %s among the embedded schemas",
                    v->envelope == NULL  ? "envelope.v1.json"
                    : v->emitted == NULL ? "emitted-envelope.v1.json"
                                         : "RejectedChange.v1.json");
        goto fail;
    }
    return v;
fail:
    hms_cval_free(v);
    return NULL;
}

void hms_cval_free(hms_cval_t *v)
{
    if (v == NULL)
        return;
    hms_schema_set_free(v->set);
    for (size_t i = 0; i < v->ntypes; i++)
        free(v->types[i].type);
    free(v->types);
    if (v->tok != NULL)
        json_tokener_free(v->tok);
    free(v);
}

/* Reads path whole into a NUL-terminated string; NULL with err. */
static char *read_text(const char *path, size_t *len, hms_status_t *st, hms_err_t *err)
{
    FILE *f = fopen(path, "rb");
    char *text = NULL;
    size_t cap = 0, n = 0;
    *st = HMS_ERR_CONFIG;
    if (f == NULL) {
        hms_err_set(err, *st, "schemas_dir: cannot read %s: %s", path, strerror(errno));
        return NULL;
    }
    for (;;) {
        if (n + 4096 + 1 > cap) {
            char *t = realloc(text, cap = cap * 2 + 8192);
            if (t == NULL) {
                *st =
                    hms_err_set(err, HMS_ERR_NOMEM, "schemas_dir: out of memory reading %s", path);
                goto fail;
            }
            text = t;
        }
        size_t got = fread(text + n, 1, cap - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    if (ferror(f)) {
        hms_err_set(err, HMS_ERR_CONFIG, "schemas_dir: cannot read %s: %s", path, strerror(errno));
        goto fail;
    }
    fclose(f);
    text[n] = '\0';
    *len = n;
    return text;
fail:
    fclose(f);
    free(text);
    return NULL;
}

/* Installs file name (in dir) as the data schema of the emitted type its
 * name spells. */
static hms_status_t load_type(hms_cval_t *v, const char *dir, const char *name, hms_err_t *err)
{
    size_t n = strlen(name) - 5, len;
    char path[4096];
    if (!hms_emit_type_ok(name, n))
        return hms_err_set(err, HMS_ERR_CONFIG,
                           "schemas_dir: %s/%s is not named after an emitted type (a type such "
                           "as org.example.cases.InvestigatorAssigned.v1, then .json)",
                           dir, name);
    if (snprintf(path, sizeof(path), "%s/%s", dir, name) >= (int)sizeof(path))
        return hms_err_set(err, HMS_ERR_CONFIG, "schemas_dir: path too long: %s/%s", dir, name);
    hms_status_t st;
    char *text = read_text(path, &len, &st, err);
    if (text == NULL)
        return st;
    hms_err_t e;
    hms_schema_t *s = hms_schema_from_text(path, text, len, &e);
    free(text);
    if (s == NULL)
        return hms_err_set(err, HMS_ERR_CONFIG, "schemas_dir: %s", e.msg);
    if (hms_schema_id(s) == NULL) {
        hms_schema_free(s);
        return hms_err_set(err, HMS_ERR_CONFIG,
                           "schemas_dir: %s has no $id (the events' dataschema names it)", path);
    }
    if (hms_schema_set_add(v->set, s, &e) != HMS_OK)
        return hms_err_set(err, HMS_ERR_CONFIG, "schemas_dir: %s: %s", path, e.msg);
    if (hms_array_grow((void **)&v->types, &v->types_cap, v->ntypes + 1, sizeof(*v->types)) !=
            HMS_OK ||
        (v->types[v->ntypes].type = strndup(name, n)) == NULL)
        return hms_err_set(err, HMS_ERR_NOMEM, "schemas_dir: out of memory");
    v->types[v->ntypes++].schema = s;
    return HMS_OK;
}

hms_status_t hms_cval_load_types(hms_cval_t *v, const char *dir, size_t *count, hms_err_t *err)
{
    *count = 0;
    DIR *d = opendir(dir);
    if (d == NULL)
        return hms_err_set(err, HMS_ERR_CONFIG, "schemas_dir: cannot open %s: %s", dir,
                           strerror(errno));
    hms_status_t st = HMS_OK;
    struct dirent *de;
    while (st == HMS_OK && (de = readdir(d)) != NULL) {
        size_t n = strlen(de->d_name);
        if (de->d_name[0] == '.' || n <= 5 || strcmp(de->d_name + n - 5, ".json") != 0)
            continue;
        if ((st = load_type(v, dir, de->d_name, err)) == HMS_OK)
            (*count)++;
    }
    closedir(d);
    return st;
}

/* The data schema installed for emitted type type, or NULL. */
static const hms_schema_t *schema_of_emitted(const hms_cval_t *v, const char *type)
{
    for (size_t i = 0; i < v->ntypes; i++)
        if (strcmp(v->types[i].type, type) == 0)
            return v->types[i].schema;
    return NULL;
}

const char *hms_cval_type_schema_id(const hms_cval_t *v, const char *type)
{
    const hms_schema_t *s = schema_of_emitted(v, type);
    return s != NULL ? hms_schema_id(s) : NULL;
}

/* The data schema a type names: "<anything>.<suffix>", or NULL. */
static const data_schema_t *schema_of_type(const hms_cval_t *v, const char *type)
{
    size_t n = strlen(type);
    for (size_t i = 0; i < v->ndata; i++) {
        size_t m = strlen(v->data[i].suffix);
        if (n > m && type[n - m - 1] == '.' && strcmp(type + n - m, v->data[i].suffix) == 0)
            return &v->data[i];
    }
    return NULL;
}

/* Parses body[0..len) as exactly one JSON document with tok (reset here);
 * NULL with err "not JSON: ..." otherwise. */
static json_object *parse_doc(json_tokener *tok, const char *body, size_t len, hms_err_t *err)
{
    hms_status_t st = HMS_ERR_MALFORMED;
    if (len == 0) {
        hms_err_set(err, st, "not JSON: empty body");
        return NULL;
    }
    if (memchr(body, '\0', len) != NULL) {
        hms_err_set(err, st, "not JSON: the body holds a NUL byte");
        return NULL;
    }
    if (len > (size_t)INT32_MAX) {
        hms_err_set(err, st, "not JSON: the body is too large");
        return NULL;
    }
    json_tokener_reset(tok);
    json_object *ev = json_tokener_parse_ex(tok, body, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    size_t used = json_tokener_get_parse_end(tok);
    if (ev == NULL || jerr != json_tokener_success) {
        /* An unfinished document also lands here: continue means "need more". */
        json_object_put(ev);
        hms_err_set(err, st, "not JSON: %s at byte %zu",
                    jerr == json_tokener_continue ? "unexpected end of input"
                                                  : json_tokener_error_desc(jerr),
                    used);
        return NULL;
    }
    for (size_t i = used; i < len; i++)
        if (body[i] != ' ' && body[i] != '\t' && body[i] != '\n' && body[i] != '\r') {
            hms_err_set(err, st, "not JSON: trailing bytes after the document at byte %zu", i);
            json_object_put(ev);
            return NULL;
        }
    return ev;
}

/* An emitted event says so in its source: .../hms_sync.emit. */
static bool is_emitted(json_object *ev)
{
    json_object *src = NULL;
    return json_object_object_get_ex(ev, "source", &src) &&
           json_object_is_type(src, json_type_string) &&
           ends_with(json_object_get_string(src), "/" HMS_EMIT_ORIGIN);
}

/* The check of an emitted event: its envelope, and its data against the
 * schema installed for its type, which its dataschema must name (and
 * without one, no dataschema).  Takes ev, as check_event. */
static hms_status_t check_emitted(const hms_cval_t *v, json_object *ev, const char *type,
                                  json_object **event, hms_err_t *err)
{
    hms_status_t st = HMS_ERR_MALFORMED;
    hms_err_t e;
    json_object *jds = NULL, *data = NULL;
    if (hms_schema_validate(v->emitted, ev, &e) != HMS_OK) {
        hms_err_set(err, st, "schema: emitted envelope: %s", e.msg);
        goto fail;
    }
    json_object_object_get_ex(ev, "dataschema", &jds);
    json_object_object_get_ex(ev, "data", &data);
    const hms_schema_t *ds = schema_of_emitted(v, type);
    const char *want = ds != NULL ? hms_schema_id(ds) : NULL;
    const char *have = jds != NULL ? json_object_get_string(jds) : NULL;
    if (want == NULL && have != NULL) {
        hms_err_set(err, st, "schema: dataschema \"%.120s\" but no schema is installed for %.120s",
                    have, type);
        goto fail;
    }
    if (want != NULL && (have == NULL || strcmp(have, want) != 0)) {
        hms_err_set(err, st, "schema: dataschema \"%.120s\" is not %.120s's (%.120s)",
                    have != NULL ? have : "", type, want);
        goto fail;
    }
    if (ds != NULL && hms_schema_validate(ds, data, &e) != HMS_OK) {
        hms_err_set(err, st, "schema: data of %.120s: %s", type, e.msg);
        goto fail;
    }
    *event = ev;
    return HMS_OK;
fail:
    json_object_put(ev);
    return st;
}

/* The contract check of a parsed document; takes ev, and hands it to
 * *event on success. */
static hms_status_t check_event(const hms_cval_t *v, json_object *ev, json_object **event,
                                hms_err_t *err)
{
    hms_status_t st = HMS_ERR_MALFORMED;
    *event = NULL;
    if (!json_object_is_type(ev, json_type_object)) {
        hms_err_set(err, st, "schema: the event is not a JSON object");
        goto fail;
    }
    json_object *jtype = NULL;
    if (!json_object_object_get_ex(ev, "type", &jtype) ||
        !json_object_is_type(jtype, json_type_string)) {
        hms_err_set(err, st, "unknown type: the event has no type string");
        goto fail;
    }
    const char *type = json_object_get_string(jtype);
    const data_schema_t *ds = schema_of_type(v, type);
    if (ds == NULL && is_emitted(ev))
        return check_emitted(v, ev, type, event, err);
    if (ds == NULL) {
        hms_err_set(err, st, "unknown type \"%.120s\"", type);
        goto fail;
    }
    hms_err_t e;
    if (hms_schema_validate(v->envelope, ev, &e) != HMS_OK) {
        hms_err_set(err, st, "schema: envelope: %s", e.msg);
        goto fail;
    }
    json_object *jds = NULL, *data = NULL;
    json_object_object_get_ex(ev, "dataschema", &jds);
    json_object_object_get_ex(ev, "data", &data);
    const char *want = hms_schema_id(ds->schema);
    if (jds == NULL || strcmp(json_object_get_string(jds), want) != 0) {
        hms_err_set(err, st, "schema: dataschema \"%.120s\" does not belong to type %.120s",
                    jds != NULL ? json_object_get_string(jds) : "", type);
        goto fail;
    }
    if (hms_schema_validate(ds->schema, data, &e) != HMS_OK) {
        hms_err_set(err, st, "schema: data: %s", e.msg);
        goto fail;
    }
    *event = ev;
    return HMS_OK;
fail:
    json_object_put(ev);
    return st;
}

hms_status_t hms_cval_check(const hms_cval_t *v, const char *body, size_t len, json_object **event,
                            hms_err_t *err)
{
    *event = NULL;
    json_tokener *tok = json_tokener_new();
    if (tok == NULL)
        return hms_err_set(err, HMS_ERR_NOMEM, "out of memory parsing an event");
    json_object *ev = parse_doc(tok, body, len, err);
    json_tokener_free(tok);
    if (ev == NULL)
        return HMS_ERR_MALFORMED;
    return check_event(v, ev, event, err);
}

hms_status_t hms_cval_check_outgoing(hms_cval_t *v, const char *body, size_t len, bool *parsed,
                                     hms_err_t *err)
{
    *parsed = false;
    if (v->tok == NULL && (v->tok = json_tokener_new()) == NULL)
        return hms_err_set(err, HMS_ERR_NOMEM, "out of memory parsing an event");
    json_object *ev = parse_doc(v->tok, body, len, err), *checked;
    if (ev == NULL)
        return HMS_ERR_MALFORMED;
    *parsed = true;
    hms_status_t st = check_event(v, ev, &checked, err);
    json_object_put(checked);
    return st;
}

hms_status_t hms_cval_check_rejection(hms_cval_t *v, const char *body, size_t len, hms_err_t *err)
{
    if (v->tok == NULL && (v->tok = json_tokener_new()) == NULL)
        return hms_err_set(err, HMS_ERR_NOMEM, "out of memory parsing a rejection");
    json_object *doc = parse_doc(v->tok, body, len, err);
    if (doc == NULL)
        return HMS_ERR_MALFORMED;
    hms_err_t e;
    hms_status_t st = hms_schema_validate(v->rejected, doc, &e);
    if (st != HMS_OK)
        hms_err_set(err, st, "schema: rejection: %s", e.msg);
    json_object_put(doc);
    return st;
}
