/* hms_check.c -- the one Check runner of the test programs (see hms_check.h). */
#include "hms_check.h"

#include <stdlib.h>

int hms_check_run(Suite *s)
{
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed;
}

int hms_check_main(Suite *(*suite_fn)(void))
{
    return hms_check_run(suite_fn()) == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
