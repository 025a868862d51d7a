#!/usr/bin/env bash
# `npm run bench`: build, start Kafka + FerretDB if needed, run bench/run.mts (services as
# processes, HTTPS receiver, loopback only), stop what it started. BENCH_SECONDS scales phases;
# BENCH_RUNS runs it that many times and summarises.
source "$(dirname "$0")/lib.sh"
ensure_deps
build
start_infra
trap stop_infra_if_started EXIT
# BENCH_RUNS=3: that many runs in a row, then min / median / max of every figure.
runs="${BENCH_RUNS:-1}"
files=()
for ((i = 1; i <= runs; i++)); do
  (( runs == 1 )) || echo "== run $i of $runs"
  before="$(ls bench/results/*.json 2>/dev/null | sort | tail -n1 || true)"
  node bench/run.mts
  latest="$(ls bench/results/*.json | sort | tail -n1)"
  [[ "$latest" != "$before" ]] && files+=("$latest")
done
(( ${#files[@]} > 1 )) && node bench/summary.mts "${files[@]}"
exit 0
