#!/usr/bin/env bash
# `npm start`: install what is missing, start Kafka + FerretDB on loopback, then the three
# services and the customer portal as background processes (pid files and logs under .local/platform), and print where
# everything listens. `npm stop` stops the services and the infrastructure this started.
source "$(dirname "$0")/lib.sh"
source deploy/local/lib.sh

PLATFORM_DIR="$STATE_DIR/platform"
SERVICES=(endpoint-registry event-ingest dispatcher portal)
declare -A PORTS=([endpoint-registry]="${REGISTRY_PORT:-50051}" [event-ingest]="${INGEST_PORT:-50052}" [dispatcher]="${DISPATCHER_PORT:-50053}" [portal]="${PORTAL_GRPC_PORT:-50054}")
PORTAL_HTTP="${PORTAL_PORT:-8080}"

running() { pid_alive "$PLATFORM_DIR/$1.pid" "apps/$1/dist/main.js"; }

start() {
  local already=() s pid
  for s in "${SERVICES[@]}"; do
    if pid="$(running "$s")"; then already+=("$s (pid $pid, 127.0.0.1:${PORTS[$s]})"); fi
  done
  if (( ${#already[@]} == ${#SERVICES[@]} )); then
    echo "Hookline is already running: ${already[*]}. 'npm stop' stops it; logs in $PLATFORM_DIR/logs."
    echo "A new one-time portal link for workspace \"demo\": $(node apps/portal/dist/demo-link.js "127.0.0.1:${PORTS[portal]}" "127.0.0.1:${PORTS[endpoint-registry]}" demo || echo '(failed)')"
    return 0
  fi
  ensure_deps
  build
  start_infra
  mkdir -p "$PLATFORM_DIR/logs"
  # A local master key for endpoint secrets, made once. Production passes its own keys.
  if [[ ! -s "$PLATFORM_DIR/secret-keys" ]]; then
    (umask 077; printf 'local1:%s' "$(node -e 'process.stdout.write(require("crypto").randomBytes(32).toString("base64"))')" >"$PLATFORM_DIR/secret-keys")
  fi
  export SECRET_ENCRYPTION_KEYS="${SECRET_ENCRYPTION_KEYS:-$(<"$PLATFORM_DIR/secret-keys")}"
  # The portal's link-signing key, made once like the secret key above.
  if [[ ! -s "$PLATFORM_DIR/portal-keys" ]]; then
    (umask 077; printf 'local1:%s' "$(node -e 'process.stdout.write(require("crypto").randomBytes(32).toString("base64"))')" >"$PLATFORM_DIR/portal-keys")
  fi
  export PORTAL_SIGNING_KEYS="${PORTAL_SIGNING_KEYS:-$(<"$PLATFORM_DIR/portal-keys")}"
  export PORTAL_HTTP_HOST=127.0.0.1 PORTAL_HTTP_PORT="$PORTAL_HTTP" PORTAL_TARGET_ALLOWLIST="${PORTAL_TARGET_ALLOWLIST:-${TARGET_ALLOWLIST:-}}"
  export DISPATCHER_ADDRESS="127.0.0.1:${PORTS[dispatcher]}"
  export REGISTRY_ADDRESS="127.0.0.1:${PORTS[endpoint-registry]}" GRPC_HOST="${GRPC_HOST:-127.0.0.1}"
  for s in "${SERVICES[@]}"; do
    if pid="$(running "$s")"; then echo "$s already running (pid $pid)"; continue; fi
    : >"$PLATFORM_DIR/logs/$s.log"
    GRPC_PORT="${PORTS[$s]}" spawn_detached "$PLATFORM_DIR/$s.pid" "$PLATFORM_DIR/logs/$s.log" node --enable-source-maps "apps/$s/dist/main.js"
    local waited=0
    until grep -q 'serving gRPC' "$PLATFORM_DIR/logs/$s.log"; do
      if ! running "$s" >/dev/null || (( waited > 600 )); then
        tail_log "$PLATFORM_DIR/logs/$s.log" 30
        die "$s did not start (log: $PLATFORM_DIR/logs/$s.log)"
      fi
      sleep 0.1; waited=$((waited + 1))
    done
  done
  local link
  link="$(node apps/portal/dist/demo-link.js "127.0.0.1:${PORTS[portal]}" "127.0.0.1:${PORTS[endpoint-registry]}" demo)" || link="(could not make a link; see $PLATFORM_DIR/logs/portal.log)"
  cat <<MSG

Hookline is running (stop it with: npm stop)
  endpoint-registry  grpc 127.0.0.1:${PORTS[endpoint-registry]}  (webhooks.endpoints.v1.EndpointRegistryService)
  event-ingest       grpc 127.0.0.1:${PORTS[event-ingest]}  (webhooks.events.v1.EventIngestService)
  dispatcher         grpc 127.0.0.1:${PORTS[dispatcher]}  (webhooks.delivery.v1.DeliveryService)
  portal             http://localhost:${PORTAL_HTTP}  grpc 127.0.0.1:${PORTS[portal]}  (webhooks.portal.v1.PortalService)
  kafka              $KAFKA_BROKERS
  mongodb (ferretdb) $MONGODB_URI
  logs               $PLATFORM_DIR/logs/
Customer portal for workspace "demo" (one-time link, valid 5 minutes; a new one:
  node apps/portal/dist/demo-link.js 127.0.0.1:${PORTS[portal]} 127.0.0.1:${PORTS[endpoint-registry]} <workspace>):
  $link
Every service answers grpc.health.v1 and server reflection (e.g. grpcurl -plaintext 127.0.0.1:${PORTS[endpoint-registry]} list).
MSG
}

stop() {
  local s
  for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
    s="${SERVICES[$i]}"
    stop_pid "$s" "$PLATFORM_DIR/$s.pid" "apps/$s/dist/main.js" 25
  done
  bash deploy/local/infra.sh stop
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
