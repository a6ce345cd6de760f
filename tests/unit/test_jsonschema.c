/* test_jsonschema.c -- the JSON Schema validator: each keyword, error
 * messages, robustness, schema sets, the event schemas in schemas/, and the
 * JSON-Schema-Test-Suite files for the supported keywords when installed. */
#include <check.h>
#include <dirent.h>
#include <json-c/json.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/jsonschema.h"
#include "hms_check.h"
#include "schema_files.h"

#ifndef HMS_SCHEMAS_DIR
#define HMS_SCHEMAS_DIR "schemas"
#endif
#define SUITE_DEFAULT "/usr/share/json-schema-test-suite/tests"

static json_object *parse(const char *text)
{
    json_tokener *tok = json_tokener_new_ex(64);
    /* The NUL ends a bare number such as "1", which could otherwise go on. */
    json_object *o = json_tokener_parse_ex(tok, text, (int)strlen(text) + 1);
    ck_assert_msg(json_tokener_get_error(tok) == json_tokener_success, "bad test JSON: %s", text);
    json_tokener_free(tok);
    return o;
}

static hms_schema_t *schema(const char *text)
{
    hms_err_t err;
    hms_schema_t *s = hms_schema_from_json(parse(text), &err);
    ck_assert_msg(s != NULL, "schema %s: %s", text, err.msg);
    return s;
}

static hms_err_t last;

/* Validates instance text against schema text. */
static bool ok(const char *schema_text, const char *inst_text)
{
    hms_schema_t *s = schema(schema_text);
    json_object *inst = parse(inst_text);
    last.msg[0] = '\0';
    hms_status_t st = hms_schema_validate(s, inst, &last);
    ck_assert(st == HMS_OK || st == HMS_ERR_MALFORMED);
    json_object_put(inst);
    hms_schema_free(s);
    return st == HMS_OK;
}

#define YES(s, i) ck_assert_msg(ok(s, i), "%s should accept %s: %s", s, i, last.msg)
#define NO(s, i) ck_assert_msg(!ok(s, i), "%s should reject %s", s, i)

START_TEST(type_keyword)
{
    YES("{\"type\":\"string\"}", "\"x\"");
    NO("{\"type\":\"string\"}", "1");
    YES("{\"type\":\"integer\"}", "1");
    YES("{\"type\":\"integer\"}", "1.0");
    NO("{\"type\":\"integer\"}", "1.5");
    YES("{\"type\":\"number\"}", "1");
    YES("{\"type\":\"number\"}", "1.5");
    NO("{\"type\":\"number\"}", "\"1\"");
    YES("{\"type\":\"null\"}", "null");
    NO("{\"type\":\"null\"}", "false");
    YES("{\"type\":\"boolean\"}", "false");
    YES("{\"type\":\"object\"}", "{}");
    NO("{\"type\":\"object\"}", "[]");
    YES("{\"type\":\"array\"}", "[]");
    YES("{\"type\":[\"string\",\"null\"]}", "null");
    YES("{\"type\":[\"string\",\"null\"]}", "\"a\"");
    NO("{\"type\":[\"string\",\"null\"]}", "0");
    ck_assert_str_eq(last.msg, "(root): integer is not of any allowed type");
}
END_TEST

START_TEST(object_keywords)
{
    const char *s = "{\"properties\":{\"a\":{\"type\":\"integer\"},\"b\":{\"type\":\"string\"}},"
                    "\"required\":[\"a\"],\"additionalProperties\":false}";
    YES(s, "{\"a\":1}");
    YES(s, "{\"a\":1,\"b\":\"x\"}");
    NO(s, "{\"b\":\"x\"}");
    ck_assert_str_eq(last.msg, "(root): required property \"a\" is missing");
    NO(s, "{\"a\":1,\"c\":2}");
    ck_assert_str_eq(last.msg, "/c: property is not allowed (additionalProperties)");
    NO(s, "{\"a\":\"1\"}");
    ck_assert_str_eq(last.msg, "/a: string is not of type integer");
    YES(s, "[1]"); /* object keywords ignore other types */
    const char *t = "{\"properties\":{\"a\":true},\"additionalProperties\":{\"type\":\"number\"}}";
    YES(t, "{\"a\":\"x\",\"z\":1.5}");
    NO(t, "{\"z\":\"s\"}");
    const char *p = "{\"patternProperties\":{\"^x_\":{\"type\":\"integer\"}},"
                    "\"additionalProperties\":false}";
    YES(p, "{\"x_1\":1}");
    NO(p, "{\"x_1\":\"s\"}");
    NO(p, "{\"y\":1}");
    YES("{\"minProperties\":1,\"maxProperties\":2}", "{\"a\":1}");
    NO("{\"minProperties\":1}", "{}");
    NO("{\"maxProperties\":1}", "{\"a\":1,\"b\":2}");
    YES("{\"propertyNames\":{\"maxLength\":3}}", "{\"abc\":1}");
    NO("{\"propertyNames\":{\"maxLength\":3}}", "{\"abcd\":1}");
    YES("{\"dependentRequired\":{\"a\":[\"b\"]}}", "{\"a\":1,\"b\":2}");
    NO("{\"dependentRequired\":{\"a\":[\"b\"]}}", "{\"a\":1}");
    YES("{\"dependentRequired\":{\"a\":[\"b\"]}}", "{\"c\":1}");
    NO("{\"dependentSchemas\":{\"a\":{\"required\":[\"b\"]}}}", "{\"a\":1}");
}
END_TEST

START_TEST(enum_const)
{
    YES("{\"enum\":[1,\"a\",null,{\"k\":[1,2]}]}", "1.0");
    YES("{\"enum\":[1,\"a\",null,{\"k\":[1,2]}]}", "null");
    YES("{\"enum\":[1,\"a\",null,{\"k\":[1,2]}]}", "{\"k\":[1,2.0]}");
    NO("{\"enum\":[1,\"a\",null,{\"k\":[1,2]}]}", "{\"k\":[2,1]}");
    NO("{\"enum\":[1,\"a\"]}", "true");
    ck_assert_str_eq(last.msg, "(root): true is not one of the enum values");
    YES("{\"const\":\"1.0\"}", "\"1.0\"");
    NO("{\"const\":\"1.0\"}", "1.0");
    NO("{\"const\":false}", "0");
    NO("{\"const\":{\"a\":1}}", "{\"a\":1,\"b\":2}");
    YES("{\"const\":null}", "null");
}
END_TEST

START_TEST(numeric_keywords)
{
    YES("{\"minimum\":1,\"maximum\":5}", "5");
    NO("{\"minimum\":1,\"maximum\":5}", "0");
    NO("{\"minimum\":1,\"maximum\":5}", "5.5");
    YES("{\"exclusiveMinimum\":1}", "1.0001");
    NO("{\"exclusiveMinimum\":1}", "1");
    NO("{\"exclusiveMaximum\":1}", "1");
    YES("{\"exclusiveMaximum\":1}", "0");
    YES("{\"multipleOf\":3}", "9");
    NO("{\"multipleOf\":3}", "10");
    YES("{\"multipleOf\":0.01}", "19.99");
    NO("{\"multipleOf\":0.01}", "19.995");
    YES("{\"maximum\":5}", "\"not a number\"");
    YES("{\"minimum\":-9223372036854775807}", "9223372036854775807");
    NO("{\"maximum\":9223372036854775806}", "9223372036854775807");
    const char *s = "{\"properties\":{\"data\":{\"properties\":{\"severity\":{\"maximum\":5}}}}}";
    NO(s, "{\"data\":{\"severity\":7}}");
    ck_assert_str_eq(last.msg, "/data/severity: 7 is greater than maximum 5");
}
END_TEST

START_TEST(string_keywords)
{
    YES("{\"minLength\":2,\"maxLength\":2}", "\"\xc3\xa9\xc3\xa9\"");
    NO("{\"maxLength\":1}", "\"\xc3\xa9\xc3\xa9\"");
    NO("{\"minLength\":3}", "\"\xf0\x9f\x98\x80\xf0\x9f\x98\x80\"");
    YES("{\"pattern\":\"^[0-9A-F]{16}-[0-9]+$\"}", "\"00000000016B3748-0\"");
    NO("{\"pattern\":\"^[0-9A-F]{16}-[0-9]+$\"}", "\"00000000016b3748-0\"");
    YES("{\"pattern\":\"a+\"}", "\"xxaaxx\""); /* unanchored, as in ECMA-262 */
    YES("{\"pattern\":\"^\\\\d+\\\\s\\\\w$\"}", "\"12 z\"");
    NO("{\"pattern\":\"^\\\\d+$\"}", "\"12a\"");
    YES("{\"pattern\":\"^[\\\\d.]+$\"}", "\"1.2\"");
    YES("{\"pattern\":\"^\\\\.$\"}", "\".\"");
    NO("{\"pattern\":\"^\\\\.$\"}", "\"x\"");
    YES("{\"pattern\":\"^[[:alpha:]]+$\"}", "\"abc\"");
    YES("{\"pattern\":\"x\"}", "3"); /* only strings */
    hms_err_t err;
    ck_assert_ptr_null(hms_schema_from_json(parse("{\"pattern\":\"(\"}"), &err));
    ck_assert_ptr_nonnull(strstr(err.msg, "POSIX"));
    ck_assert_ptr_null(
        hms_schema_from_json(parse("{\"properties\":{\"a\":{\"pattern\":\"[\"}}}"), &err));
    ck_assert_ptr_null(hms_schema_from_json(parse("{\"patternProperties\":{\"(\":{}}}"), &err));
    /* A "pattern" key inside data (enum) is not a pattern. */
    YES("{\"enum\":[{\"pattern\":\"(\"}]}", "{\"pattern\":\"(\"}");
    /* A pattern or patternProperties that is not a string/object is no
     * pattern either.  json-c keeps a double's source text as the value's
     * userdata, where compiled patterns live: that text must never be read
     * as one (found by libFuzzer: heap overflow under ASan). */
    YES("{\"pattern\":0.}", "\"abc\"");
    YES("{\"pattern\":0.5}", "\"abc\"");
    YES("{\"pattern\":1e300}", "\"abc\"");
    YES("{\"patternProperties\":0.5}", "{\"a\":1}");
}
END_TEST

START_TEST(formats)
{
    const char *dt = "{\"format\":\"date-time\"}";
    YES(dt, "\"2026-11-26T14:18:01.791510Z\"");
    YES(dt, "\"2026-11-26t14:18:01z\"");
    YES(dt, "\"2026-11-26T14:18:01+05:30\"");
    YES(dt, "\"2024-02-29T00:00:00Z\"");
    YES(dt, "\"1998-12-31T23:59:60Z\"");
    YES(dt, "\"1998-12-31T15:59:60.123-08:00\"");
    NO(dt, "\"1998-12-31T22:59:60Z\"");
    NO(dt, "\"2023-02-29T00:00:00Z\"");
    NO(dt, "\"2026-11-26 14:18:01Z\"");
    NO(dt, "\"2026-11-26T14:18:01\"");
    NO(dt, "\"2026-11-26T24:00:00Z\"");
    NO(dt, "\"2026-13-01T00:00:00Z\"");
    NO(dt, "\"2026-11-26T14:18:01.Z\"");
    NO(dt, "\"2026-11-26T14:18:01+0530\"");
    YES(dt, "12");
    const char *u = "{\"format\":\"uuid\"}";
    YES(u, "\"0b7e4c8a-3f2d-4e1a-9c5b-6d7E8F9A0B1C\"");
    NO(u, "\"0b7e4c8a3f2d4e1a9c5b6d7e8f9a0b1c\"");
    NO(u, "\"0b7e4c8a-3f2d-4e1a-9c5b-6d7e8f9a0b1g\"");
    YES("{\"format\":\"email\"}", "\"not checked\"");
}
END_TEST

START_TEST(array_keywords)
{
    YES("{\"items\":{\"type\":\"integer\"}}", "[1,2,3]");
    NO("{\"items\":{\"type\":\"integer\"}}", "[1,\"2\",3]");
    ck_assert_str_eq(last.msg, "/1: string is not of type integer");
    YES("{\"prefixItems\":[{\"type\":\"string\"}],\"items\":{\"type\":\"integer\"}}",
        "[\"a\",1,2]");
    NO("{\"prefixItems\":[{\"type\":\"string\"}],\"items\":{\"type\":\"integer\"}}", "[1,1]");
    NO("{\"prefixItems\":[{}],\"items\":false}", "[1,2]");
    YES("{\"prefixItems\":[{}],\"items\":false}", "[1]");
    YES("{\"minItems\":1,\"maxItems\":2}", "[1]");
    NO("{\"minItems\":1}", "[]");
    NO("{\"maxItems\":1}", "[1,2]");
    YES("{\"uniqueItems\":true}", "[1,2,{\"a\":1},{\"a\":2}]");
    NO("{\"uniqueItems\":true}", "[1,{\"a\":1},1.0]");
    YES("{\"contains\":{\"const\":2}}", "[1,2]");
    NO("{\"contains\":{\"const\":2}}", "[1,3]");
    NO("{\"contains\":{\"const\":2},\"maxContains\":1}", "[2,2]");
    YES("{\"contains\":{\"const\":2},\"minContains\":0}", "[]");
}
END_TEST

START_TEST(combinators)
{
    YES("{\"allOf\":[{\"minimum\":1},{\"maximum\":3}]}", "2");
    NO("{\"allOf\":[{\"minimum\":1},{\"maximum\":3}]}", "4");
    YES("{\"anyOf\":[{\"type\":\"string\"},{\"minimum\":3}]}", "4");
    NO("{\"anyOf\":[{\"type\":\"string\"},{\"minimum\":3}]}", "2");
    ck_assert_str_eq(last.msg, "(root): value matches no schema in anyOf");
    YES("{\"oneOf\":[{\"type\":\"integer\"},{\"minimum\":3}]}", "2");
    NO("{\"oneOf\":[{\"type\":\"integer\"},{\"minimum\":3}]}", "4");
    NO("{\"oneOf\":[{\"type\":\"integer\"},{\"minimum\":3}]}", "1.5");
    YES("{\"not\":{\"type\":\"null\"}}", "1");
    NO("{\"not\":{\"type\":\"null\"}}", "null");
    const char *ite = "{\"if\":{\"type\":\"integer\"},\"then\":{\"minimum\":0},"
                      "\"else\":{\"type\":\"string\"}}";
    YES(ite, "3");
    NO(ite, "-3");
    YES(ite, "\"s\"");
    NO(ite, "1.5");
    YES("true", "{\"anything\":[1]}");
    NO("false", "null");
    YES("{\"properties\":{\"a\":true,\"b\":false}}", "{\"a\":1}");
    NO("{\"properties\":{\"a\":true,\"b\":false}}", "{\"b\":1}");
}
END_TEST

START_TEST(refs)
{
    const char *s = "{\"$id\":\"https://x.test/s.json\",\"$defs\":{\"pos\":{\"minimum\":0},"
                    "\"a/b\":{\"type\":\"string\"},\"t~\":{\"maxLength\":1}},"
                    "\"properties\":{\"p\":{\"$ref\":\"#/$defs/pos\"},"
                    "\"q\":{\"$ref\":\"#/$defs/a~1b\"},\"r\":{\"$ref\":\"#/$defs/t~0\"},"
                    "\"s\":{\"$ref\":\"https://x.test/s.json#/$defs/pos\",\"maximum\":5},"
                    "\"n\":{\"$ref\":\"#\"}}}";
    YES(s, "{\"p\":1,\"q\":\"x\",\"r\":\"y\",\"s\":3,\"n\":{\"p\":2,\"n\":{}}}");
    NO(s, "{\"p\":-1}");
    NO(s, "{\"q\":1}");
    NO(s, "{\"r\":\"yy\"}");
    NO(s, "{\"s\":6}"); /* siblings of $ref apply in 2020-12 */
    NO(s, "{\"s\":-6}");
    NO(s, "{\"n\":{\"n\":{\"p\":-2}}}");
    ck_assert_str_eq(last.msg, "/n/n/p: -2 is less than minimum 0");
    YES("{\"prefixItems\":[{\"type\":\"integer\"},{\"$ref\":\"#/prefixItems/0\"}]}", "[1,2]");
    NO("{\"prefixItems\":[{\"type\":\"integer\"},{\"$ref\":\"#/prefixItems/0\"}]}", "[1,\"2\"]");
    NO("{\"$ref\":\"#/$defs/missing\"}", "1");
    ck_assert_ptr_nonnull(strstr(last.msg, "cannot resolve $ref"));
    NO("{\"$ref\":\"other.json\"}", "1");
    /* A cycle that never consumes the instance ends at the depth cap. */
    NO("{\"$ref\":\"#\"}", "1");
    ck_assert_ptr_nonnull(strstr(last.msg, "deeper than"));
    NO("{\"$defs\":{\"a\":{\"$ref\":\"#/$defs/b\"},\"b\":{\"$ref\":\"#/$defs/a\"}},"
       "\"$ref\":\"#/$defs/a\"}",
       "1");
}
END_TEST

START_TEST(paths_escaped)
{
    NO("{\"additionalProperties\":{\"type\":\"integer\"}}", "{\"a/b~c\":\"x\"}");
    ck_assert_str_eq(last.msg, "/a~1b~0c: string is not of type integer");
}
END_TEST

START_TEST(deep_nesting_never_crashes)
{
    /* An instance nested far deeper than the cap, built without the parser. */
    json_object *root = json_object_new_array(), *cur = root;
    for (int i = 0; i < 5000; i++) {
        json_object *next = json_object_new_array();
        json_object_array_add(cur, next);
        cur = next;
    }
    hms_schema_t *s = schema("{\"items\":{\"$ref\":\"#\"}}");
    hms_err_t err;
    ck_assert_int_eq(hms_schema_validate(s, root, &err), HMS_ERR_MALFORMED);
    ck_assert_ptr_nonnull(strstr(err.msg, "deeper than"));
    ck_assert_int_eq(hms_schema_validate(s, root, NULL), HMS_ERR_MALFORMED);
    hms_schema_free(s);
    /* A deeply nested schema document fails to load instead. */
    json_object *deep = json_object_new_object(), *c = deep;
    for (int i = 0; i < 5000; i++) {
        json_object *n = json_object_new_object();
        json_object_object_add(c, "not", n);
        c = n;
    }
    ck_assert_ptr_null(hms_schema_from_json(deep, &err));
    json_object_put(root);
    /* Non-schema documents. */
    ck_assert_ptr_null(hms_schema_from_json(json_object_new_int(3), &err));
    ck_assert_ptr_null(hms_schema_from_json(NULL, &err));
    NO("{\"properties\":{\"a\":3}}", "{\"a\":1}");
}
END_TEST

/* Found by tests/fuzz/fuzz_jsonschema.c: a path longer than the error
 * buffer wrote past it into the validator's depth counter, so a valid deep
 * instance was rejected as "nested deeper than 128". */
START_TEST(long_paths_stay_in_bounds)
{
    char key[61];
    memset(key, 'a', 60);
    key[60] = '\0';
    json_object *root = json_object_new_int(1);
    for (int i = 0; i < 12; i++) {
        json_object *o = json_object_new_object();
        json_object_object_add(o, i % 2 ? key : "~/~/~/~/~/~/~/~/~/~/~/~/~/~/~/~/~/~/", root);
        root = o;
    }
    hms_schema_t *s = schema("{\"additionalProperties\":{\"$ref\":\"#\"}}");
    hms_err_t err = {{0}};
    ck_assert_msg(hms_schema_validate(s, root, &err) == HMS_OK, "%s", err.msg);
    hms_schema_free(s);
    /* Failing at the bottom: the path is cut short with "..." and fits. */
    s = schema("{\"additionalProperties\":{\"$ref\":\"#\"},\"type\":\"object\"}");
    ck_assert_int_eq(hms_schema_validate(s, root, &err), HMS_ERR_MALFORMED);
    ck_assert_ptr_nonnull(strstr(err.msg, "...: integer is not of type object"));
    ck_assert_uint_lt(strlen(err.msg), sizeof err.msg);
    hms_schema_free(s);
    json_object_put(root);
}
END_TEST

/* Found by tests/fuzz/fuzz_jsonschema.c: instance keys and schema strings
 * with control characters made multi-line error messages. */
START_TEST(errors_are_one_line)
{
    NO("{\"type\":\"strin\\n\"}", "\"x\"");
    ck_assert_str_eq(last.msg, "(root): string is not of type strin?");
    NO("{\"properties\":{\"a\\nb\":{\"type\":\"string\"}}}", "{\"a\\nb\":1}");
    ck_assert_str_eq(last.msg, "/a?b: integer is not of type string");
    hms_err_t err;
    ck_assert_ptr_null(hms_schema_from_json(parse("{\"pattern\":\"(\\r\"}"), &err));
    ck_assert_ptr_null(strchr(err.msg, '\r'));
}
END_TEST

/* Found by tests/fuzz/fuzz_jsonschema.c: "a+++...+" kept glibc's regcomp
 * busy for minutes, and "a+?" loaded as POSIX "(a+)?" though lazy
 * quantifiers are documented as unsupported. */
START_TEST(stacked_quantifiers_refused)
{
    static const char *const bad[] = {
        "a+?", "a**", "a{2}{3}", "a?+", "x{1,}?", "a+++++++++++++++++++++++++++++++++++++++++"};
    hms_err_t err;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_object *doc = json_object_new_object();
        json_object_object_add(doc, "pattern", json_object_new_string(bad[i]));
        ck_assert_msg(hms_schema_from_json(doc, &err) == NULL, "%s loaded", bad[i]);
        ck_assert_ptr_nonnull(strstr(err.msg, "quantifier after a quantifier"));
    }
    /* Also found by the fuzzer: the empty pattern reached regcomp unterminated. */
    YES("{\"pattern\":\"\"}", "\"anything\"");
    YES("{\"patternProperties\":{\"\":{\"type\":\"string\"}}}", "{\"a\":\"b\"}");
    NO("{\"patternProperties\":{\"\":{\"type\":\"string\"}}}", "{\"a\":1}");
    YES("{\"pattern\":\"^a{2}b+c?[+*?]\\\\d*(x)+$\"}", "\"aabbb*7x\"");
    NO("{\"pattern\":\"^a{2}b+c?[+*?]\\\\d*(x)+$\"}", "\"abbb*7x\"");
}
END_TEST

START_TEST(schema_sets)
{
    hms_schema_set_t *set = hms_schema_set_new();
    size_t n = 0;
    hms_err_t err;
    ck_assert_int_eq(hms_test_schema_load_dir(set, HMS_SCHEMAS_DIR, &n, &err), HMS_OK);
    const char *ids[] = {"https://hms.gov/schemas/ehr/envelope.v1.json",
                         "https://hms.gov/schemas/ehr/IncidentCreated.v1.json",
                         "https://hms.gov/schemas/ehr/IncidentUpdated.v1.json",
                         "https://hms.gov/schemas/ehr/IncidentDeleted.v1.json",
                         "https://hms.gov/schemas/ehr/IncidentsTruncated.v1.json",
                         "https://hms.gov/schemas/ehr/IncidentSnapshot.v1.json",
                         "https://hms.gov/schemas/ehr/RejectedChange.v1.json",
                         "https://hms.gov/schemas/ehr/emitted-envelope.v1.json"};
    ck_assert_uint_eq(n, sizeof ids / sizeof ids[0]);
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        const hms_schema_t *s = hms_schema_set_find(set, ids[i]);
        ck_assert_msg(s != NULL, "missing %s", ids[i]);
        ck_assert_str_eq(hms_schema_id(s), ids[i]);
    }
    ck_assert_ptr_null(hms_schema_set_find(set, "https://hms.gov/nope"));
    hms_schema_t *dup = schema("{\"$id\":\"https://hms.gov/schemas/ehr/envelope.v1.json\"}");
    ck_assert_int_eq(hms_schema_set_add(set, dup, &err), HMS_ERR_MALFORMED);
    ck_assert_int_eq(hms_schema_set_add(set, schema("{}"), &err), HMS_ERR_MALFORMED);
    ck_assert_int_eq(hms_test_schema_load_dir(set, "/nonexistent-dir", NULL, &err), HMS_ERR_IO);
    hms_schema_set_free(set);
    ck_assert_ptr_null(hms_test_schema_load_file("/nonexistent.json", &err));
    ck_assert_ptr_nonnull(strstr(err.msg, "/nonexistent.json"));
}
END_TEST

/* Schemas from bytes: exactly one JSON document, named in every error. */
START_TEST(schema_from_text)
{
    hms_err_t err;
    const char *ok = "{\"$id\":\"https://x/a.json\",\"type\":\"string\"}";
    hms_schema_t *s = hms_schema_from_text("a.json", ok, strlen(ok), &err);
    ck_assert_ptr_nonnull(s);
    ck_assert_str_eq(hms_schema_id(s), "https://x/a.json");
    hms_schema_free(s);
    const char *bad[] = {"", "{\"type\":", "{} {}", "{}x", "[1,2", "{\"pattern\":\"a**\"}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err.msg[0] = '\0';
        ck_assert_msg(hms_schema_from_text("b.json", bad[i], strlen(bad[i]), &err) == NULL,
                      "accepted <%s>", bad[i]);
        ck_assert_msg(strncmp(err.msg, "b.json: ", 8) == 0, "<%s>: %s", bad[i], err.msg);
    }
    /* A length that stops inside the text is where the document ends. */
    ck_assert_ptr_null(hms_schema_from_text("c.json", ok, strlen(ok) - 1, &err));
}
END_TEST

static const char *good_event =
    "{\"specversion\":\"1.0\",\"type\":\"gov.hms.ehr.IncidentCreated.v1\","
    "\"source\":\"/hms-ehr/7312345678901234567/ehr/public.incidents\","
    "\"datacontenttype\":\"application/json\","
    "\"dataschema\":\"https://hms.gov/schemas/ehr/IncidentCreated.v1.json\","
    "\"id\":\"00000000016B3748-0\",\"subject\":\"0b7e4c8a-3f2d-4e1a-9c5b-6d7e8f9a0b1c\","
    "\"time\":\"2026-11-26T14:18:01.791510Z\",\"lsn\":\"0/16B3748\",\"txid\":7421,"
    "\"version\":3,\"updatedat\":\"2026-11-26T14:18:02.000000Z\",\"origin\":\"hms-ehr\","
    "\"data\":{\"id\":\"0b7e4c8a-3f2d-4e1a-9c5b-6d7e8f9a0b1c\","
    "\"occurred_at\":\"2026-11-26T14:18:01.791510Z\",\"region\":\"north\",\"severity\":4,"
    "\"status\":\"open\",\"summary\":null,\"reported_by\":\"x\","
    "\"version\":3,\"updated_at\":\"2026-11-26T14:18:02.000000Z\",\"origin\":\"hms-ehr\"}}";

/* Replaces the first occurrence of from in good_event with to. */
static json_object *mutated(const char *from, const char *to)
{
    static char buf[4096];
    const char *p = strstr(good_event, from);
    ck_assert_ptr_nonnull(p);
    snprintf(buf, sizeof buf, "%.*s%s%s", (int)(p - good_event), good_event, to, p + strlen(from));
    return parse(buf);
}

START_TEST(event_schemas)
{
    hms_schema_set_t *set = hms_schema_set_new();
    hms_err_t err;
    ck_assert_int_eq(hms_test_schema_load_dir(set, HMS_SCHEMAS_DIR, NULL, &err), HMS_OK);
    const hms_schema_t *env =
        hms_schema_set_find(set, "https://hms.gov/schemas/ehr/envelope.v1.json");
    const hms_schema_t *cre =
        hms_schema_set_find(set, "https://hms.gov/schemas/ehr/IncidentCreated.v1.json");
    json_object *ev = parse(good_event), *data;
    ck_assert_msg(hms_schema_validate(env, ev, &err) == HMS_OK, "%s", err.msg);
    ck_assert(json_object_object_get_ex(ev, "data", &data));
    ck_assert_msg(hms_schema_validate(cre, data, &err) == HMS_OK, "%s", err.msg);
    json_object_put(ev);

    static const struct {
        const char *from, *to, *where;
        bool data;
    } bad[] = {
        {"01.791510Z\",\"lsn", "01.791Z\",\"lsn", "/time", false},
        {"01.791510Z\",\"lsn", "01.791510+00:00\",\"lsn", "/time", false},
        {"016B3748-0", "016b3748-0", "/id", false},
        {"\"txid\":7421", "\"txid\":-1", "/txid", false},
        {"\"txid\":7421", "\"txid\":7421,\"extra\":1", "/extra", false},
        {"\"specversion\":\"1.0\",", "", "(root)", false},
        {"IncidentCreated.v1\",", "IncidentMoved.v1\",", "/type", false},
        {"application/json", "text/plain", "/datacontenttype", false},
        {"\"version\":3,\"updatedat", "\"version\":\"3\",\"updatedat", "/version", false},
        {"\"severity\":4", "\"severity\":7", "/severity", true},
        {"\"severity\":4", "\"severity\":4.5", "/severity", true},
        {"\"summary\":null", "\"summary\":1", "/summary", true},
        {"\"status\":\"open\",", "", "(root)", true},
        {"\"region\":\"north\"", "\"region\":\"north\",\"x\":1", "/x", true},
        {"\"id\":\"0b7e4c8a-3f2d-4e1a-9c5b-6d7e8f9a0b1c\",\"occurred", "\"id\":\"nope\",\"occurred",
         "/id", true},
        {"\"occurred_at\":\"2026-11-26T14:18:01.791510Z\"", "\"occurred_at\":\"infinity\"",
         "/occurred_at", true},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_object *m = mutated(bad[i].from, bad[i].to);
        json_object *target = m;
        if (bad[i].data)
            json_object_object_get_ex(m, "data", &target);
        hms_status_t st = hms_schema_validate(bad[i].data ? cre : env, target, &err);
        ck_assert_msg(st == HMS_ERR_MALFORMED, "case %zu accepted", i);
        ck_assert_msg(strncmp(err.msg, bad[i].where, strlen(bad[i].where)) == 0, "case %zu: %s", i,
                      err.msg);
        json_object_put(m);
    }
    hms_schema_set_free(set);
}
END_TEST

/* A snapshot event is a Created event's row under its own type and data
 * schema, with the extension attribute snapshot (the request id); no other
 * type may carry that attribute, so every v1 event stays as it was. */
START_TEST(snapshot_event_schema)
{
    hms_schema_set_t *set = hms_schema_set_new();
    hms_err_t err;
    ck_assert_int_eq(hms_test_schema_load_dir(set, HMS_SCHEMAS_DIR, NULL, &err), HMS_OK);
    const hms_schema_t *env =
        hms_schema_set_find(set, "https://hms.gov/schemas/ehr/envelope.v1.json");
    const hms_schema_t *snap =
        hms_schema_set_find(set, "https://hms.gov/schemas/ehr/IncidentSnapshot.v1.json");
    ck_assert_ptr_nonnull(snap);
    static const struct {
        const char *type, *schema, *extra;
        bool ok;
    } cases[] = {
        {"IncidentSnapshot", "IncidentSnapshot", ",\"snapshot\":\"snap-20261126T141801-3f9a1c\"",
         true},
        {"IncidentSnapshot", "IncidentSnapshot", "", false},
        {"IncidentSnapshot", "IncidentSnapshot", ",\"snapshot\":\"\"", false},
        {"IncidentSnapshot", "IncidentSnapshot", ",\"snapshot\":7", false},
        {"IncidentCreated", "IncidentCreated", ",\"snapshot\":\"snap-1\"", false},
        {"IncidentCreated", "IncidentCreated", "", true},
    };
    const char *type_at = strstr(good_event, "IncidentCreated.v1\",");
    const char *schema_at = strstr(good_event, "IncidentCreated.v1.json");
    const char *end = strrchr(good_event, '}');
    ck_assert(type_at && schema_at && end && type_at < schema_at);
    const size_t word = strlen("IncidentCreated");
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char buf[4096];
        snprintf(buf, sizeof buf, "%.*s%s%.*s%s%.*s%s}", (int)(type_at - good_event), good_event,
                 cases[i].type, (int)(schema_at - type_at - word), type_at + word, cases[i].schema,
                 (int)(end - schema_at - word), schema_at + word, cases[i].extra);
        json_object *ev = parse(buf), *data;
        hms_status_t st = hms_schema_validate(env, ev, &err);
        ck_assert_msg((st == HMS_OK) == cases[i].ok, "case %zu: %s", i,
                      st == HMS_OK ? "accepted" : err.msg);
        ck_assert(json_object_object_get_ex(ev, "data", &data));
        ck_assert_msg(hms_schema_validate(snap, data, &err) == HMS_OK, "%s", err.msg);
        json_object_put(ev);
    }
    hms_schema_set_free(set);
}
END_TEST

/* ---- JSON-Schema-Test-Suite ---- */

/* The suite's draft2020-12 files for the supported keywords.  The Debian
 * package (2.0.0) has only draft 3 to 7, so without draft2020-12 the run
 * falls back to the draft7 files whose keywords mean the same in 2020-12,
 * skipping groups that use what changed ($ref siblings, array items,
 * additionalItems, dependencies, definitions). */
static const char *const files_2020[] = {
    "additionalProperties",
    "allOf",
    "anyOf",
    "boolean_schema",
    "const",
    "contains",
    "default",
    "dependentRequired",
    "dependentSchemas",
    "enum",
    "exclusiveMaximum",
    "exclusiveMinimum",
    "if-then-else",
    "infinite-loop-detection",
    "items",
    "maxContains",
    "maxItems",
    "maxLength",
    "maxProperties",
    "maximum",
    "minContains",
    "minItems",
    "minLength",
    "minProperties",
    "minimum",
    "multipleOf",
    "not",
    "oneOf",
    "pattern",
    "patternProperties",
    "prefixItems",
    "properties",
    "propertyNames",
    "ref",
    "required",
    "type",
    "uniqueItems",
    "optional/format/date-time",
    "optional/format/uuid",
};
static const char *const files_7[] = {
    "additionalProperties",
    "allOf",
    "anyOf",
    "boolean_schema",
    "const",
    "contains",
    "default",
    "enum",
    "exclusiveMaximum",
    "exclusiveMinimum",
    "if-then-else",
    "items",
    "maxItems",
    "maxLength",
    "maxProperties",
    "maximum",
    "minItems",
    "minLength",
    "minProperties",
    "minimum",
    "multipleOf",
    "not",
    "oneOf",
    "pattern",
    "patternProperties",
    "properties",
    "propertyNames",
    "required",
    "type",
    "uniqueItems",
    "optional/format/date-time",
};

/* True when a group's schema uses what we do not implement (or, for draft 7,
 * what means something else in 2020-12). */
static bool uses_unsupported(json_object *s, bool draft7, int depth)
{
    if (depth > 50)
        return true;
    if (json_object_is_type(s, json_type_array)) {
        for (size_t i = 0; i < json_object_array_length(s); i++)
            if (uses_unsupported(json_object_array_get_idx(s, i), draft7, depth + 1))
                return true;
        return false;
    }
    if (!json_object_is_type(s, json_type_object))
        return false;
    json_object_object_foreach(s, k, v)
    {
        static const char *const never[] = {"$id",
                                            "$anchor",
                                            "$dynamicRef",
                                            "$dynamicAnchor",
                                            "unevaluatedItems",
                                            "unevaluatedProperties",
                                            "$recursiveRef",
                                            "$vocabulary"};
        static const char *const old[] = {"$ref", "additionalItems", "dependencies", "definitions"};
        for (size_t i = 0; i < sizeof never / sizeof never[0]; i++)
            if (strcmp(k, never[i]) == 0)
                return true;
        for (size_t i = 0; draft7 && i < sizeof old / sizeof old[0]; i++)
            if (strcmp(k, old[i]) == 0)
                return true;
        if (draft7 && strcmp(k, "items") == 0 && json_object_is_type(v, json_type_array))
            return true;
        if (strcmp(k, "$ref") == 0 && json_object_is_type(v, json_type_string) &&
            json_object_get_string(v)[0] != '#')
            return true;
        if (uses_unsupported(v, draft7, depth + 1))
            return true;
    }
    return false;
}

START_TEST(official_suite)
{
    const char *root = getenv("HMS_JSON_SCHEMA_TEST_SUITE");
    char path[1024];
    if (root == NULL)
        root = SUITE_DEFAULT;
    const char *draft = "draft2020-12";
    const char *const *files = files_2020;
    size_t nfiles = sizeof files_2020 / sizeof files_2020[0];
    snprintf(path, sizeof path, "%s/%s", root, draft);
    DIR *d = opendir(path);
    if (d == NULL) {
        draft = "draft7";
        files = files_7;
        nfiles = sizeof files_7 / sizeof files_7[0];
        snprintf(path, sizeof path, "%s/%s", root, draft);
        d = opendir(path);
    }
    if (d == NULL) {
        fprintf(stderr,
                "test_jsonschema: no JSON-Schema-Test-Suite under %s "
                "(apt-get install json-schema-test-suite); official suite skipped\n",
                root);
        return;
    }
    closedir(d);
    bool draft7 = strcmp(draft, "draft7") == 0;
    int passed = 0, failed = 0, skipped = 0;
    for (size_t f = 0; f < nfiles; f++) {
        snprintf(path, sizeof path, "%s/%s/%s.json", root, draft, files[f]);
        json_object *groups = json_object_from_file(path);
        ck_assert_msg(groups != NULL, "cannot read %s", path);
        for (size_t g = 0; g < json_object_array_length(groups); g++) {
            json_object *grp = json_object_array_get_idx(groups, g), *sch, *tests, *desc;
            json_object_object_get_ex(grp, "schema", &sch);
            json_object_object_get_ex(grp, "tests", &tests);
            json_object_object_get_ex(grp, "description", &desc);
            size_t nt = json_object_array_length(tests);
            hms_err_t err;
            hms_schema_t *s = NULL;
            if (!uses_unsupported(sch, draft7, 0))
                s = hms_schema_from_json(json_object_get(sch), &err);
            if (s == NULL) {
                skipped += (int)nt;
                continue;
            }
            for (size_t t = 0; t < nt; t++) {
                json_object *tc = json_object_array_get_idx(tests, t), *data, *valid, *td;
                json_object_object_get_ex(tc, "data", &data);
                json_object_object_get_ex(tc, "valid", &valid);
                json_object_object_get_ex(tc, "description", &td);
                bool got = hms_schema_validate(s, data, &err) == HMS_OK;
                if (got == (bool)json_object_get_boolean(valid)) {
                    passed++;
                } else {
                    failed++;
                    fprintf(stderr, "suite mismatch: %s: %s / %s: expected %s\n", files[f],
                            json_object_get_string(desc), json_object_get_string(td),
                            got ? "invalid" : "valid");
                }
            }
            hms_schema_free(s);
        }
        json_object_put(groups);
    }
    fprintf(stderr,
            "test_jsonschema: official suite %s (supported keywords): "
            "%d passed, %d failed, %d skipped\n",
            draft, passed, failed, skipped);
    ck_assert_int_eq(failed, 0);
    ck_assert_int_gt(passed, 300);
}
END_TEST

static Suite *jsonschema_suite(void)
{
    Suite *s = suite_create("jsonschema");
    TCase *tc = tcase_create("keywords");
    tcase_add_test(tc, type_keyword);
    tcase_add_test(tc, object_keywords);
    tcase_add_test(tc, enum_const);
    tcase_add_test(tc, numeric_keywords);
    tcase_add_test(tc, string_keywords);
    tcase_add_test(tc, formats);
    tcase_add_test(tc, array_keywords);
    tcase_add_test(tc, combinators);
    tcase_add_test(tc, refs);
    tcase_add_test(tc, paths_escaped);
    tcase_add_test(tc, deep_nesting_never_crashes);
    tcase_add_test(tc, long_paths_stay_in_bounds);
    tcase_add_test(tc, errors_are_one_line);
    tcase_add_test(tc, stacked_quantifiers_refused);
    tcase_add_test(tc, schema_sets);
    tcase_add_test(tc, schema_from_text);
    tcase_add_test(tc, event_schemas);
    tcase_add_test(tc, snapshot_event_schema);
    tcase_add_test(tc, official_suite);
    suite_add_tcase(s, tc);
    return s;
}

HMS_CHECK_MAIN(jsonschema_suite)
