#!/usr/bin/env bash
# Soak check for hangs at process exit: runs backup-push again and again
# against a throwaway PostgreSQL 15 cluster while two busy loops load the CPUs,
# and counts the runs that do not exit within 60 s (see src/util/exit-safety.ts).
#
#   scripts/soak/exit-hangs.sh [binary] [runs]     (defaults: dist/walship, 60)
#
# Before the fix, 5 of 20 runs hung on a 2-core machine; after it, none of 60.
set -euo pipefail
binary=$(realpath "${1:-dist/walship}")
runs=${2:-60}
pgbin=/usr/lib/postgresql/15/bin
work=$(mktemp -d /tmp/walship-soak-XXXXXX)
chmod 755 "$work"
as_postgres() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
[ "$(id -u)" = 0 ] && chown postgres "$work"

port=$((40000 + RANDOM % 5000))
as_postgres "$pgbin/initdb" -D "$work/data" -A trust >/dev/null
as_postgres mkdir "$work/archive"
cat >>"$work/data/postgresql.conf" <<CONF
port = $port
unix_socket_directories = '$work'
archive_mode = on
archive_command = 'WALG_FILE_PREFIX=$work/archive $binary wal-push %p'
CONF
as_postgres "$pgbin/pg_ctl" -D "$work/data" -l "$work/server.log" -w start >/dev/null
busy=()
cleanup() {
  kill "${busy[@]}" 2>/dev/null || true
  as_postgres "$pgbin/pg_ctl" -D "$work/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$work"
}
trap cleanup EXIT
client_env=(env "PATH=$pgbin:$PATH" "PGHOST=$work" "PGPORT=$port" "WALG_FILE_PREFIX=$work/archive" WALG_TAR_SIZE_THRESHOLD=8388608)
as_postgres "${client_env[@]}" pgbench -i -s 2 -q postgres >/dev/null 2>&1

for _ in 1 2; do (while :; do :; done) & busy+=($!); done
hangs=0 failures=0
for run in $(seq 1 "$runs"); do
  status=0
  as_postgres "${client_env[@]}" timeout -s KILL 60 "$binary" backup-push >/dev/null 2>"$work/stderr" || status=$?
  if [ "$status" = 137 ]; then hangs=$((hangs + 1)); echo "run $run: did not exit within 60 s"
  elif [ "$status" != 0 ]; then failures=$((failures + 1)); echo "run $run: exit $status: $(tail -1 "$work/stderr")"; fi
  as_postgres "${client_env[@]}" psql -qc "INSERT INTO pgbench_history SELECT 1, 1, 1, 1, now() FROM generate_series(1, 1000)" postgres >/dev/null
done
echo "exit-hangs: $runs backup-push runs under CPU load: $hangs hung, $failures failed"
[ "$hangs" = 0 ] && [ "$failures" = 0 ]
