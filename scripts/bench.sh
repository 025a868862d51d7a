#!/usr/bin/env bash
# `npm run bench`: build, start Kafka + FerretDB if needed, run bench/run.mts (services as
# processes, HTTPS receiver, loopback only), stop what it started. BENCH_SECONDS scales phases.
source "$(dirname "$0")/lib.sh"
ensure_deps
build
started_infra=0
if [[ -z "${KAFKA_BROKERS:-}" || -z "${MONGODB_URI:-}" ]]; then
  if ! bash deploy/local/infra.sh status >/dev/null 2>&1; then started_infra=1; fi
  eval "$(bash deploy/local/infra.sh start | sed 's/^/export /')"
fi
cleanup() { if (( started_infra )); then bash deploy/local/infra.sh stop || true; fi; }
trap cleanup EXIT
node bench/run.mts
