#!/usr/bin/env bash
# `npm run bench`: build, start Kafka + FerretDB if needed, run bench/run.mts (services as
# processes, HTTPS receiver, loopback only), stop what it started. BENCH_SECONDS scales phases.
source "$(dirname "$0")/lib.sh"
ensure_deps
build
start_infra
trap stop_infra_if_started EXIT
node bench/run.mts
