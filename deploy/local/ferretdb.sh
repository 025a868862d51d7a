#!/usr/bin/env bash
# Local FerretDB (MongoDB wire protocol, SQLite backend) on loopback.
#
#   ferretdb.sh fetch            build the ferretdb binary into the cache (once)
#   ferretdb.sh start            fetch + launch + wait until it answers ping
#   ferretdb.sh stop [--purge]   stop via pid file; --purge also deletes the data
#   ferretdb.sh status | env
#
# Usually driven by infra.sh. FerretDB 1.x is used because 2.x needs a
# PostgreSQL with the DocumentDB extension; 1.x's SQLite backend is a single
# Go binary with no server dependency.
set -euo pipefail
# shellcheck source=lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

# Latest 1.24 patch release (1.24.1/1.24.2 only add bug fixes and dependency
# bumps over 1.24.0).
FERRETDB_VERSION="${HOOKLINE_FERRETDB_VERSION:-v1.24.2}"
FERRETDB_MODULE=github.com/FerretDB/FerretDB
FERRETDB_BIN="$CACHE_DIR/bin/ferretdb-$FERRETDB_VERSION"
FERRETDB_STATE="$STATE_DIR/ferretdb"
FERRETDB_DATA="$FERRETDB_STATE/data"
FERRETDB_LOG="$FERRETDB_STATE/logs/ferretdb.log"
FERRETDB_PIDFILE="$RUN_DIR/ferretdb.pid"
FERRETDB_ADDR="$BIND_HOST:$MONGO_PORT"
FERRETDB_URI="mongodb://$FERRETDB_ADDR/"
FERRETDB_SQLITE_URL="file:$FERRETDB_DATA/"
# Appears verbatim in the process's argv; see pid_alive.
FERRETDB_MARKER="--sqlite-url=$FERRETDB_SQLITE_URL"
FERRETDB_START_TIMEOUT="${HOOKLINE_MONGO_START_TIMEOUT:-60}"

# Same rule as KAFKA_BROKERS: only a URI that is not our own means "external".
external_mongo() {
  [[ -n "${MONGODB_URI:-}" ]] || return 1
  case "$MONGODB_URI" in
    "mongodb://$FERRETDB_ADDR" | "mongodb://$FERRETDB_ADDR/"* | \
    "mongodb://localhost:$MONGO_PORT" | "mongodb://localhost:$MONGO_PORT/"*) return 1 ;;
  esac
  return 0
}

need_go() {
  need_cmd go "building FerretDB $FERRETDB_VERSION needs a Go toolchain (1.24+); install Go or set MONGODB_URI to use an existing MongoDB/FerretDB."
}

# Everything start will need, checked before infra.sh launches anything.
cmd_check() {
  external_mongo && return 0
  [[ -x "$FERRETDB_BIN" ]] || need_go
}

cmd_fetch() {
  [[ -x "$FERRETDB_BIN" ]] && return 0
  need_go
  log "building FerretDB $FERRETDB_VERSION into $FERRETDB_BIN (one-time, ~1 min)"
  # Not `go install module/cmd/ferretdb@version`: that builds fine but the
  # binary panics at startup ("Invalid build/version/version.txt"), because
  # FerretDB embeds a generated version.txt that is not part of the published
  # module (upstream issue FerretDB/FerretDB#2982). So: take the module source
  # from the module proxy, add version.txt, build that.
  # GOWORK=off: the source copy sits inside this repo's tree and must not be
  # captured by any go.work the repo may grow.
  local dir tmp
  dir="$(GOWORK=off GOFLAGS='' go mod download -json "$FERRETDB_MODULE@$FERRETDB_VERSION" |
    sed -n 's/^[[:space:]]*"Dir": "\(.*\)",\{0,1\}$/\1/p')" || true
  [[ -n "$dir" && -d "$dir" ]] || die "could not download $FERRETDB_MODULE@$FERRETDB_VERSION from the Go module proxy"
  mkdir -p "$CACHE_DIR/bin" "$CACHE_DIR/tmp"
  tmp="$(mktemp -d "$CACHE_DIR/tmp/ferretdb-src.XXXXXX")"
  cp -R "$dir/." "$tmp/"
  chmod -R u+w "$tmp" # the module cache is read-only
  printf '%s\n' "$FERRETDB_VERSION" >"$tmp/build/version/version.txt"
  if ! (cd "$tmp" && GOWORK=off GOFLAGS='' go build -trimpath -buildvcs=false \
        -o "$FERRETDB_BIN.tmp" ./cmd/ferretdb) >"$tmp.log" 2>&1; then
    cat "$tmp.log" >&2
    rm -rf "$tmp" "$tmp.log" "$FERRETDB_BIN.tmp"
    die "building FerretDB $FERRETDB_VERSION failed (see output above)"
  fi
  rm -rf "$tmp" "$tmp.log"
  rmdir "$CACHE_DIR/tmp" 2>/dev/null || true
  mv "$FERRETDB_BIN.tmp" "$FERRETDB_BIN"
}

cmd_launch() {
  if external_mongo; then
    log "MONGODB_URI is set ($MONGODB_URI): using that server, not starting a local FerretDB"
    return 0
  fi
  local pid
  if pid="$(pid_alive "$FERRETDB_PIDFILE" "$FERRETDB_MARKER")"; then
    log "ferretdb already running (pid $pid) on $FERRETDB_ADDR"
    return 0
  fi
  cmd_fetch
  if port_open "$BIND_HOST" "$MONGO_PORT"; then
    die "port $FERRETDB_ADDR is already in use by a process this script did not start; stop it or set HOOKLINE_MONGO_PORT"
  fi
  mkdir -p "$FERRETDB_DATA" "$(dirname "$FERRETDB_LOG")"
  # FerretDB only logs to stdout; keep one previous log instead of growing forever.
  if [[ -f "$FERRETDB_LOG" ]] && (( $(stat -c %s "$FERRETDB_LOG") > 20 * 1024 * 1024 )); then
    mv -f "$FERRETDB_LOG" "$FERRETDB_LOG.1"
  fi
  log "starting ferretdb $FERRETDB_VERSION on $FERRETDB_ADDR (sqlite, data $FERRETDB_DATA)"
  # --debug-addr=-: its default 127.0.0.1:8088 would collide with whatever
  # else runs on 8088 (two checkouts, a dev server). Telemetry off twice
  # over: the flag, and DO_NOT_TRACK which FerretDB also honours.
  DO_NOT_TRACK=1 spawn_detached "$FERRETDB_PIDFILE" "$FERRETDB_LOG" \
    "$FERRETDB_BIN" \
      --handler=sqlite \
      "$FERRETDB_MARKER" \
      --listen-addr="$FERRETDB_ADDR" \
      --state-dir="$FERRETDB_STATE" \
      --telemetry=disable \
      --debug-addr=- \
      --log-level=info
}

cmd_wait() {
  external_mongo && return 0
  local pid deadline=$((SECONDS + FERRETDB_START_TIMEOUT))
  while :; do
    if ! pid="$(pid_alive "$FERRETDB_PIDFILE" "$FERRETDB_MARKER")"; then
      log "ferretdb exited during startup"
      tail_log "$FERRETDB_LOG" 30
      rm -f "$FERRETDB_PIDFILE"
      return 1
    fi
    if port_open "$BIND_HOST" "$MONGO_PORT"; then
      local rc=0
      probe mongo "$BIND_HOST" "$MONGO_PORT" || rc=$?
      if (( rc == 0 || rc == 2 )); then
        log "ferretdb ready (pid $pid) on $FERRETDB_ADDR"
        return 0
      fi
    fi
    if (( SECONDS >= deadline )); then
      log "ferretdb did not become ready within ${FERRETDB_START_TIMEOUT}s (still running as pid $pid; 'infra.sh stop' to clean up)"
      tail_log "$FERRETDB_LOG" 30
      return 1
    fi
    sleep 0.3
  done
}

cmd_status() {
  if external_mongo; then
    local hp; hp="$(first_hostport "$MONGODB_URI")"
    if probe mongo "${hp%:*}" "${hp##*:}"; then
      echo "ferretdb: external, up ($MONGODB_URI)"; return 0
    fi
    echo "ferretdb: external, NOT reachable ($MONGODB_URI)"; return 1
  fi
  local pid
  if ! pid="$(pid_alive "$FERRETDB_PIDFILE" "$FERRETDB_MARKER")"; then
    echo "ferretdb: not running"; return 1
  fi
  local rc=0
  probe mongo "$BIND_HOST" "$MONGO_PORT" || rc=$?
  case $rc in
    0) echo "ferretdb: up, pid $pid, $FERRETDB_URI (FerretDB $FERRETDB_VERSION/sqlite, data $FERRETDB_DATA, log $FERRETDB_LOG)" ;;
    2) if port_open "$BIND_HOST" "$MONGO_PORT"; then echo "ferretdb: up (port only, node missing), pid $pid, $FERRETDB_URI"; rc=0
       else echo "ferretdb: process $pid alive but $FERRETDB_ADDR not accepting connections"; rc=1; fi ;;
    *) echo "ferretdb: process $pid alive but not answering ping on $FERRETDB_ADDR (see $FERRETDB_LOG)"; rc=1 ;;
  esac
  return "$rc"
}

cmd_env() {
  if external_mongo; then echo "export MONGODB_URI=$MONGODB_URI"; else echo "export MONGODB_URI=$FERRETDB_URI"; fi
}

cmd_stop() {
  stop_pid ferretdb "$FERRETDB_PIDFILE" "$FERRETDB_MARKER" "${HOOKLINE_STOP_GRACE:-20}"
  if [[ "${1:-}" == "--purge" ]]; then
    log "purging ferretdb data ($FERRETDB_DATA)"
    rm -rf "$FERRETDB_DATA"
  fi
}

case "${1:-}" in
  check) cmd_check ;;
  fetch) with_lock cmd_fetch ;;
  launch) cmd_launch ;;
  wait) cmd_wait ;;
  start) with_lock cmd_launch && cmd_wait && cmd_env ;;
  stop) shift; with_lock cmd_stop "$@" ;;
  status) cmd_status ;;
  env) cmd_env ;;
  version) echo "$FERRETDB_VERSION" ;;
  *) die "usage: ferretdb.sh fetch|start|stop [--purge]|status|env|version" ;;
esac
