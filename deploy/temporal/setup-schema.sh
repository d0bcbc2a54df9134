#!/bin/sh
# One-shot of docker-compose.yml's temporal-schema service (temporalio/admin-tools image):
# creates Temporal's persistence and visibility databases on PostgreSQL and brings both schemas
# to the versions this admin-tools release ships (postgres12 plugin: PostgreSQL 12 and later).
# Safe to run again: setup-schema keeps a newer recorded version, update-schema applies only the
# versions not yet applied. The password comes in SQL_PASSWORD, never on the command line.
set -eu

: "${POSTGRES_SEEDS:?POSTGRES_SEEDS: the PostgreSQL host}"
: "${POSTGRES_USER:?POSTGRES_USER: the PostgreSQL user Temporal connects as}"
: "${SQL_PASSWORD:?SQL_PASSWORD: that user's password}"
PORT="${DB_PORT:-5432}"
SCHEMA=/etc/temporal/schema/postgresql/v12

sql_tool() {
    temporal-sql-tool --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "$PORT" -u "$POSTGRES_USER" "$@"
}

setup() {  # database, schema folder under $SCHEMA
    # An existing database is kept (CREATE DATABASE then fails); any other failure to connect
    # or to create fails setup-schema just below, which stops the script.
    sql_tool --db "$1" create || echo "database $1 not created (it may exist already)"
    sql_tool --db "$1" setup-schema -v 0.0
    sql_tool --db "$1" update-schema -d "$SCHEMA/$2/versioned"
    echo "database $1: schema up to date"
}

setup "${DBNAME:-temporal}" temporal
setup "${VISIBILITY_DBNAME:-temporal_visibility}" visibility
