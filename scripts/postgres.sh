#!/usr/bin/env bash
# A private PostgreSQL cluster for the tests, on loopback only
# (127.0.0.1:25432, its socket in its own directory), its data under
# ${SENTIRIC_POSTGRES_DIR:-/tmp/sentiric-postgres}, run as the `postgres`
# user when started as root (PostgreSQL refuses root). It never touches
# a system cluster.
#
#   scripts/postgres.sh start    create it if need be, start it, make the database
#   scripts/postgres.sh stop     stop it (also: an outage)
#   scripts/postgres.sh url      the URL of the tests' database
#   scripts/postgres.sh psql …   psql on the tests' database
#
# fsync is off (the tests' data is scratch); SENTIRIC_POSTGRES_FSYNC=on at
# start for a benchmark that writes as production does.
set -euo pipefail

base=${SENTIRIC_POSTGRES_DIR:-/tmp/sentiric-postgres}
port=25432
db=sentiric_test
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
as=()
if [ "$(id -u)" = 0 ]; then as=(runuser -u postgres --); fi
pg() { "${as[@]}" "$bin/$1" "${@:2}"; }

case "${1:-}" in
  start)
    if [ ! -f "$base/data/PG_VERSION" ]; then
      mkdir -p "$base"
      [ "$(id -u)" = 0 ] && chown postgres "$base"
      pg initdb -D "$base/data" -A trust -U postgres --no-instructions >/dev/null
    fi
    if ! pg pg_ctl -D "$base/data" status >/dev/null 2>&1; then
      pg pg_ctl -D "$base/data" -l "$base/log" -w -t 60 \
        -o "-c listen_addresses=127.0.0.1 -p $port -k $base -c fsync=${SENTIRIC_POSTGRES_FSYNC:-off}" start >/dev/null
    fi
    if ! pg psql -h 127.0.0.1 -p "$port" -U postgres -tAc \
      "select 1 from pg_database where datname='$db'" | grep -q 1; then
      pg createdb -h 127.0.0.1 -p "$port" -U postgres "$db"
    fi
    ;;
  stop) pg pg_ctl -D "$base/data" -m fast -w stop >/dev/null 2>&1 || true ;;
  url) echo "postgres://postgres@127.0.0.1:$port/$db" ;;
  psql) pg psql -h 127.0.0.1 -p "$port" -U postgres -d "$db" "${@:2}" ;;
  *) sed -n '2,15p' "$0" >&2; exit 2 ;;
esac
