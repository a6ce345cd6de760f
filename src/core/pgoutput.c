/* pgoutput.c -- decodes PostgreSQL's pgoutput messages (protocol version 1)
 * into hms_pgo_msg_t, keeping the relation cache the changes refer to. */
#include "core/pgoutput.h"

#include <assert.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/buf.h"
#include "core/bytes.h"

/* A bounds-checked cursor over one message.  Every get either consumes what
 * it asked for and returns true, or consumes nothing and returns false, so a
 * caller can never read past the end by forgetting a length check: the only
 * way to get a value is through a get whose result it must test. */
typedef struct {
    const uint8_t *p;
    size_t len;
    size_t pos;
} hms_pgo_reader_t;

static size_t rd_left(const hms_pgo_reader_t *r)
{
    return r->len - r->pos;
}

static bool rd_u8(hms_pgo_reader_t *r, uint8_t *out)
{
    if (rd_left(r) < 1)
        return false;
    *out = r->p[r->pos++];
    return true;
}

static bool rd_u16(hms_pgo_reader_t *r, uint16_t *out)
{
    if (rd_left(r) < 2)
        return false;
    *out = hms_load_be16(r->p + r->pos);
    r->pos += 2;
    return true;
}

static bool rd_u32(hms_pgo_reader_t *r, uint32_t *out)
{
    if (rd_left(r) < 4)
        return false;
    *out = hms_load_be32(r->p + r->pos);
    r->pos += 4;
    return true;
}

static bool rd_u64(hms_pgo_reader_t *r, uint64_t *out)
{
    if (rd_left(r) < 8)
        return false;
    *out = hms_load_be64(r->p + r->pos);
    r->pos += 8;
    return true;
}

/* Two's complement reinterpretation: the wire carries int64 bit patterns. */
static bool rd_i64(hms_pgo_reader_t *r, int64_t *out)
{
    uint64_t u;
    if (!rd_u64(r, &u))
        return false;
    memcpy(out, &u, sizeof(*out));
    return true;
}

static bool rd_i32(hms_pgo_reader_t *r, int32_t *out)
{
    uint32_t u;
    if (!rd_u32(r, &u))
        return false;
    memcpy(out, &u, sizeof(*out));
    return true;
}

/* A C string whose NUL lies within the message; *out borrows from it. */
static bool rd_str(hms_pgo_reader_t *r, const char **out, size_t *outlen)
{
    const uint8_t *start = r->p + r->pos;
    const uint8_t *nul = memchr(start, '\0', rd_left(r));
    if (nul == NULL)
        return false;
    *out = (const char *)start;
    if (outlen != NULL)
        *outlen = (size_t)(nul - start);
    r->pos += (size_t)(nul - start) + 1;
    return true;
}

static bool rd_bytes(hms_pgo_reader_t *r, size_t n, const uint8_t **out)
{
    if (rd_left(r) < n)
        return false;
    *out = r->p + r->pos;
    r->pos += n;
    return true;
}

/* Relations live each in one allocation (the struct, its columns and their
 * names), so a Relation message for a known id can swap the entry in one
 * step and freeing it is one free().  The cache is sorted by relid. */
struct hms_pgo_decoder {
    hms_pgo_relation_t **rels;
    size_t nrels, caprels;
    /* Scratch reused across messages; grows to the widest relation seen, so
     * the steady state allocates nothing per change. */
    hms_pgo_value_t *oldvals, *newvals;
    size_t capold, capnew;
    uint32_t *relids;
    size_t caprelids;
};

/* hms_err_set() for this decoder.  Names of relations, columns and prefixes
 * come from the server (a quoted identifier may hold a newline), so control
 * characters are masked to keep the message on one line. */
static hms_status_t pgo_fail(hms_err_t *err, hms_status_t st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static hms_status_t pgo_fail(hms_err_t *err, hms_status_t st, const char *fmt, ...)
{
    if (err == NULL)
        return st;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    for (char *c = err->msg; *c != '\0'; c++)
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            *c = '?';
    return st;
}

static const char *kind_name(uint8_t kind)
{
    switch (kind) {
    case HMS_PGO_BEGIN: return "Begin";
    case HMS_PGO_COMMIT: return "Commit";
    case HMS_PGO_ORIGIN: return "Origin";
    case HMS_PGO_RELATION: return "Relation";
    case HMS_PGO_TYPE: return "Type";
    case HMS_PGO_INSERT: return "Insert";
    case HMS_PGO_UPDATE: return "Update";
    case HMS_PGO_DELETE: return "Delete";
    case HMS_PGO_TRUNCATE: return "Truncate";
    case HMS_PGO_MESSAGE: return "Message";
    }
    return "?";
}

static hms_status_t short_read(hms_err_t *err, uint8_t kind, const char *field,
                               const hms_pgo_reader_t *r)
{
    return pgo_fail(err, HMS_ERR_TRUNCATED, "pgoutput %s: %s runs past the end (%zu bytes left)",
                    kind_name(kind), field, rd_left(r));
}

static hms_status_t unterminated(hms_err_t *err, uint8_t kind, const char *field,
                                 const hms_pgo_reader_t *r)
{
    return pgo_fail(err, HMS_ERR_TRUNCATED,
                    "pgoutput %s: %s has no terminating NUL in the %zu bytes left", kind_name(kind),
                    field, rd_left(r));
}

/* Binary search; returns the index of relid or where it would go. */
static size_t rel_find(const hms_pgo_decoder_t *d, uint32_t relid, bool *found)
{
    size_t lo = 0, hi = d->nrels;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uint32_t id = d->rels[mid]->relid;
        if (id == relid) {
            *found = true;
            return mid;
        }
        if (id < relid)
            lo = mid + 1;
        else
            hi = mid;
    }
    *found = false;
    return lo;
}

hms_pgo_decoder_t *hms_pgo_decoder_new(void)
{
    return calloc(1, sizeof(hms_pgo_decoder_t));
}

void hms_pgo_decoder_reset(hms_pgo_decoder_t *d)
{
    for (size_t i = 0; i < d->nrels; i++)
        free(d->rels[i]);
    d->nrels = 0;
}

void hms_pgo_decoder_free(hms_pgo_decoder_t *d)
{
    if (d == NULL)
        return;
    hms_pgo_decoder_reset(d);
    free(d->rels);
    free(d->oldvals);
    free(d->newvals);
    free(d->relids);
    free(d);
}

const hms_pgo_relation_t *hms_pgo_relation(const hms_pgo_decoder_t *d, uint32_t relid)
{
    bool found;
    size_t i = rel_find(d, relid, &found);
    return found ? d->rels[i] : NULL;
}

const char *hms_pgo_replident_name(char replident)
{
    switch (replident) {
    case 'd': return "DEFAULT";
    case 'n': return "NOTHING";
    case 'f': return "FULL";
    case 'i': return "USING INDEX";
    default: return "unknown";
    }
}

/* Copies a NUL-terminated string of n bytes into the relation's string area. */
static char *copy_str(char **area, const char *s, size_t n)
{
    char *dst = *area;
    memcpy(dst, s, n + 1);
    *area += n + 1;
    return dst;
}

static bool valid_replident(uint8_t c)
{
    return c == 'd' || c == 'n' || c == 'f' || c == 'i';
}

/* The smallest column description: flags, empty name, type oid, typmod. */
#define MIN_COLUMN_BYTES 10

/* Process-wide, so that two decoders' relations never share a generation. */
static uint64_t last_generation;

static hms_status_t decode_relation(hms_pgo_decoder_t *d, hms_pgo_reader_t *r, hms_pgo_msg_t *out,
                                    hms_err_t *err)
{
    const uint8_t K = HMS_PGO_RELATION;
    uint32_t relid;
    const char *nsp, *name;
    size_t nsplen, namelen;
    uint8_t replident;
    uint16_t ncols;
    hms_pgo_relation_t *rel = NULL;
    hms_status_t st;

    if (!rd_u32(r, &relid))
        return short_read(err, K, "relation id", r);
    if (!rd_str(r, &nsp, &nsplen))
        return unterminated(err, K, "namespace", r);
    if (!rd_str(r, &name, &namelen))
        return unterminated(err, K, "relation name", r);
    if (!rd_u8(r, &replident))
        return short_read(err, K, "replica identity", r);
    if (!valid_replident(replident))
        return pgo_fail(err, HMS_ERR_MALFORMED,
                        "pgoutput Relation: replica identity 0x%02x of %s.%s is not d, n, f or i",
                        replident, nsp, name);
    if (!rd_u16(r, &ncols))
        return short_read(err, K, "column count", r);
    /* Refuse before allocating: a short fuzzed message must not make us
     * reserve room for 65535 columns. */
    if ((size_t)ncols * MIN_COLUMN_BYTES > rd_left(r))
        return pgo_fail(err, HMS_ERR_TRUNCATED,
                        "pgoutput Relation: %u columns of %s.%s cannot fit in the %zu bytes left",
                        ncols, nsp, name, rd_left(r));

    /* Column names all lie in what is left, so that bounds their size. */
    size_t strbytes = nsplen + 1 + namelen + 1 + rd_left(r);
    rel = malloc(sizeof(*rel) + (size_t)ncols * sizeof(hms_pgo_column_t) + strbytes);
    if (rel == NULL) {
        st = pgo_fail(err, HMS_ERR_NOMEM, "pgoutput Relation: out of memory for %s.%s", nsp, name);
        goto fail;
    }
    rel->cols = (hms_pgo_column_t *)(rel + 1);
    char *area = (char *)(rel->cols + ncols);
    rel->relid = relid;
    rel->nspname = copy_str(&area, nsp, nsplen);
    rel->relname = copy_str(&area, name, namelen);
    rel->replident = (char)replident;
    rel->ncols = ncols;
    rel->generation = ++last_generation;

    for (uint16_t i = 0; i < ncols; i++) {
        hms_pgo_column_t *c = &rel->cols[i];
        const char *cname;
        size_t cnamelen;
        if (!rd_u8(r, &c->flags)) {
            st = short_read(err, K, "column flags", r);
            goto fail;
        }
        if (!rd_str(r, &cname, &cnamelen)) {
            st = unterminated(err, K, "column name", r);
            goto fail;
        }
        c->name = copy_str(&area, cname, cnamelen);
        if (!rd_u32(r, &c->type_oid)) {
            st = short_read(err, K, "column type oid", r);
            goto fail;
        }
        if (!rd_i32(r, &c->typmod)) {
            st = short_read(err, K, "column type modifier", r);
            goto fail;
        }
    }

    /* Checked here rather than only by the caller so that a bad message
     * never replaces a good cache entry. */
    if (rd_left(r) != 0) {
        st = pgo_fail(err, HMS_ERR_MALFORMED,
                      "pgoutput Relation: %zu trailing bytes after the columns of %s.%s",
                      rd_left(r), rel->nspname, rel->relname);
        goto fail;
    }

    bool found;
    size_t at = rel_find(d, relid, &found);
    if (found) {
        free(d->rels[at]);
    } else {
        if (hms_array_grow((void **)&d->rels, &d->caprels, d->nrels + 1, sizeof(*d->rels)) !=
            HMS_OK) {
            st = pgo_fail(err, HMS_ERR_NOMEM, "pgoutput Relation: out of memory caching %s.%s",
                          rel->nspname, rel->relname);
            goto fail;
        }
        memmove(&d->rels[at + 1], &d->rels[at], (d->nrels - at) * sizeof(*d->rels));
        d->nrels++;
    }
    d->rels[at] = rel;
    out->u.relation.rel = rel;
    return HMS_OK;

fail:
    free(rel);
    return st;
}

/* Decodes TupleData into vals (which the caller sized for rel->ncols). */
static hms_status_t decode_tuple(hms_pgo_reader_t *r, uint8_t K, const char *which,
                                 const hms_pgo_relation_t *rel, hms_pgo_value_t *vals,
                                 hms_pgo_tuple_t *tup, hms_err_t *err)
{
    uint16_t ncols;
    if (!rd_u16(r, &ncols))
        return pgo_fail(err, HMS_ERR_TRUNCATED,
                        "pgoutput %s: %s tuple column count runs past the end (%zu bytes left)",
                        kind_name(K), which, rd_left(r));
    if (ncols != rel->ncols)
        return pgo_fail(err, HMS_ERR_MALFORMED,
                        "pgoutput %s: %s tuple has %u columns but relation %s.%s has %u",
                        kind_name(K), which, ncols, rel->nspname, rel->relname, rel->ncols);
    for (uint16_t i = 0; i < ncols; i++) {
        hms_pgo_value_t *v = &vals[i];
        uint8_t kind;
        if (!rd_u8(r, &kind))
            return pgo_fail(err, HMS_ERR_TRUNCATED,
                            "pgoutput %s: %s tuple column %u kind runs past the end", kind_name(K),
                            which, i + 1);
        v->kind = (char)kind;
        v->len = 0;
        v->data = NULL;
        switch (kind) {
        case HMS_PGO_VAL_NULL:
        case HMS_PGO_VAL_UNCHANGED: break;
        case HMS_PGO_VAL_TEXT:
        case HMS_PGO_VAL_BINARY: {
            const uint8_t *data;
            if (!rd_u32(r, &v->len))
                return pgo_fail(err, HMS_ERR_TRUNCATED,
                                "pgoutput %s: %s tuple column %u length runs past the end "
                                "(%zu bytes left)",
                                kind_name(K), which, i + 1, rd_left(r));
            if (!rd_bytes(r, v->len, &data))
                return pgo_fail(err, HMS_ERR_TRUNCATED,
                                "pgoutput %s: %s tuple column %u length %u exceeds the %zu "
                                "bytes left",
                                kind_name(K), which, i + 1, v->len, rd_left(r));
            v->data = (const char *)data;
            break;
        }
        default:
            return pgo_fail(err, HMS_ERR_MALFORMED,
                            "pgoutput %s: %s tuple column %u of %s.%s has unknown kind 0x%02x",
                            kind_name(K), which, i + 1, rel->nspname, rel->relname, kind);
        }
    }
    tup->ncols = ncols;
    tup->values = vals;
    return HMS_OK;
}

/* Insert, Update and Delete: a relation id, then tagged tuples. */
static hms_status_t decode_change(hms_pgo_decoder_t *d, hms_pgo_reader_t *r, uint8_t K,
                                  hms_pgo_msg_t *out, hms_err_t *err)
{
    uint32_t relid;
    uint8_t tag;
    hms_status_t st;

    if (!rd_u32(r, &relid))
        return short_read(err, K, "relation id", r);
    const hms_pgo_relation_t *rel = hms_pgo_relation(d, relid);
    if (rel == NULL)
        return pgo_fail(err, HMS_ERR_UNKNOWN_REL,
                        "pgoutput %s: relation id %u was not described by a Relation message "
                        "in this session",
                        kind_name(K), relid);
    if (hms_array_grow((void **)&d->oldvals, &d->capold, rel->ncols, sizeof(*d->oldvals)) !=
            HMS_OK ||
        hms_array_grow((void **)&d->newvals, &d->capnew, rel->ncols, sizeof(*d->newvals)) != HMS_OK)
        return pgo_fail(err, HMS_ERR_NOMEM, "pgoutput %s: out of memory for %u columns of %s.%s",
                        kind_name(K), rel->ncols, rel->nspname, rel->relname);

    out->u.change.rel = rel;
    out->u.change.old_kind = 0;
    out->u.change.oldtup = (hms_pgo_tuple_t){0, NULL};
    out->u.change.newtup = (hms_pgo_tuple_t){0, NULL};

    if (!rd_u8(r, &tag))
        return short_read(err, K, "tuple tag", r);
    if ((K == HMS_PGO_UPDATE || K == HMS_PGO_DELETE) && (tag == 'K' || tag == 'O')) {
        out->u.change.old_kind = (char)tag;
        st = decode_tuple(r, K, "old", rel, d->oldvals, &out->u.change.oldtup, err);
        if (st != HMS_OK)
            return st;
        if (K == HMS_PGO_DELETE)
            return HMS_OK;
        if (!rd_u8(r, &tag))
            return short_read(err, K, "new tuple tag", r);
    }
    if (K == HMS_PGO_DELETE)
        return pgo_fail(err, HMS_ERR_MALFORMED,
                        "pgoutput Delete: old tuple tag 0x%02x of %s.%s is not K or O", tag,
                        rel->nspname, rel->relname);
    if (tag != 'N')
        return pgo_fail(err, HMS_ERR_MALFORMED, "pgoutput %s: tuple tag 0x%02x of %s.%s is not %s",
                        kind_name(K), tag, rel->nspname, rel->relname,
                        K == HMS_PGO_UPDATE ? "K, O or N" : "N");
    return decode_tuple(r, K, "new", rel, d->newvals, &out->u.change.newtup, err);
}

static hms_status_t decode_truncate(hms_pgo_decoder_t *d, hms_pgo_reader_t *r, hms_pgo_msg_t *out,
                                    hms_err_t *err)
{
    const uint8_t K = HMS_PGO_TRUNCATE;
    uint32_t n;
    if (!rd_u32(r, &n))
        return short_read(err, K, "relation count", r);
    if (!rd_u8(r, &out->u.truncate.options))
        return short_read(err, K, "options", r);
    if ((size_t)n > rd_left(r) / 4)
        return pgo_fail(err, HMS_ERR_TRUNCATED,
                        "pgoutput Truncate: %u relation ids need more than the %zu bytes left", n,
                        rd_left(r));
    if (hms_array_grow((void **)&d->relids, &d->caprelids, n, sizeof(*d->relids)) != HMS_OK)
        return pgo_fail(err, HMS_ERR_NOMEM, "pgoutput Truncate: out of memory for %u relids", n);
    for (uint32_t i = 0; i < n; i++)
        if (!rd_u32(r, &d->relids[i]))
            return short_read(err, K, "relation id", r); /* unreachable: checked above */
    out->u.truncate.nrels = n;
    out->u.truncate.relids = d->relids;
    return HMS_OK;
}

static hms_status_t decode_message(hms_pgo_reader_t *r, hms_pgo_msg_t *out, hms_err_t *err)
{
    const uint8_t K = HMS_PGO_MESSAGE;
    const uint8_t *content;
    if (!rd_u8(r, &out->u.message.flags))
        return short_read(err, K, "flags", r);
    if (!rd_u64(r, &out->u.message.lsn))
        return short_read(err, K, "lsn", r);
    if (!rd_str(r, &out->u.message.prefix, NULL))
        return unterminated(err, K, "prefix", r);
    if (!rd_u32(r, &out->u.message.len))
        return short_read(err, K, "content length", r);
    if (!rd_bytes(r, out->u.message.len, &content))
        return pgo_fail(err, HMS_ERR_TRUNCATED,
                        "pgoutput Message: content length %u exceeds the %zu bytes left",
                        out->u.message.len, rd_left(r));
    out->u.message.content = (const char *)content;
    return HMS_OK;
}

static hms_status_t decode_body(hms_pgo_decoder_t *d, hms_pgo_reader_t *r, uint8_t K,
                                hms_pgo_msg_t *out, hms_err_t *err)
{
    switch (K) {
    case HMS_PGO_BEGIN:
        if (!rd_u64(r, &out->u.begin.final_lsn))
            return short_read(err, K, "final lsn", r);
        if (!rd_i64(r, &out->u.begin.commit_time))
            return short_read(err, K, "commit time", r);
        if (!rd_u32(r, &out->u.begin.xid))
            return short_read(err, K, "xid", r);
        return HMS_OK;
    case HMS_PGO_COMMIT:
        if (!rd_u8(r, &out->u.commit.flags))
            return short_read(err, K, "flags", r);
        if (!rd_u64(r, &out->u.commit.commit_lsn))
            return short_read(err, K, "commit lsn", r);
        if (!rd_u64(r, &out->u.commit.end_lsn))
            return short_read(err, K, "end lsn", r);
        if (!rd_i64(r, &out->u.commit.commit_time))
            return short_read(err, K, "commit time", r);
        return HMS_OK;
    case HMS_PGO_ORIGIN:
        if (!rd_u64(r, &out->u.origin.lsn))
            return short_read(err, K, "lsn", r);
        if (!rd_str(r, &out->u.origin.name, NULL))
            return unterminated(err, K, "name", r);
        return HMS_OK;
    case HMS_PGO_TYPE:
        if (!rd_u32(r, &out->u.type.oid))
            return short_read(err, K, "type oid", r);
        if (!rd_str(r, &out->u.type.nspname, NULL))
            return unterminated(err, K, "namespace", r);
        if (!rd_str(r, &out->u.type.typname, NULL))
            return unterminated(err, K, "type name", r);
        return HMS_OK;
    case HMS_PGO_RELATION: return decode_relation(d, r, out, err);
    case HMS_PGO_INSERT:
    case HMS_PGO_UPDATE:
    case HMS_PGO_DELETE: return decode_change(d, r, K, out, err);
    case HMS_PGO_TRUNCATE: return decode_truncate(d, r, out, err);
    case HMS_PGO_MESSAGE: return decode_message(r, out, err);
    }
    if (K >= 0x20 && K < 0x7f)
        return pgo_fail(err, HMS_ERR_MALFORMED, "pgoutput: unknown message kind '%c' (0x%02x)", K,
                        K);
    return pgo_fail(err, HMS_ERR_MALFORMED, "pgoutput: unknown message kind 0x%02x", K);
}

hms_status_t hms_pgo_decode(hms_pgo_decoder_t *d, const uint8_t *buf, size_t len,
                            hms_pgo_msg_t *out, hms_err_t *err)
{
    assert(d != NULL && out != NULL);
    hms_pgo_reader_t r = {buf, buf == NULL ? 0 : len, 0};
    uint8_t K;
    if (!rd_u8(&r, &K))
        return pgo_fail(err, HMS_ERR_TRUNCATED, "pgoutput: empty message");
    out->kind = (hms_pgo_kind_t)K;
    hms_status_t st = decode_body(d, &r, K, out, err);
    if (st != HMS_OK)
        return st;
    if (rd_left(&r) != 0)
        return pgo_fail(err, HMS_ERR_MALFORMED,
                        "pgoutput %s: %zu trailing bytes after a complete message", kind_name(K),
                        rd_left(&r));
    return HMS_OK;
}
