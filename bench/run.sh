#!/usr/bin/env bash
# bench/run.sh [full|quick]: Freshet against Java Kafka Streams (bench/kstreams) and a raw
# librdkafka pipe, on one input written once (tests/src/bin/freshet-bench does the work).
#   full   (make bench)        release build, N=2,000,000 records, 3 repeats, latency runs, the
#                              ratio tables and a PNG chart in $RUN_DIR/bench/<time>/
#   quick  (make bench-quick)  the test (debug) build make test already made, N=5,000, once, no
#                              latency runs, a fast-starting JVM: only checks that every contender
#                              produces every result
# Settings (environment): N, REPEATS, WORKLOADS (stateless,count,windowed,join; add avro for the
# stateless steps on the same records in Avro through the schema registry at
# FRESHET_SCHEMA_REGISTRY_URL, Freshet only, with an "Avro vs JSON" CPU table), GUARANTEES
# (at_least_once,exactly_once_v2), CONTENDERS (freshet,kstreams,pipe), THREADS (2), COMMIT_ALOS_MS
# (1000), COMMIT_EOS_MS (100), JAVA_OPTS (-Xmx1g), LATENCY_RATE (records/s, 5000),
# LATENCY_SECONDS (10; 0 skips), OUT (the results directory).
# Uses the broker on 127.0.0.1:$FRESHET_KAFKA_PORT if one listens, else starts one (and stops it).
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
cd "$ROOT"
MODE=${1:-full}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$FRESHET_CACHE/target}
case $MODE in
  full)
    profile=release cargo_flags=(--release)
    N=${N:-2000000} REPEATS=${REPEATS:-3} LATENCY_SECONDS=${LATENCY_SECONDS:-10} READY_WAIT=30 ;;
  quick)
    profile=debug cargo_flags=()
    N=${N:-5000} REPEATS=${REPEATS:-1} LATENCY_SECONDS=${LATENCY_SECONDS:-0} READY_WAIT=0
    # A JVM that starts fast (C1 only, serial GC), as the tests run the oracle: no figure counts here.
    JAVA_OPTS=${JAVA_OPTS:--Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1} ;;
  *) die "usage: bench/run.sh [full|quick]" "make bench or make bench-quick" ;;
esac
t0=$SECONDS
need_cmd cargo "install Rust with rustup (https://rustup.rs)"

# Until the engine commits transactions, exactly_once_v2 would measure at-least-once under its name.
if [ -z "${GUARANTEES:-}" ]; then
  if grep -rqs "begin_transaction" streams/src; then
    GUARANTEES=at_least_once,exactly_once_v2
  else
    GUARANTEES=at_least_once
    log "this engine has no exactly_once_v2 transactions yet: at_least_once only"
  fi
fi

if [ "$MODE" = full ] && ! command -v gnuplot >/dev/null 2>&1; then
  sudo=(); [ "$(id -u)" -ne 0 ] && sudo=(sudo)
  log "installing gnuplot-nox for the chart"
  { "${sudo[@]}" apt-get update -qq && DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq gnuplot-nox >/dev/null; } \
    || die "gnuplot is missing and apt-get install gnuplot-nox failed" "install gnuplot (with the pngcairo terminal) and rerun"
fi

log "cargo build ${cargo_flags[*]} (freshet-engine, freshet-bench)"
cargo build -q "${cargo_flags[@]}" -p freshet-engine --bin freshet-engine -p freshet-tests --bin freshet-bench \
  || die "building the engine or the benchmark failed" "fix the compile error above"
bin=$CARGO_TARGET_DIR/$profile
classpath=$(bench/kstreams.sh build)

started_kafka=
if ! port_in_use "$FRESHET_KAFKA_PORT"; then
  scripts/kafka.sh up
  started_kafka=1
fi
trap '[ -n "$started_kafka" ] && scripts/kafka.sh down' EXIT

OUT=${OUT:-$RUN_DIR/bench/$(date +%Y%m%d-%H%M%S)-$MODE}
mkdir -p "$OUT"
log "benchmark ($MODE): N=$N, $REPEATS repeat(s), $GUARANTEES; results in $OUT"
"$bin/freshet-bench" run --bootstrap "127.0.0.1:$FRESHET_KAFKA_PORT" --n "$N" --repeats "$REPEATS" \
  --workloads "${WORKLOADS:-stateless,count,windowed,join}" --guarantees "$GUARANTEES" \
  --contenders "${CONTENDERS:-freshet,kstreams,pipe}" --threads "${THREADS:-2}" \
  --commit-alos-ms "${COMMIT_ALOS_MS:-1000}" --commit-eos-ms "${COMMIT_EOS_MS:-100}" \
  --engine "$bin/freshet-engine" --kstreams-classpath "$classpath" --java-opts="${JAVA_OPTS:--Xmx1g}" \
  --latency-rate "${LATENCY_RATE:-5000}" --latency-seconds "$LATENCY_SECONDS" --ready-wait "$READY_WAIT" --out "$OUT" \
  ${FRESHET_SCHEMA_REGISTRY_URL:+--registry "$FRESHET_SCHEMA_REGISTRY_URL"} \
  || die "the benchmark failed (runs, logs and manifests in $OUT)" "see the INCOMPLETE lines above"

if [ "$MODE" = full ]; then
  gnuplot -e "data='$OUT/chart.dat'; out='$OUT/chart.png'; subtitle='$(date +%F), N=$N, ${THREADS:-2} threads, $(nproc) cores; $REPEATS repeats'" bench/chart.gp \
    || die "gnuplot failed on $OUT/chart.dat" "run bench/chart.gp by hand to see why"
  log "chart: $OUT/chart.png; tables: $OUT/tables.md; every run: $OUT/results.tsv"
fi
log "benchmark ($MODE) done in $((SECONDS - t0)) s"
