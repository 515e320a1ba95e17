#!/usr/bin/env bash
# kstreams.sh build|path
# The Java Kafka Streams contender of the benchmark (bench/kstreams, dev.freshet.bench.BenchApp),
# built with Maven into $FRESHET_CACHE/bench-kstreams/<hash of its sources>/, outside the clone,
# as scripts/reference.sh builds the differential tests' oracle:
#   build  build it unless already built from the same sources; prints the classpath file
#   path   print the classpath file of the current sources (fails if not built)
# The classpath file holds one line, the jar and its dependencies, for `java -cp`.
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"

SRC=$ROOT/bench/kstreams

source_hash() {
  (
    cd "$SRC"
    echo "kafka=$KAFKA_VERSION"
    find . -type f \( -name '*.java' -o -name pom.xml -o -name '*.properties' \) -not -path './target/*' -print0 \
      | LC_ALL=C sort -z | xargs -0 sha256sum
  ) | sha256sum | cut -c1-16
}

out_dir() { echo "$FRESHET_CACHE/bench-kstreams/$(source_hash)"; }

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
  mkdir -p "$FRESHET_CACHE/bench-kstreams" "$FRESHET_CACHE/reference"
  # One Maven at a time per cache: scripts/reference.sh may be filling the same repository.
  exec 9>"$FRESHET_CACHE/reference/.lock"
  flock 9
  if [ ! -f "$out/.complete" ]; then
    log "building the Kafka Streams benchmark contender (bench/kstreams) into $out (log: $log)"
    rm -rf "$out"
    local mvn_args=(-B -f "$SRC/pom.xml" -Dmaven.repo.local="$FRESHET_M2" -Dkafka.version="$KAFKA_VERSION"
      -Dbench.build.dir="$out/build" -DskipTests package)
    # Offline first: a warm repository needs no network; a cold one falls back to Maven Central.
    if ! "$MVN" -o "${mvn_args[@]}" >"$log" 2>&1; then
      log "offline build failed (a cold Maven repository?); retrying online"
      if ! "$MVN" "${mvn_args[@]}" >>"$log" 2>&1; then
        grep -E '\[ERROR\]' "$log" | head -n 30 >&2 || tail -n 30 "$log" >&2
        die "building bench/kstreams failed (log: $log)" "fix the error above"
      fi
    fi
    local jar
    jar=$(ls "$out"/build/freshet-bench-kstreams-*.jar 2>/dev/null | head -1)
    [ -n "$jar" ] && [ -f "$out/build/dependencies.txt" ] \
      || die "Maven finished but left no jar or dependency list in $out/build (log: $log)" "rm -rf $out and rerun: bench/kstreams.sh build"
    printf '%s:%s\n' "$jar" "$(cat "$out/build/dependencies.txt")" >"$out/classpath.txt"
    touch "$out/.complete"
    log "Kafka Streams contender built: $out/classpath.txt"
  fi
  flock -u 9
  echo "$out/classpath.txt"
}

path() {
  local out
  out=$(out_dir)
  [ -f "$out/.complete" ] || die "the Kafka Streams contender is not built for these sources" "run: bench/kstreams.sh build"
  echo "$out/classpath.txt"
}

case ${1:-} in
  build) build ;;
  path) path ;;
  *) die "usage: kstreams.sh build|path" "pick one of those" ;;
esac
