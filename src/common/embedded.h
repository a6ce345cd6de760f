/* embedded.h -- files compiled into the binary (cmake/embed_files.cmake), so
 * an installed hms-sync needs nothing beside it: the publisher-side SQL
 * migrations (sql/), the subscriber-side ones (sql/subscriber/) and the event
 * schemas (schemas/), each array sorted by file name. */
#ifndef HMS_COMMON_EMBEDDED_H
#define HMS_COMMON_EMBEDDED_H

#include <stddef.h>

typedef struct {
    const char *
        name; /* file name, e.g. "002_incidents.sql"; a migration's leading number is its version */
    const char *sql; /* the file's text, NUL-terminated (JSON text for a schema) */
} hms_sql_file_t;

extern const hms_sql_file_t hms_sql_migrations[];
extern const size_t hms_sql_migrations_count;
extern const hms_sql_file_t hms_sql_subscriber_migrations[];
extern const size_t hms_sql_subscriber_migrations_count;
extern const hms_sql_file_t hms_schema_files[];
extern const size_t hms_schema_files_count;

#endif
