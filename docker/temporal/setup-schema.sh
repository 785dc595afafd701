#!/bin/sh
# One-shot (temporal-schema service, temporalio/admin-tools image): creates Temporal's two
# PostgreSQL databases and brings their schemas up to this admin-tools version, which matches the
# server's. Safe on every `docker compose up`: `create` accepts an existing database,
# `setup-schema -v 0.0` leaves a versioned schema alone and `update-schema` applies only newer
# versions. temporal-sql-tool reads the connection from SQL_PLUGIN, SQL_HOST, SQL_PORT, SQL_USER
# and SQL_PASSWORD.
set -eu
: "${SQL_PASSWORD:?SQL_PASSWORD is not set}"
for db in temporal temporal_visibility; do
  case "$db" in
    temporal) schema=temporal ;;
    *) schema=visibility ;;
  esac
  temporal-sql-tool --db "$db" create
  temporal-sql-tool --db "$db" setup-schema -v 0.0
  temporal-sql-tool --db "$db" update-schema -d "/etc/temporal/schema/postgresql/v12/$schema/versioned"
done
echo "Temporal schemas are up to date"
