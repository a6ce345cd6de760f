/* test_event.c -- the event encoder: exact JSON for hand-built pgoutput
 * changes, routing keys, TOAST handling, the relation cache, and schema
 * conformance (value conversions are test_pgvalue.c's). */
#include <check.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/event.h"
#include "core/jsonschema.h"
#include "hms_check.h"
#include "schema_files.h"

#ifndef HMS_SCHEMAS_DIR
#define HMS_SCHEMAS_DIR "schemas"
#endif

/* 2026-11-26T14:18:01.791510Z in pgoutput's microseconds since 2000-01-01. */
#define COMMIT_TIME INT64_C(849017881791510)
#define COMMIT_UNIX INT64_C(1795702681)

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

static hms_schema_set_t *schemas;
static hms_encoder_t *enc;
static hms_event_t ev;
static hms_err_t err;

/* The incidents capture without its contract: every column goes in data.
 * For the tests of made-up tables (types, the cache, absent attributes). */
static hms_capture_t open_cap;
static hms_encoder_t *open_enc;

static void setup(void)
{
    enc = hms_encoder_new("7312345678901234567", "ehr", &hms_capture_incidents, 1);
    ck_assert_ptr_nonnull(enc);
    open_cap = hms_capture_incidents;
    open_cap.columns = NULL;
    open_enc = hms_encoder_new("7312345678901234567", "ehr", &open_cap, 1);
    ck_assert_ptr_nonnull(open_enc);
    memset(&ev, 0, sizeof ev);
    err.msg[0] = '\0';
}

static void teardown(void)
{
    hms_event_free(&ev);
    hms_encoder_free(enc);
    hms_encoder_free(open_enc);
}

/* From here on the test encodes with the capture that has no contract. */
static void without_contract(void)
{
    hms_encoder_t *contract = enc;
    enc = open_enc;
    open_enc = contract;
}

/* The schemas are read once, before the tests are forked off. */
static void load_schemas(void)
{
    hms_err_t e = {0};
    schemas = hms_schema_set_new();
    ck_assert_msg(schemas != NULL &&
                      hms_test_schema_load_dir(schemas, HMS_SCHEMAS_DIR, NULL, &e) == HMS_OK,
                  "loading %s: %s", HMS_SCHEMAS_DIR, e.msg);
}

static void free_schemas(void)
{
    hms_schema_set_free(schemas);
    schemas = NULL;
}

static void incident_row(hms_pgo_value_t v[10], const char *region, const char *summary)
{
    v[0] = T("0b7e4c8a-3f2d-4e1a-9c5b-6d7e8f9a0b1c");
    v[1] = T("2026-11-26 14:18:01.79151+00");
    v[2] = T(region);
    v[3] = T("4");
    v[4] = T("open");
    v[5] = summary != NULL ? T(summary) : NUL;
    v[6] = T("dr. \"who\"");
    v[7] = T("3");
    v[8] = T("2026-11-26 14:18:02+00");
    v[9] = T("hms-ehr");
}

static hms_pgo_msg_t change(hms_pgo_kind_t kind, const hms_pgo_relation_t *rel, char old_kind,
                            const hms_pgo_value_t *oldv, const hms_pgo_value_t *newv)
{
    hms_pgo_msg_t m;
    memset(&m, 0, sizeof m);
    m.kind = kind;
    m.u.change.rel = rel;
    m.u.change.old_kind = old_kind;
    if (oldv != NULL)
        m.u.change.oldtup = (hms_pgo_tuple_t){rel->ncols, oldv};
    if (newv != NULL)
        m.u.change.newtup = (hms_pgo_tuple_t){rel->ncols, newv};
    return m;
}

static hms_txctx_t tx(uint64_t lsn, uint32_t ordinal)
{
    return (hms_txctx_t){lsn, 7421, COMMIT_TIME, ordinal};
}

/* Parses the body (it must be JSON) and, for complete incidents events,
 * checks it against the envelope and the data schema named by dataschema. */
static json_object *check_event(bool validate)
{
    json_tokener *tok = json_tokener_new_ex(256);
    json_object *doc = json_tokener_parse_ex(tok, ev.body.data, (int)ev.body.len);
    ck_assert_msg(doc != NULL && json_tokener_get_error(tok) == json_tokener_success &&
                      tok->char_offset == (int)ev.body.len,
                  "not JSON: %s", ev.body.data);
    json_tokener_free(tok);
    if (validate) {
        const hms_schema_t *env =
            hms_schema_set_find(schemas, "https://hms.gov/schemas/ehr/envelope.v1.json");
        ck_assert_ptr_nonnull(env);
        hms_err_t e;
        ck_assert_msg(hms_schema_validate(env, doc, &e) == HMS_OK, "envelope: %s", e.msg);
        json_object *ds, *data;
        ck_assert(json_object_object_get_ex(doc, "dataschema", &ds));
        ck_assert(json_object_object_get_ex(doc, "data", &data));
        const hms_schema_t *s = hms_schema_set_find(schemas, json_object_get_string(ds));
        ck_assert_msg(s != NULL, "no schema %s", json_object_get_string(ds));
        ck_assert_msg(hms_schema_validate(s, data, &e) == HMS_OK, "data: %s", e.msg);
    }
    return doc;
}

static void encode_ok(const hms_txctx_t *t, const hms_pgo_msg_t *m)
{
    hms_status_t st = hms_encoder_encode(enc, t, m, &ev, &err);
    ck_assert_msg(st == HMS_OK, "encode: %s", err.msg);
}

START_TEST(insert_exact)
{
    hms_pgo_value_t v[10];
    incident_row(v, "north", "fell");
    hms_pgo_msg_t m = change(HMS_PGO_INSERT, &inc_rel, 0, NULL, v);
    hms_txctx_t t = tx(0x16B3748, 0);
    ck_assert_ptr_eq(hms_encoder_capture(enc, &inc_rel), &hms_capture_incidents);
    encode_ok(&t, &m);
    ck_assert_str_eq(
        ev.body.data,
        "{\"specversion\":\"1.0\",\"type\":\"gov.hms.ehr.IncidentCreated.v1\","
        "\"source\":\"/hms-ehr/7312345678901234567/ehr/public.incidents\","
        "\"datacontenttype\":\"application/json\","
        "\"dataschema\":\"https://hms.gov/schemas/ehr/IncidentCreated.v1.json\","
        "\"id\":\"00000000016B3748-0\",\"subject\":\"0b7e4c8a-3f2d-4e1a-9c5b-6d7e8f9a0b1c\","
        "\"time\":\"2026-11-26T14:18:01.791510Z\",\"lsn\":\"0/16B3748\",\"txid\":7421,"
        "\"version\":3,\"updatedat\":\"2026-11-26T14:18:02.000000Z\",\"origin\":\"hms-ehr\","
        "\"data\":{\"id\":\"0b7e4c8a-3f2d-4e1a-9c5b-6d7e8f9a0b1c\","
        "\"occurred_at\":\"2026-11-26T14:18:01.791510Z\",\"region\":\"north\",\"severity\":4,"
        "\"status\":\"open\",\"summary\":\"fell\",\"reported_by\":\"dr. \\\"who\\\"\","
        "\"version\":3,\"updated_at\":\"2026-11-26T14:18:02.000000Z\",\"origin\":\"hms-ehr\"}}");
    ck_assert_str_eq(ev.routing_key.data, "incident.created.north");
    /* The subject header, for partitioning by incident. */
    ck_assert_str_eq(ev.subject.data, "0b7e4c8a-3f2d-4e1a-9c5b-6d7e8f9a0b1c");
    ck_assert_str_eq(ev.id, "00000000016B3748-0");
    ck_assert_str_eq(ev.type, "gov.hms.ehr.IncidentCreated.v1");
    ck_assert_int_eq(ev.time_unix, COMMIT_UNIX);
    json_object_put(check_event(true));
}
END_TEST

START_TEST(id_and_lsn_forms)
{
    hms_pgo_value_t v[10];
    incident_row(v, "north", NULL);
    hms_pgo_msg_t m = change(HMS_PGO_INSERT, &inc_rel, 0, NULL, v);
    hms_txctx_t t = tx(UINT64_C(0x00000001000000FF), 12);
    encode_ok(&t, &m);
    ck_assert_str_eq(ev.id, "00000001000000FF-12");
    ck_assert_ptr_nonnull(strstr(ev.body.data, "\"id\":\"00000001000000FF-12\""));
    ck_assert_ptr_nonnull(strstr(ev.body.data, "\"lsn\":\"1/FF\""));
    ck_assert_ptr_nonnull(strstr(ev.body.data, "\"summary\":null"));
    json_object_put(check_event(true));
    t = tx(UINT64_MAX, UINT32_MAX);
    t.xid = UINT32_MAX;
    encode_ok(&t, &m);
    ck_assert_str_eq(ev.id, "FFFFFFFFFFFFFFFF-4294967295");
    ck_assert_ptr_nonnull(strstr(ev.body.data, "\"lsn\":\"FFFFFFFF/FFFFFFFF\""));
    ck_assert_ptr_nonnull(strstr(ev.body.data, "\"txid\":4294967295"));
    json_object_put(check_event(true));
}
END_TEST

START_TEST(time_epochs)
{
    hms_pgo_value_t v[10];
    incident_row(v, "north", NULL);
    hms_pgo_msg_t m = change(HMS_PGO_INSERT, &inc_rel, 0, NULL, v);
    hms_txctx_t t = tx(1, 0);
    t.commit_time = 0;
    encode_ok(&t, &m);
    ck_assert_ptr_nonnull(strstr(ev.body.data, "\"time\":\"2000-01-01T00:00:00.000000Z\""));
    ck_assert_int_eq(ev.time_unix, 946684800);
    t.commit_time = -1; /* before the PostgreSQL epoch: floor, not truncation */
    encode_ok(&t, &m);
    ck_assert_ptr_nonnull(strstr(ev.body.data, "\"time\":\"1999-12-31T23:59:59.999999Z\""));
    ck_assert_int_eq(ev.time_unix, 946684799);
    t.commit_time = INT64_MAX;
    ck_assert_int_eq(hms_encoder_encode(enc, &t, &m, &ev, &err), HMS_ERR_ENCODE);
    ck_assert_ptr_nonnull(strstr(err.msg, "commit time"));
}
END_TEST

START_TEST(routing_key_region)
{
    hms_pgo_value_t v[10];
    incident_row(v, "eu.west*1#b", NULL);
    hms_pgo_msg_t m = change(HMS_PGO_INSERT, &inc_rel, 0, NULL, v);
    hms_txctx_t t = tx(0x100, 0);
    encode_ok(&t, &m);
    ck_assert_str_eq(ev.routing_key.data, "incident.created.eu_west_1_b");
    ck_assert_ptr_nonnull(strstr(ev.body.data, "\"region\":\"eu.west*1#b\""));
    json_object_put(check_event(true));

    incident_row(v, "", NULL);
    encode_ok(&t, &m);
    ck_assert_str_eq(ev.routing_key.data, "incident.created._");

    /* A region that fills the key exactly fits; one byte more fails the
     * change (it becomes a rejection) instead of being cut, which would
     * route it by a region the row does not have. */
    static char longr[300];
    size_t fit = 255 - strlen("incident.created.");
    memset(longr, 'r', fit);
    longr[fit] = '\0';
    incident_row(v, longr, NULL);
    encode_ok(&t, &m);
    ck_assert_uint_eq(ev.routing_key.len, 255);
    longr[fit] = 'r';
    longr[fit + 1] = '\0';
    incident_row(v, longr, NULL);
    ck_assert_int_eq(hms_encoder_encode(enc, &t, &m, &ev, &err), HMS_ERR_ENCODE);
    ck_assert_ptr_nonnull(strstr(err.msg, "region is 239 bytes"));
    ck_assert_ptr_nonnull(strstr(err.msg, "room for 238"));
    ck_assert_uint_eq(ev.body.len, 0);
}
END_TEST

START_TEST(update_toast_from_old)
{
    hms_pgo_value_t oldv[10], newv[10];
    incident_row(oldv, "south", "a long TOASTed summary");
    incident_row(newv, "north", NULL);
    newv[5] = UNCH;
    newv[7] = T("4");
    hms_pgo_msg_t m = change(HMS_PGO_UPDATE, &inc_rel, 'O', oldv, newv);
    hms_txctx_t t = tx(0x2000, 3);
    encode_ok(&t, &m);
    ck_assert_str_eq(ev.type, "gov.hms.ehr.IncidentUpdated.v1");
    ck_assert_str_eq(ev.routing_key.data, "incident.updated.north");
    ck_assert_ptr_nonnull(strstr(ev.body.data, "\"summary\":\"a long TOASTed summary\""));
    ck_assert_ptr_nonnull(strstr(ev.body.data, "\"version\":4,"));
    ck_assert_ptr_nonnull(strstr(
        ev.body.data, "\"dataschema\":\"https://hms.gov/schemas/ehr/IncidentUpdated.v1.json\""));
    json_object_put(check_event(true));
}
END_TEST

START_TEST(update_toast_unavailable)
{
    hms_pgo_value_t oldv[10], newv[10];
    incident_row(oldv, "south", NULL);
    incident_row(newv, "north", NULL);
    newv[5] = UNCH;
    hms_pgo_msg_t m = change(HMS_PGO_UPDATE, &inc_rel, 0, NULL, newv);
    hms_txctx_t t = tx(0x16B3748, 1);
    ck_assert_int_eq(hms_encoder_encode(enc, &t, &m, &ev, &err), HMS_ERR_ENCODE);
    ck_assert_msg(strstr(err.msg, "column summary") != NULL &&
                      strstr(err.msg, "unchanged TOASTed value") != NULL &&
                      strstr(err.msg, "REPLICA IDENTITY is not FULL") != NULL &&
                      strstr(err.msg, "public.incidents") != NULL &&
                      strstr(err.msg, "00000000016B3748-1") != NULL,
                  "message: %s", err.msg);
    ck_assert_uint_eq(ev.body.len, 0);
    ck_assert_uint_eq(ev.routing_key.len, 0);
    /* A key-only old row cannot supply it either, nor an old row whose own
     * value is missing. */
    m = change(HMS_PGO_UPDATE, &inc_rel, 'K', oldv, newv);
    ck_assert_int_eq(hms_encoder_encode(enc, &t, &m, &ev, &err), HMS_ERR_ENCODE);
    oldv[5] = UNCH;
    m = change(HMS_PGO_UPDATE, &inc_rel, 'O', oldv, newv);
    ck_assert_int_eq(hms_encoder_encode(enc, &t, &m, &ev, &err), HMS_ERR_ENCODE);
}
END_TEST

START_TEST(delete_full_and_key_only)
{
    hms_pgo_value_t oldv[10];
    incident_row(oldv, "west", "gone");
    hms_pgo_msg_t m = change(HMS_PGO_DELETE, &inc_rel, 'O', oldv, NULL);
    hms_txctx_t t = tx(0x3000, 0);
    encode_ok(&t, &m);
    ck_assert_str_eq(ev.type, "gov.hms.ehr.IncidentDeleted.v1");
    ck_assert_str_eq(ev.routing_key.data, "incident.deleted.west");
    ck_assert_ptr_nonnull(strstr(ev.body.data, "\"summary\":\"gone\""));
    json_object_put(check_event(true));

    /* REPLICA IDENTITY DEFAULT: only the key travels.  The Deleted schema
     * needs the whole row and subscribers its version, so no event is made
     * rather than an invalid one. */
    hms_pgo_value_t keyv[10];
    for (int i = 0; i < 10; i++)
        keyv[i] = NUL;
    keyv[0] = T("0b7e4c8a-3f2d-4e1a-9c5b-6d7e8f9a0b1c");
    m = change(HMS_PGO_DELETE, &inc_rel, 'K', keyv, NULL);
    ck_assert_int_eq(hms_encoder_encode(enc, &t, &m, &ev, &err), HMS_ERR_ENCODE);
    ck_assert_msg(strstr(err.msg, "public.incidents") != NULL &&
                      strstr(err.msg, "only its key") != NULL &&
                      strstr(err.msg, "REPLICA IDENTITY is not FULL") != NULL,
                  "message: %s", err.msg);
    ck_assert_uint_eq(ev.body.len, 0);
    ck_assert_uint_eq(ev.routing_key.len, 0);
    ck_assert_ptr_null(ev.type);
}
END_TEST

START_TEST(key_errors)
{
    hms_pgo_value_t v[10];
    incident_row(v, "north", NULL);
    v[0] = NUL;
    hms_pgo_msg_t m = change(HMS_PGO_INSERT, &inc_rel, 0, NULL, v);
    hms_txctx_t t = tx(0x100, 0);
    ck_assert_int_eq(hms_encoder_encode(enc, &t, &m, &ev, &err), HMS_ERR_ENCODE);
    ck_assert_ptr_nonnull(strstr(err.msg, "column id"));

    hms_pgo_column_t cols[2] = {{(char *)"ident", 23, -1, 1}, {(char *)"region", 25, -1, 0}};
    hms_pgo_relation_t rel = {555, (char *)"public", (char *)"incidents", 'f', 2, cols, 1};
    hms_pgo_value_t v2[2] = {T("1"), T("x")};
    m = change(HMS_PGO_INSERT, &rel, 0, NULL, v2);
    ck_assert_int_eq(hms_encoder_encode(open_enc, &t, &m, &ev, &err), HMS_ERR_ENCODE);
    ck_assert_ptr_nonnull(strstr(err.msg, "no key column id"));
    /* With the contract, the key is first of all a contract column. */
    ck_assert_int_eq(hms_encoder_encode(enc, &t, &m, &ev, &err), HMS_ERR_ENCODE);
    ck_assert_ptr_nonnull(strstr(err.msg, "column id is missing from public.incidents"));

    /* Wrong column count and a binary value. */
    incident_row(v, "north", NULL);
    m = change(HMS_PGO_INSERT, &inc_rel, 0, NULL, v);
    m.u.change.newtup.ncols = 9;
    ck_assert_int_eq(hms_encoder_encode(enc, &t, &m, &ev, &err), HMS_ERR_ENCODE);
    m.u.change.newtup.ncols = 10;
    v[4] = (hms_pgo_value_t){HMS_PGO_VAL_BINARY, 4, "open"};
    ck_assert_int_eq(hms_encoder_encode(enc, &t, &m, &ev, &err), HMS_ERR_ENCODE);
    ck_assert_ptr_nonnull(strstr(err.msg, "binary"));
    /* Not a row change. */
    m.kind = HMS_PGO_BEGIN;
    ck_assert_int_eq(hms_encoder_encode(enc, &t, &m, &ev, &err), HMS_ERR_STATE);
}
END_TEST

START_TEST(not_captured)
{
    hms_pgo_column_t cols[1] = {{(char *)"id", 23, -1, 1}};
    hms_pgo_relation_t rel = {777, (char *)"public", (char *)"other", 'd', 1, cols, 1};
    hms_pgo_relation_t cat = {778, (char *)"", (char *)"incidents", 'd', 1, cols, 1};
    ck_assert_ptr_null(hms_encoder_capture(enc, &rel));
    ck_assert_ptr_null(hms_encoder_capture(enc, &cat));
    hms_pgo_value_t v[1] = {T("1")};
    hms_pgo_msg_t m = change(HMS_PGO_INSERT, &rel, 0, NULL, v);
    hms_txctx_t t = tx(0x100, 0);
    ck_assert_int_eq(hms_encoder_encode(enc, &t, &m, &ev, &err), HMS_ERR_STATE);
}
END_TEST

START_TEST(optional_attributes_omitted)
{
    without_contract();
    hms_pgo_column_t cols[2] = {{(char *)"id", 23, -1, 1}, {(char *)"note", 25, -1, 0}};
    hms_pgo_relation_t rel = {556, (char *)"public", (char *)"incidents", 'f', 2, cols, 1};
    hms_pgo_value_t v[2] = {T("42"), T("x")};
    hms_pgo_msg_t m = change(HMS_PGO_INSERT, &rel, 0, NULL, v);
    hms_txctx_t t = tx(0x100, 0);
    encode_ok(&t, &m);
    ck_assert_ptr_null(strstr(ev.body.data, "\"version\""));
    ck_assert_ptr_null(strstr(ev.body.data, "\"updatedat\""));
    ck_assert_ptr_null(strstr(ev.body.data, "\"origin\""));
    ck_assert_ptr_nonnull(strstr(ev.body.data, "\"subject\":\"42\""));
    ck_assert_ptr_nonnull(strstr(ev.body.data, "\"data\":{\"id\":42,\"note\":\"x\"}}"));
    ck_assert_str_eq(ev.routing_key.data, "incident.created._");
    json_object_put(check_event(false));
}
END_TEST

START_TEST(relation_cache_invalidation)
{
    without_contract();
    hms_pgo_column_t cols[2] = {{(char *)"id", 23, -1, 1}, {(char *)"a", 25, -1, 0}};
    hms_pgo_relation_t rel = {557, (char *)"public", (char *)"incidents", 'f', 2, cols, 1};
    hms_pgo_value_t v[2] = {T("1"), T("x")};
    hms_pgo_msg_t m = change(HMS_PGO_INSERT, &rel, 0, NULL, v);
    hms_txctx_t t = tx(0x100, 0);
    encode_ok(&t, &m);
    ck_assert_ptr_nonnull(strstr(ev.body.data, "\"data\":{\"id\":1,\"a\":\"x\"}}"));
    /* Same pointers, renamed column and changed type: the decoder gives
     * every Relation message a new generation, even when memory is reused. */
    char renamed[] = "b";
    cols[1].name = renamed;
    cols[1].type_oid = 23;
    rel.generation = 2;
    v[1] = T("5");
    encode_ok(&t, &m);
    ck_assert_ptr_nonnull(strstr(ev.body.data, "\"data\":{\"id\":1,\"b\":5}}"));
    renamed[0] = 'c';
    rel.generation = 4;
    encode_ok(&t, &m);
    ck_assert_ptr_nonnull(strstr(ev.body.data, "\"data\":{\"id\":1,\"c\":5}}"));
    /* A new relation pointer for the same relid with the key moved. */
    hms_pgo_column_t cols2[3] = {
        {(char *)"z", 25, -1, 0}, {(char *)"id", 23, -1, 1}, {(char *)"version", 20, -1, 0}};
    hms_pgo_relation_t rel2 = {557, (char *)"public", (char *)"incidents", 'f', 3, cols2, 3};
    hms_pgo_value_t v2[3] = {T("q"), T("9"), T("11")};
    m = change(HMS_PGO_INSERT, &rel2, 0, NULL, v2);
    encode_ok(&t, &m);
    ck_assert_ptr_nonnull(strstr(ev.body.data, "\"subject\":\"9\""));
    ck_assert_ptr_nonnull(strstr(ev.body.data, "\"version\":11,"));
    ck_assert_ptr_nonnull(strstr(ev.body.data, "\"data\":{\"z\":\"q\",\"id\":9,\"version\":11}}"));
}
END_TEST

/* A table with one column of every mapped type.  How each value turns into
 * JSON is test_pgvalue's business; here, that the encoder hands each
 * column's text and type to it and names the column when it refuses. */
enum { NTYPES = 20 };
static hms_pgo_column_t type_cols[NTYPES] = {
    {(char *)"id", 23, -1, 1},     {(char *)"b", 16, -1, 0},     {(char *)"i2", 21, -1, 0},
    {(char *)"i8", 20, -1, 0},     {(char *)"o", 26, -1, 0},     {(char *)"f4", 700, -1, 0},
    {(char *)"f8", 701, -1, 0},    {(char *)"num", 1700, -1, 0}, {(char *)"ts", 1114, -1, 0},
    {(char *)"tstz", 1184, -1, 0}, {(char *)"j", 114, -1, 0},    {(char *)"jb", 3802, -1, 0},
    {(char *)"u", 2950, -1, 0},    {(char *)"t", 25, -1, 0},     {(char *)"vc", 1043, -1, 0},
    {(char *)"inet", 869, -1, 0},  {(char *)"ia", 1007, -1, 0},  {(char *)"ta", 1009, -1, 0},
    {(char *)"pt", 600, -1, 0},    {(char *)"na", 1231, -1, 0},
};
static hms_pgo_relation_t type_rel = {
    600, (char *)"public", (char *)"incidents", 'f', NTYPES, type_cols, 1};

START_TEST(values_by_column_type)
{
    without_contract();
    hms_pgo_value_t v[NTYPES] = {
        T("1"),
        T("t"),
        T("-32768"),
        T("9223372036854775807"),
        T("4294967295"),
        T("NaN"),
        T("1.5e+20"),
        T("12345678901234567890.123456789"),
        T("2026-11-26 14:18:01.79151"),
        T("2026-01-01 01:00:00-05:30"),
        T("{\"a\": [1]}"),
        T("[]"),
        T("0b7e4c8a-3f2d-4e1a-9c5b-6d7e8f9a0b1c"),
        T("tab\t"),
        NUL,
        T("192.168.0.1/32"),
        T("{1,NULL}"),
        T("{a,\"b c\"}"),
        T("(1,2)"),
        T("{1.50,NaN}"),
    };
    hms_pgo_msg_t m = change(HMS_PGO_INSERT, &type_rel, 0, NULL, v);
    hms_txctx_t t = tx(0x100, 0);
    encode_ok(&t, &m);
    json_object_put(check_event(false));
    ck_assert_ptr_nonnull(strstr(
        ev.body.data,
        "\"data\":{\"id\":1,\"b\":true,\"i2\":-32768,\"i8\":9223372036854775807,\"o\":4294967295,"
        "\"f4\":\"NaN\",\"f8\":1.5e+20,\"num\":\"12345678901234567890.123456789\","
        "\"ts\":\"2026-11-26T14:18:01.791510Z\",\"tstz\":\"2026-01-01T06:30:00.000000Z\","
        "\"j\":{\"a\": [1]},\"jb\":[],\"u\":\"0b7e4c8a-3f2d-4e1a-9c5b-6d7e8f9a0b1c\","
        "\"t\":\"tab\\t\",\"vc\":null,\"inet\":\"192.168.0.1/32\",\"ia\":[1,null],"
        "\"ta\":[\"a\",\"b c\"],\"pt\":\"(1,2)\",\"na\":[\"1.50\",\"NaN\"]}}"));

    /* A value its type refuses stops the event, naming table, column, type
     * and event. */
    v[11] = T("[1,]");
    ck_assert_int_eq(hms_encoder_encode(enc, &t, &m, &ev, &err), HMS_ERR_ENCODE);
    ck_assert_str_eq(err.msg, "public.incidents column jb: value of type oid 3802 is not valid "
                              "JSON (event 0000000000000100-0)");
    ck_assert_uint_eq(ev.body.len, 0);
    ck_assert_uint_eq(ev.routing_key.len, 0);
    v[11] = T("[]");
    v[2] = T("1x");
    ck_assert_int_eq(hms_encoder_encode(enc, &t, &m, &ev, &err), HMS_ERR_ENCODE);
    ck_assert_ptr_nonnull(strstr(err.msg, "column i2: value of type oid 21 is not an integer"));

    /* updated_at that RFC 3339 cannot hold stops the event too: it orders
     * events, so it may not travel as text. */
    hms_pgo_value_t iv[10];
    incident_row(iv, "north", NULL);
    iv[8] = T("infinity");
    m = change(HMS_PGO_INSERT, &inc_rel, 0, NULL, iv);
    ck_assert_int_eq(hms_encoder_encode(enc, &t, &m, &ev, &err), HMS_ERR_ENCODE);
    ck_assert_ptr_nonnull(strstr(err.msg, "column updated_at: updated_at cannot be expressed"));
    iv[8] = T("2026-11-26 14:18:02+00");
    iv[7] = T("3.0");
    ck_assert_int_eq(hms_encoder_encode(enc, &t, &m, &ev, &err), HMS_ERR_ENCODE);
    ck_assert_ptr_nonnull(strstr(err.msg, "column version: version is not an integer"));
}
END_TEST

START_TEST(buffers_reused)
{
    hms_pgo_value_t v[10];
    incident_row(v, "north", "x");
    hms_pgo_msg_t m = change(HMS_PGO_INSERT, &inc_rel, 0, NULL, v);
    hms_txctx_t t = tx(0x100, 0);
    encode_ok(&t, &m);
    const char *body = ev.body.data, *rk = ev.routing_key.data;
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    int n = 20000;
    for (int i = 0; i < n; i++) {
        t.ordinal = (uint32_t)i;
        encode_ok(&t, &m);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    ck_assert_ptr_eq(ev.body.data, body);
    ck_assert_ptr_eq(ev.routing_key.data, rk);
    double secs = (double)(b.tv_sec - a.tv_sec) + (double)(b.tv_nsec - a.tv_nsec) / 1e9;
    fprintf(stderr, "test_event: %d incident events encoded in %.3f s (%.0f/s)\n", n, secs,
            n / secs);
}
END_TEST

/* An Update that moves the row to another key is a Deleted of the old key
 * (old row) then a Created of the new key (new row), at the ordinals the
 * caller gives; an unchanged TOASTed value of the new row comes from the old. */
START_TEST(key_change_two_events)
{
    hms_pgo_value_t oldv[10], newv[10];
    incident_row(oldv, "west", "long text");
    incident_row(newv, "north", NULL);
    newv[0] = T("9d2f6a10-5b3c-4e7d-8a91-0c1d2e3f4a5b");
    newv[5] = UNCH;
    newv[7] = T("4");
    hms_pgo_msg_t m = change(HMS_PGO_UPDATE, &inc_rel, 'O', oldv, newv);
    hms_txctx_t t = tx(0x4000, 5);
    unsigned n = 0;
    ck_assert_int_eq(hms_encoder_encode_part(enc, &t, &m, 0, &ev, &n, &err), HMS_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(ev.id, "0000000000004000-5");
    ck_assert_str_eq(ev.type, "gov.hms.ehr.IncidentDeleted.v1");
    ck_assert_str_eq(ev.routing_key.data, "incident.deleted.west");
    json_object *doc = check_event(true);
    ck_assert_str_eq(json_object_get_string(json_object_object_get(doc, "subject")),
                     "0b7e4c8a-3f2d-4e1a-9c5b-6d7e8f9a0b1c");
    json_object *data = json_object_object_get(doc, "data");
    ck_assert_str_eq(json_object_get_string(json_object_object_get(data, "id")),
                     "0b7e4c8a-3f2d-4e1a-9c5b-6d7e8f9a0b1c");
    ck_assert_str_eq(json_object_get_string(json_object_object_get(data, "summary")), "long text");
    ck_assert_int_eq(json_object_get_int(json_object_object_get(doc, "version")), 3);
    json_object_put(doc);

    t.ordinal = 6;
    ck_assert_int_eq(hms_encoder_encode_part(enc, &t, &m, 1, &ev, &n, &err), HMS_OK);
    ck_assert_uint_eq(n, 2);
    ck_assert_str_eq(ev.id, "0000000000004000-6");
    ck_assert_str_eq(ev.type, "gov.hms.ehr.IncidentCreated.v1");
    ck_assert_str_eq(ev.routing_key.data, "incident.created.north");
    doc = check_event(true);
    ck_assert_str_eq(json_object_get_string(json_object_object_get(doc, "subject")),
                     "9d2f6a10-5b3c-4e7d-8a91-0c1d2e3f4a5b");
    data = json_object_object_get(doc, "data");
    ck_assert_str_eq(json_object_get_string(json_object_object_get(data, "id")),
                     "9d2f6a10-5b3c-4e7d-8a91-0c1d2e3f4a5b");
    ck_assert_str_eq(json_object_get_string(json_object_object_get(data, "summary")), "long text");
    ck_assert_int_eq(json_object_get_int(json_object_object_get(doc, "version")), 4);
    json_object_put(doc);

    ck_assert_int_eq(hms_encoder_encode_part(enc, &t, &m, 2, &ev, &n, &err), HMS_ERR_STATE);
    ck_assert_uint_eq(ev.body.len, 0);
    /* The one-event call gives the first. */
    encode_ok(&t, &m);
    ck_assert_str_eq(ev.type, "gov.hms.ehr.IncidentDeleted.v1");

    /* The same key is an ordinary Updated. */
    newv[0] = oldv[0];
    ck_assert_int_eq(hms_encoder_encode_part(enc, &t, &m, 0, &ev, &n, &err), HMS_OK);
    ck_assert_uint_eq(n, 1);
    ck_assert_str_eq(ev.type, "gov.hms.ehr.IncidentUpdated.v1");
    ck_assert_int_eq(hms_encoder_encode_part(enc, &t, &m, 1, &ev, &n, &err), HMS_ERR_STATE);

    /* REPLICA IDENTITY DEFAULT sends the old key only: no valid Deleted
     * can be made of it, so the change is refused as a key-only Delete is. */
    hms_pgo_value_t keyv[10];
    for (int i = 0; i < 10; i++)
        keyv[i] = NUL;
    keyv[0] = oldv[0];
    newv[0] = T("9d2f6a10-5b3c-4e7d-8a91-0c1d2e3f4a5b");
    newv[5] = T("short");
    m = change(HMS_PGO_UPDATE, &inc_rel, 'K', keyv, newv);
    ck_assert_int_eq(hms_encoder_encode_part(enc, &t, &m, 0, &ev, &n, &err), HMS_ERR_ENCODE);
    ck_assert_msg(strstr(err.msg, "key change's old row arrived with only its key") != NULL,
                  "message: %s", err.msg);
    ck_assert_uint_eq(ev.body.len, 0);
}
END_TEST

/* A TRUNCATE: subject the table, data {}, the version it drew (0 where the
 * source said none), updatedat the commit time, routing key
 * incident.truncated, valid against the schemas. */
START_TEST(truncate_event)
{
    hms_txctx_t t = tx(0x16B3748, 2);
    ck_assert_int_eq(hms_encoder_encode_truncate(enc, &t, &inc_rel, 0, &ev, &err), HMS_OK);
    ck_assert_str_eq(
        ev.body.data,
        "{\"specversion\":\"1.0\",\"type\":\"gov.hms.ehr.IncidentsTruncated.v1\","
        "\"source\":\"/hms-ehr/7312345678901234567/ehr/public.incidents\","
        "\"datacontenttype\":\"application/json\","
        "\"dataschema\":\"https://hms.gov/schemas/ehr/IncidentsTruncated.v1.json\","
        "\"id\":\"00000000016B3748-2\",\"subject\":\"public.incidents\","
        "\"time\":\"2026-11-26T14:18:01.791510Z\",\"lsn\":\"0/16B3748\",\"txid\":7421,"
        "\"version\":0,\"updatedat\":\"2026-11-26T14:18:01.791510Z\",\"origin\":\"hms-ehr\","
        "\"data\":{}}");
    ck_assert_str_eq(ev.routing_key.data, "incident.truncated");
    ck_assert_str_eq(ev.subject.data, "public.incidents");
    ck_assert_str_eq(ev.id, "00000000016B3748-2");
    ck_assert_str_eq(ev.type, "gov.hms.ehr.IncidentsTruncated.v1");
    ck_assert_int_eq(ev.time_unix, COMMIT_UNIX);
    json_object_put(check_event(true));

    ck_assert_int_eq(
        hms_encoder_encode_truncate(enc, &t, &inc_rel, 9223372036854775807ULL, &ev, &err), HMS_OK);
    ck_assert_ptr_nonnull(strstr(ev.body.data, ",\"version\":9223372036854775807,"));
    json_object_put(check_event(true));

    hms_pgo_relation_t other = inc_rel;
    other.relname = (char *)"audit";
    ck_assert_int_eq(hms_encoder_encode_truncate(enc, &t, &other, 1, &ev, &err), HMS_ERR_STATE);
    ck_assert_uint_eq(ev.body.len, 0);
    ck_assert_int_eq(hms_encoder_encode_truncate(enc, &t, NULL, 1, &ev, &err), HMS_ERR_STATE);
}
END_TEST

/* ---- schema changes while streaming ---- */

/* incidents after `ADD COLUMN ward text` and `ADD COLUMN bed int`, with ward
 * placed among the contract's columns: a column's position must not matter. */
enum { WIDE_NCOLS = 12 };
static hms_pgo_column_t wide_cols[WIDE_NCOLS] = {
    {(char *)"id", 2950, -1, 1},     {(char *)"occurred_at", 1184, -1, 0},
    {(char *)"region", 25, -1, 0},   {(char *)"ward", 25, -1, 0},
    {(char *)"severity", 21, -1, 0}, {(char *)"status", 25, -1, 0},
    {(char *)"summary", 25, -1, 0},  {(char *)"reported_by", 25, -1, 0},
    {(char *)"version", 20, -1, 0},  {(char *)"updated_at", 1184, -1, 0},
    {(char *)"origin", 25, -1, 0},   {(char *)"bed", 23, -1, 0},
};

/* incident_row's values in wide_cols' order. */
static void wide_row(hms_pgo_value_t w[WIDE_NCOLS], const char *ward, const char *bed)
{
    hms_pgo_value_t v[10];
    incident_row(v, "north", "fell");
    memcpy(w, v, 3 * sizeof *v);
    w[3] = ward != NULL ? T(ward) : NUL;
    memcpy(w + 4, v + 3, 7 * sizeof *v);
    w[11] = bed != NULL ? T(bed) : NUL;
}

#define CONTRACT_DATA                                                                              \
    "\"data\":{\"id\":\"0b7e4c8a-3f2d-4e1a-9c5b-6d7e8f9a0b1c\","                                   \
    "\"occurred_at\":\"2026-11-26T14:18:01.791510Z\",\"region\":\"north\",\"severity\":4,"         \
    "\"status\":\"open\",\"summary\":\"fell\",\"reported_by\":\"dr. \\\"who\\\"\","                \
    "\"version\":3,\"updated_at\":\"2026-11-26T14:18:02.000000Z\",\"origin\":\"hms-ehr\""

/* Columns outside the contract go under data._extra, after the contract's
 * columns in the contract's order, in every kind of event, and each event
 * stays valid against the v1 data schemas. */
START_TEST(extra_columns_under_extra)
{
    hms_pgo_relation_t rel = {
        16384, (char *)"public", (char *)"incidents", 'f', WIDE_NCOLS, wide_cols, 1};
    hms_pgo_value_t w[WIDE_NCOLS], old[WIDE_NCOLS];
    wide_row(w, "3B", "12");
    hms_pgo_msg_t m = change(HMS_PGO_INSERT, &rel, 0, NULL, w);
    hms_txctx_t t = tx(0x100, 0);
    encode_ok(&t, &m);
    ck_assert_msg(
        strstr(ev.body.data, CONTRACT_DATA ",\"_extra\":{\"ward\":\"3B\",\"bed\":12}}}") != NULL,
        "body: %s", ev.body.data);
    json_object *doc = check_event(true);
    json_object *extra = json_object_object_get(json_object_object_get(doc, "data"), "_extra");
    ck_assert_str_eq(json_object_get_string(json_object_object_get(extra, "ward")), "3B");
    json_object_put(doc);

    /* SQL NULL in an extra column is null there, as anywhere. */
    wide_row(w, NULL, NULL);
    wide_row(old, "3B", "12");
    m = change(HMS_PGO_UPDATE, &rel, 'O', old, w);
    encode_ok(&t, &m);
    ck_assert_str_eq(ev.type, "gov.hms.ehr.IncidentUpdated.v1");
    ck_assert_ptr_nonnull(
        strstr(ev.body.data, CONTRACT_DATA ",\"_extra\":{\"ward\":null,\"bed\":null}}}"));
    json_object_put(check_event(true));
    /* An unchanged TOASTed extra column comes from the old row too. */
    w[3] = UNCH;
    encode_ok(&t, &m);
    ck_assert_ptr_nonnull(strstr(ev.body.data, "\"_extra\":{\"ward\":\"3B\",\"bed\":null}}}"));

    m = change(HMS_PGO_DELETE, &rel, 'O', old, NULL);
    encode_ok(&t, &m);
    ck_assert_str_eq(ev.type, "gov.hms.ehr.IncidentDeleted.v1");
    ck_assert_ptr_nonnull(strstr(ev.body.data, "\"_extra\":{\"ward\":\"3B\",\"bed\":12}}}"));
    json_object_put(check_event(true));

    /* A snapshot reads SELECT *: the same split. */
    hms_pgo_tuple_t row = {WIDE_NCOLS, old};
    ck_assert_int_eq(hms_encoder_encode_snapshot(enc, &t, &rel, &row, "snap-1", NULL, &ev, &err),
                     HMS_OK);
    ck_assert_ptr_nonnull(strstr(ev.body.data, CONTRACT_DATA ",\"_extra\":{\"ward\":\"3B\","));
    json_object_put(check_event(true));

    /* Without extra columns there is no _extra member. */
    hms_pgo_value_t v[10];
    incident_row(v, "north", "fell");
    m = change(HMS_PGO_INSERT, &inc_rel, 0, NULL, v);
    encode_ok(&t, &m);
    ck_assert_ptr_null(strstr(ev.body.data, "_extra"));
}
END_TEST

/* A contract column the relation lacks fails every change, naming the
 * column, the table and the event, and leaves nothing to publish. */
START_TEST(dropped_contract_column)
{
    hms_pgo_column_t cols[9];
    hms_pgo_value_t v[10], w[9];
    incident_row(v, "north", "fell");
    for (int i = 0, k = 0; i < 10; i++) {
        if (i == 5) /* summary */
            continue;
        cols[k] = inc_cols[i];
        w[k++] = v[i];
    }
    hms_pgo_relation_t rel = {16384, (char *)"public", (char *)"incidents", 'f', 9, cols, 2};
    hms_pgo_msg_t m = change(HMS_PGO_INSERT, &rel, 0, NULL, w);
    hms_txctx_t t = tx(0x16B3748, 4);
    ck_assert_int_eq(hms_encoder_encode(enc, &t, &m, &ev, &err), HMS_ERR_ENCODE);
    ck_assert_str_eq(err.msg, "column summary is missing from public.incidents (dropped or "
                              "renamed?) (event 00000000016B3748-4)");
    ck_assert_str_eq(ev.id, "00000000016B3748-4");
    ck_assert_uint_eq(ev.body.len, 0);
    ck_assert_uint_eq(ev.routing_key.len, 0);
    m = change(HMS_PGO_UPDATE, &rel, 'O', w, w);
    ck_assert_int_eq(hms_encoder_encode(enc, &t, &m, &ev, &err), HMS_ERR_ENCODE);
    ck_assert_ptr_nonnull(strstr(err.msg, "column summary is missing"));
    m = change(HMS_PGO_DELETE, &rel, 'O', w, NULL);
    ck_assert_int_eq(hms_encoder_encode(enc, &t, &m, &ev, &err), HMS_ERR_ENCODE);
    ck_assert_ptr_nonnull(strstr(err.msg, "column summary is missing"));
    hms_pgo_tuple_t row = {9, w};
    ck_assert_int_eq(hms_encoder_encode_snapshot(enc, &t, &rel, &row, "s", NULL, &ev, &err),
                     HMS_ERR_ENCODE);
    ck_assert_ptr_nonnull(strstr(err.msg, "column summary is missing"));
    ck_assert_uint_eq(ev.body.len, 0);
}
END_TEST

/* A renamed contract column is missing under its contract name; the new
 * name is not smuggled in under _extra.  Renamed back, events resume. */
START_TEST(renamed_contract_column)
{
    hms_pgo_column_t cols[10];
    memcpy(cols, inc_cols, sizeof cols);
    cols[5].name = (char *)"description";
    hms_pgo_relation_t rel = {16384, (char *)"public", (char *)"incidents", 'f', 10, cols, 2};
    hms_pgo_value_t v[10];
    incident_row(v, "north", "fell");
    hms_pgo_msg_t m = change(HMS_PGO_UPDATE, &rel, 'O', v, v);
    hms_txctx_t t = tx(0x200, 1);
    ck_assert_int_eq(hms_encoder_encode(enc, &t, &m, &ev, &err), HMS_ERR_ENCODE);
    ck_assert_str_eq(err.msg, "column summary is missing from public.incidents (dropped or "
                              "renamed?) (event 0000000000000200-1)");
    ck_assert_uint_eq(ev.body.len, 0);

    hms_pgo_relation_t back = {16384, (char *)"public", (char *)"incidents", 'f', 10, inc_cols, 3};
    m = change(HMS_PGO_UPDATE, &back, 'O', v, v);
    encode_ok(&t, &m);
    ck_assert_ptr_nonnull(strstr(ev.body.data, "\"summary\":\"fell\""));
    ck_assert_ptr_null(strstr(ev.body.data, "description"));
    json_object_put(check_event(true));
}
END_TEST

/* Validates the current event's data against its data schema. */
static hms_status_t data_valid(hms_err_t *e)
{
    json_object *doc = check_event(false), *ds, *data;
    ck_assert(json_object_object_get_ex(doc, "dataschema", &ds));
    ck_assert(json_object_object_get_ex(doc, "data", &data));
    const hms_schema_t *s = hms_schema_set_find(schemas, json_object_get_string(ds));
    ck_assert_ptr_nonnull(s);
    hms_status_t st = hms_schema_validate(s, data, e);
    json_object_put(doc);
    return st;
}

/* pgoutput describes the table again (same relid, new generation) before
 * the first change after each DDL statement; the encoder follows every
 * description: ADD COLUMN, DROP COLUMN, compatible and incompatible type
 * changes. */
START_TEST(relation_redescribed_after_ddl)
{
    hms_pgo_value_t v[10], w[WIDE_NCOLS];
    incident_row(v, "north", "fell");
    hms_txctx_t t = tx(0x300, 0);
    hms_pgo_relation_t rel = inc_rel;
    hms_pgo_msg_t m = change(HMS_PGO_INSERT, &rel, 0, NULL, v);
    encode_ok(&t, &m);
    ck_assert_ptr_null(strstr(ev.body.data, "_extra"));

    /* ADD COLUMN ward, ADD COLUMN bed */
    hms_pgo_relation_t added = {
        inc_rel.relid, (char *)"public", (char *)"incidents", 'f', WIDE_NCOLS, wide_cols, 2};
    wide_row(w, "3B", NULL);
    m = change(HMS_PGO_INSERT, &added, 0, NULL, w);
    encode_ok(&t, &m);
    ck_assert_ptr_nonnull(strstr(ev.body.data, ",\"_extra\":{\"ward\":\"3B\",\"bed\":null}}}"));
    json_object_put(check_event(true));

    /* DROP COLUMN ward, DROP COLUMN bed: the first description again. */
    rel.generation = 3;
    m = change(HMS_PGO_INSERT, &rel, 0, NULL, v);
    encode_ok(&t, &m);
    ck_assert_ptr_null(strstr(ev.body.data, "_extra"));
    json_object_put(check_event(true));

    /* severity smallint -> bigint, reported_by text -> varchar(200): the
     * values are written as before, and stay valid. */
    hms_pgo_column_t cols[10];
    memcpy(cols, inc_cols, sizeof cols);
    cols[3].type_oid = 20;
    cols[6].type_oid = 1043;
    cols[6].typmod = 204;
    hms_pgo_relation_t retyped = {
        inc_rel.relid, (char *)"public", (char *)"incidents", 'f', 10, cols, 4};
    m = change(HMS_PGO_INSERT, &retyped, 0, NULL, v);
    encode_ok(&t, &m);
    ck_assert_ptr_nonnull(strstr(ev.body.data, "\"severity\":4,"));
    json_object_put(check_event(true));

    /* severity -> numeric: written by its new type (a string), which the
     * data schema refuses: validation, not the encoder, rejects it. */
    cols[3].type_oid = 1700;
    retyped.generation = 5;
    encode_ok(&t, &m);
    ck_assert_ptr_nonnull(strstr(ev.body.data, "\"severity\":\"4\","));
    hms_err_t e;
    ck_assert_int_ne(data_valid(&e), HMS_OK);
    ck_assert_ptr_nonnull(strstr(e.msg, "severity"));
}
END_TEST

static Suite *event_suite(void)
{
    Suite *s = suite_create("event");
    TCase *tc = tcase_create("encode");
    tcase_add_unchecked_fixture(tc, load_schemas, free_schemas);
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, insert_exact);
    tcase_add_test(tc, id_and_lsn_forms);
    tcase_add_test(tc, time_epochs);
    tcase_add_test(tc, routing_key_region);
    tcase_add_test(tc, update_toast_from_old);
    tcase_add_test(tc, update_toast_unavailable);
    tcase_add_test(tc, delete_full_and_key_only);
    tcase_add_test(tc, key_errors);
    tcase_add_test(tc, not_captured);
    tcase_add_test(tc, optional_attributes_omitted);
    tcase_add_test(tc, relation_cache_invalidation);
    tcase_add_test(tc, values_by_column_type);
    tcase_add_test(tc, buffers_reused);
    tcase_add_test(tc, key_change_two_events);
    tcase_add_test(tc, truncate_event);
    tcase_add_test(tc, extra_columns_under_extra);
    tcase_add_test(tc, dropped_contract_column);
    tcase_add_test(tc, renamed_contract_column);
    tcase_add_test(tc, relation_redescribed_after_ddl);
    suite_add_tcase(s, tc);
    return s;
}

HMS_CHECK_MAIN(event_suite)
