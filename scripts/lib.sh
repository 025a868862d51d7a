# shellcheck shell=bash
# Shared by scripts/*.sh: repo root, Node 24 from node_modules, dependency install.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

# Install (or refresh) node_modules when missing or older than the lock file. The `node`
# devDependency brings Node 24 into node_modules/.bin, ahead of the machine's node on PATH.
ensure_deps() {
  if [[ ! -x node_modules/.bin/node || ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
    echo "installing dependencies (npm ci)..." >&2
    npm ci --no-audit --no-fund >&2
  fi
  export PATH="$REPO/node_modules/.bin:$PATH"
  local major
  major="$(node -p 'process.versions.node.split(".")[0]')"
  [[ "$major" == 24 ]] || { echo "error: expected Node 24 from node_modules/.bin, got $(node --version); run 'npm ci'" >&2; exit 1; }
}

build() {
  echo "building (tsc -b)..." >&2
  tsc -b tsconfig.build.json
  # The portal's front end (React + Vite, typechecked first) into apps/portal/dist/web.
  npm run --silent build:web -w apps/portal
}

# Starts Kafka + FerretDB unless KAFKA_BROKERS and MONGODB_URI are both given, and exports their
# addresses. Sets STARTED_INFRA=1 when this call started them (callers stop only what they started).
STARTED_INFRA=0
start_infra() {
  if [[ -n "${KAFKA_BROKERS:-}" && -n "${MONGODB_URI:-}" ]]; then return 0; fi
  bash deploy/local/infra.sh status >/dev/null 2>&1 || STARTED_INFRA=1
  local lines
  lines="$(bash deploy/local/infra.sh start)" || { echo "error: Kafka/FerretDB did not start (see above)" >&2; exit 1; }
  eval "$(sed 's/^/export /' <<<"$lines")"
}

stop_infra_if_started() {
  if (( STARTED_INFRA )); then bash deploy/local/infra.sh stop || true; fi
}
