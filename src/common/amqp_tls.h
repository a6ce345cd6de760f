/* amqp_tls.h -- opening an authenticated RabbitMQ connection: TCP or TLS
 * (amqps://), certificate and host-name verification, TLS 1.2 or later, an
 * optional client certificate, and a login with a password (from the URL or
 * a password file) or with SASL EXTERNAL.  The publisher (run) and the
 * subscriber's broker (consume) both open their connections here, so the two
 * can never disagree about what "amqps://" promises.
 *
 * Errors are one line naming the setting or file and the reason; a refused
 * server certificate says so, with OpenSSL's verdict ("certificate has
 * expired", "hostname mismatch", ...).  No message ever holds a password. */
#ifndef HMS_COMMON_AMQP_TLS_H
#define HMS_COMMON_AMQP_TLS_H

#include <amqp.h>
#include <stdbool.h>
#include <stddef.h>

#include "core/status.h"

/* How to authenticate; every string is borrowed for the call. */
typedef struct {
    const char *cacert;        /* PEM CA bundle; NULL: OpenSSL's default CAs */
    const char *cert;          /* PEM client certificate; NULL: none */
    const char *key;           /* its PEM private key; set with cert */
    bool external;             /* SASL EXTERNAL instead of PLAIN */
    const char *password_file; /* first line is the password; NULL: the URL's */
} hms_amqp_tls_t;

typedef struct {
    /* amqp:// or amqps://, or the nodes of one cluster, comma-separated
     * (core/amqpnodes.h) */
    const char *url;
    int first_node; /* the node to try first: an index into url's list */
    hms_amqp_tls_t tls;
    int heartbeat_s; /* 0 disables */
    int frame_max;
    int connect_timeout_ms;                /* the TCP connect, the TLS handshake and each RPC */
    const amqp_table_t *client_properties; /* borrowed; may be NULL */
} hms_amqp_tls_opts_t;

/* Connects and logs in (the vhost of "amqp://host/" is "/").  With several
 * nodes, tries them in list order from first_node, wrapping around, until
 * one answers; *node (when not NULL) becomes its index.  On success *out is
 * a connection the caller owns (amqp_destroy_connection) with no channel
 * open yet, and target holds that node's "host:port" for log lines.
 * HMS_ERR_AMQP (no node reachable, TLS or login refused: one line with each
 * node's reason), HMS_ERR_CONFIG (a malformed URL, an unreadable or unsafe
 * file, a certificate that does not load; the remaining nodes are not
 * tried, they would refuse alike) or HMS_ERR_NOMEM. */
hms_status_t hms_amqp_tls_connect(const hms_amqp_tls_opts_t *o, amqp_connection_state_t *out,
                                  char *target, size_t target_len, int *node, hms_err_t *err);

/* Reads the password from the first line of path (without its line end)
 * into out.  Refuses a file that is not a regular file, that group or others
 * may access (mode & 077), that is larger than 64 KiB, whose first line is
 * empty, or whose first line does not fit outlen. */
hms_status_t hms_amqp_tls_read_password(const char *path, char *out, size_t outlen, hms_err_t *err);

/* Reads and loads every file t names as a connection would (the password
 * file, and into a throwaway TLS context the CA bundle, the client
 * certificate and its key, which must match), connecting nowhere: for run
 * --check-config.  HMS_ERR_CONFIG with one line naming the setting, the file
 * and the reason; HMS_ERR_NOMEM.  t is only read. */
hms_status_t hms_amqp_tls_check_files(const hms_amqp_tls_t *t, hms_err_t *err);

/* Copies an AMQP byte string into out as a C string, cut to outlen - 1. */
void hms_amqp_bytes_str(amqp_bytes_t b, char *out, size_t outlen);
/* One line describing a failed RPC reply (library error, or the broker's
 * connection.close / channel.close code and text). */
void hms_amqp_reply_text(amqp_rpc_reply_t r, char *out, size_t outlen);

#endif
