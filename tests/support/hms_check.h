/* hms_check.h -- how every test program runs its Check suites, so that no
 * program writes its own runner: a unit program ends in
 * HMS_CHECK_MAIN(<module>_suite); an integration program in IT_MAIN(...)
 * (integration/support/it.h), which adds the servers around the same runner.
 *
 * Only Check: unit programs link this and hms_core, nothing of the daemon. */
#ifndef HMS_TEST_CHECK_H
#define HMS_TEST_CHECK_H

#include <check.h>

/* Runs every test of s with CK_NORMAL output and returns how many failed or
 * errored.  Takes s: it is freed with the runner before the call returns.
 * Check's environment (CK_FORK, CK_RUN_SUITE, CK_RUN_CASE,
 * CK_DEFAULT_TIMEOUT, ...) applies as usual. */
int hms_check_run(Suite *s);

/* Runs the suite that suite_fn builds; returns EXIT_SUCCESS when every test
 * passed and EXIT_FAILURE otherwise, the program's exit status. */
int hms_check_main(Suite *(*suite_fn)(void));

/* A unit test program's whole main. */
#define HMS_CHECK_MAIN(suite_fn)                                                                   \
    int main(void)                                                                                 \
    {                                                                                              \
        return hms_check_main(suite_fn);                                                           \
    }

#endif
