#!/usr/bin/env bash
# registry.sh up|down|status|build|url
# A schema registry with Confluent's REST API for the Avro/Protobuf/JSON Schema tests: Apicurio
# Registry 3.3.3 (in-memory H2 storage), its Confluent-compatible API at
#   http://127.0.0.1:$FRESHET_REGISTRY_PORT/apis/ccompat/v7      (port 8081 by default)
# with the global compatibility rule set to BACKWARD, Confluent's default, so an incompatible
# schema is refused (409) as Confluent's registry refuses it. The application is Maven Central's
# assembled Quarkus app, unpacked by tests/registry (pom.xml) into $FRESHET_CACHE/registry/<hash>,
# outside the clone. Apicurio 3.3 is compiled for Java 21: FRESHET_REGISTRY_JAVA names the java to
# run it with; by default $JAVA when it is 21 or newer, else the newest JDK under /usr/lib/jvm.
# Runtime state (pid, log) in .freshet/registry/.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/maven.sh"

SRC=$ROOT/tests/registry
PORT=${FRESHET_REGISTRY_PORT:-8081}
# Its management interface (health, metrics): built in, so moved off 0.0.0.0:9000 rather than off.
MANAGEMENT_PORT=${FRESHET_REGISTRY_MANAGEMENT_PORT:-$((PORT + 1))}
DIR=$RUN_DIR/registry
PIDFILE=$DIR/registry.pid
API=http://127.0.0.1:$PORT/apis/ccompat/v7

# java_major JAVA: the feature version of that java (17, 21, 25), or 0.
java_major() {
  "$1" -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2; exit}' | grep -E '^[0-9]+$' || echo 0
}

registry_java() {
  if [ -n "${FRESHET_REGISTRY_JAVA:-}" ]; then echo "$FRESHET_REGISTRY_JAVA"; return; fi
  if command -v "$JAVA" >/dev/null 2>&1 && [ "$(java_major "$JAVA")" -ge 21 ]; then echo "$JAVA"; return; fi
  local j best= best_v=0 v
  for j in /usr/lib/jvm/*/bin/java; do
    [ -x "$j" ] || continue
    v=$(java_major "$j")
    [ "$v" -gt "$best_v" ] && { best=$j; best_v=$v; }
  done
  [ "$best_v" -ge 21 ] || die "Apicurio Registry 3.3 needs Java 21 or newer; found none ($JAVA is $(java_major "$JAVA"))" \
    "install a JDK 21+ (e.g. Temurin 21 or 25) and set FRESHET_REGISTRY_JAVA=/path/to/bin/java"
  echo "$best"
}

build() {
  local out log
  out=$(maven_out "$SRC" registry)
  log=$out.log
  if [ ! -f "$out/.complete" ]; then
    need_cmd "$MVN" "install Maven 3.8+ (Debian: apt-get install maven)"
    mkdir -p "$FRESHET_CACHE/registry" "$FRESHET_CACHE/reference"
    # One Maven at a time per cache (scripts/maven.sh): the projects share one repository.
    exec 9>"$FRESHET_CACHE/reference/.lock"
    flock 9
    if [ ! -f "$out/.complete" ]; then
      log "unpacking Apicurio Registry into $out (log: $log)"
      rm -rf "$out"
      local args=(-B -f "$SRC/pom.xml" -Dmaven.repo.local="$FRESHET_M2" -Dregistry.build.dir="$out/build" package)
      if ! "$MVN" -o "${args[@]}" >"$log" 2>&1; then
        log "offline build failed (a cold Maven repository?); retrying online"
        "$MVN" "${args[@]}" >>"$log" 2>&1 || {
          grep -E '\[ERROR\]' "$log" | head -n 20 >&2
          die "fetching Apicurio Registry failed (log: $log)" \
            "check Maven Central: $MVN -B -Dmaven.repo.local=$FRESHET_M2 dependency:get -Dartifact=io.apicurio:apicurio-registry-app:3.3.3:tar.gz:all"
        }
      fi
      [ -f "$out/build/app/quarkus-run.jar" ] || die "Maven finished but left no quarkus-run.jar in $out/build/app (log: $log)" "rm -rf $out and rerun: scripts/registry.sh build"
      touch "$out/.complete"
    fi
    flock -u 9
  fi
  echo "$out/build/app"
}

answers() { curl -sf --max-time 2 "$API/subjects" >/dev/null; }

up() {
  if pid_alive "$PIDFILE"; then log "schema registry already running at $API"; return 0; fi
  port_free_or_die "$PORT" "the schema registry" FRESHET_REGISTRY_PORT
  local app java
  app=$(build)
  java=$(registry_java)
  mkdir -p "$DIR"
  log "starting Apicurio Registry 3.3.3 at $API (log: $DIR/registry.log)"
  port_free_or_die "$MANAGEMENT_PORT" "the schema registry's management interface" FRESHET_REGISTRY_MANAGEMENT_PORT
  # In-memory storage (H2), no UI, no telemetry, everything on loopback.
  (cd "$DIR" && exec "$java" -Xms64m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dquarkus.http.host=127.0.0.1 -Dquarkus.http.port="$PORT" \
    -Dquarkus.management.host=127.0.0.1 -Dquarkus.management.port="$MANAGEMENT_PORT" -Dquarkus.otel.enabled=false -Dquarkus.otel.sdk.disabled=true \
    -Dapicurio.ui.enabled=false -Dquarkus.log.console.json=false \
    -jar "$app/quarkus-run.jar" >"$DIR/registry.log" 2>&1) &
  echo $! >"$PIDFILE"
  if ! wait_until 120 "schema registry up at $API" answers; then
    tail -n 30 "$DIR/registry.log" >&2
    stop_pidfile "$PIDFILE" "schema registry"
    die "the schema registry did not answer at $API within 120 s (log: $DIR/registry.log)" "read the log above"
  fi
  # Confluent's registry checks BACKWARD compatibility unless told otherwise; Apicurio has no
  # global rule until one is set.
  curl -sf -X PUT -H 'Content-Type: application/vnd.schemaregistry.v1+json' \
    -d '{"compatibility":"BACKWARD"}' "$API/config" >/dev/null \
    || die "setting the registry's compatibility to BACKWARD failed" "see $DIR/registry.log"
}

down() { stop_pidfile "$PIDFILE" "schema registry"; }

status() {
  if pid_alive "$PIDFILE" && answers; then
    echo "schema registry: running at $API (pid $(cat "$PIDFILE"))"
  else
    echo "schema registry: not running"
    return 1
  fi
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) status ;;
  build) build ;;
  url) echo "$API" ;;
  *) die "usage: registry.sh up|down|status|build|url" "pick one of those" ;;
esac
