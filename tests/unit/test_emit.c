/* test_emit.c -- an hms_sync.emit message into its event: the type rule
 * (and that schemas/emitted-envelope.v1.json draws the same line), the
 * split of the message's content, and the encoded event against the
 * emitted envelope. */
#include <check.h>
#include <json-c/json.h>
#include <string.h>

#include "core/emit.h"
#include "core/jsonschema.h"
#include "hms_check.h"
#include "schema_files.h"

/* 2026-11-26T14:18:01.791510Z in pgoutput's microseconds since 2000-01-01. */
#define COMMIT_TIME INT64_C(849017881791510)
#define SOURCE "/hms-ehr/7312345678901234567/ehr"

static hms_schema_t *envelope;
static hms_event_t ev;
static hms_err_t err;

static void load_schema(void)
{
    hms_err_t e = {0};
    envelope = hms_test_schema_load_file(HMS_SCHEMAS_DIR "/emitted-envelope.v1.json", &e);
    ck_assert_msg(envelope != NULL, "emitted-envelope.v1.json: %s", e.msg);
}

static void free_schema(void)
{
    hms_schema_free(envelope);
}

static void setup(void)
{
    memset(&ev, 0, sizeof ev);
}

static void teardown(void)
{
    hms_event_free(&ev);
}

static hms_emit_t msg(const char *type, const char *subject, const char *data)
{
    return (hms_emit_t){type, strlen(type), subject, strlen(subject), data, strlen(data)};
}

/* Whether the emitted envelope takes an event of this type. */
static bool schema_takes(const char *type)
{
    hms_txctx_t tx = {0x200, 7, COMMIT_TIME, 0};
    hms_emit_t m = msg("org.example.cases.Placeholder.v1", "s", "{}");
    ck_assert_int_eq(hms_emit_encode(SOURCE, &tx, &m, NULL, &ev, &err), HMS_OK);
    json_object *doc = json_tokener_parse(ev.body.data);
    ck_assert_ptr_nonnull(doc);
    json_object_object_add(doc, "type", json_object_new_string(type));
    hms_err_t e;
    bool ok = hms_schema_validate(envelope, doc, &e) == HMS_OK;
    json_object_put(doc);
    return ok;
}

START_TEST(type_rule_and_schema_agree)
{
    static const char *const good[] = {
        "org.example.cases.InvestigatorAssigned.v1",
        "gov.hms.scheduling.Booked.v12",
        "com.acme-x.case_mgmt.Report-Escalated.v2",
        "org.example.a.b.c.d.Thing.v1",
        "io.x9.y.Z.v1",
    };
    static const char *const bad[] = {
        "",
        "org.example.v1",                   /* two names before the version */
        "Org.example.cases.X.v1",           /* the first name is lower-case */
        "org..cases.X.v1",                  /* an empty name */
        "org.example.cases.X.v0",           /* versions start at 1 */
        "org.example.cases.X.V1",           /* v, lower-case */
        "org.example.cases.X.v1a",          /* the version is a number */
        "org.example.cases.X.v1.",          /* a trailing dot */
        "org.example.cases.X",              /* no version */
        "org.example.cases.X y.v1",         /* a space */
        "org.example._cases.X.v1",          /* a name starts with a letter or digit */
        "gov.hms.ehr.IncidentCreated.v1",   /* hms-sync's own namespace */
        "gov.hms.ehr.cases.Assigned.v1",    /* the whole of it */
        "org.example.cases.Caf\xc3\xa9.v1", /* ASCII only */
        "org.example.cases.X*.v1",          /* no wildcards of a binding key */
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        ck_assert_msg(hms_emit_type_ok(good[i], strlen(good[i])), "refused %s", good[i]);
        ck_assert_msg(schema_takes(good[i]), "the schema refused %s", good[i]);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(!hms_emit_type_ok(bad[i], strlen(bad[i])), "took %s", bad[i]);
        ck_assert_msg(!schema_takes(bad[i]), "the schema took %s", bad[i]);
    }
    /* 200 bytes is the most. */
    char longest[202];
    memset(longest, 'a', sizeof longest);
    memcpy(longest, "org.example.", 12);
    memcpy(longest + 197, ".v1", 4);
    ck_assert_uint_eq(strlen(longest), 200);
    ck_assert(hms_emit_type_ok(longest, 200));
    ck_assert(schema_takes(longest));
    memmove(longest + 198, ".v1", 4);
    ck_assert(!hms_emit_type_ok(longest, 201));
    ck_assert(!schema_takes(longest));
}
END_TEST

START_TEST(parse_splits_at_the_first_two_line_breaks)
{
    const char *content = "org.example.cases.Assigned.v1\ncase-42\n{\"note\":\"a\\nb\"}\n";
    hms_emit_t m;
    ck_assert_int_eq(hms_emit_parse(content, strlen(content), &m, &err), HMS_OK);
    ck_assert_uint_eq(m.type_len, strlen("org.example.cases.Assigned.v1"));
    ck_assert_int_eq(memcmp(m.subject, "case-42", m.subject_len), 0);
    ck_assert_uint_eq(m.subject_len, 7);
    /* Everything after the second line break is data, line breaks included. */
    ck_assert_uint_eq(m.data_len, strlen("{\"note\":\"a\\nb\"}\n"));
}
END_TEST

START_TEST(parse_names_what_is_wrong)
{
    static const struct {
        const char *content, *says;
    } cases[] = {
        {"org.example.cases.Assigned.v1", "this one has one"},
        {"org.example.cases.Assigned.v1\ncase-42", "this one has two"},
        {"\ncase-42\n{}", "empty type"},
        {"org.example.cases.Assigned.v1\n\n{}", "empty subject"},
        {"org.example.cases.Assigned.v1\ncase-42\n", "empty data"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        hms_emit_t m;
        ck_assert_int_eq(hms_emit_parse(cases[i].content, strlen(cases[i].content), &m, &err),
                         HMS_ERR_MALFORMED);
        ck_assert_msg(strstr(err.msg, cases[i].says) != NULL, "%s: %s", cases[i].content, err.msg);
        ck_assert_ptr_null(strchr(err.msg, '\n'));
    }
    char type[300];
    memset(type, 'a', 256);
    memcpy(type + 256, "\ns\n{}", 6);
    hms_emit_t m;
    ck_assert_int_eq(hms_emit_parse(type, strlen(type), &m, &err), HMS_ERR_MALFORMED);
    ck_assert_ptr_nonnull(strstr(err.msg, "256 bytes"));
}
END_TEST

static const char *str(json_object *o, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

START_TEST(encode_writes_a_valid_event)
{
    hms_txctx_t tx = {0x16B3748, 1290, COMMIT_TIME, 3};
    /* jsonb's text goes in as it is: a number beyond a double stays exact. */
    const char *data = "{\"case\": 42, \"big\": 12345678901234567890.5, \"who\": null}";
    hms_emit_t m =
        msg("org.example.cases.InvestigatorAssigned.v1", "case \"42\" \\ \xc3\xa9", data);
    ck_assert_int_eq(hms_emit_encode(SOURCE, &tx, &m, NULL, &ev, &err), HMS_OK);
    ck_assert(ev.emitted);
    ck_assert_str_eq(ev.id, "00000000016B3748-3");
    ck_assert_str_eq(ev.type, "org.example.cases.InvestigatorAssigned.v1");
    ck_assert_str_eq(ev.routing_key.data, "org.example.cases.InvestigatorAssigned.v1");
    ck_assert_str_eq(ev.subject.data, "case \"42\" \\ \xc3\xa9");
    ck_assert_int_eq(ev.time_unix, 1795702681);
    ck_assert_ptr_nonnull(strstr(ev.body.data, "\"data\":{\"case\": 42, \"big\": "
                                               "12345678901234567890.5, \"who\": null}}"));
    json_object *doc = json_tokener_parse(ev.body.data);
    ck_assert_msg(doc != NULL, "not JSON: %s", ev.body.data);
    hms_err_t e = {0};
    ck_assert_msg(hms_schema_validate(envelope, doc, &e) == HMS_OK, "%s: %s", e.msg, ev.body.data);
    ck_assert_str_eq(str(doc, "source"), SOURCE "/hms_sync.emit");
    ck_assert_str_eq(str(doc, "subject"), "case \"42\" \\ \xc3\xa9");
    ck_assert_str_eq(str(doc, "time"), "2026-11-26T14:18:01.791510Z");
    ck_assert_str_eq(str(doc, "lsn"), "0/16B3748");
    ck_assert_str_eq(str(doc, "txid"), "1290");
    ck_assert_str_eq(str(doc, "datacontenttype"), "application/json");
    ck_assert_ptr_null(str(doc, "dataschema"));
    json_object_put(doc);
}
END_TEST

START_TEST(encode_names_the_data_schema_and_takes_any_json)
{
    hms_txctx_t tx = {0x200, 1, COMMIT_TIME, 0};
    hms_emit_t m = msg("org.example.cases.Escalated.v2", "c-1", "[1, \"two\"]");
    const char *id = "https://schemas.example.org/cases/Escalated.v2.json";
    ck_assert_int_eq(hms_emit_encode(SOURCE, &tx, &m, id, &ev, &err), HMS_OK);
    json_object *doc = json_tokener_parse(ev.body.data);
    ck_assert_ptr_nonnull(doc);
    hms_err_t e = {0};
    ck_assert_msg(hms_schema_validate(envelope, doc, &e) == HMS_OK, "%s", e.msg);
    ck_assert_str_eq(str(doc, "dataschema"), id);
    json_object_put(doc);
    /* The same event object is reused for the next: nothing is left over. */
    m = msg("org.example.cases.Closed.v1", "c-2", "\"done\"");
    ck_assert_int_eq(hms_emit_encode(SOURCE, &tx, &m, NULL, &ev, &err), HMS_OK);
    ck_assert_ptr_null(strstr(ev.body.data, "dataschema"));
    ck_assert_str_eq(ev.type, "org.example.cases.Closed.v1");
    ck_assert_str_eq(ev.routing_key.data, "org.example.cases.Closed.v1");
}
END_TEST

START_TEST(a_commit_time_out_of_range_leaves_nothing)
{
    hms_txctx_t tx = {0x200, 1, INT64_MAX, 0};
    hms_emit_t m = msg("org.example.cases.Closed.v1", "c-2", "{}");
    ck_assert_int_eq(hms_emit_encode(SOURCE, &tx, &m, NULL, &ev, &err), HMS_ERR_ENCODE);
    ck_assert_uint_eq(ev.body.len, 0);
    ck_assert_uint_eq(ev.routing_key.len, 0);
    ck_assert_ptr_nonnull(strstr(err.msg, "0000000000000200-0"));
}
END_TEST

static Suite *emit_suite(void)
{
    Suite *s = suite_create("emit");
    TCase *tc = tcase_create("emit");
    tcase_add_unchecked_fixture(tc, load_schema, free_schema);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, type_rule_and_schema_agree);
    tcase_add_test(tc, parse_splits_at_the_first_two_line_breaks);
    tcase_add_test(tc, parse_names_what_is_wrong);
    tcase_add_test(tc, encode_writes_a_valid_event);
    tcase_add_test(tc, encode_names_the_data_schema_and_takes_any_json);
    tcase_add_test(tc, a_commit_time_out_of_range_leaves_nothing);
    suite_add_tcase(s, tc);
    return s;
}

HMS_CHECK_MAIN(emit_suite)
