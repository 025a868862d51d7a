# shellcheck shell=bash disable=SC2034 # the settings below are used by the sourcing scripts
# Shared helpers for deploy/local/{infra,kafka,ferretdb}.sh. Sourced, not run.
#
# Everything here runs on loopback only and manages processes strictly through
# pid files this tooling wrote itself: we never look processes up by name, so
# a developer's own Kafka/Mongo (or a second checkout's) is never touched.

HOOKLINE_LOCAL_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
HOOKLINE_REPO_DIR="$(cd "$HOOKLINE_LOCAL_DIR/../.." && pwd)"

CACHE_DIR="${HOOKLINE_CACHE_DIR:-$HOOKLINE_REPO_DIR/.cache}"
STATE_DIR="${HOOKLINE_STATE_DIR:-$HOOKLINE_REPO_DIR/.local}"
RUN_DIR="$STATE_DIR/run"
BIND_HOST=127.0.0.1
KAFKA_PORT="${HOOKLINE_KAFKA_PORT:-19092}"
KAFKA_CONTROLLER_PORT="${HOOKLINE_KAFKA_CONTROLLER_PORT:-19093}"
MONGO_PORT="${HOOKLINE_MONGO_PORT:-27027}"

log() { printf '%s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# One sentence naming what to install; used when a toolchain is missing so the
# failure is obvious instead of a "command not found" halfway through a fetch.
need_cmd() {
  local cmd="$1" why="$2"
  command -v "$cmd" >/dev/null 2>&1 || die "'$cmd' not found: $why"
}

# The pid file is the only source of truth. We additionally require that the
# pid's command line contains a marker (e.g. our state dir): pids get recycled
# after reboots or crashes, and a stale pid file must never make us signal an
# unrelated process.
pid_alive() {
  local pidfile="$1" marker="$2" pid
  [[ -s "$pidfile" ]] || return 1
  pid="$(<"$pidfile")"
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r "/proc/$pid/cmdline" ]]; then
    # Trailing space: match the whole argument, so .../kafka never matches
    # a sibling checkout's .../kafka2.
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$marker " || return 1
  fi
  printf '%s' "$pid"
}

# Start a command detached from this shell: its own session (setsid) so that a
# Ctrl-C in the terminal, or the caller's process group being torn down, does
# not take the servers with it. The child writes its own pid right before it
# execs, which is exact even when setsid has to fork.
spawn_detached() {
  local pidfile="$1" outfile="$2"; shift 2
  mkdir -p "$(dirname "$pidfile")" "$(dirname "$outfile")"
  rm -f "$pidfile"
  local launcher=()
  command -v setsid >/dev/null 2>&1 && launcher=(setsid)
  # shellcheck disable=SC2016 # $$ and "$@" are for the inner bash
  # 9>&- : don't let the server inherit the with_lock fd, or it would hold the
  # lock for its whole lifetime and every later start/stop would block.
  nohup "${launcher[@]}" bash -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" \
    >>"$outfile" 2>&1 </dev/null 9>&- &
  local _
  for _ in $(seq 1 50); do
    [[ -s "$pidfile" ]] && return 0
    sleep 0.1
  done
  die "process did not report its pid (see $outfile)"
}

# SIGTERM, give it time to shut down cleanly (Kafka flushes and writes a clean
# shutdown marker, which makes the next start skip log recovery), then SIGKILL.
stop_pid() {
  local name="$1" pidfile="$2" marker="$3" grace="${4:-20}" pid
  if ! pid="$(pid_alive "$pidfile" "$marker")"; then
    rm -f "$pidfile"
    log "$name not running"
    return 0
  fi
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  local waited=0
  while kill -0 "$pid" 2>/dev/null; do
    if (( waited >= grace * 10 )); then
      log "$name did not exit within ${grace}s, sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      sleep 0.5
      break
    fi
    sleep 0.1
    waited=$((waited + 1))
  done
  rm -f "$pidfile"
  log "$name stopped"
}

# True if something accepts TCP connections on host:port. Uses bash's
# /dev/tcp so there is no dependency on nc/ss being installed.
port_open() {
  local host="$1" port="$2"
  # shellcheck disable=SC2016 # expanded by the inner bash
  timeout 2 bash -c 'exec 3<>"/dev/tcp/$0/$1"' "$host" "$port" 2>/dev/null
}

# Protocol-level health check (Kafka Metadata / Mongo ping) via a dependency-free
# Node script. Node is a given in this repo; if it is somehow absent we return
# "unknown" (2) and callers fall back to the TCP + log checks.
probe() {
  command -v node >/dev/null 2>&1 || return 2
  node "$HOOKLINE_LOCAL_DIR/probe.mjs" "$@" >/dev/null 2>&1
}

tail_log() {
  local file="$1" n="${2:-40}"
  [[ -f "$file" ]] || return 0
  log "---- last $n lines of $file ----"
  tail -n "$n" "$file" >&2
  log "----"
}

# "host:port" of the first entry of a comma-separated broker list / Mongo URI
# host list, for probing externally provided services.
first_hostport() {
  local s="$1"
  s="${s#*://}"; s="${s#*@}"; s="${s%%/*}"; s="${s%%\?*}"; s="${s%%,*}"
  printf '%s' "$s"
}

# Serialise fetch/start/stop across concurrent invocations (two terminals,
# parallel CI steps) so nobody formats storage or spawns a second broker
# mid-start. The lock is held until the calling script exits; helpers run by a
# script that already holds it (infra.sh -> kafka.sh) see HOOKLINE_LOCK_HELD
# and don't try to take it again, which would deadlock.
with_lock() {
  if [[ -z "${HOOKLINE_LOCK_HELD:-}" ]] && command -v flock >/dev/null 2>&1; then
    mkdir -p "$STATE_DIR"
    exec 9>"$STATE_DIR/.lock"
    flock -w 600 9 || die "another infra.sh is still busy (could not lock $STATE_DIR/.lock within 600s)"
    export HOOKLINE_LOCK_HELD=1
  fi
  "$@"
}
