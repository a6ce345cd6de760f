#!/usr/bin/env bash
# tests/integration/tls_env.sh -- throwaway TLS material and a throwaway
# RabbitMQ node for test_tls.c.  Everything lives under DIR, which the test
# creates and removes.
#
#   tls_env.sh certs DIR
#       a CA and a second, unrelated CA; server certificates (localhost and
#       127.0.0.1; a wrong name; expired in 2020) and a client certificate
#       (CN hms_tls_ext) for SASL EXTERNAL, all signed by the first CA.
#   tls_env.sh pg-files DIR DATADIR
#       copies the server certificates and keys into a cluster's data
#       directory, owned by postgres, keys mode 600.
#   tls_env.sh rmq-start DIR AMQPS_PORT AMQP_PORT DIST_PORT EPMD_PORT
#       a RabbitMQ node (own HOME, node name, ports, mnesia) with a TLS
#       listener on 127.0.0.1:AMQPS_PORT using DIR/rmq-server.{crt,key},
#       verify_peer (a client certificate is optional) and EXTERNAL enabled,
#       and a plain listener on 127.0.0.1:AMQP_PORT for the test's consumer;
#       users hms_tls_plain (password tls-test) and hms_tls_ext (no password:
#       EXTERNAL only), both with every permission on vhost /.
#   tls_env.sh rmq-cert DIR NAME
#       the listener's certificate becomes NAME.{crt,key}, for new
#       connections, without a restart (Erlang's PEM cache is cleared).
#   tls_env.sh rmq-tls11 DIR
#       restarts the node's app with its listener limited to TLS 1.0/1.1.
#   tls_env.sh rmq-ctl DIR ARGS...   rabbitmqctl for the node
#   tls_env.sh rmq-stop DIR          stops the node and its epmd
set -euo pipefail

cmd=${1:?usage: tls_env.sh certs|pg-files|rmq-start|rmq-cert|rmq-tls11|rmq-ctl|rmq-stop DIR ...}
dir=${2:?DIR}
cd "$dir"

ext_server() { printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=%s\n' "$1"; }

# key NAME: an EC P-256 key, readable by its owner only.
key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1.key" 2>/dev/null; chmod 600 "$1.key"; }

ca() {
    key "$1"
    openssl req -x509 -new -key "$1.key" -subj "/CN=$2" -days 2 -out "$1.crt" \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign
}

# leaf NAME CN EXTFILE: a certificate signed by ca, valid for two days.
leaf() {
    key "$1"
    openssl req -new -key "$1.key" -subj "/CN=$2" -out "$1.csr"
    openssl x509 -req -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days 2 \
        -extfile "$3" -out "$1.crt" 2>/dev/null
}

certs() {
    ca ca hms-test-ca
    ca other-ca hms-test-other-ca
    ext_server 'DNS:localhost,IP:127.0.0.1' >server.ext
    ext_server 'DNS:wrong.example' >wrong.ext
    printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature\nextendedKeyUsage=clientAuth\n' >client.ext
    leaf server localhost server.ext
    leaf wrong wrong.example wrong.ext
    leaf client hms_tls_ext client.ext
    # OpenSSL 3.0's x509 cannot back-date a certificate; `openssl ca` can.
    key expired
    openssl req -new -key expired.key -subj /CN=localhost -out expired.csr
    mkdir -p ca-db
    : >ca-db/index.txt
    echo 1000 >ca-db/serial
    cat >ca-db/ca.cnf <<CNF
[ca]
default_ca = tca
[tca]
database = ca-db/index.txt
new_certs_dir = ca-db
serial = ca-db/serial
default_md = sha256
policy = pol
x509_extensions = srv
[pol]
commonName = supplied
[srv]
basicConstraints = CA:FALSE
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1
CNF
    openssl ca -batch -notext -config ca-db/ca.cnf -cert ca.crt -keyfile ca.key -in expired.csr \
        -out expired.crt -startdate 20200101000000Z -enddate 20200102000000Z 2>/dev/null
    # The broker reads its certificate from files the test swaps.
    cp server.crt rmq-server.crt
    cp server.key rmq-server.key
}

rmq_env() {
    local base=$dir/rmq
    export HOME=$base/home
    export RABBITMQ_NODENAME=$(cat "$base/nodename")
    export ERL_EPMD_PORT=$(cat "$base/epmd_port")
    export ERL_EPMD_ADDRESS=127.0.0.1
    export RABBITMQ_MNESIA_BASE=$base/mnesia
    export RABBITMQ_LOG_BASE=$base/log
    export RABBITMQ_CONFIG_FILE=$base/rabbitmq
    export RABBITMQ_ENABLED_PLUGINS_FILE=$base/enabled_plugins
    export RABBITMQ_PID_FILE=$base/rabbitmq.pid
}

ctl() { /usr/lib/rabbitmq/bin/rabbitmqctl -n "$RABBITMQ_NODENAME" "$@"; }

rmq_start() {
    local port=$1 plain=$2 dist=$3 epmd=$4 base=$dir/rmq
    mkdir -p "$base/home" "$base/mnesia" "$base/log"
    echo "hms_tls_$$@localhost" >"$base/nodename"
    echo "$epmd" >"$base/epmd_port"
    rmq_env
    export RABBITMQ_DIST_PORT=$dist
    cat >"$base/rabbitmq.conf" <<CONF
listeners.tcp.1 = 127.0.0.1:$plain
listeners.ssl.default = 127.0.0.1:$port
ssl_options.cacertfile = $dir/ca.crt
ssl_options.certfile = $dir/rmq-server.crt
ssl_options.keyfile = $dir/rmq-server.key
ssl_options.verify = verify_peer
ssl_options.fail_if_no_peer_cert = false
ssl_options.versions.1 = tlsv1.3
ssl_options.versions.2 = tlsv1.2
auth_mechanisms.1 = PLAIN
auth_mechanisms.2 = EXTERNAL
ssl_cert_login_from = common_name
disk_free_limit.absolute = 50MB
log.console = false
log.file.level = warning
CONF
    echo '[rabbitmq_auth_mechanism_ssl].' >"$base/enabled_plugins"
    # Users come with the node, saving a rabbitmqctl round trip each:
    # hms_tls_plain (password tls-test, for PLAIN) and hms_tls_ext, the
    # client certificate's CN, with no password at all, so it can log in
    # only by SASL EXTERNAL.  The hash is RabbitMQ's salted SHA-256 of
    # "tls-test".
    cat >"$base/definitions.json" <<JSON
{"users": [
  {"name": "hms_tls_plain", "password_hash": "kI3GCmawrXRzRRLym2TUD4ovPb7Gk+twN8mc041Zt7F8p1VY",
   "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": []},
  {"name": "hms_tls_ext", "password_hash": "",
   "hashing_algorithm": "rabbit_password_hashing_sha256", "tags": []}],
 "vhosts": [{"name": "/"}],
 "permissions": [
  {"user": "hms_tls_plain", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"},
  {"user": "hms_tls_ext", "vhost": "/", "configure": ".*", "write": ".*", "read": ".*"}]}
JSON
    echo "load_definitions = $base/definitions.json" >>"$base/rabbitmq.conf"
    setsid /usr/lib/rabbitmq/bin/rabbitmq-server </dev/null >"$base/log/stdout.log" 2>&1 &
    local deadline=$((SECONDS + 90))
    until ctl -q --timeout 60 await_startup >/dev/null 2>&1; do
        [ $SECONDS -lt $deadline ] || { echo "tls_env.sh: RabbitMQ did not start; see $base/log" >&2; exit 1; }
        sleep 0.5
    done
    # await_startup can return, and the listeners accept connections, before
    # the boot is over (they were seen closed again for a few seconds), so
    # wait for the boot's last line too.
    until grep -q "Starting broker.*completed" "$base/log/stdout.log"; do
        [ $SECONDS -lt $deadline ] || { echo "tls_env.sh: RabbitMQ boot did not complete; see $base/log" >&2; exit 1; }
        sleep 0.2
    done
    local p
    for p in "$port" "$plain"; do
        until (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; do
            [ $SECONDS -lt $deadline ] || { echo "tls_env.sh: nothing listens on $p; see $base/log" >&2; exit 1; }
            sleep 0.2
        done
    done
    echo "tls_env.sh: node $RABBITMQ_NODENAME up after $SECONDS s" >&2
}

# The listener's TLS versions are read when the app starts, and start_app
# reads rabbitmq.conf again: edit it and restart the app, not the Erlang VM.
rmq_tls11() {
    rmq_env
    sed -i -e 's/^ssl_options.versions.1 = .*/ssl_options.versions.1 = tlsv1.1/' \
        -e 's/^ssl_options.versions.2 = .*/ssl_options.versions.2 = tlsv1/' "$dir/rmq/rabbitmq.conf"
    ctl -q stop_app >/dev/null
    ctl -q start_app >/dev/null
}

rmq_cert() {
    rmq_env
    cp "$1.crt" rmq-server.crt.new && mv rmq-server.crt.new rmq-server.crt
    cp "$1.key" rmq-server.key.new && mv rmq-server.key.new rmq-server.key
    ctl -q eval 'ssl:clear_pem_cache().' >/dev/null
}

pg_files() {
    local f
    for f in server wrong expired; do
        install -o postgres -g postgres -m 644 "$f.crt" "$1/$f.crt"
        install -o postgres -g postgres -m 600 "$f.key" "$1/$f.key"
    done
}

rmq_stop() {
    rmq_env
    ctl -q stop >/dev/null 2>&1 || true
    epmd -kill >/dev/null 2>&1 || true
}

case $cmd in
certs) certs ;;
pg-files) pg_files "${3:?data directory}" ;;
rmq-start) rmq_start "${3:?port}" "${4:?plain port}" "${5:?dist port}" "${6:?epmd port}" ;;
rmq-cert) rmq_cert "${3:?certificate name}" ;;
rmq-tls11) rmq_tls11 ;;
rmq-ctl) shift 2; rmq_env; ctl "$@" ;;
rmq-stop) rmq_stop ;;
*) echo "tls_env.sh: unknown command $cmd" >&2; exit 2 ;;
esac
