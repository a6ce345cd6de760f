/* it_main.c -- the main of every integration program (see it.h): the
 * server-less tests, the scratch environment, the program's own setup, the
 * tests and the cleanup, in the one order the exit status depends on; and
 * the one-test TCase most programs build their suite from. */
#include "it.h"
#include "it_sub.h"

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

/* Reaches the servers: env's scratch database, or for a program without
 * env only the check that HMS_TEST_PG is there.  0, IT_SKIP or -1; on -1
 * whatever it_env_init made is already dropped. */
static int it_main_env(const it_main_t *m)
{
    if (m->env == NULL) {
        const char *pg = getenv("HMS_TEST_PG");
        return pg && *pg ? 0 : it_missing(m->name, "HMS_TEST_PG is not set");
    }
    int rc = it_env_init(m->env, m->name);
    if (rc == 0 && m->source) {
        *m->source = it_env_source(m->env);
        if (*m->source == NULL) {
            fprintf(stderr, "it: %s: cannot read the event source of %s\n", m->name,
                    m->env->dbname);
            rc = -1;
        }
    }
    if (rc == -1)
        it_env_cleanup(m->env);
    return rc;
}

/* Runs setup, then the tests if it succeeded, adding their failures to
 * *failed; returns what setup did: 0, IT_SKIP or -1. */
static int it_main_tests(const it_main_t *m, int *failed)
{
    int rc = m->setup ? m->setup() : 0;
    if (rc == -1)
        fprintf(stderr, "it: %s: setup failed\n", m->name);
    if (rc == 0)
        *failed += hms_check_run(m->suite());
    if (m->teardown)
        m->teardown();
    return rc;
}

/* it_main_tests with the subscriber database made before and dropped
 * after, when the program asks for one. */
static int it_main_sub(const it_main_t *m, int *failed)
{
    if (m->sub == NULL)
        return it_main_tests(m, failed);
    char tag[96];
    snprintf(tag, sizeof tag, "%s-migrate-subscriber", m->name);
    int rc = it_subdb_create(m->env, m->sub, tag);
    if (rc == 0)
        rc = it_main_tests(m, failed);
    else
        fprintf(stderr, "it: %s: no subscriber database\n", m->name);
    it_subdb_drop(m->sub);
    return rc;
}

int it_main(const it_main_t *m)
{
    signal(SIGPIPE, SIG_IGN);
    /* The tests of the change stream count the events a slot publishes;
     * a new slot's initial snapshot would add the table's rows to them.
     * The tests of snapshots ask for one with --snapshot initial. */
    setenv("HMS_SYNC_SNAPSHOT", "never", 0);
    int failed = m->offline ? hms_check_run(m->offline()) : 0;
    int rc = it_main_env(m);
    if (rc == 0) {
        rc = it_main_sub(m, &failed);
        if (m->env)
            it_env_cleanup(m->env);
        if (m->source) {
            free(*m->source);
            *m->source = NULL;
        }
    }
    if (rc == IT_SKIP && failed == 0)
        return IT_SKIP;
    return rc == 0 && failed == 0 ? 0 : 1;
}

void it_tcase(Suite *s, const char *name, void (*setup)(void), void (*teardown)(void),
              double timeout_s, const TTest *test)
{
    TCase *tc = tcase_create(name);
    if (setup != NULL || teardown != NULL)
        tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, timeout_s);
    tcase_add_test(tc, test);
    suite_add_tcase(s, tc);
}
