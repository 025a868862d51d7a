#!/usr/bin/env bash
# `npm test`: everything CI checks, in order, on a clean clone or a dev machine.
#   contracts (buf lint, breaking check against main, generated code up to date)
#   → build and typecheck (the portal's front end too) → module boundaries → Chromium (installed
#   with apt-get when missing, for the portal's browser tests) → Kafka + FerretDB (started here unless
#   KAFKA_BROKERS/MONGODB_URI point elsewhere; stopped after if this started them)
#   → jest: unit, integration, e2e → Helm chart checks → fault injection (a bounded subset of
#   `npm run test:faults`, on its own private Kafka and FerretDB; FAULTS_CI_SCENARIOS to choose).
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

step "browser for the portal's tests"
# Debian's chromium, driven by playwright-core (no browser download). CI runs as root on Debian.
if [[ -z "${CHROMIUM_PATH:-}" ]] && ! command -v chromium >/dev/null 2>&1; then
  if [[ "$(id -u)" == 0 ]] && command -v apt-get >/dev/null 2>&1; then
    echo "installing chromium (apt-get)..." >&2
    apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >&2
  else
    echo "error: the portal's browser tests need Chromium: apt-get install chromium, or set CHROMIUM_PATH" >&2
    exit 1
  fi
fi
export CHROMIUM_PATH="${CHROMIUM_PATH:-$(command -v chromium)}"
echo "CHROMIUM_PATH=$CHROMIUM_PATH" >&2

step "infrastructure"
start_infra
trap stop_infra_if_started EXIT
echo "KAFKA_BROKERS=$KAFKA_BROKERS MONGODB_URI=$MONGODB_URI" >&2

step "jest: unit, integration, e2e"
mkdir -p .local
status=0
jest --ci --maxWorkers=2 --json --outputFile=.local/jest-results.json "$@" || status=$?
read -r jest_passed jest_failed < <(node -p '
  const r = require("./.local/jest-results.json");
  `${r.numPassedTests} ${r.numFailedTests + r.numRuntimeErrorTestSuites}`') || { jest_passed=0; jest_failed=1; }
(( jest_passed > 0 )) || { echo "error: jest ran no tests" >&2; status=1; }

helm_passed=0 helm_failed=0
if [[ $# -eq 0 ]]; then
  step "helm chart"
  bash deploy/helm/test.sh | tee .local/helm-test.log || status=1
  read -r helm_passed helm_failed < <(sed -nE 's/^helm chart: ([0-9]+) passed, ([0-9]+) failed$/\1 \2/p' .local/helm-test.log | tail -n1) || true
  [[ -n "$helm_passed" ]] || { helm_passed=0; helm_failed=1; status=1; }
fi

faults_passed=0 faults_failed=0
if [[ $# -eq 0 && "${FAULTS_CI_SCENARIOS:-}" != none ]]; then
  step "fault injection: ${FAULTS_CI_SCENARIOS:=sigkill,sigterm,kafka,receiver,malformed} (quick; the full run is npm run test:faults)"
  bash reliability/run.sh --quick --only="$FAULTS_CI_SCENARIOS" 2>&1 | tee .local/faults-test.log || status=1
  read -r faults_passed faults_failed < <(sed -nE 's/^fault scenarios: ([0-9]+) passed, ([0-9]+) failed$/\1 \2/p' .local/faults-test.log | tail -n1) || true
  [[ -n "$faults_passed" ]] || { faults_passed=0; faults_failed=1; status=1; }
fi

# One closing line for everything that ran (jest tests + chart checks + fault scenarios).
echo "tests: $((jest_passed + helm_passed + faults_passed)) passed, $((jest_failed + helm_failed + faults_failed)) failed"
exit "$status"
