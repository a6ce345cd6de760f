/* slotstatus.h -- `hms-sync status`: where the replication slot stands and how far behind it is. */
#ifndef HMS_DAEMON_SLOTSTATUS_H
#define HMS_DAEMON_SLOTSTATUS_H

#include <stdbool.h>
#include <stdio.h>

#include <json-c/json.h>

#include "core/status.h"

/* The slot `run` creates when none is named. */
#define HMS_SLOT_DEFAULT "hms_sync"

/* Connects to conninfo (a normal connection), reads the slot `slot` (NULL
 * means HMS_SLOT_DEFAULT) from pg_replication_slots, the connector's last
 * reported commit from hms_sync.slot_progress (absent table or row: unknown),
 * its snapshots from hms_sync.snapshots (pending and running ones and the
 * one that finished last, as an array "snapshots"; null without the table)
 * and, while the slot is active, its walsender's last reply from
 * pg_stat_replication, and writes them to out: aligned "key: value" lines,
 * or with json one JSON object on one line (byte counts and pids as
 * numbers, LSNs and times as strings, unknowns as null).  Borrows every
 * argument; connect_timeout_s as hms_pg_open.  Returns HMS_OK; HMS_ERR_PG when the server cannot be
 * reached or the slot does not exist (the message says how to create it); HMS_ERR_CONFIG for an
 * unparsable conninfo or an empty slot name. */
hms_status_t hms_slot_status(const char *conninfo, const char *slot, int connect_timeout_s,
                             bool json, FILE *out, hms_err_t *err);

/* hms_slot_status in two halves: the figures as one JSON object (*out,
 * the caller puts it; errors as hms_slot_status), and their printing. */
hms_status_t hms_slot_status_read(const char *conninfo, const char *slot, int connect_timeout_s,
                                  json_object **out, hms_err_t *err);
void hms_slot_status_print(json_object *obj, bool json, FILE *out);

#endif
