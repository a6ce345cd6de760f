/* config_table.c -- the settings table: every setting hms-sync has, its
 * type, default, range, subcommands, whether SIGHUP applies it, and the prose
 * that --help, the example file and the docs are rendered from.  Adding a
 * setting is a field in hms_config_t plus one row here. */
#include "core/config_int.h"

#define OFF(field) offsetof(hms_config_t, field)

static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const log_formats[] = {"logfmt", "json", NULL};
static const char *const sinks[] = {"amqp", "discard", NULL};
static const char *const queue_types[] = {"quorum", "classic", NULL};
static const char *const amqp_auths[] = {"plain", "external", NULL};
static const char *const snapshots[] = {"initial", "never", NULL};
static const char *const slot_losses[] = {"fail", "resnapshot", NULL};

/* The one table.  Order is the order of --help, --print-config, the example
 * file and the docs. */
const hms_config_setting_t hms_config_settings[] = {
    {"pg", HMS_CONFIG_T_CONNINFO, OFF(pg), NULL, 0, 0, NULL, HMS_CMD_ALL, HMS_CMD_ALL,
     HMS_CONFIG_F_SECRET,
     "host=db.example.org dbname=ehr user=hms_sync password=CHANGE-ME sslmode=verify-full",
     "PostgreSQL connection (libpq conninfo or postgresql:// URI)",
     "How to reach the EHR database: a libpq connection string (key=value pairs) or a "
     "postgresql:// URI.  run connects with replication=database; status, migrate and consume "
     "open ordinary sessions.  When printed, only the password is replaced by ***.  libpq's "
     "own keys apply: sslmode=verify-full with sslrootcert=CA-FILE verifies the server's "
     "certificate and host name, sslcert and sslkey present a client certificate, and "
     "passfile=FILE (a .pgpass-format file, chmod 600) keeps the password out of this "
     "setting."},
    {"amqp", HMS_CONFIG_T_URL, OFF(amqp), NULL, 0, 0, NULL, HMS_CONFIG_CMD_AMQP, HMS_CONFIG_CMD_NET,
     HMS_CONFIG_F_SECRET, "amqps://hms_sync@mq.example.org:5671/hms",
     "RabbitMQ URL (amqp:// or amqps://), or the nodes of one cluster, comma-separated",
     "How to reach RabbitMQ: amqp://USER:PASSWORD@HOST:PORT/VHOST, or amqps:// for TLS.  For a "
     "cluster, list its nodes separated by commas, all with the same scheme: hms-sync connects "
     "to the first node that answers and, when that connection is lost, goes on with the next "
     "(write a comma inside a password as %2C).  Not "
     "needed by run when sink = discard; snapshot uses it only to check that its --queue "
     "exists.  When printed, only the passwords are replaced by ***.  "
     "amqps:// always verifies the broker's certificate and host name and allows TLS 1.2 or "
     "later only.  Keep the password out of the URL with amqp_password_file."},
    {"amqp_cacert", HMS_CONFIG_T_PATH, OFF(amqp_cacert), NULL, 0, 0, NULL, HMS_CONFIG_CMD_AMQP, 0,
     0, "/etc/hms-sync/rabbitmq-ca.pem", "CA certificates (PEM) that amqps:// trusts",
     "The CA bundle the broker's certificate must chain to.  Unset: OpenSSL's default "
     "system CAs.  Only with an amqps:// URL."},
    {"amqp_cert", HMS_CONFIG_T_PATH, OFF(amqp_cert), NULL, 0, 0, NULL, HMS_CONFIG_CMD_AMQP, 0, 0,
     "/etc/hms-sync/client.pem", "TLS client certificate (PEM) for amqps://",
     "A client certificate to present to the broker (needs amqp_key).  Required by "
     "amqp_auth = external, where the broker takes the user name from it."},
    {"amqp_key", HMS_CONFIG_T_PATH, OFF(amqp_key), NULL, 0, 0, NULL, HMS_CONFIG_CMD_AMQP, 0, 0,
     "/etc/hms-sync/client.key", "private key (PEM) of amqp_cert",
     "The private key of amqp_cert, unencrypted PEM.  Keep it readable only by the service "
     "user."},
    {"amqp_auth", HMS_CONFIG_T_ENUM, OFF(amqp_auth), "plain", 0, 0, amqp_auths, HMS_CONFIG_CMD_AMQP,
     0, 0, NULL, "RabbitMQ login: plain (user, password) or external (client certificate)",
     "plain logs in with the URL's user and the password from the URL or amqp_password_file.  "
     "external logs in with SASL EXTERNAL: the broker (plugin rabbitmq_auth_mechanism_ssl) "
     "maps the TLS client certificate (amqp_cert) to a user, so no password exists at all."},
    {"amqp_password_file", HMS_CONFIG_T_PATH, OFF(amqp_password_file), NULL, 0, 0, NULL,
     HMS_CONFIG_CMD_AMQP, 0, 0, "/etc/hms-sync/amqp-password", "file holding the RabbitMQ password",
     "Read the RabbitMQ password from the first line of this file instead of the URL (which "
     "then has no password: amqps://hms_sync@host/vhost).  The file must be readable by its "
     "owner only (chmod 600) or hms-sync refuses it; it is re-read on every reconnect, so a "
     "rotated password takes effect without a restart."},
    {"slot", HMS_CONFIG_T_IDENT, OFF(slot), "hms_sync", 1, 63, NULL,
     HMS_CMD_RUN | HMS_CMD_STATUS | HMS_CMD_SNAPSHOT, 0, 0, NULL, "logical replication slot name",
     "The logical replication slot run streams from (created by run when missing) and status "
     "reports on.  One slot per running hms-sync: two processes cannot share one.  snapshot "
     "asks the connector of this slot for a snapshot."},
    {"publication", HMS_CONFIG_T_IDENT, OFF(publication), "hms_sync_incidents", 1, 63, NULL,
     HMS_CMD_RUN | HMS_CMD_MIGRATE, 0, 0, NULL, "PostgreSQL publication name",
     "The publication that selects the captured tables; migrate creates it, run subscribes "
     "to it."},
    {"exchange", HMS_CONFIG_T_EXCHANGE, OFF(exchange), "hms.incidents", 1, 255, NULL,
     HMS_CONFIG_CMD_NET, 0, 0, NULL, "RabbitMQ topic exchange for events",
     "The durable topic exchange run publishes events to and consume binds its queue to."},
    {"fanout_exchange", HMS_CONFIG_T_EXCHANGE, OFF(fanout_exchange), NULL, 1, 255, NULL,
     HMS_CMD_RUN, 0, 0, "incidents", "durable fanout exchange that receives every event (off)",
     "run declares this fanout exchange and binds it to exchange with '#', so a client that "
     "binds a queue to a plain fanout exchange with '' receives every event unchanged, as "
     "integration guides that predate topic routing teach.  Off by default; the demo and "
     "deploy/ set it to incidents."},
    {"events_exchange", HMS_CONFIG_T_EXCHANGE, OFF(events_exchange), "hms.events", 1, 200, NULL,
     HMS_CMD_RUN, 0, 0, NULL, "RabbitMQ topic exchange for emitted events",
     "The durable topic exchange run publishes the application's own events to (each call of "
     "hms_sync.emit in a committed transaction), with the event's type as the routing key.  "
     "run also declares <events_exchange>.unrouted, its alternate exchange, and a queue of "
     "that name bound to it: an event of a type no queue is bound for waits there instead "
     "of holding the stream back.  consume reads emitted events with --exchange set to this "
     "name and --bind set to the types it wants."},
    {"schemas", HMS_CONFIG_T_DIR, OFF(schemas), NULL, 0, 0, NULL, HMS_CMD_RUN | HMS_CMD_CONSUME, 0,
     0, "/etc/hms-sync/schemas", "directory of data schemas of emitted types (none)",
     "Each file <type>.json here (e.g. org.example.cases.InvestigatorAssigned.v1.json) is "
     "the JSON Schema (2020-12, with an $id) of the data of that emitted type.  run puts the "
     "$id in those events' dataschema and checks their data against it: an event that fails "
     "goes to the rejected exchange instead, and the stream goes on.  consume checks what it "
     "receives the same way.  A file not named after a type, or that does not parse, stops "
     "the command at start.  Unset: emitted data is any JSON value."},
    {"window", HMS_CONFIG_T_INT, OFF(window), "1000", 1, 65535, NULL, HMS_CMD_RUN, 0, 0, NULL,
     "most unconfirmed events in flight",
     "How many published events may await the broker's confirm at once.  A larger window "
     "means more throughput and more events republished after a crash (never lost)."},
    {"max_event_bytes", HMS_CONFIG_T_INT, OFF(max_event_bytes), "134217728", 4096, 536870912, NULL,
     HMS_CMD_RUN, 0, 0, NULL, "largest event published; set it to the broker's max_message_size",
     "An event whose JSON is larger than this many bytes is not published to the exchange: a "
     "reference to it (key, LSN, size) goes to the rejected exchange instead, and the stream "
     "goes on.  Set it to the broker's max_message_size (RabbitMQ's default, 134217728, is "
     "this default): a larger event would make the broker close the channel, and hms-sync "
     "then stops before it."},
    {"feedback_interval", HMS_CONFIG_T_DURATION, OFF(feedback_interval_ms), "10s", 100,
     HMS_CONFIG_HOUR, NULL, HMS_CMD_RUN, 0, 0, NULL, "longest gap between standby status messages",
     "run tells PostgreSQL its confirmed position as soon as it advances, and at least this "
     "often otherwise, so an idle slot still moves and WAL is not retained.  When the "
     "server's wal_sender_timeout is shorter than three times this, run reports every third "
     "of wal_sender_timeout instead, so a broker that holds publishing back never gets the "
     "replication connection dropped."},
    {"replication_timeout", HMS_CONFIG_T_DURATION, OFF(replication_timeout_ms), "30s",
     HMS_CONFIG_SEC, HMS_CONFIG_HOUR, NULL, HMS_CMD_RUN, 0, HMS_CONFIG_F_ZERO_OFF, NULL,
     "how long PostgreSQL may stay silent before run reconnects (0: never)",
     "When nothing arrives on the replication connection for this long while run is ready "
     "to read, the connection is taken for dead (a silent network stall) and re-established.  "
     "run asks the server for a keepalive when the stream is quiet, so a healthy idle "
     "connection never trips it.  It must be more than twice feedback_interval: on a quiet "
     "stream the keepalive is asked for only after feedback_interval of silence, at the "
     "next status message."},
    {"metrics", HMS_CONFIG_T_LISTEN, OFF(metrics), NULL, 0, 0, NULL,
     HMS_CMD_RUN | HMS_CMD_STATUS | HMS_CMD_CONSUME, 0, 0, "127.0.0.1:9187",
     "serve Prometheus metrics, /healthz and /readyz on HOST:PORT",
     "status with this setting also reads the running connector's figures from it.  "
     "When set, run serves GET /metrics (Prometheus text format), /healthz (the process is "
     "alive), /readyz (both connections are up and the slot is streaming), a status page at "
     "/ (for a browser: figures and the last hour's charts, nothing loaded from elsewhere) "
     "and /status.json (the same for scripts) over plain "
     "HTTP on this address: an IPv4 address (127.0.0.1:9187), an IPv6 address in brackets "
     "([::1]:9187) or a host name, which run listens on at every address it resolves to.  "
     "consume serves the same paths with the subscriber's figures (events by outcome, "
     "latency, queue depth); its /readyz wants its PostgreSQL session and its RabbitMQ "
     "connection up.  Give each process its own port.  Bind it to loopback or a management "
     "network."},
    {"standby", HMS_CONFIG_T_BOOL, OFF(standby), "false", 0, 0, NULL, HMS_CMD_RUN, 0, 0, NULL,
     "wait as a hot standby while another process holds the slot",
     "For high availability run two connectors on the same slot: the one that gets the slot "
     "streams; the other, with standby = true, keeps polling once a second (reporting not "
     "ready) and takes over within seconds of the active one dying.  Without it, run fails "
     "after slot_wait."},
    {"snapshot", HMS_CONFIG_T_ENUM, OFF(snapshot), "initial", 0, 0, snapshots, HMS_CMD_RUN, 0, 0,
     NULL, "whether a slot run creates starts with a snapshot of every row",
     "initial: when run creates its slot, it first queues a snapshot of every row of the "
     "captured table, so subscribers learn the rows that existed before the slot; the rows "
     "are published as IncidentSnapshot events while live changes keep flowing.  never: "
     "only changes made after the slot was created are published.  hms-sync snapshot asks "
     "for a snapshot (of some rows, or for one queue) at any time."},
    {"on_slot_loss", HMS_CONFIG_T_ENUM, OFF(on_slot_loss), "fail", 0, 0, slot_losses, HMS_CMD_RUN,
     0, 0, NULL, "what run does when its replication slot is gone (a failover)",
     "On PostgreSQL before 17 a logical slot does not survive the promotion of a standby, "
     "and a slot dropped by hand is gone too.  fail: run stops with an error that says so, "
     "and an operator re-syncs subscribers and clears the slot's progress row.  resnapshot: "
     "run creates the slot again on the server it reached (the new primary of a multi-host "
     "pg setting with target_session_attrs=read-write), first moving that server's WAL "
     "past every position it has published, so event ids never repeat, and queues a "
     "snapshot of every row, so subscribers converge without manual SQL.  A row deleted "
     "between the last change published from the old slot and the new slot is not in the "
     "snapshot and stays at subscribers: run logs that window.  Needs the source "
     "migrations up to 011."},
    {"snapshot_chunk", HMS_CONFIG_T_INT, OFF(snapshot_chunk), "1024", 1, 100000, NULL, HMS_CMD_RUN,
     0, 0, NULL, "rows per snapshot chunk",
     "A snapshot reads the table in chunks of this many rows, in key order, each published "
     "between two changes of the stream.  Memory grows with it (one chunk is held at a "
     "time); a larger chunk means fewer round trips and watermarks.  While live changes "
     "flow, chunks are smaller (at most 32 rows) and paced, so that a change never waits "
     "behind more than a few milliseconds of snapshot rows."},
    {"slot_wait", HMS_CONFIG_T_DURATION, OFF(slot_wait_ms), "30s", 0, HMS_CONFIG_HOUR, NULL,
     HMS_CMD_RUN, 0, 0, NULL, "how long run waits for a slot held by another process",
     "After a crash the old walsender may hold the slot for a while; run retries for this "
     "long, saying so, before it fails.  0 fails at once."},
    {"shutdown_timeout", HMS_CONFIG_T_DURATION, OFF(shutdown_timeout_ms), "10s", 0,
     10 * HMS_CONFIG_MIN, NULL, HMS_CMD_RUN, 0, 0, NULL,
     "how long a clean stop waits for outstanding confirms",
     "On SIGTERM or SIGINT, how long run waits for the broker to confirm events in flight "
     "before closing; 0 closes at once.  Unconfirmed events are republished on the next "
     "start, never lost.  consume has nothing in flight to wait for: it finishes the "
     "message in hand and stops."},
    {"heartbeat", HMS_CONFIG_T_DURATION, OFF(heartbeat_ms), "30s", HMS_CONFIG_SEC, HMS_CONFIG_HOUR,
     NULL, HMS_CONFIG_CMD_NET, 0, HMS_CONFIG_F_ZERO_OFF | HMS_CONFIG_F_SECONDS, NULL,
     "AMQP heartbeat interval (0 disables)",
     "The AMQP heartbeat proposed to the broker, so a dead connection is noticed.  0 "
     "disables heartbeats.  AMQP counts heartbeats in whole seconds."},
    {"connect_timeout", HMS_CONFIG_T_DURATION, OFF(connect_timeout_ms), "10s", HMS_CONFIG_SEC,
     10 * HMS_CONFIG_MIN, NULL, HMS_CMD_ALL, 0, 0, NULL, "timeout for each connection attempt",
     "How long one attempt to connect to PostgreSQL or RabbitMQ may take before it counts "
     "as failed."},
    {"retry_min", HMS_CONFIG_T_DURATION, OFF(retry_min_ms), "500ms", 10, HMS_CONFIG_HOUR, NULL,
     HMS_CONFIG_CMD_NET, 0, 0, NULL, "first reconnect/republish delay",
     "Reconnects and republishing of refused events back off exponentially from retry_min "
     "to retry_max.  retry_min must not exceed retry_max."},
    {"retry_max", HMS_CONFIG_T_DURATION, OFF(retry_max_ms), "30s", 10, HMS_CONFIG_HOUR, NULL,
     HMS_CONFIG_CMD_NET, 0, 0, NULL, "longest reconnect/republish delay",
     "The cap of the exponential backoff (see retry_min)."},
    {"log_level", HMS_CONFIG_T_ENUM, OFF(log_level), "info", 0, 0, log_levels, HMS_CMD_ALL, 0,
     HMS_CONFIG_F_RELOAD, NULL, "least severe log level written",
     "Log lines below this level are not written."},
    {"log_format", HMS_CONFIG_T_ENUM, OFF(log_format), "logfmt", 0, 0, log_formats, HMS_CMD_ALL, 0,
     HMS_CONFIG_F_RELOAD, NULL, "log line format",
     "logfmt (key=value pairs) or json (one object per line)."},
    {"log_file", HMS_CONFIG_T_PATH, OFF(log_file), NULL, 0, 0, NULL, HMS_CMD_RUN | HMS_CMD_CONSUME,
     0, HMS_CONFIG_F_RELOAD | HMS_CONFIG_F_WRITE, "/var/log/hms-sync/hms-sync.log",
     "append log lines to this file instead of standard error",
     "Where log lines go: appended to this file, which is created (mode 0640) when missing.  "
     "Unset: standard error, which systemd's journal collects.  SIGHUP reopens the file, so "
     "a rotation (rename it, then kill -HUP) needs no restart.  Only run and consume log "
     "there: a one-shot command's errors stay on its terminal."},
    {"sink", HMS_CONFIG_T_ENUM, OFF(sink), "amqp", 0, 0, sinks, HMS_CMD_RUN, 0, 0, NULL,
     "where events go (discard is UNSAFE, for benchmarks only)",
     "amqp publishes events to RabbitMQ.  WARNING: discard is for debugging and benchmarks ONLY: "
     "events are encoded, then dropped and counted as confirmed, so the slot advances past "
     "changes nobody received.  NEVER use discard in production: it loses every event."},
    {"queue", HMS_CONFIG_T_EXCHANGE, OFF(queue), NULL, 1, 200, NULL,
     HMS_CMD_CONSUME | HMS_CMD_SNAPSHOT, HMS_CMD_CONSUME, 0, "scheduling",
     "a subscriber's queue: the one consume reads, or the only one snapshot sends to",
     "The durable queue consume declares, binds and reads.  The name also keys the "
     "subscriber's rows in hms_sync.inbox, so several subscribers can share one database, and "
     "names its dead-letter queue <queue>.dlq.  For snapshot: send the snapshot's events to "
     "this one queue only (through the default exchange) instead of to the exchange, to "
     "re-sync one subscriber."},
    {"apply", HMS_CONFIG_T_FUNC, OFF(apply), NULL, 1, 127, NULL, HMS_CMD_CONSUME, HMS_CMD_CONSUME,
     0, "hms_sync.apply_scheduling", "SQL function f(event jsonb) returns text to apply events",
     "The function consume calls, through hms_sync.consume(), for every valid event, in the "
     "same transaction as the inbox row: it returns applied, stale or duplicate.  The seed "
     "subscribers are hms_sync.apply_scheduling, hms_sync.apply_casemgmt and "
     "hms_sync.apply_warehouse."},
    {"prefetch", HMS_CONFIG_T_INT, OFF(prefetch), "200", 1, 65535, NULL, HMS_CMD_CONSUME, 0, 0,
     NULL, "most unacknowledged deliveries at once",
     "The basic.qos prefetch count: how many messages the broker sends ahead of the "
     "subscriber's acknowledgements.  Twice batch lets the next batch arrive while one "
     "commits."},
    {"partitions", HMS_CONFIG_T_INT, OFF(partitions), "0", 0, 256, NULL, HMS_CMD_CONSUME, 0, 0, "4",
     "spread the queue over this many ordered partitions (0: one queue)",
     "With N > 0 consume declares a consistent-hash exchange <queue>.hash bound to the "
     "events' exchange, hashing the header subject (the incident), and N quorum queues "
     "<queue>.p1 .. <queue>.pN with a single active consumer each, so every incident's "
     "events stay on one partition, in order, while the partitions are applied in "
     "parallel.  The broker needs the rabbitmq_consistent_hash_exchange plugin.  The "
     "inbox and the dead-letter queue stay <queue>'s.  Choose N once: a changed N routes "
     "an incident to another partition while its old one may still hold events."},
    {"partition", HMS_CONFIG_T_INT, OFF(partition), "0", 0, 256, NULL, HMS_CMD_CONSUME, 0, 0, NULL,
     "the one partition this process applies (0: all of them)",
     "0 runs one worker process per partition under this one, restarting a worker that "
     "dies; I in 1..partitions applies only <queue>.pI, for N processes on several "
     "machines."},
    {"batch", HMS_CONFIG_T_INT, OFF(batch), "100", 1, 65535, NULL, HMS_CMD_CONSUME, 0, 0, NULL,
     "most events applied in one transaction",
     "consume applies the events it has in hand, up to this many, in one transaction "
     "(hms_sync.consume_batch) and then acknowledges them with one multiple ack.  Batches "
     "form on their own while the previous one commits, so a light stream still goes one "
     "event at a time.  A batch cannot outgrow prefetch; 1 is one transaction per event."},
    {"batch_linger", HMS_CONFIG_T_DURATION, OFF(batch_linger_ms), "0", 0, 1000, NULL,
     HMS_CMD_CONSUME, 0, 0, NULL, "how long a short batch waits for more events",
     "With events in hand but fewer than batch, consume waits up to this long for more "
     "before it applies them.  0 applies at once: the lowest latency, and under load "
     "batches still fill while the previous one commits."},
    {"bind", HMS_CONFIG_T_KEYS, OFF(bind), "#", 1, 4096, NULL, HMS_CMD_CONSUME, 0, 0, NULL,
     "routing key to bind the queue with (repeatable)",
     "The binding keys of the queue on the exchange, e.g. incident.*.north.  On the command "
     "line --bind may be given several times; in the file or the environment the keys are "
     "a comma-separated list.  # receives every event."},
    {"queue_type", HMS_CONFIG_T_ENUM, OFF(queue_type), "quorum", 0, 0, queue_types, HMS_CMD_CONSUME,
     0, 0, NULL, "queue type of the subscriber's queue",
     "quorum (replicated, counts deliveries) or classic.  An existing queue must have been "
     "declared with the same type and arguments."},
    {"delivery_limit", HMS_CONFIG_T_INT, OFF(delivery_limit), "5", 1, 1000, NULL, HMS_CMD_CONSUME,
     0, 0, NULL, "deliveries before a failing event is dead-lettered",
     "An event whose apply keeps failing (not a transient database failure) is tried this "
     "many times, then published to the dead-letter queue with the error as its reason."},
    {"origin", HMS_CONFIG_T_EXCHANGE, OFF(origin), NULL, 1, 63, NULL, HMS_CMD_CONSUME, 0, 0,
     "casemgmt", "skip events with this origin (own writes echoed back)",
     "For two-way sync: a subscriber that also writes to the EHR with this origin skips the "
     "events of its own changes, acknowledging them and counting them as echo.  Unset: "
     "nothing is skipped."},
    {"dead_letter_exchange", HMS_CONFIG_T_EXCHANGE, OFF(dead_letter_exchange), "hms.incidents.dlx",
     1, 255, NULL, HMS_CMD_CONSUME, 0, 0, NULL, "direct exchange for dead-lettered events",
     "Where events that fail validation or keep failing are published, with routing key "
     "<queue> and a header x-hms-reason saying why.  consume only checks that it exists (the "
     "broker's administrator or deploy/rabbitmq/definitions.json creates it) and binds "
     "<queue>.dlq to it."},
    {"config", HMS_CONFIG_T_PATH, OFF(config), NULL, 0, 0, NULL, HMS_CMD_ALL, 0,
     HMS_CONFIG_F_NO_FILE, NULL, "config file to read (INI: name = value lines)",
     "The config file, from --config or HMS_SYNC_CONFIG only.  Values in it are overridden "
     "by the environment, which is overridden by the command line."},
};

const int hms_config_nsettings =
    (int)(sizeof(hms_config_settings) / sizeof(hms_config_settings[0]));
_Static_assert(sizeof(hms_config_settings) / sizeof(hms_config_settings[0]) <=
                   HMS_CONFIG_MAX_SETTINGS,
               "raise HMS_CONFIG_MAX_SETTINGS");

const hms_config_cli_flag_t hms_config_cli_flags[] = {
    {"check_config", offsetof(hms_cli_flags_t, check_config), HMS_CMD_RUN,
     "validate the settings and open the files they name; exit 0, or 2 naming the problem", NULL},
    {"print_config", offsetof(hms_cli_flags_t, print_config), HMS_CMD_RUN,
     "print the effective settings (secrets redacted) and exit", NULL},
    {"json", offsetof(hms_cli_flags_t, json), HMS_CMD_STATUS | HMS_CMD_SNAPSHOT,
     "print JSON (status; snapshot --list)", NULL},
    {"watch", offsetof(hms_cli_flags_t, watch), HMS_CMD_STATUS,
     "print the figures again every SECONDS (default 2, 1 to 3600) with the lag's trend since "
     "the view started, until interrupted",
     "[SECONDS]"},
    {"subscriber", offsetof(hms_cli_flags_t, subscriber), HMS_CMD_MIGRATE,
     "install the subscriber-side objects instead of the publisher side", NULL},
    {"where", offsetof(hms_cli_flags_t, where), HMS_CMD_SNAPSHOT,
     "snapshot only the rows of public.incidents for which this SQL condition is true", "SQL"},
    {"wait", offsetof(hms_cli_flags_t, wait), HMS_CMD_SNAPSHOT,
     "follow the snapshot until it ends: exit 0 when done, 1 when cancelled or failed", NULL},
    {"cancel", offsetof(hms_cli_flags_t, cancel), HMS_CMD_SNAPSHOT,
     "cancel the pending or running snapshot with this id", "ID"},
    {"list", offsetof(hms_cli_flags_t, list), HMS_CMD_SNAPSHOT,
     "list the snapshots of the slot, oldest first", NULL},
    {"help", offsetof(hms_cli_flags_t, help), HMS_CMD_ALL, "print this help and exit", NULL},
};

const int hms_config_ncli_flags =
    (int)(sizeof(hms_config_cli_flags) / sizeof(hms_config_cli_flags[0]));

int hms_config_setting_count(void)
{
    return hms_config_nsettings;
}

int hms_config_setting_index(const char *name)
{
    for (int i = 0; i < hms_config_nsettings; i++)
        if (strcmp(hms_config_settings[i].name, name) == 0)
            return i;
    return -1;
}

const char *hms_config_setting_name(int i)
{
    return i >= 0 && i < hms_config_nsettings ? hms_config_settings[i].name : NULL;
}

bool hms_config_setting_reloadable(int i)
{
    return i >= 0 && i < hms_config_nsettings &&
           (hms_config_settings[i].flags & HMS_CONFIG_F_RELOAD) != 0;
}

const char *hms_config_cmd_name(unsigned cmd)
{
    switch (cmd) {
    case HMS_CMD_RUN: return "run";
    case HMS_CMD_STATUS: return "status";
    case HMS_CMD_MIGRATE: return "migrate";
    case HMS_CMD_CONSUME: return "consume";
    case HMS_CMD_SNAPSHOT: return "snapshot";
    default: return "hms-sync";
    }
}
