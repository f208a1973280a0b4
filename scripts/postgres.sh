#!/usr/bin/env bash
# Starts the local PostgreSQL 15 cluster the tests use and makes sure the test role and
# database exist. Idempotent: safe to run on every test run. Prints the connection URL.
#
# Installs PostgreSQL from Debian when the machine lacks it. Needs root (or sudo) the
# first time; afterwards only pg_ctlcluster is used.
set -euo pipefail

PG_VERSION=${PG_VERSION:-15}
PG_USER=${FLEET_PG_USER:-fleet}
PG_PASSWORD=${FLEET_PG_PASSWORD:-fleet}
PG_DB=${FLEET_PG_DB:-fleet_test}

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

if ! command -v pg_ctlcluster >/dev/null 2>&1 || [ ! -d "/usr/lib/postgresql/$PG_VERSION" ]; then
  echo "postgres.sh: installing postgresql-$PG_VERSION" >&2
  as_root apt-get update -qq >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "postgresql-$PG_VERSION" >&2
fi

if ! pg_lsclusters -h | awk -v v="$PG_VERSION" '$1==v && $2=="main"' | grep -q .; then
  as_root pg_createcluster "$PG_VERSION" main >&2
fi

if ! pg_lsclusters -h | awk -v v="$PG_VERSION" '$1==v && $2=="main" && $4=="online"' | grep -q .; then
  as_root pg_ctlcluster "$PG_VERSION" main start >&2
fi

# Wait until the server accepts connections (up to ~15 s).
for _ in $(seq 1 60); do
  if su postgres -c "pg_isready -q -h 127.0.0.1 -p 5432" 2>/dev/null || pg_isready -q -h 127.0.0.1 -p 5432; then
    break
  fi
  sleep 0.25
done

psql_admin() { su postgres -c "psql -v ON_ERROR_STOP=1 -qAt -h /var/run/postgresql $*"; }

if [ "$(psql_admin "-c \"SELECT 1 FROM pg_roles WHERE rolname='$PG_USER'\"")" != "1" ]; then
  psql_admin "-c \"CREATE ROLE $PG_USER LOGIN PASSWORD '$PG_PASSWORD' CREATEDB\"" >&2
fi
if [ "$(psql_admin "-c \"SELECT 1 FROM pg_database WHERE datname='$PG_DB'\"")" != "1" ]; then
  psql_admin "-c \"CREATE DATABASE $PG_DB OWNER $PG_USER\"" >&2
fi

echo "postgres://$PG_USER:$PG_PASSWORD@127.0.0.1:5432/$PG_DB"
