#!/usr/bin/env bash
# make demo: everything up on this machine, then an example application run end to end:
# orders are produced, `freshet-engine run` branches them by region, the outputs are printed.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$FRESHET_CACHE/target}
BOOTSTRAP=127.0.0.1:$FRESHET_KAFKA_PORT
EXAMPLE=examples/branch-by-region

scripts/kafka.sh up
scripts/cluster.sh up
need_cmd cargo "install Rust with rustup (https://rustup.rs) and put cargo on PATH"
log "building freshet-engine (the first build compiles librdkafka and RocksDB: ~25 min on 2 cores)"
cargo build -q --workspace --bins || die "building freshet-engine failed" "see the compiler output above"
ENGINE=$CARGO_TARGET_DIR/debug/freshet-engine

topic_tool() { scripts/kafka.sh tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" "$@"; }
topics=$(sed -n 's/.*"topic": "\([^"]*\)".*/\1/p' "$EXAMPLE/input.jsonl" "$EXAMPLE/expected.jsonl" | sort -u)
for t in $topics; do
  topic_tool --delete --if-exists --topic "$t" >/dev/null 2>&1 || true
done
for t in $topics; do
  for _ in $(seq 1 50); do
    topic_tool --create --if-not-exists --topic "$t" --partitions 1 >/dev/null 2>&1 && break
    sleep 0.2
  done
done
log "producing $(wc -l <"$EXAMPLE/input.jsonl") orders to branch-orders"
sed -n 's/.*"key": "\([^"]*\)", "value": \(.*\)}$/\1|\2/p' "$EXAMPLE/input.jsonl" |
  scripts/kafka.sh tool org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$BOOTSTRAP" --topic branch-orders \
    --property parse.key=true --property key.separator='|' >/dev/null

app_log=$RUN_DIR/demo-engine.log
"$ENGINE" run -f "$EXAMPLE/app.yaml" --bootstrap-servers "$BOOTSTRAP" --application-id "demo-$(date +%s)" --http-port 0 \
  >"$app_log" 2>&1 &
engine_pid=$!
trap 'kill $engine_pid 2>/dev/null || true' EXIT
log "freshet-engine run -f $EXAMPLE/app.yaml (pid $engine_pid, log $app_log)"
for t in branch-orders-eu branch-orders-us branch-orders-other; do
  expected=$(grep -c "\"topic\": \"$t\"" "$EXAMPLE/expected.jsonl")
  echo "--- $t"
  scripts/kafka.sh tool org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$BOOTSTRAP" --topic "$t" \
    --from-beginning --max-messages "$expected" --timeout-ms 30000 \
    --formatter-property print.key=true --formatter-property key.separator=' => ' 2>/dev/null || true
done
kill -TERM $engine_pid 2>/dev/null || true
wait $engine_pid 2>/dev/null || true
trap - EXIT

cat <<MSG

Freshet local environment is up.
  Kafka bootstrap servers : $BOOTSTRAP
  kubeconfig              : $RUN_DIR/kubeconfig
  kubectl                 : $K8S_BIN/kubectl   (built for the apiserver's version)
  helm                    : $HELM_BIN/helm
  engine                  : $ENGINE

Try:
  $K8S_BIN/kubectl --kubeconfig $RUN_DIR/kubeconfig get ns
  $ENGINE describe -f $EXAMPLE/app.yaml
Stop it all with: make down
MSG
"$K8S_BIN/kubectl" --kubeconfig "$RUN_DIR/kubeconfig" get ns
