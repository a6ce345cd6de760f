/* schema_files.h -- loading JSON Schemas from files, for the tests and the
 * fuzz harness: the core validator itself takes bytes and reads no files. */
#ifndef HMS_TEST_SCHEMA_FILES_H
#define HMS_TEST_SCHEMA_FILES_H

#include <stddef.h>

#include "core/jsonschema.h"

/* Reads the file at path and builds a schema from its text; NULL with err
 * (naming path) when it cannot be read or is not a schema. */
hms_schema_t *hms_test_schema_load_file(const char *path, hms_err_t *err);

/* Loads every *.json file in dir into set; stops at the first file that
 * fails, naming it (HMS_ERR_IO when dir cannot be opened).  The number of
 * schemas loaded goes to *count (may be NULL). */
hms_status_t hms_test_schema_load_dir(hms_schema_set_t *set, const char *dir, size_t *count,
                                      hms_err_t *err);

#endif
