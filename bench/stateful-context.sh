#!/usr/bin/env bash
# Context figures for stateful processing (not the side-by-side benchmark of bench/): one
# `freshet-engine run` per scenario over N ~100-byte JSON records on 6 partitions.
#   count     groupBy customer (977 keys, through a repartition topic), count, to a topic
#   windowed  the same in 1-minute tumbling windows
#   distinct  groupBy partition:offset (N distinct keys), count; RocksDB memory sampled from
#             /metrics against the configured budget; then the state directory is deleted and
#             the restart's restore rate read from the log
# Prints records/s (input fully processed, from process start), peak RSS, CPU seconds.
# Needs `make kafka-up` and a built engine (cargo build --workspace --bins).
set -euo pipefail
source "$(dirname "$0")/../scripts/lib.sh"
N=${N:-1000000}
SCENARIOS=${SCENARIOS:-count windowed distinct}
BLOCK_CACHE=${BLOCK_CACHE:-16777216}
WRITE_BUFFERS=${WRITE_BUFFERS:-8388608}
ENGINE=${ENGINE:-${CARGO_TARGET_DIR:-$FRESHET_CACHE/target}/debug/freshet-engine}
BOOTSTRAP=127.0.0.1:$FRESHET_KAFKA_PORT
[ -x "$ENGINE" ] || die "no engine binary at $ENGINE" "cargo build --workspace --bins (or set ENGINE=...)"
work=$(mktemp -d)
trap 'rm -rf "$work"; [ -n "${pid:-}" ] && kill "$pid" 2>/dev/null || true' EXIT
id=$(date +%s)
in=bench-state-in-$id
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

# run NAME STEPS: runs the engine until every input record is processed; leaves it running.
run() {
  local name=$1 steps=$2 out=bench-state-$1-$id
  "$ROOT/scripts/kafka.sh" tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --create --topic "$out" --partitions 6 >/dev/null
  cat >"$work/$name.yaml" <<YAML
applicationId: bench-$name-$id
bootstrapServers: $BOOTSTRAP
defaultKeySerde: string
defaultValueSerde: json
stateDir: $work/state-$name
config:
  freshet.rocksdb.block.cache.bytes: "$BLOCK_CACHE"
  freshet.rocksdb.write.buffer.bytes: "$WRITE_BUFFERS"
topology:
  streams:
    - { name: input, topic: $in }
  pipelines:
    - name: $name
      from: input
      steps:
$steps
        - toStream: {}
        - to: { topic: $out, keySerde: ${KEY_SERDE:-string}, valueSerde: long }
YAML
  port=$((20000 + RANDOM % 20000))
  start=$(date +%s.%N)
  FRESHET_LOG=${FRESHET_LOG:-warn,freshet_streams::runtime::restore=info} "$ENGINE" run -f "$work/$name.yaml" \
    --http-port "$port" --http-address 127.0.0.1 >"$work/$name.log" 2>&1 &
  pid=$!
  max_cache=0 max_memtables=0
  # The repartition topic's records are processed too: wait for both stages.
  while [ "$(metric freshet_records_processed_total)" -lt $((2 * N)) ]; do
    sleep 0.2
    kill -0 "$pid" 2>/dev/null || { cat "$work/$name.log"; die "the engine exited" "see its log above"; }
    c=$(metric freshet_rocksdb_block_cache_bytes); m=$(metric freshet_rocksdb_memtable_bytes)
    [ "$c" -gt "$max_cache" ] && max_cache=$c
    [ "$m" -gt "$max_memtables" ] && max_memtables=$m
  done
  end=$(date +%s.%N)
  rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  cpu_ticks=$(awk '{print $14 + $15}' "/proc/$pid/stat")
  secs=$(echo "$end - $start" | bc -l)
  printf '%-9s records: %d  seconds: %.2f  records/s: %.0f  peak RSS: %.1f MiB  CPU s: %.1f  RocksDB max: block cache %.1f MiB (budget %.1f + %.1f), memtables %.1f MiB (budget %.1f)\n' \
    "$name" "$N" "$secs" "$(echo "$N / $secs" | bc -l)" "$(echo "$rss_kb / 1024" | bc -l)" \
    "$(echo "$cpu_ticks / $(getconf CLK_TCK)" | bc -l)" "$(echo "$max_cache / 1048576" | bc -l)" \
    "$(echo "$BLOCK_CACHE / 1048576" | bc -l)" "$(echo "$WRITE_BUFFERS / 1048576" | bc -l)" \
    "$(echo "$max_memtables / 1048576" | bc -l)" "$(echo "$WRITE_BUFFERS / 1048576" | bc -l)"
}

stop() { kill -TERM "$pid"; wait "$pid" || true; pid=; }

for s in $SCENARIOS; do
  case $s in
    count)
      run count '        - groupBy: "value.customer"
        - count: { store: counts }'
      stop ;;
    windowed)
      KEY_SERDE=windowed-string run windowed '        - groupBy: "value.customer"
        - windowedBy: { tumbling: 1m, grace: 10s }
        - count: { store: windowed-counts }'
      stop ;;
    distinct)
      run distinct '        - groupBy: "string(partition) + \":\" + string(offset)"
        - count: { store: distinct-counts }'
      stop
      rm -rf "$work/state-distinct"
      port=$((20000 + RANDOM % 20000))
      FRESHET_LOG=warn,freshet_streams::runtime::restore=info "$ENGINE" run -f "$work/distinct.yaml" \
        --http-port "$port" --http-address 127.0.0.1 >"$work/restore.log" 2>&1 &
      pid=$!
      until curl -sf "http://127.0.0.1:$port/readyz" >/dev/null; do
        sleep 0.2
        kill -0 "$pid" 2>/dev/null || { cat "$work/restore.log"; die "the engine exited" "see its log above"; }
      done
      stop
      echo "restore after losing the state directory (per changelog partition):"
      grep "store restored" "$work/restore.log" | sed -E 's/.*(records=[0-9]+).*(bytes=[0-9]+).*(seconds=[^ ]+).*(mb_per_s=[^ ]+).*/  \1 \2 \3 \4/'
      ;;
    *) die "unknown scenario $s" "choose from: count windowed distinct" ;;
  esac
done
