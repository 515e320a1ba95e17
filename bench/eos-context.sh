#!/usr/bin/env bash
# Context figures for exactly_once_v2 against at_least_once: the `count` workload of
# stateful-context.sh (groupBy customer through a repartition topic, 977 keys, count, to a topic)
# over the same N ~100-byte JSON records on 6 partitions, run once per guarantee on the same
# broker, each with its own application id and state directory. Each guarantee keeps its default
# commit interval (at_least_once 30 s, exactly_once_v2 100 ms, Kafka Streams' defaults) unless
# COMMIT_INTERVAL_MS is set. Prints records/s (input fully processed, from process start) for each,
# and the ratio exactly_once_v2 / at_least_once.
# Needs `make kafka-up` and a built engine (cargo build --release -p freshet-engine, then
# ENGINE=<target>/release/freshet-engine; the debug binary works too but measures the wrong thing).
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
N=${N:-1000000}
GUARANTEES=${GUARANTEES:-at_least_once exactly_once_v2}
ENGINE=${ENGINE:-${CARGO_TARGET_DIR:-$FRESHET_CACHE/target}/release/freshet-engine}
BOOTSTRAP=127.0.0.1:$FRESHET_KAFKA_PORT
[ -x "$ENGINE" ] || die "no engine binary at $ENGINE" "cargo build --release -p freshet-engine (or set ENGINE=...)"
work=$(mktemp -d)
trap 'rm -rf "$work"; [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null || true' EXIT
id=$(date +%s)
in=bench-eos-in-$id
"$ROOT/scripts/kafka.sh" tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --create --topic "$in" --partitions 6 >/dev/null
for i in $(seq 1 1000); do
  printf '{"id":%d,"amount":%d.5,"region":"%s","customer":"c-%05d","note":"padding-padding-pad"}\n' \
    "$i" $(( (i * 37) % 250 )) "$([ $((i % 3)) -eq 0 ] && echo eu || echo us)" $(( i % 977 ))
done >"$work/payloads"
log "producing $N records to $in"
"$ROOT/scripts/kafka.sh" tool org.apache.kafka.tools.ProducerPerformance --topic "$in" --num-records "$N" \
  --throughput -1 --payload-file "$work/payloads" \
  --producer-props bootstrap.servers="$BOOTSTRAP" linger.ms=20 batch.size=524288 acks=1 >"$work/produce.log" 2>&1 \
  || { cat "$work/produce.log"; die "producing the input failed" "see above"; }

metric() { # name (summed over labels); 0 when absent
  curl -sf "http://127.0.0.1:$port/metrics" | awk -v m="$1" '$1 ~ "^"m"({|$)" {s += $2} END {printf "%d", s}' || echo 0
}

declare -A rate
for g in $GUARANTEES; do
  out=bench-eos-$g-$id
  "$ROOT/scripts/kafka.sh" tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --create --topic "${out//_/-}" --partitions 6 >/dev/null
  cat >"$work/$g.yaml" <<YAML
applicationId: bench-eos-${g//_/-}-$id
bootstrapServers: $BOOTSTRAP
processingGuarantee: $g
defaultKeySerde: string
defaultValueSerde: json
stateDir: $work/state-$g
config: { ${COMMIT_INTERVAL_MS:+commit.interval.ms: '$COMMIT_INTERVAL_MS'} }
topology:
  streams:
    - { name: input, topic: $in }
  pipelines:
    - name: count
      from: input
      steps:
        - groupBy: "value.customer"
        - count: { store: counts }
        - toStream: {}
        - to: { topic: ${out//_/-}, keySerde: string, valueSerde: long }
YAML
  port=$((20000 + RANDOM % 20000))
  start=$(date +%s.%N)
  FRESHET_LOG=${FRESHET_LOG:-warn} "$ENGINE" run -f "$work/$g.yaml" \
    --http-port "$port" --http-address 127.0.0.1 >"$work/$g.log" 2>&1 &
  pid=$!
  # The repartition topic's records are processed too: wait for both stages.
  while [ "$(metric freshet_records_processed_total)" -lt $((2 * N)) ]; do
    sleep 0.2
    kill -0 "$pid" 2>/dev/null || { cat "$work/$g.log"; die "the engine exited" "see its log above"; }
  done
  end=$(date +%s.%N)
  cpu_ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  kill -TERM "$pid"; wait "$pid" || true; pid=
  secs=$(echo "$end - $start" | bc -l)
  rate[$g]=$(echo "$N / $secs" | bc -l)
  printf '%-16s records: %d  seconds: %.2f  records/s: %.0f  CPU s: %.1f\n' \
    "$g" "$N" "$secs" "${rate[$g]}" "$(echo "$cpu_ticks / $(getconf CLK_TCK)" | bc -l)"
done
if [ -n "${rate[at_least_once]:-}" ] && [ -n "${rate[exactly_once_v2]:-}" ]; then
  printf 'exactly_once_v2 / at_least_once: %.2f\n' "$(echo "${rate[exactly_once_v2]} / ${rate[at_least_once]}" | bc -l)"
fi
