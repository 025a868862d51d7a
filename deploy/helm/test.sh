#!/usr/bin/env bash
# Helm chart checks (called by scripts/test.sh; runs from anywhere):
#   1. helm lint --strict and helm template of deploy/helm/hookline with the default values,
#      values/minimal.yaml, values/production.yaml, the portal with inline key and Ingress, and
#      production with KEDA instead of the HPA;
#   2. every rendered object validated offline against the Kubernetes 1.36 OpenAPI schemas,
#      unknown fields included, plus the chart's own invariants (validate-manifests.mjs);
#   3. every testdata/invalid-*.yaml must make `helm template` fail with the message on its
#      `# expect:` line (schema violations must fail `helm lint` too).
# Needs: Go (first run only, to build Helm into .cache/bin) and `npm ci` (Node 24, kubernetes-models).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "$HERE/../.." && pwd)"
CHART="$HERE/hookline"
NODE="$REPO/node_modules/.bin/node"
# The Kubernetes version rendered for and validated against (kubernetes-models' OpenAPI).
KUBE_VERSION=1.36.0
RELEASE=hookline
NAMESPACE=hookline

HELM="$(bash "$HERE/install-helm.sh")"
[[ -x "$NODE" ]] || { echo "error: $NODE missing: run 'npm ci' in $REPO first" >&2; exit 1; }

work="$(mktemp -d "${TMPDIR:-/tmp}/hookline-helm.XXXXXX")"
trap 'rm -rf "$work"' EXIT

passed=0 failed=0
indent() { sed 's/^/        /'; }
pass() { passed=$((passed + 1)); printf '  ok    %s\n' "$1"; }
fail() { failed=$((failed + 1)); printf '  FAIL  %s\n' "$1"; if [[ -n "${2:-}" ]]; then indent <<<"$2"; fi; }

helm_opts=(--kube-version "$KUBE_VERSION" --namespace "$NAMESPACE")

# An all-zero key, valid in form only: minimal.yaml expects the key on the command line.
test_key="k1:$(head -c 32 /dev/zero | base64)"

# name | extra helm arguments
cases=(
  "default|"
  "minimal|-f $HERE/values/minimal.yaml --set secretEncryption.keys=$test_key"
  "production|-f $HERE/values/production.yaml"
  "portal|--set portal.enabled=true --set portal.publicUrl=https://portal.example.com --set portal.signingKeys=$test_key --set portal.ingress.enabled=true --set portal.ingress.hosts[0]=portal.example.com"
  "production-keda|-f $HERE/values/production.yaml --set dispatcher.autoscaling.enabled=false --set dispatcher.keda.enabled=true --set dispatcher.keda.maxReplicas=24"
  "production-open-on-purpose|-f $HERE/values/production.yaml --set grpc.permissions.enabled=false --set grpc.permissions.allowOpen=true"
)

echo "helm chart: $("$HELM" version --short), Kubernetes $KUBE_VERSION"
rendered=()
for c in "${cases[@]}"; do
  name="${c%%|*}"
  read -r -a args <<<"${c#*|}"
  if out="$("$HELM" lint "$CHART" --strict "${helm_opts[@]}" "${args[@]}" 2>&1)"; then
    pass "helm lint --strict ($name)"
  else
    fail "helm lint --strict ($name)" "$out"
  fi
  if out="$("$HELM" template "$RELEASE" "$CHART" "${helm_opts[@]}" "${args[@]}" 2>&1 >"$work/$name.yaml")"; then
    pass "helm template ($name)"
    rendered+=("$work/$name.yaml")
  else
    fail "helm template ($name)" "$out"
  fi
done

if ((${#rendered[@]})); then
  if out="$("$NODE" "$HERE/validate-manifests.mjs" "${rendered[@]}" 2>&1)"; then
    pass "Kubernetes $KUBE_VERSION schemas and chart invariants"
    indent <<<"$out"
  else
    fail "Kubernetes $KUBE_VERSION schemas and chart invariants" "$out"
  fi
fi

for bad in "$HERE"/testdata/invalid-*.yaml; do
  name="$(basename "$bad" .yaml)"
  expect="$(sed -n 's/^# expect: //p' "$bad" | head -1)"
  [[ -n "$expect" ]] || { fail "$name: no '# expect:' line"; continue; }
  if out="$("$HELM" template "$RELEASE" "$CHART" "${helm_opts[@]}" -f "$bad" 2>&1 >/dev/null)"; then
    fail "$name: helm template accepted it"
  elif ! grep -qF -- "$expect" <<<"$out"; then
    fail "$name: helm template failed without '$expect'" "$out"
  else
    pass "$name rejected: $(grep -F -- "$expect" <<<"$out" | head -1 | sed 's/^ *- //')"
  fi
  # Schema violations (messages "at '/path'") are caught by `helm lint` as well.
  if [[ "$expect" == "at '"* ]]; then
    if out="$("$HELM" lint "$CHART" "${helm_opts[@]}" -f "$bad" 2>&1)"; then
      fail "$name: helm lint accepted it"
    elif ! grep -qF -- "$expect" <<<"$out"; then
      fail "$name: helm lint failed without '$expect'" "$out"
    else
      pass "$name rejected by helm lint"
    fi
  fi
done

echo "helm chart: $passed passed, $failed failed"
((failed == 0))
