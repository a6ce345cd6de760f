/* amqpnodes.h -- the nodes of one RabbitMQ cluster, as the amqp setting
 * lists them: amqp[s]:// URLs separated by commas, blanks around each
 * allowed.  A single URL is a list of one.
 *
 * The one splitter behind the setting's check, its redaction and the
 * connect that tries the nodes in turn, so all three agree on what a node
 * is.  A comma inside a password must be written %2C, as any URL reserved
 * character must.
 *
 * Pure: no I/O; nothing is allocated. */
#ifndef HMS_CORE_AMQPNODES_H
#define HMS_CORE_AMQPNODES_H

#include <stdbool.h>
#include <stddef.h>

/* More nodes than any cluster runs; a list this long is a mistake. */
#define HMS_AMQP_NODES_MAX 16

/* How many items the list has, empty ones included ("a,,b" has 3). */
size_t hms_amqp_nodes_count(const char *list);

/* Item i (from 0) of the list, without the blanks around it: *start and
 * *len point into list.  False when the list has no item i. */
bool hms_amqp_nodes_get(const char *list, size_t i, const char **start, size_t *len);

/* The list's rules beyond each URL's own: at least one and at most
 * HMS_AMQP_NODES_MAX items, none empty, and one scheme for all (TLS to some
 * nodes and not to others would make the security of the connection depend
 * on which node answered).  On failure returns false and writes a phrase
 * naming the item ("node 2 of 3 is empty") into why. */
bool hms_amqp_nodes_check(const char *list, char *why, size_t whylen);

#endif
