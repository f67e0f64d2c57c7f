# Sourced by redis.sh and sentinel.sh: `find_primary` prints "host port" of the primary the
# sentinels name now, or, when none answers (the set's first start, or every sentinel down),
# of the first pod ($FIRST). Needs SENTINELS ("host:port ..."), MASTER_NAME, FIRST
# ("host:port"); redis-cli takes the password from REDISCLI_AUTH, never from its arguments.
find_primary() {
  for sentinel in $SENTINELS; do
    answer=$(redis-cli -h "${sentinel%:*}" -p "${sentinel##*:}" --raw \
      sentinel get-master-addr-by-name "$MASTER_NAME" 2>/dev/null) || continue
    set -- $answer
    if [ $# -eq 2 ]; then
      echo "$1 $2"
      return
    fi
  done
  echo "${FIRST%:*} ${FIRST##*:}"
}
