#!/usr/bin/env bash
# buf lint (STANDARD), buf breaking (WIRE_JSON) against the main branch, and a check that
# libs/proto holds exactly what `npm run proto:gen` generates from proto/.
source "$(dirname "$0")/lib.sh"
export PATH="$REPO/node_modules/.bin:$PATH"
buf lint proto
if git rev-parse --verify -q main >/dev/null && git cat-file -e main:proto/buf.yaml 2>/dev/null; then
  buf breaking proto --against ".git#branch=main,subdir=proto"
else
  echo "buf breaking: no main branch with proto/ to compare against; skipped" >&2
fi
if git rev-parse --is-inside-work-tree >/dev/null 2>&1 && git diff --quiet -- libs/proto proto; then
  bash scripts/proto-gen.sh
  if ! git diff --quiet -- libs/proto || [[ -n "$(git status --porcelain -- libs/proto)" ]]; then
    git --no-pager diff --stat -- libs/proto >&2
    echo "error: libs/proto is not what proto/ generates; run 'npm run proto:gen' and commit" >&2
    exit 1
  fi
fi
