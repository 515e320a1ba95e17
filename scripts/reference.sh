#!/usr/bin/env bash
# reference.sh build|path|describe [NAME]|oracle ARGS...
# The Java Kafka Streams reference (tests/reference/streams, the differential tests' oracle),
# built with Maven into $FRESHET_CACHE/reference/<hash of its sources>/, outside the clone:
#   build     build it unless already built from the same sources; prints the classpath file
#   path      print the classpath file of the current sources (fails if not built)
#   describe  Kafka Streams' describe() of an example (tests/reference/streams/.../Describe.java)
#   oracle    run dev.freshet.reference.Oracle with ARGS
# The classpath file holds one line, the oracle's jar and its dependencies, for `java -cp`.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

SRC=$ROOT/tests/reference/streams

# The build is keyed by a hash of the sources (and the Kafka version), so clones sharing one
# cache never overwrite each other's build, and an unchanged tree costs one hash.
source_hash() {
  (
    cd "$SRC"
    echo "kafka=$KAFKA_VERSION"
    find . -type f \( -name '*.java' -o -name pom.xml -o -name '*.properties' \) -not -path './target/*' -print0 \
      | LC_ALL=C sort -z | xargs -0 sha256sum
  ) | sha256sum | cut -c1-16
}

out_dir() { echo "$FRESHET_CACHE/reference/$(source_hash)"; }

build() {
  local out log
  out=$(out_dir)
  log=$out.log
  if [ -f "$out/.complete" ]; then
    echo "$out/classpath.txt"
    return 0
  fi
  need_cmd "$JAVA" "install a Java 17+ runtime and JDK (Debian: apt-get install openjdk-17-jdk-headless)"
  need_cmd "$MVN" "install Maven 3.8+ (Debian: apt-get install maven)"
  mkdir -p "$FRESHET_CACHE/reference"
  # One build at a time per cache (make test and a lone `cargo test` may both ask for it).
  exec 9>"$FRESHET_CACHE/reference/.lock"
  flock 9
  if [ ! -f "$out/.complete" ]; then
    log "building the Kafka Streams reference (tests/reference/streams) into $out (log: $log)"
    rm -rf "$out"
    local mvn_args=(-B -f "$SRC/pom.xml" -Dmaven.repo.local="$FRESHET_M2" -Dkafka.version="$KAFKA_VERSION"
      -Dreference.build.dir="$out/build" -DskipTests package)
    # Offline first: a warm repository needs no network; a cold one falls back to Maven Central.
    if ! "$MVN" -o "${mvn_args[@]}" >"$log" 2>&1; then
      log "offline build failed (a cold Maven repository?); retrying online"
      if ! "$MVN" "${mvn_args[@]}" >>"$log" 2>&1; then
        grep -E '\[ERROR\]' "$log" | head -n 30 >&2 || tail -n 30 "$log" >&2
        die "building tests/reference/streams failed (log: $log)" \
            "fix the error above; to check Maven Central: $MVN -B -Dmaven.repo.local=$FRESHET_M2 dependency:get -Dartifact=org.apache.kafka:kafka-streams:$KAFKA_VERSION"
      fi
    fi
    local jar
    jar=$(ls "$out"/build/freshet-reference-streams-*.jar 2>/dev/null | head -1)
    [ -n "$jar" ] && [ -f "$out/build/dependencies.txt" ] \
      || die "Maven finished but left no jar or dependency list in $out/build (log: $log)" "rm -rf $out and rerun: scripts/reference.sh build"
    printf '%s:%s\n' "$jar" "$(cat "$out/build/dependencies.txt")" >"$out/classpath.txt"
    touch "$out/.complete"
    log "Kafka Streams reference built: $out/classpath.txt"
  fi
  flock -u 9
  echo "$out/classpath.txt"
}

path() {
  local out
  out=$(out_dir)
  [ -f "$out/.complete" ] || die "the Kafka Streams reference is not built for these sources" "run: scripts/reference.sh build"
  echo "$out/classpath.txt"
}

oracle() {
  local cp
  cp=$(build)
  exec "$JAVA" -Xms64m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -cp "$(cat "$cp")" dev.freshet.reference.Oracle "$@"
}

case ${1:-} in
  build) build ;;
  path) path ;;
  describe) shift; oracle describe "$@" ;;
  oracle) shift; oracle "$@" ;;
  *) die "usage: reference.sh build|path|describe [NAME]|oracle ARGS..." "pick one of those" ;;
esac
