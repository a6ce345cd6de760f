#!/bin/sh
# init-roles.sh -- run once by the postgres image's entrypoint on an empty
# data directory (deploy/compose.yml mounts it in /docker-entrypoint-initdb.d).
# Creates the EHR and replica databases and the two login roles with their
# passwords (PG_HMS_SYNC_PASSWORD, PG_SUBSCRIBER_PASSWORD from deploy/.env).
# The migrations create these roles only when they are missing and never set
# passwords, so creating them here first is how a password gets in without
# ever living in a migration.
set -eu
: "${PG_HMS_SYNC_PASSWORD:?set it in deploy/.env}"
: "${PG_SUBSCRIBER_PASSWORD:?set it in deploy/.env}"
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname postgres \
    -v sync_pw="$PG_HMS_SYNC_PASSWORD" -v sub_pw="$PG_SUBSCRIBER_PASSWORD" <<'SQL'
CREATE DATABASE ehr;
CREATE DATABASE replicas;
CREATE ROLE hms_sync LOGIN REPLICATION NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'sync_pw';
CREATE ROLE hms_sync_subscriber LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION PASSWORD :'sub_pw';
SQL
