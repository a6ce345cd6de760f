/* amqp_tls.c -- one place that opens, secures and authenticates a RabbitMQ
 * connection for both run and consume. */
#include "common/amqp_tls.h"

#include <amqp_ssl_socket.h>
#include <amqp_tcp_socket.h>
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "common/secretfile.h"
#include "core/amqpnodes.h"

#define PASSWORD_MAX 1024
/* The password is the first line; the rest may be a comment, not a novel. */
#define PASSWORD_FILE_MAX (64 * 1024)

/* Where the verify callback leaves OpenSSL's verdict on the broker's
 * certificate; hung on the SSL_CTX as its app data for the handshake. */
typedef struct {
    char why[200];
} verdict_t;

void hms_amqp_bytes_str(amqp_bytes_t b, char *out, size_t outlen)
{
    size_t n = b.len < outlen - 1 ? b.len : outlen - 1;
    if (n > 0)
        memcpy(out, b.bytes, n);
    out[n] = '\0';
}

void hms_amqp_reply_text(amqp_rpc_reply_t r, char *out, size_t outlen)
{
    char text[200];
    switch (r.reply_type) {
    case AMQP_RESPONSE_NORMAL: snprintf(out, outlen, "ok"); return;
    case AMQP_RESPONSE_NONE: snprintf(out, outlen, "no reply from the broker"); return;
    case AMQP_RESPONSE_LIBRARY_EXCEPTION:
        snprintf(out, outlen, "%s", amqp_error_string2(r.library_error));
        return;
    case AMQP_RESPONSE_SERVER_EXCEPTION:
        if (r.reply.id == AMQP_CONNECTION_CLOSE_METHOD) {
            amqp_connection_close_t *c = r.reply.decoded;
            hms_amqp_bytes_str(c->reply_text, text, sizeof(text));
            snprintf(out, outlen, "broker closed the connection: %u %s", c->reply_code, text);
        } else if (r.reply.id == AMQP_CHANNEL_CLOSE_METHOD) {
            amqp_channel_close_t *c = r.reply.decoded;
            hms_amqp_bytes_str(c->reply_text, text, sizeof(text));
            snprintf(out, outlen, "broker closed the channel: %u %s", c->reply_code, text);
        } else {
            snprintf(out, outlen, "unexpected broker method 0x%08x", r.reply.id);
        }
        return;
    }
    snprintf(out, outlen, "unknown reply");
}

/* The oldest reason in OpenSSL's error queue (the root cause; later entries
 * are the layers that passed it on), or fallback.  Empties the queue. */
static const char *ssl_reason(const char *fallback, char *out, size_t outlen)
{
    unsigned long first = 0, e;
    while ((e = ERR_get_error()) != 0)
        if (first == 0)
            first = e;
    const char *r = first != 0 ? ERR_reason_error_string(first) : NULL;
    snprintf(out, outlen, "%s", r != NULL ? r : fallback);
    return out;
}

/* rabbitmq-c reports a failed connect only as "a socket error occurred";
 * one plain connect attempt recovers the reason an operator needs
 * ("Connection refused", "No route to host", a name that does not
 * resolve). */
static const char *tcp_reason(const char *host, int port, int rc, char *out, size_t outlen)
{
    struct addrinfo hints, *res = NULL;
    char service[16];
    memset(&hints, 0, sizeof(hints));
    hints.ai_socktype = SOCK_STREAM;
    snprintf(service, sizeof(service), "%d", port);
    int gai = getaddrinfo(host, service, &hints, &res);
    if (gai != 0) {
        snprintf(out, outlen, "cannot resolve host: %s", gai_strerror(gai));
        return out;
    }
    snprintf(out, outlen, "%s", amqp_error_string2(rc));
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd >= 0) {
        struct timeval tv = {2, 0};
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
        if (connect(fd, res->ai_addr, res->ai_addrlen) != 0)
            snprintf(out, outlen, "%s", strerror(errno));
        close(fd);
    }
    freeaddrinfo(res);
    return out;
}

hms_status_t hms_amqp_tls_read_password(const char *path, char *out, size_t outlen, hms_err_t *err)
{
    hms_secretfile_t f;
    hms_status_t st = hms_secretfile_read(path, "amqp_password_file", PASSWORD_FILE_MAX,
                                          HMS_SECRETFILE_PRIVATE, &f, err);
    if (st != HMS_OK)
        return st;
    size_t line = strcspn(f.data, "\r\n");
    if (line > PASSWORD_MAX)
        st = hms_err_set(err, HMS_ERR_CONFIG,
                         "config: amqp_password_file: the first line of %s is longer than %d "
                         "bytes",
                         path, PASSWORD_MAX);
    else if (line == 0)
        st = hms_err_set(err, HMS_ERR_CONFIG,
                         "config: amqp_password_file: the first line of %s is empty", path);
    else if (line >= outlen)
        st = hms_err_set(err, HMS_ERR_CONFIG,
                         "config: amqp_password_file: the password in %s is too long", path);
    else {
        memcpy(out, f.data, line);
        out[line] = '\0';
    }
    hms_secretfile_free(&f);
    return st;
}

/* Records why OpenSSL refused the broker's certificate chain.  Returning
 * ok unchanged keeps OpenSSL's decision; SSL_VERIFY_PEER makes a refusal
 * end the handshake, so the broker also sees the alert. */
static int verify_cb(int ok, X509_STORE_CTX *x)
{
    if (ok)
        return ok;
    SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
    verdict_t *v = ssl != NULL ? SSL_CTX_get_app_data(SSL_get_SSL_CTX(ssl)) : NULL;
    if (v != NULL && v->why[0] == '\0')
        snprintf(v->why, sizeof(v->why), "%s",
                 X509_verify_cert_error_string(X509_STORE_CTX_get_error(x)));
    return ok;
}

/* A key needs no passphrase (amqp_key is unencrypted PEM); without this
 * callback OpenSSL would prompt for one on the terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *arg)
{
    (void)buf, (void)size, (void)rwflag, (void)arg;
    return 0;
}

/* Loads the trusted CAs (amqp_cacert, or the system's) and the client
 * certificate and key into ctx, each failure naming its setting and file.
 * The connection and run --check-config both load them here, so the check
 * refuses exactly what a connection would. */
static hms_status_t load_tls_files(SSL_CTX *ctx, const hms_amqp_tls_t *t, hms_err_t *err)
{
    char why[200];
    ERR_clear_error();
    SSL_CTX_set_default_passwd_cb(ctx, no_passphrase);
    if (t->cacert != NULL) {
        if (SSL_CTX_load_verify_locations(ctx, t->cacert, NULL) != 1)
            return hms_err_set(err, HMS_ERR_CONFIG,
                               "config: amqp_cacert: cannot load CA certificates from %s: %s",
                               t->cacert, ssl_reason("not a PEM file", why, sizeof(why)));
    } else if (SSL_CTX_set_default_verify_paths(ctx) != 1) {
        return hms_err_set(err, HMS_ERR_AMQP, "amqp: cannot load the system's CA certificates: %s",
                           ssl_reason("unknown error", why, sizeof(why)));
    }
    if (t->cert == NULL)
        return HMS_OK;
    if (SSL_CTX_use_certificate_chain_file(ctx, t->cert) != 1)
        return hms_err_set(err, HMS_ERR_CONFIG,
                           "config: amqp_cert: cannot load the client certificate %s: %s", t->cert,
                           ssl_reason("not a PEM file", why, sizeof(why)));
    if (SSL_CTX_use_PrivateKey_file(ctx, t->key, SSL_FILETYPE_PEM) != 1)
        return hms_err_set(err, HMS_ERR_CONFIG,
                           "config: amqp_key: cannot load the private key %s: %s", t->key,
                           ssl_reason("not an unencrypted PEM key", why, sizeof(why)));
    if (SSL_CTX_check_private_key(ctx) != 1)
        return hms_err_set(err, HMS_ERR_CONFIG,
                           "config: amqp_key: %s is not the private key of amqp_cert %s: %s",
                           t->key, t->cert, ssl_reason("key mismatch", why, sizeof(why)));
    return HMS_OK;
}

hms_status_t hms_amqp_tls_check_files(const hms_amqp_tls_t *t, hms_err_t *err)
{
    char password[PASSWORD_MAX + 1];
    hms_status_t st = HMS_OK;
    if (!t->external && t->password_file != NULL) {
        st = hms_amqp_tls_read_password(t->password_file, password, sizeof(password), err);
        explicit_bzero(password, sizeof(password));
        if (st != HMS_OK)
            return st;
    }
    if (t->cacert == NULL && t->cert == NULL)
        return HMS_OK;
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (ctx == NULL)
        return hms_err_set(err, HMS_ERR_NOMEM, "amqp: cannot create a TLS context");
    st = load_tls_files(ctx, t, err);
    SSL_CTX_free(ctx);
    return st;
}

/* Creates the TLS socket: peer verification against cacert (or the
 * system's CAs), the host name (or IP address) checked by OpenSSL during
 * the handshake, TLS 1.2 or later, and the client certificate if any.
 * rabbitmq-c 0.11 checks the verify result only after the handshake and
 * matches host names itself without IP SANs; the OpenSSL settings here make
 * a bad certificate fail the handshake with a precise reason. */
static hms_status_t tls_socket(amqp_connection_state_t conn, const char *host,
                               const hms_amqp_tls_t *t, verdict_t *v, amqp_socket_t **out,
                               hms_err_t *err)
{
    char why[200];
    ERR_clear_error();
    amqp_socket_t *sock = amqp_ssl_socket_new(conn);
    if (sock == NULL)
        return hms_err_set(err, HMS_ERR_NOMEM, "amqp: cannot create a TLS socket: %s",
                           ssl_reason("out of memory", why, sizeof(why)));
    amqp_ssl_socket_set_verify_peer(sock, 1);
    amqp_ssl_socket_set_verify_hostname(sock, 0); /* OpenSSL checks it, IP SANs included */
    if (amqp_ssl_socket_set_ssl_versions(sock, AMQP_TLSv1_2, AMQP_TLSvLATEST) != AMQP_STATUS_OK)
        return hms_err_set(err, HMS_ERR_AMQP, "amqp: cannot restrict TLS to 1.2 or later");
    SSL_CTX *ctx = amqp_ssl_socket_get_context(sock);
    hms_status_t st = load_tls_files(ctx, t, err);
    if (st != HMS_OK)
        return st;
    X509_VERIFY_PARAM *param = SSL_CTX_get0_param(ctx);
    unsigned char addr[16];
    bool is_ip = inet_pton(AF_INET, host, addr) == 1 || inet_pton(AF_INET6, host, addr) == 1;
    int ok = is_ip ? X509_VERIFY_PARAM_set1_ip_asc(param, host)
                   : X509_VERIFY_PARAM_set1_host(param, host, 0);
    if (ok != 1)
        return hms_err_set(err, HMS_ERR_AMQP, "amqp: cannot set the host name %s to verify", host);
    X509_VERIFY_PARAM_set_hostflags(param, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, verify_cb);
    SSL_CTX_set_app_data(ctx, v);
    *out = sock;
    return HMS_OK;
}

/* One line for a failed amqps:// handshake: the certificate's verdict if
 * there was one, otherwise OpenSSL's reason (e.g. "unsupported protocol"
 * for a broker that offers only TLS 1.0/1.1). */
static hms_status_t tls_failure(const char *target, int rc, const verdict_t *v,
                                const hms_amqp_tls_t *t, hms_err_t *err)
{
    char why[200];
    if (v->why[0] != '\0' || rc == AMQP_STATUS_SSL_PEER_VERIFY_FAILED ||
        rc == AMQP_STATUS_SSL_HOSTNAME_VERIFY_FAILED) {
        ERR_clear_error();
        return hms_err_set(err, HMS_ERR_AMQP,
                           "amqp: TLS to RabbitMQ at %s failed: the server's certificate was "
                           "refused: %s (trusted CAs: %s)",
                           target, v->why[0] != '\0' ? v->why : amqp_error_string2(rc),
                           t->cacert != NULL ? t->cacert : "the system's");
    }
    return hms_err_set(err, HMS_ERR_AMQP,
                       "amqp: TLS handshake with RabbitMQ at %s failed: %s (hms-sync allows "
                       "TLS 1.2 or later only)",
                       target, ssl_reason(amqp_error_string2(rc), why, sizeof(why)));
}

/* True when the URL names a user ("amqps://name@host"): rabbitmq-c fills
 * in "guest" otherwise. */
static bool url_has_user(const char *url)
{
    const char *auth = strstr(url, "://");
    if (auth == NULL)
        return false;
    auth += 3;
    const char *at = strchr(auth, '@');
    return at != NULL && at < auth + strcspn(auth, "/?#") && at != auth;
}

/* The identity sent with SASL EXTERNAL: the URL's user, or else the client
 * certificate's common name (RabbitMQ derives the user from the certificate
 * and ignores it, but rabbitmq-c 0.11 fails with "could not allocate memory"
 * on an empty one). */
static void external_identity(const char *url, const char *url_user, const char *cert, char *out,
                              size_t outlen)
{
    snprintf(out, outlen, "hms-sync");
    if (url_has_user(url)) {
        snprintf(out, outlen, "%s", url_user);
        return;
    }
    BIO *bio = BIO_new_file(cert, "r");
    X509 *x = bio != NULL ? PEM_read_bio_X509(bio, NULL, NULL, NULL) : NULL;
    char cn[256];
    if (x != NULL &&
        X509_NAME_get_text_by_NID(X509_get_subject_name(x), NID_commonName, cn, sizeof(cn)) > 0)
        snprintf(out, outlen, "%s", cn);
    X509_free(x);
    BIO_free(bio);
    ERR_clear_error();
}

/* Connects to the one node whose URL is node_url (len bytes, a copy is
 * parsed). */
static hms_status_t connect_node(const hms_amqp_tls_opts_t *o, const char *node_url, size_t len,
                                 amqp_connection_state_t *out, char *target, size_t target_len,
                                 hms_err_t *err)
{
    struct amqp_connection_info info;
    char why[300], password[PASSWORD_MAX + 1] = "";
    hms_status_t st;
    verdict_t verdict = {{0}};
    amqp_connection_state_t conn = NULL;
    amqp_socket_t *sock = NULL;
    char *url = strndup(node_url, len);
    if (url == NULL)
        return hms_err_set(err, HMS_ERR_NOMEM, "amqp: out of memory");
    if (amqp_parse_url(url, &info) != AMQP_STATUS_OK) {
        st = hms_err_set(err, HMS_ERR_CONFIG,
                         "amqp: malformed URL (expected amqp[s]://user:password@host:port/vhost)");
        goto fail;
    }
    /* "amqp://host/" parses to the empty vhost, which never exists; users
     * writing it mean the default one. */
    if (info.vhost[0] == '\0')
        info.vhost = "/";
    snprintf(target, target_len, "%s:%d", info.host, info.port);
    if (!o->tls.external && o->tls.password_file != NULL) {
        st = hms_amqp_tls_read_password(o->tls.password_file, password, sizeof(password), err);
        if (st != HMS_OK)
            goto fail;
        info.password = password;
    }
    if ((conn = amqp_new_connection()) == NULL) {
        st = hms_err_set(err, HMS_ERR_NOMEM, "amqp: out of memory");
        goto fail;
    }
    if (info.ssl) {
        if ((st = tls_socket(conn, info.host, &o->tls, &verdict, &sock, err)) != HMS_OK)
            goto fail;
    } else if ((sock = amqp_tcp_socket_new(conn)) == NULL) {
        st = hms_err_set(err, HMS_ERR_NOMEM, "amqp: cannot create a socket");
        goto fail;
    }
    struct timeval tv = {o->connect_timeout_ms / 1000, (o->connect_timeout_ms % 1000) * 1000};
    ERR_clear_error();
    int rc = amqp_socket_open_noblock(sock, info.host, info.port, &tv);
    if (info.ssl)
        SSL_CTX_set_app_data(amqp_ssl_socket_get_context(sock), NULL);
    if (rc != AMQP_STATUS_OK) {
        if (info.ssl && rc <= AMQP_STATUS_SSL_ERROR && rc >= AMQP_STATUS_SSL_SET_ENGINE_FAILED)
            st = tls_failure(target, rc, &verdict, &o->tls, err);
        else
            st = hms_err_set(err, HMS_ERR_AMQP, "amqp: cannot connect to RabbitMQ at %s: %s",
                             target, tcp_reason(info.host, info.port, rc, why, sizeof(why)));
        goto fail;
    }
    amqp_set_handshake_timeout(conn, &tv);
    amqp_set_rpc_timeout(conn, &tv);
    amqp_table_t none = {0, NULL};
    const amqp_table_t *props = o->client_properties != NULL ? o->client_properties : &none;
    amqp_rpc_reply_t r;
    if (o->tls.external) {
        char identity[256];
        external_identity(node_url, info.user, o->tls.cert, identity, sizeof(identity));
        r = amqp_login_with_properties(conn, info.vhost, 0, o->frame_max, o->heartbeat_s, props,
                                       AMQP_SASL_METHOD_EXTERNAL, identity);
    } else
        r = amqp_login_with_properties(conn, info.vhost, 0, o->frame_max, o->heartbeat_s, props,
                                       AMQP_SASL_METHOD_PLAIN, info.user, info.password);
    if (r.reply_type != AMQP_RESPONSE_NORMAL) {
        hms_amqp_reply_text(r, why, sizeof(why));
        if (o->tls.external)
            st = hms_err_set(err, HMS_ERR_AMQP,
                             "amqp: login to RabbitMQ at %s with the client certificate %s "
                             "(SASL EXTERNAL) failed: %s",
                             target, o->tls.cert, why);
        else
            st = hms_err_set(
                err, HMS_ERR_AMQP, "amqp: login to RabbitMQ at %s as user %s failed: %s%s", target,
                info.user, why,
                o->tls.password_file != NULL ? " (password from amqp_password_file)" : "");
        goto fail;
    }
    explicit_bzero(password, sizeof(password));
    explicit_bzero(url, len); /* the URL copy may hold the password too */
    free(url);
    *out = conn;
    return HMS_OK;
fail:
    explicit_bzero(password, sizeof(password));
    if (url != NULL)
        explicit_bzero(url, len);
    free(url);
    if (conn != NULL)
        amqp_destroy_connection(conn);
    return st;
}

hms_status_t hms_amqp_tls_connect(const hms_amqp_tls_opts_t *o, amqp_connection_state_t *out,
                                  char *target, size_t target_len, int *node, hms_err_t *err)
{
    size_t n = hms_amqp_nodes_count(o->url);
    if (n > HMS_AMQP_NODES_MAX)
        n = 1; /* the config check refuses such a list; never loop over it */
    size_t first = o->first_node > 0 ? (size_t)o->first_node % n : 0;
    hms_err_t one;
    hms_status_t st = HMS_ERR_AMQP;
    size_t used = 0;
    hms_err_set(err, HMS_ERR_AMQP, "amqp: cannot connect to any of %zu RabbitMQ nodes:", n);
    for (size_t k = 0; k < n; k++) {
        size_t i = (first + k) % n, len;
        const char *url;
        if (!hms_amqp_nodes_get(o->url, i, &url, &len))
            break;
        st = connect_node(o, url, len, out, target, target_len, &one);
        if (st == HMS_OK) {
            if (node != NULL)
                *node = (int)i;
            return HMS_OK;
        }
        if (n == 1 || st != HMS_ERR_AMQP) {
            /* A file or a setting every node would refuse alike. */
            if (err != NULL)
                *err = one;
            return st;
        }
        /* Each node's reason, without its "amqp: " prefix, while they fit. */
        const char *why = strncmp(one.msg, "amqp: ", 6) == 0 ? one.msg + 6 : one.msg;
        if (err != NULL) {
            size_t have = strlen(err->msg);
            snprintf(err->msg + have, sizeof(err->msg) - have, "%s %s", used++ > 0 ? ";" : "", why);
        }
    }
    return st;
}
