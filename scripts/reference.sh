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

source "$(dirname "$0")/maven.sh"

build() {
  maven_build "$SRC" reference reference.build.dir freshet-reference-streams \
    "the Kafka Streams reference (tests/reference/streams)" "scripts/reference.sh build"
}

path() {
  maven_path "$SRC" reference "the Kafka Streams reference" "scripts/reference.sh build"
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
