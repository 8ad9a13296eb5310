# Makes sure a PostgreSQL answers for the tests and exports IDP_TEST_POSTGRES_URL.
# shellcheck shell=bash

PG_TMP=""
stop_throwaway_postgres() {
  [ -n "$PG_TMP" ] || return 0
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_TMP/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$PG_TMP"
}

ensure_postgres() {
  if [ -n "${IDP_TEST_POSTGRES_URL:-}" ]; then
    psql "$IDP_TEST_POSTGRES_URL" -qtAc 'select 1' >/dev/null 2>&1 || die "IDP_TEST_POSTGRES_URL=$IDP_TEST_POSTGRES_URL does not answer"
    return 0
  fi
  if psql "postgres://postgres@127.0.0.1:5432/test" -qtAc 'select 1' >/dev/null 2>&1; then
    export IDP_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:5432/test"
    return 0
  fi
  say "no PostgreSQL on 127.0.0.1:5432: starting a throwaway cluster"
  apt_install postgresql
  PG_BIN=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1)
  [ -x "$PG_BIN/initdb" ] || die "PostgreSQL server binaries not found under /usr/lib/postgresql"
  [ "$(id -u)" = 0 ] || die "starting a throwaway PostgreSQL needs root (to run it as the postgres user), or set IDP_TEST_POSTGRES_URL"
  id postgres >/dev/null 2>&1 || die "no postgres system user to run the throwaway cluster"
  PG_TMP=$(mktemp -d -t idp-pg.XXXXXX)
  chown postgres "$PG_TMP"
  trap stop_throwaway_postgres EXIT
  local port
  port=$(python3 -c 'import socket;s=socket.socket();s.bind(("127.0.0.1",0));print(s.getsockname()[1])')
  runuser -u postgres -- "$PG_BIN/initdb" -D "$PG_TMP/data" -A trust -U postgres >/dev/null || die "initdb failed"
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$PG_TMP/data" -l "$PG_TMP/log" -w \
    -o "-c listen_addresses=127.0.0.1 -p $port -k $PG_TMP -c max_connections=300 -c fsync=off" start >/dev/null \
    || { cat "$PG_TMP/log" >&2; die "the throwaway PostgreSQL did not start"; }
  psql "postgres://postgres@127.0.0.1:$port/postgres" -qc 'CREATE DATABASE test' >/dev/null || die "could not create database test"
  export IDP_TEST_POSTGRES_URL="postgres://postgres@127.0.0.1:$port/test"
}
