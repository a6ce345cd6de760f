#!/usr/bin/env bash
# tests/data/capture-pgoutput.sh -- regenerates the pgoutput byte vectors in
# tests/data/pgoutput/ from a real PostgreSQL 15 (the scratch server of
# tests/servers.sh unless HMS_TEST_PG says otherwise).
#
#   tests/data/capture-pgoutput.sh [OUTDIR]
#   tests/data/capture-pgoutput.sh --corpus   (only rebuild the fuzz seeds)
#
# It creates a throw-away database, two tables, a publication and a logical
# slot, runs one scenario per output file and drains the slot with
# pg_logical_slot_get_binary_changes() after each, so every file holds exactly
# the messages of its own scenario, starting with the Relation messages a new
# decoding session sends.  Everything it creates is dropped on exit.
#
# File format (what tests/unit/test_pgoutput.c reads): lines starting with '#'
# are comments; every other non-empty line is one pgoutput message in hex.
# The comment right above a message names its kind and the LSN and xid
# PostgreSQL reported for it.  Values are fixed in the SQL below, so tests can
# assert them; LSNs, xids, relation ids and commit times differ between
# captures, so tests read those from the messages themselves.
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
CORPUS=$HERE/../fuzz/corpus/pgoutput

# make_corpus: the fuzz seeds of tests/fuzz/fuzz_pgoutput.c, from the .hex
# files: every message framed with a 2-byte big-endian length, one file per
# message and one per scenario (all its messages in a row).
make_corpus() {
    mkdir -p "$CORPUS"
    rm -f "$CORPUS"/*
    python3 - "$HERE/pgoutput" "$CORPUS" <<'PY'
import os, sys
src, dst = sys.argv[1], sys.argv[2]
for name in sorted(os.listdir(src)):
    if not name.endswith('.hex'):
        continue
    msgs = [bytes.fromhex(l.strip()) for l in open(os.path.join(src, name))
            if l.strip() and not l.startswith('#')]
    frame = lambda m: len(m).to_bytes(2, 'big') + m
    base = name[:-4]
    with open(os.path.join(dst, base + '-all'), 'wb') as f:
        f.write(b''.join(frame(m) for m in msgs))
    for i, m in enumerate(msgs):
        with open(os.path.join(dst, '%s-%02d-%s' % (base, i, chr(m[0]))), 'wb') as f:
            f.write(frame(m))
PY
    echo "wrote $(ls "$CORPUS" | wc -l) seeds in $CORPUS"
}
if [ "${1:-}" = --corpus ]; then
    make_corpus
    exit 0
fi
OUT=${1:-$HERE/pgoutput}
if [ -z "${HMS_TEST_PG:-}" ]; then
    # shellcheck disable=SC1090
    . "$("$HERE/../servers.sh" env)"
fi
DB=decoder_pgo_capture
SLOT=decoder_pgo_capture
PUB=decoder_pgo_pub
ORIGIN=decoder_pgo_origin
# pgoutput sends values in text through the output functions of the decoding
# session, so its settings shape the bytes: pin them.
export PGOPTIONS="-c TimeZone=UTC -c DateStyle=ISO,MDY -c extra_float_digits=1 -c IntervalStyle=postgres"

admin() { psql "$HMS_TEST_PG" -X -q -v ON_ERROR_STOP=1 "$@"; }
db() { psql "$HMS_TEST_PG dbname=$DB" -X -q -v ON_ERROR_STOP=1 "$@"; }

cleanup() {
    db -c "SELECT pg_drop_replication_slot('$SLOT') FROM pg_replication_slots WHERE slot_name = '$SLOT'" \
        >/dev/null 2>&1 || true
    admin -c "SELECT pg_replication_origin_drop('$ORIGIN') FROM pg_replication_origin WHERE roname = '$ORIGIN'" \
        >/dev/null 2>&1 || true
    admin -c "DROP DATABASE IF EXISTS $DB WITH (FORCE)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
cleanup

admin -c "CREATE DATABASE $DB"
db <<SQL
CREATE TABLE incidents (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
    occurred_at timestamptz NOT NULL DEFAULT now(),
    region text NOT NULL,
    severity smallint NOT NULL DEFAULT 3 CHECK (severity BETWEEN 1 AND 5),
    status text NOT NULL DEFAULT 'open',
    summary text,
    reported_by text,
    version bigint NOT NULL DEFAULT 1,
    updated_at timestamptz NOT NULL DEFAULT now(),
    origin text NOT NULL DEFAULT 'hms-ehr'
);
ALTER TABLE incidents REPLICA IDENTITY FULL;
-- Out of line and uncompressed, so a long summary is always TOASTed.
ALTER TABLE incidents ALTER COLUMN summary SET STORAGE EXTERNAL;
CREATE TYPE mood AS ENUM ('calm', 'tense');
CREATE TABLE oddities (
    id integer PRIMARY KEY,
    n numeric,
    f float8,
    b boolean,
    j jsonb,
    ia integer[],
    ta text[],
    m mood
);
CREATE PUBLICATION $PUB FOR TABLE incidents, oddities;
SELECT 'init' FROM pg_create_logical_replication_slot('$SLOT', 'pgoutput');
SQL
admin -c "SELECT pg_replication_origin_create('$ORIGIN')" >/dev/null

mkdir -p "$OUT"

# capture NAME DESCRIPTION: runs the SQL on stdin, then writes the slot's
# messages.  A scenario that yields no message is a capture bug: fail.
capture() {
    local name=$1 desc=$2 file=$OUT/$1.hex n
    # The scratch cluster commits asynchronously, and decoding stops at the
    # flushed end of WAL: make this session's commits flush.
    { echo "SET synchronous_commit = on;"; cat; } | db >/dev/null
    {
        echo "# $name: $desc"
        echo "# regenerate with tests/data/capture-pgoutput.sh; one pgoutput message (proto_version 1) per line"
        db -At -F ' ' -c "SELECT lsn, xid, encode(data, 'hex') FROM pg_logical_slot_get_binary_changes('$SLOT', NULL, NULL,
                'proto_version', '1', 'publication_names', '$PUB', 'messages', 'true')" |
            while read -r lsn xid hex; do
                echo "# $(kind_name "${hex:0:2}") lsn=$lsn xid=$xid"
                echo "$hex"
            done
    } >"$file"
    n=$(grep -vc '^#' "$file" || true)
    [ "$n" -gt 0 ] || { echo "capture-pgoutput.sh: scenario $name yielded no message" >&2; exit 1; }
    echo "wrote $file ($n messages)"
}

kind_name() {
    case $1 in
    42) echo Begin ;; 43) echo Commit ;; 4f) echo Origin ;; 52) echo Relation ;;
    59) echo Type ;; 49) echo Insert ;; 55) echo Update ;; 44) echo Delete ;;
    54) echo Truncate ;; 4d) echo Message ;; *) echo "kind 0x$1" ;;
    esac
}

capture insert_single "one INSERT into incidents (summary NULL)" <<'SQL'
INSERT INTO incidents (id, occurred_at, region, severity, status, summary, reported_by, version, updated_at, origin)
VALUES ('11111111-1111-4111-8111-111111111111', '2026-01-02 03:04:05.123456+00', 'north', 2, 'open',
        NULL, 'dr.who', 1, '2026-01-02 03:04:05.123456+00', 'hms-ehr');
SQL

capture insert_multi "one INSERT of three rows into incidents" <<'SQL'
INSERT INTO incidents (id, occurred_at, region, severity, summary, reported_by, updated_at)
VALUES ('22222222-2222-4222-8222-222222222201', '2026-02-01 00:00:00+00', 'south', 1, 'first', 'a', '2026-02-01 00:00:00+00'),
       ('22222222-2222-4222-8222-222222222202', '2026-02-01 00:00:01+00', 'east', 4, 'second, with "quotes" and é', 'b', '2026-02-01 00:00:01+00'),
       ('22222222-2222-4222-8222-222222222203', '2026-02-01 00:00:02+00', 'we.st*#', 5, '', NULL, '2026-02-01 00:00:02+00');
SQL

capture update_full "UPDATE of one incident (REPLICA IDENTITY FULL: old tuple 'O')" <<'SQL'
UPDATE incidents SET status = 'closed', version = version + 1, updated_at = '2026-01-03 00:00:00+00'
WHERE id = '11111111-1111-4111-8111-111111111111';
SQL

capture update_toast "INSERT of a 6400-byte TOASTed summary, then an UPDATE leaving it unchanged (new tuple 'u')" <<'SQL'
INSERT INTO incidents (id, occurred_at, region, summary, updated_at)
VALUES ('33333333-3333-4333-8333-333333333333', '2026-03-01 00:00:00+00', 'toast',
        (SELECT string_agg(md5(i::text), '') FROM generate_series(1, 200) i), '2026-03-01 00:00:00+00');
UPDATE incidents SET severity = 4, version = 2, updated_at = '2026-03-02 00:00:00+00'
WHERE id = '33333333-3333-4333-8333-333333333333';
SQL

capture delete_full "DELETE of one incident (REPLICA IDENTITY FULL: old tuple 'O')" <<'SQL'
DELETE FROM incidents WHERE id = '22222222-2222-4222-8222-222222222201';
SQL

capture oddities "INSERT, UPDATE (same key: no old tuple), UPDATE of the key ('K'), DELETE ('K') in oddities" <<'SQL'
BEGIN;
INSERT INTO oddities VALUES
    (1, 12345678901234567890.0123456789, 'NaN', true, '{"a": [1, 2.5, null], "b": "x\"y"}',
     '{1,-2,3}', '{"plain",NULL,"with \"quote\"","a,b","NULL"}', 'calm'),
    (2, -0.5, 'Infinity', false, 'null', '{}', '{}', NULL),
    (3, NULL, '-Infinity', NULL, NULL, '{{1,2},{3,4}}', NULL, 'tense');
UPDATE oddities SET f = 1.5e300 WHERE id = 2;
UPDATE oddities SET id = 4 WHERE id = 3;
DELETE FROM oddities WHERE id = 1;
COMMIT;
SQL

capture truncate "TRUNCATE of both tables with RESTART IDENTITY CASCADE" <<'SQL'
TRUNCATE incidents, oddities RESTART IDENTITY CASCADE;
SQL

capture messages "a non-transactional logical message, then a transactional one with an INSERT" <<'SQL'
SELECT pg_logical_emit_message(false, 'hms.test', 'outside a transaction');
BEGIN;
SELECT pg_logical_emit_message(true, 'hms.test', '\x00ff01'::bytea);
INSERT INTO oddities (id) VALUES (10);
COMMIT;
SQL

capture origin "an INSERT made under a replication origin (Origin message)" <<SQL
SELECT pg_replication_origin_session_setup('$ORIGIN');
BEGIN;
SELECT pg_replication_origin_xact_setup('0/12345678', '2026-04-01 00:00:00+00');
INSERT INTO oddities (id) VALUES (20);
COMMIT;
SELECT pg_replication_origin_session_reset();
SQL

capture schema_change "an INSERT, ALTER TABLE ADD COLUMN, another INSERT: two Relation messages for one id" <<'SQL'
INSERT INTO oddities (id) VALUES (30);
ALTER TABLE oddities ADD COLUMN extra text;
INSERT INTO oddities (id, extra) VALUES (31, 'added');
SQL

if [ "$OUT" = "$HERE/pgoutput" ]; then
    make_corpus
fi
