#!/usr/bin/env bash
# `npm start`: install what is missing, start Kafka + FerretDB on loopback, then the three
# services as background processes (pid files and logs under .local/platform), and print where
# everything listens. `npm stop` stops the services and the infrastructure this started.
source "$(dirname "$0")/lib.sh"
source deploy/local/lib.sh

PLATFORM_DIR="$STATE_DIR/platform"
SERVICES=(endpoint-registry event-ingest dispatcher)
declare -A PORTS=([endpoint-registry]="${REGISTRY_PORT:-50051}" [event-ingest]="${INGEST_PORT:-50052}" [dispatcher]="${DISPATCHER_PORT:-50053}")

running() { pid_alive "$PLATFORM_DIR/$1.pid" "apps/$1/dist/main.js"; }

start() {
  local already=() s pid
  for s in "${SERVICES[@]}"; do
    if pid="$(running "$s")"; then already+=("$s (pid $pid, 127.0.0.1:${PORTS[$s]})"); fi
  done
  if (( ${#already[@]} == ${#SERVICES[@]} )); then
    echo "Hookline is already running: ${already[*]}. 'npm stop' stops it; logs in $PLATFORM_DIR/logs."
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
  cat <<MSG

Hookline is running (stop it with: npm stop)
  endpoint-registry  grpc 127.0.0.1:${PORTS[endpoint-registry]}  (webhooks.endpoints.v1.EndpointRegistryService)
  event-ingest       grpc 127.0.0.1:${PORTS[event-ingest]}  (webhooks.events.v1.EventIngestService)
  dispatcher         grpc 127.0.0.1:${PORTS[dispatcher]}  (webhooks.delivery.v1.DeliveryService)
  kafka              $KAFKA_BROKERS
  mongodb (ferretdb) $MONGODB_URI
  logs               $PLATFORM_DIR/logs/
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
