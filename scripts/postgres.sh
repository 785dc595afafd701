#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the tests (Debian's postgresql package), on loopback only:
#   scripts/postgres.sh start DIR PORT   initdb in DIR/data, serve 127.0.0.1:PORT (user postgres, trust)
#   scripts/postgres.sh stop DIR
# The server refuses to run as root, so as root it runs as the package's postgres user.
set -euo pipefail
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1 || true)
[ -n "$bin" ] || { echo "PostgreSQL is not installed: run scripts/setup.sh --browser (apt-get install postgresql)" >&2; exit 1; }
as_owner() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }

case "${1:-}" in
  start)
    dir=$2 port=$3
    mkdir -p "$dir"
    [ "$(id -u)" -ne 0 ] || chown postgres: "$dir"
    as_owner "$bin/initdb" -D "$dir/data" -U postgres --auth=trust -E UTF8 --locale=C.UTF-8 > "$dir/initdb.log" 2>&1 \
      || { cat "$dir/initdb.log" >&2; exit 1; }
    # No TCP beyond loopback, the socket in DIR, a small footprint beside the rest of the test stack.
    as_owner "$bin/pg_ctl" -D "$dir/data" -l "$dir/postgres.log" -w -t 60 \
      -o "-h 127.0.0.1 -p $port -k $dir -c shared_buffers=32MB -c max_connections=20 -c fsync=off" start > /dev/null \
      || { cat "$dir/postgres.log" >&2; exit 1; }
    ;;
  stop)
    [ ! -f "$2/data/postmaster.pid" ] || as_owner "$bin/pg_ctl" -D "$2/data" -m fast -w stop > /dev/null
    ;;
  *)
    echo "usage: $0 start DIR PORT | stop DIR" >&2
    exit 2
    ;;
esac
