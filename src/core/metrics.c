/* metrics.c -- Prometheus text rendering of the connector's figures. */
#include "core/metrics.h"

#include <stdio.h>
#include <string.h>

#include "core/pgoutput.h"
#include "core/prom.h"

void hms_metrics_count_published(hms_metrics_t *m, const char *type)
{
    int i;
    for (i = 0; i < HMS_METRICS_MAX_TYPES - 1; i++) {
        if (m->type_name[i] == NULL) {
            m->type_name[i] = type;
            break;
        }
        if (m->type_name[i] == type || strcmp(m->type_name[i], type) == 0)
            break;
    }
    if (m->type_name[i] == NULL)
        m->type_name[i] = "other";
    m->published[i]++;
}

hms_status_t hms_metrics_render(const hms_metrics_t *m, const char *version, hms_buf_t *out)
{
    hms_prom_family(
        out, "hms_sync_events_published_total", "counter",
        "Events published to RabbitMQ, by CloudEvents type (republished events count again).");
    for (int i = 0; i < HMS_METRICS_MAX_TYPES && m->type_name[i] != NULL; i++) {
        hms_buf_append_str(out, "hms_sync_events_published_total{type=\"");
        hms_prom_label_value(out, m->type_name[i]);
        hms_buf_printf(out, "\"} %llu\n", (unsigned long long)m->published[i]);
    }
    hms_prom_counter(out, "hms_sync_confirms_total",
                     "Events the broker confirmed (basic.ack, not returned).", m->confirms);
    hms_prom_counter(out, "hms_sync_nacks_total", "Publishes the broker refused with basic.nack.",
                     m->nacks);
    hms_prom_family(
        out, "hms_sync_changes_rejected_total", "counter",
        "Changes that could not become a valid event and were published to the rejected "
        "exchange instead, by reason: invalid (the event failed its schema), unencodable (no "
        "event could be made from the row), oversize (larger than max_event_bytes).");
    for (int r = 0; r < HMS_REJECT_NREASONS; r++)
        hms_buf_printf(out, "hms_sync_changes_rejected_total{reason=\"%s\"} %llu\n",
                       hms_reject_reason_name((hms_reject_reason_t)r),
                       (unsigned long long)m->rejected[r]);
    hms_prom_counter(out, "hms_sync_returns_total",
                     "Publishes the broker could not route (basic.return): no queue bound.",
                     m->returns);
    hms_prom_family(out, "hms_sync_reconnects_total", "counter",
                    "Connections re-established after a loss, by target.");
    hms_buf_printf(out, "hms_sync_reconnects_total{target=\"postgresql\"} %llu\n",
                   (unsigned long long)m->reconnects_pg);
    hms_buf_printf(out, "hms_sync_reconnects_total{target=\"rabbitmq\"} %llu\n",
                   (unsigned long long)m->reconnects_amqp);
    hms_prom_counter(out, "hms_sync_amqp_channel_reopens_total",
                     "Republish rounds after refusals, each started on a new channel.",
                     m->channel_reopens);
    hms_prom_counter(out, "hms_sync_slot_recreations_total",
                     "Replication slots created again after the slot was lost (a failover), "
                     "each followed by a snapshot of every row (on_slot_loss = resnapshot).",
                     m->slot_recreations);
    hms_prom_family(out, "hms_sync_amqp_node_info", "gauge",
                    "The RabbitMQ node in use (host:port); no sample while disconnected.");
    if (m->amqp_node[0] != '\0') {
        hms_buf_append_str(out, "hms_sync_amqp_node_info{node=\"");
        hms_prom_label_value(out, m->amqp_node);
        hms_buf_append_str(out, "\"} 1\n");
    }
    hms_prom_family(out, "hms_sync_slot_wal_retained_bytes", "gauge",
                    "WAL the server keeps for the slot (current WAL - restart_lsn), read every "
                    "10 s; no sample before the first reading.");
    if (m->wal_retained_bytes >= 0)
        hms_buf_printf(out, "hms_sync_slot_wal_retained_bytes %lld\n",
                       (long long)m->wal_retained_bytes);
    hms_prom_family(out, "hms_sync_slot_wal_keep_max_bytes", "gauge",
                    "The server's max_slot_wal_keep_size in bytes: a slot that needs more WAL "
                    "is lost; no sample when there is no limit or before the first reading.");
    if (m->wal_keep_max_bytes >= 0)
        hms_buf_printf(out, "hms_sync_slot_wal_keep_max_bytes %lld\n",
                       (long long)m->wal_keep_max_bytes);
    hms_prom_gauge(out, "hms_sync_inflight_events",
                   "Events published and awaiting the broker's verdict.", (double)m->inflight);
    hms_prom_gauge(out, "hms_sync_replication_lag_bytes",
                   "WAL the server has sent past the position confirmed to the slot.",
                   (double)m->lag_bytes);
    hms_prom_gauge(
        out, "hms_sync_replication_lag_seconds",
        "Now minus the commit time of the newest confirmed transaction, while changes are "
        "pending; 0 when caught up.",
        m->lag_seconds);
    hms_prom_gauge(out, "hms_sync_confirmed_flush_lsn",
                   "The flush position last confirmed to the replication slot, as a number.",
                   (double)m->confirmed_flush_lsn);
    hms_prom_gauge(out, "hms_sync_last_feedback_timestamp_seconds",
                   "When the last standby status was sent to PostgreSQL (Unix time).",
                   m->last_feedback_unix);
    hms_prom_gauge(out, "hms_sync_up", "1 when both connections are up and the slot is streaming.",
                   hms_metrics_ready(m, NULL, 0) ? 1 : 0);
    hms_prom_family(
        out, "hms_sync_replica_identity_full", "gauge",
        "1 while the captured table's REPLICA IDENTITY is FULL; 0 when it is not, as the "
        "newest Relation message or the session's start reported it (a DELETE then carries "
        "only its key, and reaches subscribers only through the trigger hms_sync_old_row).");
    if (m->identity_table[0] != '\0') {
        hms_buf_append_str(out, "hms_sync_replica_identity_full{table=\"");
        hms_prom_label_value(out, m->identity_table);
        hms_buf_printf(out, "\"} %d\n", m->identity == 'f');
    }
    hms_prom_family(out, "hms_sync_snapshot_rows_done", "gauge",
                    "Rows of the snapshot being served that the broker confirmed, by request id.");
    hms_prom_family(
        out, "hms_sync_snapshot_rows_total", "gauge",
        "Rows the snapshot being served reads (counted when it started), by request id.");
    if (m->snapshot_id[0] != '\0') {
        hms_buf_append_str(out, "hms_sync_snapshot_rows_done{snapshot=\"");
        hms_prom_label_value(out, m->snapshot_id);
        hms_buf_printf(out, "\"} %lld\n", (long long)m->snapshot_rows_done);
        if (m->snapshot_rows_total >= 0) {
            hms_buf_append_str(out, "hms_sync_snapshot_rows_total{snapshot=\"");
            hms_prom_label_value(out, m->snapshot_id);
            hms_buf_printf(out, "\"} %lld\n", (long long)m->snapshot_rows_total);
        }
    }
    hms_prom_counter(
        out, "hms_sync_snapshot_rows_published_total",
        "Snapshot rows queued for publishing (a chunk read again after a restart counts "
        "again).",
        m->snapshot_rows_published);
    hms_prom_counter(
        out, "hms_sync_snapshot_rows_superseded_total",
        "Snapshot rows read but not published: the change stream carried a change of the row "
        "while it was read (that change is as new or newer).",
        m->snapshot_rows_superseded);
    hms_prom_gauge(
        out, "hms_sync_standby",
        "1 while this connector is a hot standby waiting for another to let go of the slot.",
        m->standby ? 1 : 0);
    hms_prom_family(out, "hms_sync_build_info", "gauge", "Build information; always 1.");
    hms_buf_append_str(out, "hms_sync_build_info{version=\"");
    hms_prom_label_value(out, version);
    return hms_buf_append_str(out, "\"} 1\n");
}

bool hms_metrics_ready(const hms_metrics_t *m, char *why, size_t whylen)
{
    const char *w = NULL;
    if (m->standby)
        w = "standby: another process holds the replication slot";
    else if (!m->pg_up)
        w = "PostgreSQL replication connection down";
    else if (!m->amqp_up)
        w = "RabbitMQ connection down";
    else if (!m->streaming)
        w = "slot not streaming";
    bool identity_ok = m->identity_table[0] == '\0' || m->identity == 'f';
    if (why != NULL && whylen > 0) {
        if (w != NULL)
            snprintf(why, whylen, "%s", w);
        else if (!identity_ok)
            snprintf(why, whylen,
                     "%s has REPLICA IDENTITY %s, not FULL: its deletes reach subscribers only "
                     "while the trigger hms_sync_old_row logs their rows; run ALTER TABLE %s "
                     "REPLICA IDENTITY FULL;",
                     m->identity_table, hms_pgo_replident_name(m->identity), m->identity_table);
        else
            why[0] = '\0';
    }
    return w == NULL && identity_ok;
}
