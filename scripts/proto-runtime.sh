#!/usr/bin/env bash
# Builds libs/proto/runtime-descriptors.binpb: the descriptors server reflection needs besides
# proto/ (called by proto-gen.sh): grpc.health.v1 and grpc.reflection.{v1,v1alpha} exactly as
# the installed grpc-health-check and @grpc/reflection serve them, and the google.rpc messages of
# error details (libs/service-kit/proto). With proto/'s own set (which carries the well-known
# types), a client that has no .proto file can describe and call every service and decode errors.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="$PWD/node_modules/.bin:$PATH"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/grpc/health/v1" "$tmp/grpc/reflection/v1" "$tmp/grpc/reflection/v1alpha"
cp node_modules/grpc-health-check/proto/health/v1/health.proto "$tmp/grpc/health/v1/health.proto"
cp node_modules/@grpc/reflection/build/proto/grpc/reflection/v1/reflection.proto "$tmp/grpc/reflection/v1/reflection.proto"
cp node_modules/@grpc/reflection/build/proto/grpc/reflection/v1alpha/reflection.proto "$tmp/grpc/reflection/v1alpha/reflection.proto"
cp -r libs/service-kit/proto/google "$tmp/google"
printf 'version: v2\n' > "$tmp/buf.yaml"
buf build "$tmp" -o libs/proto/runtime-descriptors.binpb
