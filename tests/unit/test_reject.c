/* test_reject.c -- the RejectedChange document of a change that cannot be an
 * event: its fields for each reason, the id the event would have had, the
 * x-reason line, and validity against schemas/RejectedChange.v1.json. */
#include <check.h>
#include <json-c/json.h>
#include <string.h>

#include "core/event.h"
#include "core/jsonschema.h"
#include "core/reject.h"
#include "hms_check.h"
#include "schema_files.h"

/* 2026-11-26T14:18:01.791510Z in pgoutput's microseconds since 2000-01-01. */
#define COMMIT_TIME INT64_C(849017881791510)
#define SOURCE "/hms-ehr/7312345678901234567/ehr/public.incidents"

#define T(s) ((hms_pgo_value_t){HMS_PGO_VAL_TEXT, (uint32_t)strlen(s), (s)})
#define NUL ((hms_pgo_value_t){HMS_PGO_VAL_NULL, 0, NULL})
#define UNCH ((hms_pgo_value_t){HMS_PGO_VAL_UNCHANGED, 0, NULL})

static hms_pgo_column_t inc_cols[] = {
    {(char *)"id", 2950, -1, 1},         {(char *)"occurred_at", 1184, -1, 0},
    {(char *)"region", 25, -1, 0},       {(char *)"severity", 21, -1, 0},
    {(char *)"status", 25, -1, 0},       {(char *)"summary", 25, -1, 0},
    {(char *)"reported_by", 25, -1, 0},  {(char *)"version", 20, -1, 0},
    {(char *)"updated_at", 1184, -1, 0}, {(char *)"origin", 25, -1, 0},
};
static hms_pgo_relation_t inc_rel = {
    16384, (char *)"public", (char *)"incidents", 'f', 10, inc_cols, 1};

static hms_schema_t *schema;
static hms_event_t ev;
static hms_err_t err;

static void load_schema(void)
{
    hms_err_t e = {0};
    schema = hms_test_schema_load_file(HMS_SCHEMAS_DIR "/RejectedChange.v1.json", &e);
    ck_assert_msg(schema != NULL, "RejectedChange.v1.json: %s", e.msg);
}

static void free_schema(void)
{
    hms_schema_free(schema);
}

static void setup(void)
{
    memset(&ev, 0, sizeof ev);
}

static void teardown(void)
{
    hms_event_free(&ev);
}

static void incident_row(hms_pgo_value_t v[10], const char *updated_at)
{
    v[0] = T("0b7e4c8a-3f2d-4e1a-9c5b-6d7e8f9a0b1c");
    v[1] = T("2026-11-26 14:18:01.79151+00");
    v[2] = T("north");
    v[3] = T("4");
    v[4] = T("open");
    v[5] = NUL;
    v[6] = T("dr. \"who\"");
    v[7] = T("3");
    v[8] = T(updated_at);
    v[9] = UNCH;
}

static hms_reject_t base(const hms_txctx_t *tx, hms_reject_reason_t reason)
{
    return (hms_reject_t){.reason = reason,
                          .detail = "why",
                          .source = SOURCE,
                          .table = "public.incidents",
                          .tx = tx,
                          .subject = "0b7e4c8a-3f2d-4e1a-9c5b-6d7e8f9a0b1c",
                          .subject_len = 36,
                          .intended_type = "gov.hms.ehr.IncidentCreated.v1"};
}

/* The body, parsed and checked against its schema; the caller puts it. */
static json_object *valid_body(void)
{
    json_object *doc = json_tokener_parse(ev.body.data);
    ck_assert_msg(doc != NULL, "not JSON: %s", ev.body.data);
    hms_err_t e = {0};
    ck_assert_msg(hms_schema_validate(schema, doc, &e) == HMS_OK, "%s: %s", e.msg, ev.body.data);
    return doc;
}

static const char *str(json_object *o, const char *key)
{
    json_object *v = NULL;
    return json_object_object_get_ex(o, key, &v) ? json_object_get_string(v) : NULL;
}

START_TEST(invalid_embeds_the_event)
{
    hms_txctx_t tx = {0x16B3748, 1290, COMMIT_TIME, 3};
    hms_reject_t r = base(&tx, HMS_REJECT_INVALID);
    const char *event = "{\"type\":\"gov.hms.ehr.IncidentCreated.v1\",\"data\":{\"occurred_at\":"
                        "\"infinity\"}}";
    r.event = event;
    r.event_len = strlen(event);
    r.detail = "schema: data: /occurred_at: \"infinity\" is not a date-time\nsecond line";
    ck_assert_int_eq(hms_reject_build(&r, &ev, &err), HMS_OK);
    json_object *doc = valid_body();
    ck_assert_str_eq(ev.id, "00000000016B3748-3");
    ck_assert_str_eq(str(doc, "id"), ev.id);
    ck_assert_str_eq(str(doc, "lsn"), "0/16B3748");
    ck_assert_str_eq(str(doc, "time"), "2026-11-26T14:18:01.791510Z");
    ck_assert_str_eq(str(doc, "source"), SOURCE);
    ck_assert_str_eq(str(doc, "reason"), "invalid");
    ck_assert_str_eq(str(doc, "intendedtype"), "gov.hms.ehr.IncidentCreated.v1");
    ck_assert_str_eq(str(doc, "subject"), "0b7e4c8a-3f2d-4e1a-9c5b-6d7e8f9a0b1c");
    /* One line, in the header and the body alike. */
    ck_assert_str_eq(ev.reason.data, "invalid: schema: data: /occurred_at: \"infinity\" is not a "
                                     "date-time second line");
    ck_assert_str_eq(str(doc, "detail"), ev.reason.data + strlen("invalid: "));
    json_object *embedded = NULL;
    ck_assert(json_object_object_get_ex(doc, "event", &embedded));
    ck_assert_str_eq(str(embedded, "type"), "gov.hms.ehr.IncidentCreated.v1");
    ck_assert_str_eq(ev.type, HMS_REJECT_TYPE);
    ck_assert_str_eq(ev.routing_key.data, "rejected.invalid");
    ck_assert_uint_eq(ev.queue.len, 0);
    ck_assert_int_eq(ev.time_unix, INT64_C(1795702681));
    json_object_put(doc);
}
END_TEST

START_TEST(unencodable_carries_the_row_as_text)
{
    hms_pgo_value_t v[10];
    incident_row(v, "infinity");
    hms_pgo_tuple_t row = {10, v};
    hms_txctx_t tx = {0x100, 7, COMMIT_TIME, 0};
    /* The id is the one the encoder gives the event it could not finish. */
    hms_encoder_t *enc = hms_encoder_new("7312345678901234567", "ehr", &hms_capture_incidents, 1);
    hms_pgo_msg_t m = {.kind = HMS_PGO_INSERT};
    m.u.change.rel = &inc_rel;
    m.u.change.newtup = row;
    v[9] = T("hms-ehr");
    ck_assert_int_eq(hms_encoder_encode(enc, &tx, &m, &ev, &err), HMS_ERR_ENCODE);
    char encoder_id[sizeof ev.id];
    memcpy(encoder_id, ev.id, sizeof encoder_id);
    v[9] = UNCH;

    hms_reject_t r = base(&tx, HMS_REJECT_UNENCODABLE);
    r.detail = err.msg;
    r.rel = &inc_rel;
    r.row = &row;
    ck_assert_int_eq(hms_reject_build(&r, &ev, &err), HMS_OK);
    ck_assert_str_eq(ev.id, encoder_id);
    json_object *doc = valid_body(), *jrow = NULL, *val = NULL;
    ck_assert_str_eq(str(doc, "reason"), "unencodable");
    ck_assert(json_object_object_get_ex(doc, "row", &jrow));
    ck_assert_str_eq(str(jrow, "updated_at"), "infinity");
    ck_assert_str_eq(str(jrow, "reported_by"), "dr. \"who\"");
    ck_assert(json_object_object_get_ex(jrow, "summary", &val));
    ck_assert_ptr_null(val);                                     /* SQL NULL */
    ck_assert(!json_object_object_get_ex(jrow, "origin", NULL)); /* unchanged TOAST: left out */
    ck_assert(!json_object_object_get_ex(doc, "event", NULL));
    ck_assert(!json_object_object_get_ex(doc, "size", NULL));
    json_object_put(doc);
    hms_encoder_free(enc);
}
END_TEST

START_TEST(oversize_is_a_reference)
{
    hms_txctx_t tx = {0xFFFFFFFF00000010, 4294967295u, COMMIT_TIME, 12};
    hms_reject_t r = base(&tx, HMS_REJECT_OVERSIZE);
    r.size = 134217729;
    r.intended_type = NULL;
    ck_assert_int_eq(hms_reject_build(&r, &ev, &err), HMS_OK);
    json_object *doc = valid_body(), *size = NULL;
    ck_assert_str_eq(ev.id, "FFFFFFFF00000010-12");
    ck_assert(json_object_object_get_ex(doc, "size", &size));
    ck_assert_int_eq(json_object_get_int64(size), 134217729);
    ck_assert_str_eq(str(doc, "subject"), "0b7e4c8a-3f2d-4e1a-9c5b-6d7e8f9a0b1c");
    ck_assert(!json_object_object_get_ex(doc, "intendedtype", NULL));
    ck_assert(!json_object_object_get_ex(doc, "event", NULL));
    ck_assert(!json_object_object_get_ex(doc, "row", NULL));
    ck_assert(ev.body.len < 600);
    json_object_put(doc);
}
END_TEST

START_TEST(unknown_subject_and_empty_row)
{
    hms_txctx_t tx = {0x200, 1, COMMIT_TIME, 0};
    hms_reject_t r = base(&tx, HMS_REJECT_UNENCODABLE);
    r.subject = NULL;
    ck_assert_int_eq(hms_reject_build(&r, &ev, &err), HMS_OK);
    json_object *doc = valid_body();
    ck_assert(!json_object_object_get_ex(doc, "subject", NULL));
    ck_assert_ptr_nonnull(strstr(ev.body.data, "\"row\":{}"));
    json_object_put(doc);
}
END_TEST

START_TEST(what_each_reason_needs)
{
    hms_txctx_t tx = {0x200, 1, COMMIT_TIME, 0};
    hms_reject_t r = base(&tx, HMS_REJECT_INVALID);
    ck_assert_int_eq(hms_reject_build(&r, &ev, &err), HMS_ERR_STATE);
    ck_assert_str_eq(hms_reject_reason_name(HMS_REJECT_OVERSIZE), "oversize");
    ck_assert_str_eq(hms_reject_reason_name(HMS_REJECT_NREASONS), "unknown");
    /* The schema ties each reason to its content. */
    const char *bad[] = {
        "{\"schema\":\"" HMS_REJECT_SCHEMA_ID
        "\",\"id\":\"0000000000000200-0\",\"source\":\"" SOURCE
        "\",\"lsn\":\"0/200\",\"txid\":1,\"time\":\"2026-11-26T14:18:01.791510Z\",\"table\":"
        "\"public.incidents\",\"reason\":\"invalid\",\"detail\":\"x\",\"size\":3}",
        "{\"schema\":\"" HMS_REJECT_SCHEMA_ID
        "\",\"id\":\"0000000000000200-0\",\"source\":\"" SOURCE
        "\",\"lsn\":\"0/200\",\"txid\":1,\"time\":\"2026-11-26T14:18:01.791510Z\",\"table\":"
        "\"public.incidents\",\"reason\":\"oversize\",\"detail\":\"x\",\"size\":3,\"row\":{}}",
        "{\"schema\":\"" HMS_REJECT_SCHEMA_ID
        "\",\"id\":\"0000000000000200-0\",\"source\":\"" SOURCE
        "\",\"lsn\":\"0/200\",\"txid\":1,\"time\":\"2026-11-26T14:18:01.791510Z\",\"table\":"
        "\"public.incidents\",\"reason\":\"unencodable\",\"detail\":\"a\\nb\",\"row\":{}}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_object *doc = json_tokener_parse(bad[i]);
        ck_assert_ptr_nonnull(doc);
        hms_err_t e;
        ck_assert_msg(hms_schema_validate(schema, doc, &e) != HMS_OK, "accepted: %s", bad[i]);
        json_object_put(doc);
    }
}
END_TEST

static Suite *reject_suite(void)
{
    Suite *s = suite_create("reject");
    TCase *tc = tcase_create("reject");
    tcase_add_unchecked_fixture(tc, load_schema, free_schema);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, invalid_embeds_the_event);
    tcase_add_test(tc, unencodable_carries_the_row_as_text);
    tcase_add_test(tc, oversize_is_a_reference);
    tcase_add_test(tc, unknown_subject_and_empty_row);
    tcase_add_test(tc, what_each_reason_needs);
    suite_add_tcase(s, tc);
    return s;
}

HMS_CHECK_MAIN(reject_suite)
