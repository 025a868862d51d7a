#!/usr/bin/env bash
# Builds grpcurl from source with `go install` into <repo>/.cache/bin/grpcurl, once (like
# deploy/helm/install-helm.sh builds Helm): a second run with the binary present does nothing.
# Prints the binary's path on stdout. The reflection tests use it as the "client nobody here
# wrote": it knows nothing of our .proto files and learns everything by server reflection.
set -euo pipefail

GRPCURL_VERSION="${GRPCURL_VERSION:-v1.9.4}"
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BIN_DIR="$REPO/.cache/bin"
# Versioned file name: a version bump rebuilds instead of reusing an older binary.
GRPCURL="$BIN_DIR/grpcurl-$GRPCURL_VERSION"

if [[ -x "$GRPCURL" ]]; then
  echo "$GRPCURL"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "error: Go is not installed (or not on PATH); grpcurl $GRPCURL_VERSION is built from source with it. Install Go 1.24+ or put a grpcurl binary at $GRPCURL." >&2
  exit 1
fi
echo "building grpcurl $GRPCURL_VERSION with $(go version | awk '{print $3}') into $BIN_DIR (first time: ~1 minute)..." >&2
mkdir -p "$BIN_DIR"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
# Run outside the repo so no go.mod/go.work around us changes module resolution.
(cd / && CGO_ENABLED=0 GOBIN="$tmp" GOFLAGS=-trimpath go install -ldflags "-s -w -X main.version=$GRPCURL_VERSION" "github.com/fullstorydev/grpcurl/cmd/grpcurl@$GRPCURL_VERSION") >&2
mv "$tmp/grpcurl" "$GRPCURL"
echo "$GRPCURL"
