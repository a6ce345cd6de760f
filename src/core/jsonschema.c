/* jsonschema.c -- JSON Schema 2020-12 schemas: loading from parsed JSON or
 * from text, and sets of them looked up by $id.  The pure core reads no
 * files: callers hand over bytes. */
#include "core/jsonschema.h"

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/jsonschema_int.h"

static hms_status_t prepare(hms_schema_t *s, json_object *schema, int depth, hms_err_t *err);

static hms_status_t prepare_map(hms_schema_t *s, json_object *map, int depth, hms_err_t *err)
{
    if (!json_object_is_type(map, json_type_object))
        return HMS_OK;
    json_object_object_foreach(map, k, v)
    {
        (void)k;
        hms_status_t st = prepare(s, v, depth + 1, err);
        if (st != HMS_OK)
            return st;
    }
    return HMS_OK;
}

static hms_status_t prepare_list(hms_schema_t *s, json_object *list, int depth, hms_err_t *err)
{
    if (!json_object_is_type(list, json_type_array))
        return HMS_OK;
    for (size_t i = 0; i < json_object_array_length(list); i++) {
        hms_status_t st = prepare(s, json_object_array_get_idx(list, i), depth + 1, err);
        if (st != HMS_OK)
            return st;
    }
    return HMS_OK;
}

/* Walks the schema keyword by keyword (not blindly: a "pattern" key inside
 * an enum value is data) and compiles every regular expression. */
static hms_status_t prepare(hms_schema_t *s, json_object *schema, int depth, hms_err_t *err)
{
    static const char *const single[] = {
        "items", "additionalProperties", "not", "contains", "propertyNames", "if", "then", "else"};
    static const char *const maps[] = {"properties", "patternProperties", "$defs",
                                       "dependentSchemas", "definitions"};
    static const char *const lists[] = {"allOf", "anyOf", "oneOf", "prefixItems"};
    json_object *v;
    hms_status_t st;
    if (depth > HMS_SCHEMA_MAX_DEPTH)
        return hms_err_set(err, HMS_ERR_MALFORMED, "schema: nested deeper than %d",
                           HMS_SCHEMA_MAX_DEPTH);
    if (!json_object_is_type(schema, json_type_object))
        return HMS_OK;
    if (hms_array_grow((void **)&s->nodes, &s->capnodes, s->nnodes + 1, sizeof(*s->nodes)) !=
        HMS_OK)
        return hms_err_set(err, HMS_ERR_NOMEM, "schema: out of memory");
    s->nodes[s->nnodes].node = schema;
    hms_schema_kw_read(schema, &s->nodes[s->nnodes].kw);
    s->nnodes++;
    if (json_object_object_get_ex(schema, "pattern", &v) &&
        json_object_is_type(v, json_type_string)) {
        const char *p = json_object_get_string(v);
        if ((st = hms_schema_attach_regexes(v, &p, 1, err)) != HMS_OK)
            return st;
    }
    if (json_object_object_get_ex(schema, "patternProperties", &v) &&
        json_object_is_type(v, json_type_object)) {
        size_t n = (size_t)json_object_object_length(v), i = 0;
        const char **pats = calloc(n > 0 ? n : 1, sizeof *pats);
        if (pats == NULL)
            return hms_err_set(err, HMS_ERR_NOMEM, "schema: out of memory");
        json_object_object_foreach(v, k, sub)
        {
            (void)sub;
            pats[i++] = k;
        }
        st = hms_schema_attach_regexes(v, pats, n, err);
        free(pats);
        if (st != HMS_OK)
            return st;
    }
    for (size_t i = 0; i < sizeof single / sizeof single[0]; i++)
        if (json_object_object_get_ex(schema, single[i], &v) &&
            (st = prepare(s, v, depth + 1, err)) != HMS_OK)
            return st;
    for (size_t i = 0; i < sizeof maps / sizeof maps[0]; i++)
        if (json_object_object_get_ex(schema, maps[i], &v) &&
            (st = prepare_map(s, v, depth + 1, err)) != HMS_OK)
            return st;
    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++)
        if (json_object_object_get_ex(schema, lists[i], &v) &&
            (st = prepare_list(s, v, depth + 1, err)) != HMS_OK)
            return st;
    return HMS_OK;
}

static int node_cmp(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const hms_schema_node_t *)a)->node;
    uintptr_t y = (uintptr_t)((const hms_schema_node_t *)b)->node;
    return (x > y) - (x < y);
}

const hms_schema_kw_t *hms_schema_kw_of(const hms_schema_t *s, json_object *node)
{
    size_t lo = 0, hi = s->nnodes;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->nodes[mid].node == node)
            return &s->nodes[mid].kw;
        if ((uintptr_t)s->nodes[mid].node < (uintptr_t)node)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

hms_schema_t *hms_schema_from_json(json_object *doc, hms_err_t *err)
{
    hms_schema_t *s = NULL;
    json_object *id;
    if (!json_object_is_type(doc, json_type_object) &&
        !json_object_is_type(doc, json_type_boolean)) {
        hms_err_set(err, HMS_ERR_MALFORMED, "schema: not an object or a boolean");
        goto fail;
    }
    if ((s = calloc(1, sizeof *s)) == NULL) {
        hms_err_set(err, HMS_ERR_NOMEM, "schema: out of memory");
        goto fail;
    }
    s->doc = doc;
    doc = NULL;
    if (json_object_object_get_ex(s->doc, "$id", &id) &&
        json_object_is_type(id, json_type_string)) {
        if ((s->id = strdup(json_object_get_string(id))) == NULL) {
            hms_err_set(err, HMS_ERR_NOMEM, "schema: out of memory");
            goto fail;
        }
    }
    if (prepare(s, s->doc, 0, err) != HMS_OK)
        goto fail;
    if (s->nnodes > 1) /* a boolean schema has none, and qsort wants an array */
        qsort(s->nodes, s->nnodes, sizeof(*s->nodes), node_cmp);
    return s;
fail:
    json_object_put(doc);
    hms_schema_free(s);
    return NULL;
}

hms_schema_t *hms_schema_from_text(const char *name, const char *text, size_t len, hms_err_t *err)
{
    json_tokener *tok = json_tokener_new();
    if (tok == NULL) {
        hms_err_set(err, HMS_ERR_NOMEM, "%s: out of memory", name);
        return NULL;
    }
    json_object *doc = len > INT_MAX ? NULL : json_tokener_parse_ex(tok, text, (int)len);
    enum json_tokener_error jerr = json_tokener_get_error(tok);
    /* The whole text must be one document: a truncated one is an error, as
     * is anything after it. */
    if (doc != NULL && (jerr != json_tokener_success || json_tokener_get_parse_end(tok) != len)) {
        json_object_put(doc);
        doc = NULL;
    }
    json_tokener_free(tok);
    if (doc == NULL) {
        hms_err_set(err, HMS_ERR_MALFORMED, "%s: not one JSON document: %s", name,
                    jerr == json_tokener_success || jerr == json_tokener_continue
                        ? "unexpected end or trailing text"
                        : json_tokener_error_desc(jerr));
        return NULL;
    }
    hms_err_t inner;
    hms_schema_t *s = hms_schema_from_json(doc, &inner);
    if (s == NULL)
        hms_err_set(err, HMS_ERR_MALFORMED, "%s: %s", name, inner.msg);
    return s;
}

void hms_schema_free(hms_schema_t *s)
{
    if (s == NULL)
        return;
    json_object_put(s->doc);
    free(s->id);
    free(s->nodes);
    free(s);
}

const char *hms_schema_id(const hms_schema_t *s)
{
    return s->id;
}

/* ---- schema sets ---- */

struct hms_schema_set {
    hms_schema_t **items;
    size_t n;
};

hms_schema_set_t *hms_schema_set_new(void)
{
    return calloc(1, sizeof(hms_schema_set_t));
}

void hms_schema_set_free(hms_schema_set_t *set)
{
    if (set == NULL)
        return;
    for (size_t i = 0; i < set->n; i++)
        hms_schema_free(set->items[i]);
    free(set->items);
    free(set);
}

hms_status_t hms_schema_set_add(hms_schema_set_t *set, hms_schema_t *s, hms_err_t *err)
{
    hms_status_t st;
    if (s->id == NULL) {
        st = hms_err_set(err, HMS_ERR_MALFORMED, "schema has no $id");
        goto fail;
    }
    if (hms_schema_set_find(set, s->id) != NULL) {
        st = hms_err_set(err, HMS_ERR_MALFORMED, "schema $id %s is already in the set", s->id);
        goto fail;
    }
    hms_schema_t **grown = realloc(set->items, (set->n + 1) * sizeof *grown);
    if (grown == NULL) {
        st = hms_err_set(err, HMS_ERR_NOMEM, "out of memory adding schema %s", s->id);
        goto fail;
    }
    set->items = grown;
    set->items[set->n++] = s;
    return HMS_OK;
fail:
    hms_schema_free(s);
    return st;
}

const hms_schema_t *hms_schema_set_find(const hms_schema_set_t *set, const char *id)
{
    for (size_t i = 0; id != NULL && i < set->n; i++)
        if (strcmp(set->items[i]->id, id) == 0)
            return set->items[i];
    return NULL;
}
