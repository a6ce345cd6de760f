/* fuzz_jsonschema.c -- libFuzzer harness for the JSON Schema validator
 * (src/core/jsonschema.h), from both sides.
 *
 * Built by tests/fuzz/CMakeLists.txt (-DHMS_FUZZ=ON, CC=clang); run by
 * scripts/fuzz.sh.  The input is parsed as JSON once and then
 *   1. validated as an event instance against the project's envelope and,
 *      when its dataschema names one, that data schema (schemas/, loaded once
 *      from HMS_SCHEMAS_DIR: the environment variable, else the path compiled
 *      in);
 *   2. compiled as a SCHEMA (so keyword parsing, $ref resolution and the
 *      ECMA-to-POSIX regex translation are fuzzed) and, when it compiles,
 *      used to validate a fixed sample event, a few scalars and the input
 *      document itself.
 * Oracle: every failure is one non-empty line.  Seeds
 * (tests/fuzz/corpus/jsonschema/) are the project's schemas, sample events
 * and the unit tests' schemas and instances. */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "core/jsonschema.h"
#include "schema_files.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerInitialize(int *argc, char ***argv);

#ifndef HMS_SCHEMAS_DIR
#define HMS_SCHEMAS_DIR "schemas"
#endif

static const char sample_event[] =
    "{\"specversion\":\"1.0\",\"id\":\"0/16B3748-0\",\"source\":\"/hms-sync/db/incidents\","
    "\"type\":\"gov.hms.ehr.IncidentCreated.v1\",\"time\":\"2024-05-01T12:00:00.000000Z\","
    "\"dataschema\":\"https://hms.gov/schemas/ehr/IncidentCreated.v1.json\","
    "\"datacontenttype\":\"application/json\",\"subject\":\"42\",\"data\":{\"id\":42,"
    "\"occurred_at\":\"2024-05-01T11:59:00.000000Z\",\"region\":\"north\",\"severity\":3,"
    "\"status\":\"open\",\"summary\":\"x\",\"reported_by\":\"a\",\"version\":1}}";

/* Loaded once: the harness process lives for many inputs. */
static hms_schema_set_t *project_schemas;
static const hms_schema_t *envelope;
static json_object *fixed[5];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    const char *dir = getenv("HMS_SCHEMAS_DIR");
    hms_err_t err = {{0}};
    project_schemas = hms_schema_set_new();
    if (project_schemas == NULL ||
        hms_test_schema_load_dir(project_schemas, dir != NULL ? dir : HMS_SCHEMAS_DIR, NULL,
                                 &err) != HMS_OK) {
        fprintf(stderr, "fuzz_jsonschema: cannot load schemas: %s\n", err.msg);
        abort();
    }
    envelope = hms_schema_set_find(project_schemas, "https://hms.gov/schemas/ehr/envelope.v1.json");
    if (envelope == NULL) {
        fprintf(stderr, "fuzz_jsonschema: no envelope schema\n");
        abort();
    }
    fixed[0] = json_tokener_parse(sample_event);
    fixed[1] = json_object_new_string("abc\xc3\xa9 123");
    fixed[2] = json_object_new_double(2.5);
    fixed[3] = json_object_new_array();
    json_object_array_add(fixed[3], json_object_new_int(1));
    json_object_array_add(fixed[3], json_object_new_string("x"));
    fixed[4] = NULL; /* JSON null */
    return 0;
}

/* glibc's regcomp expands each repetition of a group into copies, so
 * "((((a+)+)+)+...)" costs time exponential in its nesting.  Schemas are
 * project files, not input from the wire; inputs with more repetition
 * operators than any real pattern skip the schema side. */
#define MAX_REPEATS 12

static bool few_repeats(const uint8_t *data, size_t size)
{
    size_t n = 0;
    for (size_t i = 0; i < size; i++)
        if (data[i] == '+' || data[i] == '*' ||
            (data[i] == '{' && i + 1 < size && data[i + 1] >= '0' && data[i + 1] <= '9'))
            n++;
    return n <= MAX_REPEATS;
}

static void check(hms_status_t st, const hms_err_t *err)
{
    if (st != HMS_OK && (err->msg[0] == '\0' || strchr(err->msg, '\n') != NULL))
        __builtin_trap(); /* failures are one non-empty line */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct json_tokener *tok = json_tokener_new();
    if (tok == NULL)
        return 0;
    json_object *doc = json_tokener_parse_ex(tok, (const char *)data, (int)size);
    enum json_tokener_error e = json_tokener_get_error(tok);
    json_tokener_free(tok);
    if (e != json_tokener_success) {
        json_object_put(doc);
        return 0;
    }

    /* 1. The input as an event. */
    hms_err_t err = {{0}};
    check(hms_schema_validate(envelope, doc, &err), &err);
    json_object *jds = NULL, *jdata = NULL;
    if (json_object_object_get_ex(doc, "dataschema", &jds) &&
        json_object_is_type(jds, json_type_string)) {
        const hms_schema_t *ds = hms_schema_set_find(project_schemas, json_object_get_string(jds));
        if (ds != NULL) {
            json_object_object_get_ex(doc, "data", &jdata);
            err.msg[0] = '\0';
            check(hms_schema_validate(ds, jdata, &err), &err);
        }
    }

    /* 2. The input as a schema: hms_schema_from_json takes its own reference. */
    if (!few_repeats(data, size)) {
        json_object_put(doc);
        return 0;
    }
    err.msg[0] = '\0';
    hms_schema_t *s = hms_schema_from_json(json_object_get(doc), &err);
    if (s == NULL) {
        if (err.msg[0] == '\0' || strchr(err.msg, '\n') != NULL)
            __builtin_trap();
    } else {
        (void)hms_schema_id(s);
        for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++) {
            err.msg[0] = '\0';
            check(hms_schema_validate(s, fixed[i], &err), &err);
        }
        err.msg[0] = '\0';
        check(hms_schema_validate(s, doc, &err), &err);
        hms_schema_free(s);
    }
    json_object_put(doc);
    return 0;
}
