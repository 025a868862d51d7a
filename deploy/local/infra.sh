#!/usr/bin/env bash
# Local infrastructure for Hookline dev and CI: Apache Kafka (KRaft, single
# node) and FerretDB (MongoDB wire protocol on SQLite), both on 127.0.0.1.
#
#   deploy/local/infra.sh start          fetch once, start both, wait until ready,
#                                        print KAFKA_BROKERS=... / MONGODB_URI=... on stdout
#   deploy/local/infra.sh stop [--purge] stop both; --purge also deletes their data
#   deploy/local/infra.sh reset          same as stop --purge
#   deploy/local/infra.sh status         what runs where; exit 0 only if both are up
#   deploy/local/infra.sh env            export lines, for: eval "$(deploy/local/infra.sh env)"
#   deploy/local/infra.sh fetch          only download/build (e.g. a CI cache-warming step)
#
# Settings (environment):
#   HOOKLINE_CACHE_DIR  downloaded jars, built binaries   (default <repo>/.cache)
#   HOOKLINE_STATE_DIR  data, logs, pid files             (default <repo>/.local)
#   HOOKLINE_KAFKA_PORT=19092  HOOKLINE_KAFKA_CONTROLLER_PORT=19093  HOOKLINE_MONGO_PORT=27027
#   KAFKA_BROKERS / MONGODB_URI  if set to anything but the local address, that
#                       component is not provisioned and the given one is used.
#
# Progress goes to stderr; stdout carries only the KEY=VALUE / export lines so
# callers can capture them.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KAFKA_SH="$HOOKLINE_LOCAL_DIR/kafka.sh"
FERRETDB_SH="$HOOKLINE_LOCAL_DIR/ferretdb.sh"

cmd_fetch() {
  "$KAFKA_SH" fetch
  "$FERRETDB_SH" fetch
}

cmd_start() {
  "$KAFKA_SH" check
  "$FERRETDB_SH" check
  # Launch both before waiting on either: Kafka boots (several seconds) while
  # FerretDB starts, or on a first run while FerretDB is being built.
  "$KAFKA_SH" launch
  "$FERRETDB_SH" launch || die "ferretdb failed to start; kafka may be running: 'deploy/local/infra.sh stop' to clean up"
  local failed=0
  "$KAFKA_SH" wait || failed=1
  "$FERRETDB_SH" wait || failed=1
  if (( failed )); then
    die "infra did not come up (details above); 'deploy/local/infra.sh stop' cleans up whatever did start"
  fi
  "$KAFKA_SH" env | sed 's/^export //'
  "$FERRETDB_SH" env | sed 's/^export //'
}

cmd_stop() {
  "$KAFKA_SH" stop "$@"
  "$FERRETDB_SH" stop "$@"
}

cmd_status() {
  local rc=0
  "$KAFKA_SH" status || rc=1
  "$FERRETDB_SH" status || rc=1
  return "$rc"
}

cmd_env() {
  "$KAFKA_SH" env
  "$FERRETDB_SH" env
}

case "${1:-}" in
  start) with_lock cmd_start ;;
  stop)
    shift
    [[ $# -eq 0 || "$1" == "--purge" ]] || die "usage: infra.sh stop [--purge]"
    with_lock cmd_stop "$@"
    ;;
  reset) with_lock cmd_stop --purge ;;
  status) cmd_status ;;
  env) cmd_env ;;
  fetch) with_lock cmd_fetch ;;
  *)
    sed -n '2,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "${BASH_SOURCE[0]}" >&2
    exit 64
    ;;
esac
