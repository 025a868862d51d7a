#!/usr/bin/env bash
# Regenerates libs/proto/src/gen (ts-proto) and the descriptor set that powers server
# reflection, from proto/ alone. Deterministic: running it twice leaves no diff.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
buf lint proto
buf generate --template proto/buf.gen.yaml
buf build proto -o libs/proto/descriptors.binpb
bash scripts/proto-runtime.sh
