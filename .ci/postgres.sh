#!/usr/bin/env bash
# Start a throwaway PostgreSQL server on loopback for the tests that share an Optuna storage
# across workers. Prints the SQLAlchemy URL on its last line. Installs the server from Debian's
# packages when it is missing.
set -euo pipefail
# A free loopback port unless QOPT_PG_PORT names one (a server left from an earlier run keeps
# its port busy).
port="${QOPT_PG_PORT:-$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')}"
if ! ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
fi
bin=$(dirname "$(ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n 1)")
data=$(mktemp -d /tmp/qopt-pg.XXXXXX)
chown postgres:postgres "$data"
run() { if [ "$(id -u)" = 0 ]; then su postgres -s /bin/bash -c "$*"; else bash -c "$*"; fi; }
run "$bin/initdb -D $data/db -A trust -U postgres >/dev/null"
run "$bin/pg_ctl -D $data/db -l $data/log -o \"-c listen_addresses=127.0.0.1 -p $port -k $data\" -w start >/dev/null"
run "$bin/createdb -h 127.0.0.1 -p $port -U postgres qopt_test"
echo "postgresql://postgres@127.0.0.1:$port/qopt_test"  # the documented form: psycopg 3, from the optuna extra
