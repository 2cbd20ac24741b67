#!/bin/sh
# One-shot job of docker-compose.yml (temporalio/admin-tools image; test/cluster runs it too, with
# the `sql` tool built from the same server release): the temporal and temporal_visibility
# databases on PostgreSQL and their schema, up to the server release's. Idempotent: an existing
# database and version table are kept (their step says so and goes on), and update-schema applies
# only the versions that are missing.
# Env: POSTGRES_SEEDS (host), DB_PORT, POSTGRES_USER, SQL_PASSWORD (temporal-sql-tool reads it);
# SQL_TOOL and SCHEMA_DIR where the tool and the schema files are elsewhere than in admin-tools.
set -eu
SCHEMA_DIR="${SCHEMA_DIR:-/etc/temporal/schema/postgresql/v12}"
SQL_TOOL="${SQL_TOOL:-temporal-sql-tool}"

sql() {
  db="$1"
  shift
  "$SQL_TOOL" --plugin postgres12 --ep "$POSTGRES_SEEDS" -p "$DB_PORT" -u "$POSTGRES_USER" --db "$db" "$@"
}

for db in temporal temporal_visibility; do
  if [ "$db" = temporal ]; then versioned="$SCHEMA_DIR/temporal/versioned"; else versioned="$SCHEMA_DIR/visibility/versioned"; fi
  sql "$db" create-database || echo "database $db: not created (it exists, or the next step says why)"
  sql "$db" setup-schema -v 0.0 || echo "database $db: version table not created (it exists, or the next step says why)"
  sql "$db" update-schema -d "$versioned"
  echo "database $db: schema up to date"
done
