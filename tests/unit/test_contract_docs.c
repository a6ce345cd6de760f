/* test_contract_docs.c -- docs/event-contract.md agrees with schemas/: every
 * schema property has a table row with the right type, nullability and
 * "required", no row names a property its schema lacks, and every example
 * event validates.
 *
 * The page marks each table with <!-- contract-table: FILE.json --> and
 * <!-- end contract-table -->; a row is a line starting with "| `name`". */
#include <check.h>
#include <dirent.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "core/jsonschema.h"
#include "core/lsn.h"
#include "hms_check.h"
#include "schema_files.h"

#define DOC_PATH HMS_SCHEMAS_DIR "/../docs/event-contract.md"
#define TABLE_BEGIN "<!-- contract-table: "
#define TABLE_END "<!-- end contract-table -->"
#define MAX_CELLS 8

typedef struct {
    char first[512]; /* the first problem found, for the failure message */
    int count;
} problems_t;

static void problem(problems_t *p, const char *fmt, ...)
{
    if (p->count++ == 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(p->first, sizeof(p->first), fmt, ap);
        va_end(ap);
    }
}

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    ck_assert_msg(f != NULL, "cannot open %s", path);
    ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    ck_assert_int_ge(n, 0);
    rewind(f);
    char *s = malloc((size_t)n + 1);
    ck_assert_ptr_nonnull(s);
    ck_assert_uint_eq(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

/* Copies cell text without surrounding blanks or backticks. */
static void trim_cell(const char *b, const char *e, char *out, size_t n)
{
    while (b < e && (*b == ' ' || *b == '`'))
        b++;
    while (e > b && (e[-1] == ' ' || e[-1] == '`'))
        e--;
    size_t len = (size_t)(e - b) < n - 1 ? (size_t)(e - b) : n - 1;
    memcpy(out, b, len);
    out[len] = '\0';
}

/* Splits one table line "| a | b |" into cells; returns how many. */
static int split_row(const char *line, const char *end, char cells[][128], int max)
{
    int n = 0;
    const char *p = line;
    if (p < end && *p == '|')
        p++;
    while (p < end && n < max) {
        const char *bar = memchr(p, '|', (size_t)(end - p));
        if (bar == NULL)
            break;
        trim_cell(p, bar, cells[n++], 128);
        p = bar + 1;
    }
    return n;
}

/* The schema of a property with a local $ref resolved (one level: the
 * project's schemas use #/$defs/NAME only). */
static json_object *resolve(json_object *root, json_object *prop)
{
    json_object *ref, *defs, *def;
    if (!json_object_object_get_ex(prop, "$ref", &ref))
        return prop;
    const char *r = json_object_get_string(ref);
    if (strncmp(r, "#/$defs/", 8) != 0 || !json_object_object_get_ex(root, "$defs", &defs) ||
        !json_object_object_get_ex(defs, r + 8, &def))
        return prop;
    return def;
}

static const char *json_type_of_value(json_object *v)
{
    switch (json_object_get_type(v)) {
    case json_type_string: return "string";
    case json_type_int: return "integer";
    case json_type_double: return "number";
    case json_type_boolean: return "boolean";
    case json_type_object: return "object";
    case json_type_array: return "array";
    case json_type_null: return "null";
    }
    return "?";
}

/* The property's JSON type other than null, and whether null is allowed;
 * from "type", else from "const" or a uniform "enum". */
static void schema_type(json_object *s, char *type, size_t n, bool *nullable)
{
    json_object *t, *c;
    *nullable = false;
    snprintf(type, n, "?");
    if (json_object_object_get_ex(s, "type", &t)) {
        if (json_object_is_type(t, json_type_string)) {
            snprintf(type, n, "%s", json_object_get_string(t));
            return;
        }
        for (size_t i = 0; i < json_object_array_length(t); i++) {
            const char *name = json_object_get_string(json_object_array_get_idx(t, i));
            if (strcmp(name, "null") == 0)
                *nullable = true;
            else
                snprintf(type, n, "%s", name);
        }
        return;
    }
    if (json_object_object_get_ex(s, "const", &c)) {
        snprintf(type, n, "%s", json_type_of_value(c));
        return;
    }
    if (json_object_object_get_ex(s, "enum", &c) && json_object_array_length(c) > 0) {
        snprintf(type, n, "%s", json_type_of_value(json_object_array_get_idx(c, 0)));
        for (size_t i = 0; i < json_object_array_length(c); i++) {
            json_object *v = json_object_array_get_idx(c, i);
            if (v == NULL)
                *nullable = true;
            else if (strcmp(json_type_of_value(v), type) != 0)
                snprintf(type, n, "?");
        }
        return;
    }
    /* No constraint on the type at all: any JSON value (an emitted
     * event's data). */
    if (!json_object_object_get_ex(s, "$ref", NULL))
        snprintf(type, n, "any");
}

static bool is_required(json_object *schema, const char *name)
{
    json_object *req;
    if (!json_object_object_get_ex(schema, "required", &req))
        return false;
    for (size_t i = 0; i < json_object_array_length(req); i++)
        if (strcmp(json_object_get_string(json_object_array_get_idx(req, i)), name) == 0)
            return true;
    return false;
}

static int column_index(char cells[][128], int n, const char *header)
{
    for (int i = 0; i < n; i++)
        if (strcmp(cells[i], header) == 0)
            return i;
    return -1;
}

/* Checks the table of schema file `file` in doc against the parsed schema. */
static void check_table(const char *doc, const char *file, json_object *schema, problems_t *p)
{
    char marker[300];
    snprintf(marker, sizeof(marker), TABLE_BEGIN "%s -->", file);
    const char *begin = strstr(doc, marker);
    if (begin == NULL) {
        problem(p, "%s: no table marked \"%s\" in the doc", file, marker);
        return;
    }
    const char *end = strstr(begin, TABLE_END);
    if (end == NULL) {
        problem(p, "%s: its table has no \"%s\"", file, TABLE_END);
        return;
    }
    json_object *props;
    if (!json_object_object_get_ex(schema, "properties", &props)) {
        problem(p, "%s: schema has no properties", file);
        return;
    }

    int type_col = -1, null_col = -1, req_col = -1;
    bool header_seen = false;
    size_t rows = 0;
    char seen[64][128];
    for (const char *line = begin; line < end;) {
        const char *eol = memchr(line, '\n', (size_t)(end - line));
        if (eol == NULL)
            eol = end;
        char cells[MAX_CELLS][128];
        int n = line[0] == '|' ? split_row(line, eol, cells, MAX_CELLS) : 0;
        if (n > 0 && !header_seen) {
            header_seen = true;
            type_col = column_index(cells, n, "JSON type");
            null_col = column_index(cells, n, "nullable");
            req_col = column_index(cells, n, "required");
            if (type_col < 0)
                problem(p, "%s: the table has no \"JSON type\" column", file);
        } else if (n > 0 && strncmp(line, "| `", 3) == 0) {
            const char *name = cells[0];
            if (rows < sizeof(seen) / sizeof(seen[0]))
                snprintf(seen[rows++], sizeof(seen[0]), "%s", name);
            json_object *prop;
            if (!json_object_object_get_ex(props, name, &prop)) {
                problem(p, "%s: the doc names \"%s\", which the schema does not have", file, name);
            } else {
                char type[32];
                bool nullable;
                schema_type(resolve(schema, prop), type, sizeof(type), &nullable);
                if (type_col >= 0 && type_col < n && strcmp(cells[type_col], type) != 0)
                    problem(p, "%s: \"%s\" is %s in the schema, the doc says \"%s\"", file, name,
                            type, cells[type_col]);
                if (null_col >= 0 && null_col < n &&
                    strcmp(cells[null_col], nullable ? "yes" : "no") != 0)
                    problem(p, "%s: \"%s\" nullable is %s in the schema, the doc says \"%s\"", file,
                            name, nullable ? "yes" : "no", cells[null_col]);
                bool req = is_required(schema, name);
                if (req_col >= 0 && req_col < n && strcmp(cells[req_col], req ? "yes" : "no") != 0)
                    problem(p, "%s: \"%s\" required is %s in the schema, the doc says \"%s\"", file,
                            name, req ? "yes" : "no", cells[req_col]);
            }
        }
        line = eol < end ? eol + 1 : end;
    }
    json_object_object_foreach(props, key, val)
    {
        (void)val;
        bool found = false;
        for (size_t i = 0; i < rows && !found; i++)
            found = strcmp(seen[i], key) == 0;
        if (!found)
            problem(p, "%s: property \"%s\" is missing from the doc's table", file, key);
    }
}

/* Every schema in HMS_SCHEMAS_DIR against doc. */
static void check_all_tables(const char *doc, problems_t *p, int *nschemas)
{
    DIR *d = opendir(HMS_SCHEMAS_DIR);
    ck_assert_msg(d != NULL, "cannot open %s", HMS_SCHEMAS_DIR);
    struct dirent *de;
    *nschemas = 0;
    while ((de = readdir(d)) != NULL) {
        size_t len = strlen(de->d_name);
        if (len < 6 || strcmp(de->d_name + len - 5, ".json") != 0)
            continue;
        char path[1024];
        snprintf(path, sizeof(path), "%s/%s", HMS_SCHEMAS_DIR, de->d_name);
        json_object *schema = json_object_from_file(path);
        ck_assert_msg(schema != NULL, "%s does not parse", path);
        check_table(doc, de->d_name, schema, p);
        json_object_put(schema);
        (*nschemas)++;
    }
    closedir(d);
}

START_TEST(test_tables_match_schemas)
{
    char *doc = read_text(DOC_PATH);
    problems_t p = {{0}, 0};
    int n;
    check_all_tables(doc, &p, &n);
    ck_assert_int_ge(n, 4);
    ck_assert_msg(p.count == 0, "%d disagreement(s) between %s and schemas/; first: %s", p.count,
                  DOC_PATH, p.first);
    free(doc);
}
END_TEST

/* The checker itself must notice drift: a doctored page fails. */
static int problems_after_replacing(const char *doc, const char *from, const char *to)
{
    const char *at = strstr(doc, from);
    ck_assert_msg(at != NULL, "\"%s\" not in the doc", from);
    size_t n = strlen(doc) - strlen(from) + strlen(to) + 1;
    char *mod = malloc(n);
    ck_assert_ptr_nonnull(mod);
    snprintf(mod, n, "%.*s%s%s", (int)(at - doc), doc, to, at + strlen(from));
    problems_t p = {{0}, 0};
    int nschemas;
    check_all_tables(mod, &p, &nschemas);
    free(mod);
    return p.count;
}

START_TEST(test_checker_sees_drift)
{
    char *doc = read_text(DOC_PATH);
    /* A row dropped, a row renamed, a type and a nullability changed. */
    ck_assert_int_gt(problems_after_replacing(doc, "| `reported_by` |", "| x |"), 0);
    ck_assert_int_gt(problems_after_replacing(doc, "| `reported_by` |", "| `reporter` |"), 0);
    ck_assert_int_gt(
        problems_after_replacing(doc, "| `severity` | integer", "| `severity` | string"), 0);
    ck_assert_int_gt(
        problems_after_replacing(doc, "| `summary` | string | yes", "| `summary` | string | no"),
        0);
    ck_assert_int_gt(
        problems_after_replacing(doc, "| `txid` | integer | yes", "| `txid` | integer | no"), 0);
    ck_assert_int_gt(
        problems_after_replacing(doc, TABLE_BEGIN "envelope.v1.json -->", "<!-- gone -->"), 0);
    free(doc);
}
END_TEST

/* Each ```json block that is an event validates against the envelope and
 * its data schema, and its id agrees with its lsn. */
START_TEST(test_examples_validate)
{
    char *doc = read_text(DOC_PATH);
    hms_err_t err;
    hms_schema_set_t *set = hms_schema_set_new();
    ck_assert_ptr_nonnull(set);
    ck_assert_msg(hms_test_schema_load_dir(set, HMS_SCHEMAS_DIR, NULL, &err) == HMS_OK, "%s",
                  err.msg);
    const hms_schema_t *env =
        hms_schema_set_find(set, "https://hms.gov/schemas/ehr/envelope.v1.json");
    const hms_schema_t *emitted =
        hms_schema_set_find(set, "https://hms.gov/schemas/ehr/emitted-envelope.v1.json");
    ck_assert_ptr_nonnull(env);
    ck_assert_ptr_nonnull(emitted);
    int emitted_seen = 0;

    bool type_seen[4] = {false, false, false, false};
    static const char *types[4] = {
        "gov.hms.ehr.IncidentCreated.v1", "gov.hms.ehr.IncidentUpdated.v1",
        "gov.hms.ehr.IncidentDeleted.v1", "gov.hms.ehr.IncidentsTruncated.v1"};
    int events = 0;
    for (const char *p = strstr(doc, "```json\n"); p != NULL; p = strstr(p, "```json\n")) {
        p += 8;
        const char *close = strstr(p, "\n```");
        ck_assert_ptr_nonnull(close);
        json_tokener *tok = json_tokener_new();
        json_object *ev = json_tokener_parse_ex(tok, p, (int)(close - p));
        ck_assert_msg(ev != NULL, "an example in %s does not parse: %s", DOC_PATH,
                      json_tokener_error_desc(json_tokener_get_error(tok)));
        json_tokener_free(tok);
        json_object *v;
        const char *src =
            json_object_object_get_ex(ev, "source", &v) ? json_object_get_string(v) : "";
        if (strstr(src, "/hms_sync.emit") != NULL) {
            /* An application's own event: its envelope, no dataschema. */
            emitted_seen++;
            ck_assert_msg(hms_schema_validate(emitted, ev, &err) == HMS_OK, "emitted example: %s",
                          err.msg);
        } else if (json_object_object_get_ex(ev, "specversion", NULL)) {
            events++;
            ck_assert_msg(hms_schema_validate(env, ev, &err) == HMS_OK, "example %d: %s", events,
                          err.msg);
            ck_assert(json_object_object_get_ex(ev, "dataschema", &v));
            const hms_schema_t *ds = hms_schema_set_find(set, json_object_get_string(v));
            ck_assert_msg(ds != NULL, "example %d: unknown dataschema", events);
            json_object *data;
            ck_assert(json_object_object_get_ex(ev, "data", &data));
            ck_assert_msg(hms_schema_validate(ds, data, &err) == HMS_OK, "example %d data: %s",
                          events, err.msg);

            json_object *id, *lsn, *type;
            ck_assert(json_object_object_get_ex(ev, "id", &id));
            ck_assert(json_object_object_get_ex(ev, "lsn", &lsn));
            uint64_t l;
            char hex[17];
            ck_assert(hms_lsn_parse(json_object_get_string(lsn), &l));
            hms_lsn_hex16(l, hex);
            ck_assert_msg(strncmp(json_object_get_string(id), hex, 16) == 0,
                          "example %d: id %s does not start with lsn %s", events,
                          json_object_get_string(id), json_object_get_string(lsn));
            ck_assert(json_object_object_get_ex(ev, "type", &type));
            for (int i = 0; i < 4; i++)
                if (strcmp(json_object_get_string(type), types[i]) == 0)
                    type_seen[i] = true;
        }
        json_object_put(ev);
        p = close + 4;
    }
    for (int i = 0; i < 4; i++)
        ck_assert_msg(type_seen[i], "%s has no example of %s", DOC_PATH, types[i]);
    ck_assert_int_ge(events, 4);
    ck_assert_msg(emitted_seen > 0, "%s has no example of an emitted event", DOC_PATH);
    hms_schema_set_free(set);
    free(doc);
}
END_TEST

static Suite *contract_docs_suite(void)
{
    Suite *s = suite_create("contract_docs");
    TCase *tc = tcase_create("contract_docs");
    tcase_add_test(tc, test_tables_match_schemas);
    tcase_add_test(tc, test_checker_sees_drift);
    tcase_add_test(tc, test_examples_validate);
    suite_add_tcase(s, tc);
    return s;
}

HMS_CHECK_MAIN(contract_docs_suite)
