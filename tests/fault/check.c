/* check.c -- the fault suite's ground truth and judge: the load generator
 * that commits changes and records them (ledger), the checker thread that
 * consumes every event, and the comparison of the two. */
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fault.h"

/* ---- ledger ---- */

void fault_ledger_add(fault_ledger_t *l, const fault_change_t *c, size_t n)
{
    pthread_mutex_lock(&l->mu);
    if (l->n + n > l->cap) {
        size_t cap = l->cap ? l->cap : 4096;
        while (cap < l->n + n)
            cap *= 2;
        fault_change_t *v = realloc(l->v, cap * sizeof *v);
        if (!v) {
            pthread_mutex_unlock(&l->mu);
            fprintf(stderr, "fault: out of memory for the ledger\n");
            abort();
        }
        l->v = v;
        l->cap = cap;
    }
    memcpy(l->v + l->n, c, n * sizeof *c);
    l->n += n;
    pthread_mutex_unlock(&l->mu);
}

/* ---- a string-keyed hash table of indexes (open addressing) ---- */

typedef struct {
    char **keys;
    size_t *vals;
    size_t cap, n;
} map_t;

static uint64_t fnv(const char *s, size_t len)
{
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static void map_free(map_t *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->keys[i]);
    free(m->keys);
    free(m->vals);
    memset(m, 0, sizeof *m);
}

static void map_grow(map_t *m);

/* The slot of key: its value's index when present, or where it would go. */
static size_t map_slot(const map_t *m, const char *key)
{
    size_t i = fnv(key, strlen(key)) & (m->cap - 1);
    while (m->keys[i] && strcmp(m->keys[i], key) != 0)
        i = (i + 1) & (m->cap - 1);
    return i;
}

static size_t *map_get(map_t *m, const char *key)
{
    if (m->cap == 0)
        return NULL;
    size_t i = map_slot(m, key);
    return m->keys[i] ? &m->vals[i] : NULL;
}

static void map_put(map_t *m, const char *key, size_t val)
{
    if ((m->n + 1) * 2 > m->cap)
        map_grow(m);
    size_t i = map_slot(m, key);
    if (!m->keys[i]) {
        m->keys[i] = strdup(key);
        m->n++;
    }
    m->vals[i] = val;
}

static void map_grow(map_t *m)
{
    map_t g = {0};
    g.cap = m->cap ? m->cap * 2 : 1024;
    g.keys = calloc(g.cap, sizeof *g.keys);
    g.vals = calloc(g.cap, sizeof *g.vals);
    if (!g.keys || !g.vals)
        abort();
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i]) {
            size_t j = map_slot(&g, m->keys[i]);
            g.keys[j] = m->keys[i];
            g.vals[j] = m->vals[i];
            g.n++;
        }
    free(m->keys);
    free(m->vals);
    *m = g;
}

static void change_key(char *out, size_t n, const char *subj, char op, int64_t version)
{
    snprintf(out, n, "%s|%c|%lld", subj, op, (long long)version);
}

/* ---- load generator ---- */

typedef struct {
    char (*v)[FAULT_ID_LEN];
    size_t n, cap;
} pool_t;

static void pool_add(pool_t *p, const char *id)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 1024;
        p->v = realloc(p->v, p->cap * sizeof *p->v);
        if (!p->v)
            abort();
    }
    snprintf(p->v[p->n++], FAULT_ID_LEN, "%s", id);
}

static void pool_remove(pool_t *p, const char *id)
{
    for (size_t i = 0; i < p->n; i++)
        if (strcmp(p->v[i], id) == 0) {
            memcpy(p->v[i], p->v[p->n - 1], FAULT_ID_LEN);
            p->n--;
            return;
        }
}

typedef struct {
    fault_change_t *v;
    size_t n, cap;
} pending_t;

/* Appends the (id, version) rows of r as changes op. */
static void pending_rows(pending_t *p, PGresult *r, char op)
{
    int rows = PQntuples(r);
    if (p->n + (size_t)rows > p->cap) {
        p->cap = (p->n + (size_t)rows) * 2;
        p->v = realloc(p->v, p->cap * sizeof *p->v);
        if (!p->v)
            abort();
    }
    for (int i = 0; i < rows; i++) {
        fault_change_t *c = &p->v[p->n++];
        memset(c, 0, sizeof *c);
        snprintf(c->subj, sizeof c->subj, "%s", PQgetvalue(r, i, 0));
        c->op = op;
        c->version = atoll(PQgetvalue(r, i, 1));
    }
}

/* A '{id,id,...}' literal of pool entries [from, from+k) (wrapping). */
static char *id_array(const pool_t *pool, size_t from, size_t k)
{
    char *s = malloc(k * FAULT_ID_LEN + 8);
    size_t o = 0;
    s[o++] = '{';
    for (size_t i = 0; i < k; i++) {
        if (i)
            s[o++] = ',';
        memcpy(s + o, pool->v[(from + i) % pool->n], FAULT_ID_LEN - 1);
        o += FAULT_ID_LEN - 1;
    }
    s[o++] = '}';
    s[o] = '\0';
    return s;
}

static PGresult *q1(PGconn *c, const char *sql, const char *arg)
{
    const char *params[1] = {arg};
    return PQexecParams(c, sql, arg ? 1 : 0, NULL, arg ? params : NULL, NULL, NULL, 0);
}

static int pick_rows(int max_rows)
{
    int r = rand() % 100;
    int n;
    if (r < 60)
        n = 1 + rand() % 5;
    else if (r < 97)
        n = 6 + rand() % 95;
    else
        n = 101 + rand() % 900;
    return n > max_rows ? max_rows : n;
}

/* One transaction of about `rows` changes: inserts, updates of earlier and
 * of just inserted incidents, deletes.  Returns 0 when it committed (or
 * its commit's fate is unknown), -1 when it did not. */
static int lg_tx(fault_sc_t *S, PGconn *c, pool_t *pool, int rows)
{
    pending_t p = {0};
    size_t upd = pool->n ? (size_t)rows / 3 : 0, del = pool->n > 50 ? (size_t)rows / 6 : 0;
    if (upd + del > pool->n)
        upd = del = 0;
    size_t ins = (size_t)rows - upd - del;
    size_t from = pool->n ? (size_t)rand() % pool->n : 0;
    char n_ins[24];
    snprintf(n_ins, sizeof n_ins, "%zu", ins ? ins : 1);
    PGresult *r = PQexec(c, "BEGIN");
    bool ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    if (!ok)
        goto fail;
    r = q1(c,
           "INSERT INTO incidents (region, severity, summary, reported_by) "
           "SELECT 'r' || (g % 7), 1 + g % 5, 'fault ' || g || ' ' || md5(random()::text), "
           "'loadgen' FROM generate_series(1, $1::int) g RETURNING id, version",
           n_ins);
    ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    if (ok)
        pending_rows(&p, r, 'C');
    PQclear(r);
    if (!ok)
        goto fail;
    size_t n_new = p.n;
    if (upd > 0 || n_new > 1) {
        /* Earlier incidents, and half of the new ones (two events of one
         * incident in one transaction). */
        size_t k_new = n_new / 2;
        char *arr = malloc((upd + k_new) * FAULT_ID_LEN + 4);
        size_t len = 0;
        arr[len++] = '{';
        for (size_t i = 0; i < upd + k_new; i++) {
            const char *id = i < upd ? pool->v[(from + i) % pool->n] : p.v[i - upd].subj;
            if (i)
                arr[len++] = ',';
            memcpy(arr + len, id, FAULT_ID_LEN - 1);
            len += FAULT_ID_LEN - 1;
        }
        arr[len++] = '}';
        arr[len] = '\0';
        r = q1(c,
               "UPDATE incidents SET status = 's' || (random() * 9)::int, "
               "summary = summary || '+' WHERE id = ANY($1::uuid[]) RETURNING id, version",
               arr);
        free(arr);
        ok = PQresultStatus(r) == PGRES_TUPLES_OK;
        if (ok)
            pending_rows(&p, r, 'U');
        PQclear(r);
        if (!ok)
            goto fail;
    }
    if (del > 0) {
        char *arr = id_array(pool, from + upd, del);
        r = q1(c, "DELETE FROM incidents WHERE id = ANY($1::uuid[]) RETURNING id, version", arr);
        free(arr);
        ok = PQresultStatus(r) == PGRES_TUPLES_OK;
        if (ok)
            pending_rows(&p, r, 'D');
        PQclear(r);
        if (!ok)
            goto fail;
    }
    r = PQexec(c, "COMMIT");
    ok = PQresultStatus(r) == PGRES_COMMAND_OK && strcmp(PQcmdStatus(r), "COMMIT") == 0;
    PQclear(r);
    unsigned char state = ok ? CH_COMMITTED : PQstatus(c) == CONNECTION_BAD ? CH_UNCERTAIN : 0;
    if (state == 0)
        goto fail_done;
    for (size_t i = 0; i < p.n; i++)
        p.v[i].state = state;
    fault_ledger_add(&S->led, p.v, p.n);
    pthread_mutex_lock(&S->led.mu);
    S->led.n_tx++;
    if (state == CH_UNCERTAIN)
        S->led.n_uncertain_tx++;
    if (p.n > S->led.max_tx)
        S->led.max_tx = p.n;
    pthread_mutex_unlock(&S->led.mu);
    /* The pool follows what committed; after an uncertain commit the
     * touched incidents are left alone for good. */
    for (size_t i = 0; i < p.n; i++) {
        if (p.v[i].op == 'C' && state == CH_COMMITTED)
            pool_add(pool, p.v[i].subj);
        else if (p.v[i].op == 'D' || (state == CH_UNCERTAIN && p.v[i].op == 'U'))
            pool_remove(pool, p.v[i].subj);
    }
    if (state == CH_COMMITTED)
        for (size_t i = 0; i < p.n; i++)
            if (p.v[i].op == 'D')
                pool_remove(pool, p.v[i].subj);
    free(p.v);
    return 0;
fail:
    if (PQstatus(c) == CONNECTION_OK)
        PQclear(PQexec(c, "ROLLBACK"));
fail_done:
    free(p.v);
    pthread_mutex_lock(&S->led.mu);
    S->led.n_aborted_tx++;
    pthread_mutex_unlock(&S->led.mu);
    return -1;
}

void *fault_loadgen_main(void *arg)
{
    fault_sc_t *S = arg;
    pool_t pool = {0};
    PGconn *c = PQconnectdb(S->super);
    while (!S->lg_stop) {
        if (S->lg_pause) {
            S->lg_paused = 1;
            it_sleep_ms(20);
            continue;
        }
        S->lg_paused = 0;
        if (PQstatus(c) != CONNECTION_OK) {
            PQreset(c);
            if (PQstatus(c) != CONNECTION_OK) {
                it_sleep_ms(200);
                continue;
            }
        }
        lg_tx(S, c, &pool, pick_rows(S->lg_max_rows));
        if (S->lg_pace_ms > 0)
            it_sleep_ms(rand() % (2 * S->lg_pace_ms + 1));
    }
    PQfinish(c);
    free(pool.v);
    return NULL;
}

/* ---- checker thread ---- */

static void arrivals_add(fault_arrivals_t *a, const fault_arrival_t *x)
{
    pthread_mutex_lock(&a->mu);
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 8192;
        a->v = realloc(a->v, a->cap * sizeof *a->v);
        if (!a->v)
            abort();
    }
    a->v[a->n++] = *x;
    pthread_mutex_unlock(&a->mu);
}

static void on_message(fault_sc_t *S, const it_msg_t *m, size_t seq)
{
    fault_arrival_t x;
    memset(&x, 0, sizeof x);
    x.t_ms = it_now_ms();
    x.hash = fnv(m->body, m->len);
    x.redelivered = m->redelivered;
    bool full = S->sample_every <= 1 || seq % (size_t)S->sample_every == 0;
    char why[400] = "";
    json_object *ev = NULL;
    if (full) {
        ev = it_event_check(m, S->source, why, sizeof why);
        if (!ev) {
            /* Rows a scenario inserts knowing the connector mishandles them
             * (summary 'finding') are reported as findings, not failures. */
            json_object *raw = json_tokener_parse(m->body);
            const char *summary = it_json_str(it_json_get(raw, "data"), "summary");
            bool finding = summary && strcmp(summary, "finding") == 0;
            json_object_put(raw);
            pthread_mutex_lock(&S->arr.mu);
            /* Keep the first three reasons of each kind. */
            size_t *count = finding ? &S->arr.finding_bad : &S->arr.contract_bad;
            char *keep = finding ? S->arr.first_finding : S->arr.first_bad;
            size_t size = finding ? sizeof S->arr.first_finding : sizeof S->arr.first_bad;
            if ((*count)++ < 3) {
                size_t used = strlen(keep);
                snprintf(keep + used, size - used, "%s%.300s", used ? " | " : "", why);
            }
            pthread_mutex_unlock(&S->arr.mu);
        }
    }
    if (!ev)
        ev = json_tokener_parse(m->body);
    const char *id = it_json_str(ev, "id"), *subj = it_json_str(ev, "subject"),
               *type = it_json_str(ev, "type");
    snprintf(x.id, sizeof x.id, "%.39s", id ? id : m->message_id);
    snprintf(x.subj, sizeof x.subj, "%s", subj ? subj : "?");
    x.op = !type                             ? '?'
           : strstr(type, "IncidentCreated") ? 'C'
           : strstr(type, "IncidentUpdated") ? 'U'
           : strstr(type, "IncidentDeleted") ? 'D'
                                             : '?';
    x.version = json_object_get_int64(it_json_get(ev, "version"));
    json_object_put(ev);
    /* A deliberately broken checker, to show the verdicts can fail. */
    if (g_break == 1 && seq == 50)
        return;
    arrivals_add(&S->arr, &x);
    static bool reordered;
    if (g_break == 2 && seq >= 60 && !reordered) {
        /* Swap this event with the previous one of its incident, once. */
        pthread_mutex_lock(&S->arr.mu);
        for (size_t i = S->arr.n - 1; i > 0; i--)
            if (strcmp(S->arr.v[i - 1].subj, x.subj) == 0) {
                fault_arrival_t t = S->arr.v[i - 1];
                S->arr.v[i - 1] = S->arr.v[S->arr.n - 1];
                S->arr.v[S->arr.n - 1] = t;
                reordered = true;
                break;
            }
        pthread_mutex_unlock(&S->arr.mu);
    }
}

void *fault_checker_main(void *arg)
{
    fault_sc_t *S = arg;
    it_amqp_t a;
    memset(&a, 0, sizeof a);
    bool up = false;
    double retry_at = 0;
    size_t seq = 0;
    while (!S->ck_stop) {
        if (S->ck_pause) {
            it_sleep_ms(20);
            continue;
        }
        if (!up) {
            if (it_now_ms() < retry_at) {
                it_sleep_ms(50);
                continue;
            }
            retry_at = it_now_ms() + 1000;
            if (it_amqp_open(&a, g_env.amqp_url) != 0)
                continue;
            snprintf(a.queue, sizeof a.queue, "%s", S->queue);
            if (it_amqp_consume(&a) != 0) {
                it_amqp_abandon(&a);
                continue;
            }
            up = true;
            S->arr.reopens++;
        }
        it_msg_t m;
        int r = it_amqp_get(&a, 100, &m);
        if (r < 0) {
            it_amqp_abandon(&a);
            up = false;
            retry_at = it_now_ms() + 300;
            continue;
        }
        if (r == 1) {
            on_message(S, &m, ++seq);
            it_msg_free(&m);
        }
    }
    if (up)
        it_amqp_close(&a);
    return NULL;
}

/* ---- markers and admin changes ---- */

bool fault_admin_ok(fault_sc_t *S)
{
    if (S->admin && PQstatus(S->admin) == CONNECTION_OK)
        return true;
    if (S->admin)
        PQreset(S->admin);
    else
        S->admin = PQconnectdb(S->super);
    return PQstatus(S->admin) == CONNECTION_OK;
}

int fault_admin_change(fault_sc_t *S, char op, const char *sql)
{
    if (!fault_admin_ok(S))
        return -1;
    PGresult *r = PQexec(S->admin, sql);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "fault: %.80s...: %s", sql, PQerrorMessage(S->admin));
        PQclear(r);
        return -1;
    }
    pending_t p = {0};
    pending_rows(&p, r, op);
    PQclear(r);
    for (size_t i = 0; i < p.n; i++)
        p.v[i].state = CH_COMMITTED;
    fault_ledger_add(&S->led, p.v, p.n);
    pthread_mutex_lock(&S->led.mu);
    S->led.n_tx++;
    pthread_mutex_unlock(&S->led.mu);
    free(p.v);
    return 0;
}

double fault_marker(fault_sc_t *S, double since, int timeout_ms)
{
    double deadline = it_now_ms() + timeout_ms;
    char subj[FAULT_ID_LEN] = "";
    while (!subj[0] && it_now_ms() < deadline) {
        if (fault_admin_ok(S)) {
            PGresult *r = PQexec(S->admin, "INSERT INTO incidents (region, summary) VALUES "
                                           "('marker', 'marker') RETURNING id, version");
            if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
                fault_change_t c;
                memset(&c, 0, sizeof c);
                snprintf(c.subj, sizeof c.subj, "%s", PQgetvalue(r, 0, 0));
                snprintf(subj, sizeof subj, "%s", c.subj);
                snprintf(S->last_marker, sizeof S->last_marker, "%s", c.subj);
                c.op = 'C';
                c.version = atoll(PQgetvalue(r, 0, 1));
                c.state = CH_COMMITTED;
                fault_ledger_add(&S->led, &c, 1);
            }
            PQclear(r);
        }
        if (!subj[0])
            it_sleep_ms(200);
    }
    if (!subj[0])
        return -1;
    while (it_now_ms() < deadline) {
        pthread_mutex_lock(&S->arr.mu);
        bool found = false;
        double at = 0;
        for (; S->marker_cursor < S->arr.n; S->marker_cursor++)
            if (strcmp(S->arr.v[S->marker_cursor].subj, subj) == 0) {
                found = true;
                at = S->arr.v[S->marker_cursor].t_ms;
                break;
            }
        pthread_mutex_unlock(&S->arr.mu);
        if (found) {
            double ms = at - since;
            if (ms > S->max_recovery_ms)
                S->max_recovery_ms = ms;
            return ms;
        }
        it_sleep_ms(20);
    }
    return -1;
}

/* ---- the comparison ---- */

typedef struct {
    size_t first, last;       /* arrival indexes */
    size_t fresh, fresh_last; /* the same among copies not marked redelivered; SIZE_MAX: none */
    size_t change;            /* ledger index, or SIZE_MAX */
    uint64_t hash;
} idinfo_t;

typedef struct {
    const char *subj;
    size_t seq, change;
} ord_t;

static int ord_cmp(const void *a, const void *b)
{
    const ord_t *x = a, *y = b;
    int c = strcmp(x->subj, y->subj);
    if (c)
        return c;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* Counts the inversions and shows the first few: which copies, how far apart
 * and whether the broker marked them redelivered, the facts that tell a
 * publisher's reordering from a consumer's. */
static size_t inversions(ord_t *o, size_t n, const fault_sc_t *S, const char *which)
{
    qsort(o, n, sizeof *o, ord_cmp);
    size_t inv = 0;
    for (size_t i = 1; i < n; i++)
        if (strcmp(o[i].subj, o[i - 1].subj) == 0 && o[i].change < o[i - 1].change) {
            if (inv++ < 3) {
                const fault_arrival_t *a = &S->arr.v[o[i - 1].seq], *b = &S->arr.v[o[i].seq];
                fprintf(stderr,
                        "fault: %s: %s copies out of order: incident %s: %s (change #%zu, "
                        "arrival %zu%s) before %s (change #%zu, arrival %zu%s, %.0f ms later)\n",
                        S->name, which, a->subj, a->id, o[i - 1].change, o[i - 1].seq,
                        a->redelivered ? ", redelivered" : "", b->id, o[i].change, o[i].seq,
                        b->redelivered ? ", redelivered" : "", b->t_ms - a->t_ms);
            }
        }
    return inv;
}

void fault_check(fault_sc_t *S, int timeout_ms, fault_row_t *row)
{
    map_t keys = {0}, ids = {0};
    char key[80];
    fault_ledger_t *L = &S->led;
    size_t committed = 0;
    for (size_t i = 0; i < L->n; i++) {
        change_key(key, sizeof key, L->v[i].subj, L->v[i].op, L->v[i].version);
        map_put(&keys, key, i);
        if (L->v[i].state == CH_COMMITTED)
            committed++;
    }
    bool *got = calloc(L->n + 1, sizeof *got);
    size_t *change_id = calloc(L->n + 1, sizeof *change_id); /* arrival index of its id + 1 */
    idinfo_t *info = NULL;
    size_t ninfo = 0, capinfo = 0, matched = 0, cursor = 0;
    size_t unknown = 0, conflicts = 0, dups = 0, redeliv = 0;
    double deadline = it_now_ms() + timeout_ms;
    double last_progress = it_now_ms();
    for (;;) {
        pthread_mutex_lock(&S->arr.mu);
        size_t n = S->arr.n;
        pthread_mutex_unlock(&S->arr.mu);
        for (; cursor < n; cursor++) {
            /* The array may move while it grows: read under the lock. */
            pthread_mutex_lock(&S->arr.mu);
            fault_arrival_t x = S->arr.v[cursor];
            pthread_mutex_unlock(&S->arr.mu);
            size_t *known = map_get(&ids, x.id);
            if (known) {
                idinfo_t *in = &info[*known];
                in->last = cursor;
                if (!x.redelivered) {
                    if (in->fresh == SIZE_MAX)
                        in->fresh = cursor;
                    in->fresh_last = cursor;
                }
                if (x.redelivered)
                    redeliv++;
                else
                    dups++;
                if (in->hash != x.hash)
                    conflicts++;
                continue;
            }
            if (ninfo == capinfo) {
                capinfo = capinfo ? capinfo * 2 : 8192;
                info = realloc(info, capinfo * sizeof *info);
            }
            idinfo_t *in = &info[ninfo];
            in->first = in->last = cursor;
            in->fresh = in->fresh_last = x.redelivered ? SIZE_MAX : cursor;
            in->hash = x.hash;
            change_key(key, sizeof key, x.subj, x.op, x.version);
            size_t *ci = map_get(&keys, key);
            in->change = ci ? *ci : SIZE_MAX;
            map_put(&ids, x.id, ninfo);
            ninfo++;
            if (!ci) {
                unknown++;
                continue;
            }
            if (got[*ci]) {
                conflicts++; /* one change under a second id */
                continue;
            }
            got[*ci] = true;
            change_id[*ci] = cursor + 1;
            if (L->v[*ci].state == CH_COMMITTED)
                matched++;
            last_progress = it_now_ms();
        }
        if (matched >= committed || it_now_ms() > deadline ||
            it_now_ms() - last_progress > timeout_ms / 2)
            break;
        it_sleep_ms(100);
    }
    /* A short grace for late duplicates after the last change arrived. */
    memset(row, 0, sizeof *row);
    snprintf(row->scenario, sizeof row->scenario, "%s", S->name);
    row->changes = committed;
    row->events = ninfo;
    row->copies = cursor;
    row->lost = committed - matched;
    row->dups = dups;
    row->redeliveries = redeliv;
    row->unknown = unknown;
    row->id_conflicts = conflicts;
    if (row->lost > 0) {
        size_t shown = 0;
        for (size_t i = 0; i < L->n && shown < 3; i++)
            if (L->v[i].state == CH_COMMITTED && !got[i]) {
                fprintf(stderr, "fault: %s: LOST change #%zu: incident %s op %c version %lld\n",
                        S->name, i, L->v[i].subj, L->v[i].op, (long long)L->v[i].version);
                shown++;
            }
    }
    if (unknown > 0) {
        for (size_t i = 0, shown = 0; i < ninfo && shown < 3; i++)
            if (info[i].change == SIZE_MAX) {
                fault_arrival_t *x = &S->arr.v[info[i].first];
                fprintf(stderr, "fault: %s: UNKNOWN event %s: incident %s op %c version %lld\n",
                        S->name, x->id, x->subj, x->op, (long long)x->version);
                shown++;
            }
    }

    /* Per-incident order, by commit order in the ledger (one writer), of
     * the copies as the queue holds them.  A copy the broker marks
     * redelivered went to a consumer of the checker's that failed (its
     * connection's node died or was cut off) and comes back after copies
     * placed behind it: that reorders the checker's own consumption, not
     * the stream, so it is counted apart. */
    ord_t *o = calloc(ninfo + 1, sizeof *o);
    size_t no = 0;
    for (size_t i = 0; i < ninfo; i++)
        if (info[i].change != SIZE_MAX && info[i].fresh != SIZE_MAX)
            o[no++] = (ord_t){S->arr.v[info[i].fresh].subj, info[i].fresh, info[i].change};
    row->first_inversions = inversions(o, no, S, "first");
    no = 0;
    for (size_t i = 0; i < ninfo; i++)
        if (info[i].change != SIZE_MAX && info[i].fresh != SIZE_MAX)
            o[no++] =
                (ord_t){S->arr.v[info[i].fresh_last].subj, info[i].fresh_last, info[i].change};
    row->last_inversions = inversions(o, no, S, "last");
    no = 0;
    for (size_t i = 0; i < ninfo; i++)
        if (info[i].change != SIZE_MAX)
            o[no++] = (ord_t){S->arr.v[info[i].first].subj, info[i].first, info[i].change};
    size_t with_redelivered = inversions(o, no, S, "received (redeliveries included)");
    if (with_redelivered > row->first_inversions)
        fault_note(S,
                   "%zu more incidents' events reached the checker out of order through copies "
                   "its broker redelivered after its consumer's connection failed",
                   with_redelivered - row->first_inversions);
    free(o);
    row->contract_bad = S->arr.contract_bad;
    if (S->arr.contract_bad)
        fprintf(stderr, "fault: %s: %zu events violate the contract; first: %s\n", S->name,
                S->arr.contract_bad, S->arr.first_bad);
    free(got);
    free(change_id);
    free(info);
    map_free(&keys);
    map_free(&ids);
}
