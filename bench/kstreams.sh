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

source "$(dirname "$0")/../scripts/maven.sh"

build() {
  maven_build "$SRC" bench-kstreams bench.build.dir freshet-bench-kstreams \
    "the Kafka Streams benchmark contender (bench/kstreams)" "bench/kstreams.sh build"
}

path() {
  maven_path "$SRC" bench-kstreams "the Kafka Streams contender" "bench/kstreams.sh build"
}

case ${1:-} in
  build) build ;;
  path) path ;;
  *) die "usage: kstreams.sh build|path" "pick one of those" ;;
esac
