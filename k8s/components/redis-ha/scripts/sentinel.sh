#!/bin/sh
# A sentinel for the set: it monitors the primary the other sentinels name (else the first
# pod), and finds the replicas and the other sentinels from there. Sentinel rewrites its
# configuration file as it learns, so the file lives in a writable directory (SENTINEL_DIR),
# readable by this user only: it holds the password. Needs SENTINEL_SELF ("host:port" this
# sentinel is known by), SENTINEL_DIR, REDIS_PASSWORD and what primary.sh needs;
# DOWN_AFTER_MS and FAILOVER_TIMEOUT_MS tune how soon a silent primary is replaced.
set -eu
. "$(dirname "$0")/primary.sh"
set -- $(find_primary)
umask 077
config="$SENTINEL_DIR/sentinel.conf"
cat > "$config" <<CONFIG
port ${SENTINEL_SELF##*:}
sentinel resolve-hostnames yes
sentinel announce-hostnames yes
sentinel announce-ip ${SENTINEL_SELF%:*}
sentinel announce-port ${SENTINEL_SELF##*:}
requirepass "$REDIS_PASSWORD"
sentinel sentinel-pass "$REDIS_PASSWORD"
sentinel monitor $MASTER_NAME $1 $2 2
sentinel auth-pass $MASTER_NAME "$REDIS_PASSWORD"
sentinel down-after-milliseconds $MASTER_NAME ${DOWN_AFTER_MS:-5000}
sentinel failover-timeout $MASTER_NAME ${FAILOVER_TIMEOUT_MS:-30000}
sentinel parallel-syncs $MASTER_NAME 1
CONFIG
exec redis-server "$config" --sentinel
