#!/usr/bin/env bash
# A quick context figure (not the side-by-side benchmark): one `freshet-engine run` on a
# 6-partition filter + mapValues pipeline over N 100-byte JSON records.
# Prints records/s (input fully processed, from process start) and peak RSS.
# Needs `make kafka-up` and a built engine (cargo build --workspace --bins).
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
N=${N:-1000000}
ENGINE=${ENGINE:-${CARGO_TARGET_DIR:-$FRESHET_CACHE/target}/debug/freshet-engine}
BOOTSTRAP=127.0.0.1:$FRESHET_KAFKA_PORT
[ -x "$ENGINE" ] || die "no engine binary at $ENGINE" "cargo build --workspace --bins (or set ENGINE=...)"
work=$(mktemp -d)
trap 'rm -rf "$work"; [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null || true' EXIT
id=$(date +%s)
in=bench-in-$id out=bench-out-$id
for t in "$in" "$out"; do
  "$ROOT/scripts/kafka.sh" tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --create --topic "$t" --partitions 6 >/dev/null
done
# 1,000 distinct ~100-byte JSON values; about 60% have amount >= 100.
for i in $(seq 1 1000); do
  printf '{"id":%d,"amount":%d.5,"region":"%s","customer":"c-%05d","note":"padding-padding-pad"}\n' \
    "$i" $(( (i * 37) % 250 )) "$([ $((i % 3)) -eq 0 ] && echo eu || echo us)" $(( i % 977 ))
done >"$work/payloads"
log "producing $N records to $in"
"$ROOT/scripts/kafka.sh" tool org.apache.kafka.tools.ProducerPerformance --topic "$in" --num-records "$N" \
  --throughput -1 --payload-file "$work/payloads" \
  --producer-props bootstrap.servers="$BOOTSTRAP" linger.ms=20 batch.size=524288 acks=1 >"$work/produce.log" 2>&1 \
  || { cat "$work/produce.log"; die "producing the input failed" "see above"; }
expected_in=$N
cat >"$work/app.yaml" <<YAML
applicationId: bench-$id
bootstrapServers: $BOOTSTRAP
defaultKeySerde: string
defaultValueSerde: json
topology:
  streams:
    - { name: input, topic: $in }
  pipelines:
    - name: big
      from: input
      steps:
        - filter: "value.amount >= 100"
        - mapValues: "{'id': value.id, 'amount': value.amount}"
        - to: { topic: $out }
YAML
port=$((20000 + RANDOM % 20000))
start=$(date +%s.%N)
FRESHET_LOG=warn "$ENGINE" run -f "$work/app.yaml" --http-port "$port" --http-address 127.0.0.1 >"$work/engine.log" 2>&1 &
pid=$!
processed=0
while [ "$processed" -lt "$expected_in" ]; do
  sleep 0.2
  kill -0 "$pid" 2>/dev/null || { cat "$work/engine.log"; die "the engine exited" "see its log above"; }
  [ -n "${TRACE:-}" ] && echo "$(date +%s.%N | cut -c7-14) $processed" >&2
  processed=$(curl -sf "http://127.0.0.1:$port/metrics" | awk '/^freshet_records_processed_total/ {s += $2} END {printf "%d", s}' || echo 0)
done
end=$(date +%s.%N)
rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
cpu_ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat")
kill -TERM "$pid"; wait "$pid" || true; pid=
secs=$(echo "$end - $start" | bc -l)
printf 'records: %d  seconds (from process start): %.2f  records/s: %.0f  peak RSS: %.1f MiB  CPU seconds: %.1f\n' \
  "$N" "$secs" "$(echo "$N / $secs" | bc -l)" "$(echo "$rss_kb / 1024" | bc -l)" "$(echo "$cpu_ticks / $(getconf CLK_TCK)" | bc -l)"
