/* consumer_header.c -- compiled with include/ as the only include path, so
 * the build fails the day include/hms_consumer.h needs a header of src/. */
#include "hms_consumer.h"

hms_consumer_status_t (*const hms_consumer_header_run)(const hms_consumer_opts_t *,
                                                       hms_consumer_counters_t *,
                                                       hms_consumer_err_t *) = hms_consumer_run;
