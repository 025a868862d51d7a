#!/usr/bin/env bash
# `npm run test:faults [-- --quick] [-- --only=name,name]`: the fault-injection suite (issue 10).
#
#   1. builds (tsc -b; retried a few times, because a shared checkout may be mid-edit),
#   2. starts a PRIVATE Kafka and FerretDB in a temp state dir on free loopback ports (never the
#      shared dev/CI instances: the suite stops and restarts its own broker and database),
#   3. runs reliability/suite.mts (services as processes, HTTPS receiver, publisher, faults),
#   4. always stops what it started, by the pid files in its own state dir.
#
# Exit status: the suite's (non-zero on any lost event, crash, stuck delivery or wrong status).
# Settings: RELIABILITY_KEEP=1 keeps the temp dir (logs of every service and of the broker).
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"
export PATH="$REPO/node_modules/.bin:$PATH"

major="$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo none)"
[[ "$major" == 24 ]] || { echo "error: expected Node 24 from node_modules/.bin (got $major); run 'npm ci' first" >&2; exit 1; }

log() { printf '[faults] %s\n' "$*" >&2; }

# 1. Build. Another engineer's half-saved file can break tsc for a moment: retry, then give up.
built=0
for attempt in 1 2 3 4 5; do
  if tsc -b tsconfig.build.json >/tmp/hookline-faults-build.$$ 2>&1; then built=1; break; fi
  log "build failed (attempt $attempt/5); retrying in 20 s:"
  tail -n 5 /tmp/hookline-faults-build.$$ >&2
  sleep 20
done
rm -f /tmp/hookline-faults-build.$$
(( built )) || { log "build keeps failing; not running the suite"; exit 2; }

# 2. Private infrastructure on free ports.
STATE="$(mktemp -d "${TMPDIR:-/tmp}/hookline-faults.XXXXXX")"
read -r KPORT KCPORT MPORT < <(node -e '
  const net = require("node:net");
  const one = () => new Promise((r) => { const s = net.createServer(); s.listen(0, "127.0.0.1", () => { const p = s.address().port; s.close(() => r(p)); }); });
  (async () => { const ps = new Set(); while (ps.size < 3) ps.add(await one()); console.log([...ps].join(" ")); })();')
export HOOKLINE_STATE_DIR="$STATE" HOOKLINE_KAFKA_PORT="$KPORT" HOOKLINE_KAFKA_CONTROLLER_PORT="$KCPORT" HOOKLINE_MONGO_PORT="$MPORT"
# Shared settings that would make infra.sh use someone else's broker/database must not leak in.
unset KAFKA_BROKERS MONGODB_URI

cleanup() {
  local rc=$?
  log "stopping private Kafka and FerretDB (state dir $STATE)"
  HOOKLINE_STOP_GRACE=10 bash deploy/local/infra.sh stop >&2 || true
  if [[ "${RELIABILITY_KEEP:-}" == 1 || $rc -ne 0 ]]; then
    log "logs kept in $STATE (services: $STATE/services, broker: $STATE/kafka/logs)"
  else
    rm -rf "$STATE"
  fi
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

log "starting private Kafka on 127.0.0.1:$KPORT and FerretDB on 127.0.0.1:$MPORT (state $STATE)"
eval "$(bash deploy/local/infra.sh start | sed 's/^/export /')"

# 3. The suite. It restarts the broker and database through deploy/local/{kafka,ferretdb}.sh with
# the same HOOKLINE_* settings, so it only ever touches the processes of this state dir.
export RELIABILITY_STATE_DIR="$STATE"
start=$SECONDS
set +e
node reliability/suite.mts "$@"
status=$?
set -e
log "suite finished in $((SECONDS - start)) s with status $status"
exit "$status"
