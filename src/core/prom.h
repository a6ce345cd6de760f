/* prom.h -- pieces of the Prometheus text exposition format (version
 * 0.0.4) that every /metrics rendering shares. */
#ifndef HMS_CORE_PROM_H
#define HMS_CORE_PROM_H

#include <stdint.h>

#include "core/buf.h"

/* "# HELP name help" and "# TYPE name type". */
void hms_prom_family(hms_buf_t *b, const char *name, const char *type, const char *help);
/* A whole counter or gauge family of one unlabelled sample. */
void hms_prom_counter(hms_buf_t *b, const char *name, const char *help, uint64_t v);
void hms_prom_gauge(hms_buf_t *b, const char *name, const char *help, double v);
/* v as a label value: \, " and newline escaped. */
void hms_prom_label_value(hms_buf_t *b, const char *v);

#endif
