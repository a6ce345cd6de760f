/* amqpnodes.c -- splitting the amqp setting into its nodes. */
#include "core/amqpnodes.h"

#include <stdio.h>
#include <string.h>

static bool blank(char c)
{
    return c == ' ' || c == '\t';
}

size_t hms_amqp_nodes_count(const char *list)
{
    size_t n = 1;
    for (const char *p = list; *p != '\0'; p++)
        n += *p == ',';
    return n;
}

bool hms_amqp_nodes_get(const char *list, size_t i, const char **start, size_t *len)
{
    const char *p = list;
    for (; i > 0; i--) {
        p = strchr(p, ',');
        if (p == NULL)
            return false;
        p++;
    }
    const char *end = strchr(p, ',');
    if (end == NULL)
        end = p + strlen(p);
    while (p < end && blank(*p))
        p++;
    while (end > p && blank(end[-1]))
        end--;
    *start = p;
    *len = (size_t)(end - p);
    return true;
}

static bool is_tls(const char *s, size_t len)
{
    return len >= 8 && strncmp(s, "amqps://", 8) == 0;
}

bool hms_amqp_nodes_check(const char *list, char *why, size_t whylen)
{
    size_t n = hms_amqp_nodes_count(list);
    if (n > HMS_AMQP_NODES_MAX) {
        snprintf(why, whylen, "lists %zu nodes; at most %d are allowed", n, HMS_AMQP_NODES_MAX);
        return false;
    }
    const char *s, *first = NULL;
    size_t len, first_len = 0;
    for (size_t i = 0; hms_amqp_nodes_get(list, i, &s, &len); i++) {
        if (len == 0) {
            if (n == 1)
                snprintf(why, whylen, "is empty");
            else
                snprintf(why, whylen, "node %zu of %zu is empty", i + 1, n);
            return false;
        }
        if (first == NULL) {
            first = s;
            first_len = len;
        } else if (is_tls(s, len) != is_tls(first, first_len)) {
            snprintf(why, whylen,
                     "node %zu of %zu uses %s:// and node 1 %s://; every node must use the "
                     "same scheme",
                     i + 1, n, is_tls(s, len) ? "amqps" : "amqp",
                     is_tls(first, first_len) ? "amqps" : "amqp");
            return false;
        }
    }
    return true;
}
