/* validate.c -- the contract check of an event (JSON, type, envelope, data
 * schema) and of a rejected change's document, against the embedded
 * schemas. */
#include "common/validate.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/embedded.h"
#include "core/jsonschema.h"

/* One data schema and the type suffix it belongs to: the $id's last path
 * segment without ".json", e.g. "IncidentCreated.v1" for
 * gov.hms.ehr.IncidentCreated.v1. */
typedef struct {
    const hms_schema_t *schema; /* owned by the set */
    char suffix[96];
} data_schema_t;

#define MAX_DATA_SCHEMAS 16

struct hms_cval {
    hms_schema_set_t *set;
    const hms_schema_t *envelope;
    const hms_schema_t *rejected; /* RejectedChange: not an event's data schema */
    json_tokener *tok;            /* reused by the connector's checks; NULL until then */
    data_schema_t data[MAX_DATA_SCHEMAS];
    size_t ndata;
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
    if (v->envelope == NULL || v->rejected == NULL) {
        hms_err_set(err, HMS_ERR_CONFIG, "schemas: no %s among the embedded schemas",
                    v->envelope == NULL ? "envelope.v1.json" : "RejectedChange.v1.json");
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
    if (v->tok != NULL)
        json_tokener_free(v->tok);
    free(v);
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
