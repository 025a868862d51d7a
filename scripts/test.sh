#!/usr/bin/env bash
# `npm test`: everything CI checks, in order, on a clean clone or a dev machine.
#   contracts (buf lint, breaking check against main, generated code up to date)
#   → build and typecheck → module boundaries → Kafka + FerretDB (started here unless
#   KAFKA_BROKERS/MONGODB_URI point elsewhere; stopped after if this started them)
#   → jest: unit, integration, e2e → Helm chart checks.
# Extra arguments go to jest (e.g. `npm test -- --selectProjects unit`).
source "$(dirname "$0")/lib.sh"
ensure_deps

step() { printf '\n== %s\n' "$*" >&2; }

step "contracts: buf lint, breaking changes, generated code"
bash scripts/proto-check.sh

step "build and typecheck"
build
tsc -p tsconfig.json

step "module boundaries"
node scripts/check-boundaries.mjs

step "infrastructure"
started_infra=0
if [[ -z "${KAFKA_BROKERS:-}" || -z "${MONGODB_URI:-}" ]]; then
  if ! bash deploy/local/infra.sh status >/dev/null 2>&1; then started_infra=1; fi
  eval "$(bash deploy/local/infra.sh start | sed 's/^/export /')"
fi
cleanup() { if (( started_infra )); then bash deploy/local/infra.sh stop || true; fi; }
trap cleanup EXIT
echo "KAFKA_BROKERS=$KAFKA_BROKERS MONGODB_URI=$MONGODB_URI" >&2

step "jest: unit, integration, e2e"
mkdir -p .local
status=0
jest --ci --maxWorkers=2 --json --outputFile=.local/jest-results.json "$@" || status=$?
node -e '
  const r = require("./.local/jest-results.json");
  console.log(`tests: ${r.numPassedTests} passed, ${r.numFailedTests} failed`);
  if (r.numTotalTests === 0) { console.error("no tests ran"); process.exit(1); }
' || status=1

if [[ -f deploy/helm/test.sh && $# -eq 0 ]]; then
  step "helm chart"
  bash deploy/helm/test.sh || status=1
fi
exit "$status"
