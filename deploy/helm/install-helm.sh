#!/usr/bin/env bash
# Builds Helm from source with `go install` into <repo>/.cache/bin/helm, once: a second run with
# the binary present (and reporting HELM_VERSION) does nothing. Prints the binary's path on stdout.
#
# Why from source: our machines reach the Go module proxy but no download site, so the release
# tarball is out of reach; `go install` of a tagged module version is reproducible and cached.
# First build: ~1-2 min on 2 cores (module download + compile); later runs: instant.
#
# The -X flags are the ones Helm's own Makefile sets: without them `helm version` says "v3.22"
# and the default Capabilities.KubeVersion is v1.20.0 (our test.sh passes --kube-version anyway).
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.22.0}"
# Helm v3.22.0 builds against k8s.io/client-go v0.37.x, i.e. Kubernetes 1.37 (Makefile: K8S_MODULES_VER).
HELM_K8S_MINOR="${HELM_K8S_MINOR:-37}"

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BIN_DIR="$REPO/.cache/bin"
HELM="$BIN_DIR/helm"

if [[ -x "$HELM" ]] && "$HELM" version --template '{{.Version}}' 2>/dev/null | grep -qx "$HELM_VERSION"; then
  echo "$HELM"
  exit 0
fi

if ! command -v go >/dev/null 2>&1; then
  cat >&2 <<MSG
error: Go is not installed (or not on PATH), and Helm $HELM_VERSION is built from source with it.
Install Go 1.24 or newer (e.g. apt-get install golang-go, or /usr/local/go/bin on PATH) and rerun,
or put an existing helm $HELM_VERSION binary at $HELM.
MSG
  exit 1
fi

echo "building helm $HELM_VERSION with $(go version | awk '{print $3}') into $BIN_DIR (first time: 1-2 minutes)..." >&2
mkdir -p "$BIN_DIR"
start=$SECONDS
pkg=helm.sh/helm/v3
ldflags="-s -w -X $pkg/internal/version.version=$HELM_VERSION -X $pkg/internal/version.gitTreeState=clean"
ldflags+=" -X $pkg/pkg/chartutil.k8sVersionMajor=1 -X $pkg/pkg/chartutil.k8sVersionMinor=$HELM_K8S_MINOR"
ldflags+=" -X $pkg/pkg/lint/rules.k8sVersionMajor=1 -X $pkg/pkg/lint/rules.k8sVersionMinor=$HELM_K8S_MINOR"
# Run outside the repo so no go.mod/go.work around us changes module resolution.
(cd / && CGO_ENABLED=0 GOBIN="$BIN_DIR" GOFLAGS=-trimpath go install -ldflags "$ldflags" "$pkg/cmd/helm@$HELM_VERSION") >&2
echo "built $("$HELM" version --short) in $((SECONDS - start)) s" >&2
echo "$HELM"
