/* prom.c -- Prometheus text format pieces. */
#include "core/prom.h"

void hms_prom_family(hms_buf_t *b, const char *name, const char *type, const char *help)
{
    hms_buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void hms_prom_counter(hms_buf_t *b, const char *name, const char *help, uint64_t v)
{
    hms_prom_family(b, name, "counter", help);
    hms_buf_printf(b, "%s %llu\n", name, (unsigned long long)v);
}

void hms_prom_gauge(hms_buf_t *b, const char *name, const char *help, double v)
{
    hms_prom_family(b, name, "gauge", help);
    hms_buf_printf(b, "%s %.17g\n", name, v);
}

/* Names and type names never hold these characters, but the rendering must
 * not trust that. */
void hms_prom_label_value(hms_buf_t *b, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\' || *v == '"')
            hms_buf_append_char(b, '\\');
        if (*v == '\n') {
            hms_buf_append_str(b, "\\n");
            continue;
        }
        hms_buf_append_char(b, *v);
    }
}
