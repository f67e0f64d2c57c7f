#!/bin/sh
# Redis for the Sentinel set: a replica of the primary the sentinels name, or the primary
# itself when that is this pod (or when no sentinel answers yet and this is the first pod).
# The password reaches redis-server as configuration on its standard input: it is in neither
# the pod spec nor any process's arguments. `exec`: redis-server receives SIGTERM itself.
# Needs SELF ("host:port" this Redis is known by), DATA_DIR, REDIS_PASSWORD and what
# primary.sh needs.
set -eu
. "$(dirname "$0")/primary.sh"
set -- $(find_primary)
replicaof=""
if [ "$1:$2" != "$SELF" ]; then
  replicaof="replicaof $1 $2"
fi
exec redis-server - --port "${SELF##*:}" --dir "$DATA_DIR" --appendonly yes \
  --appendfsync always --save "" --maxmemory 400mb --maxmemory-policy noeviction <<CONFIG
requirepass "$REDIS_PASSWORD"
masterauth "$REDIS_PASSWORD"
replica-announce-ip ${SELF%:*}
replica-announce-port ${SELF##*:}
$replicaof
CONFIG
