#!/usr/bin/env bash
# make demo: everything up on this machine, then a StreamsApp run the way users run it:
# the chart installed with Helm, the example applied with kubectl, its pods branching orders by
# region; the output records and `kubectl get sapp` printed. The pods run on a real kubelet and
# containerd from the images where this machine can run them (FRESHET_NODE=auto, the default),
# (scripts/node.sh; FRESHET_IMAGE_PROFILE=release uses make images'), else on the local test node
# (each pod's engine a host process; FRESHET_NODE=test forces it).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
t0=$SECONDS
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$FRESHET_CACHE/target}
BOOTSTRAP=127.0.0.1:$FRESHET_KAFKA_PORT
EXAMPLE=examples/branch-by-region
SYSTEM_NS=freshet
APP_NS=demo
export KUBECONFIG=$RUN_DIR/kubeconfig
KUBECTL=$K8S_BIN/kubectl
HELM=$HELM_BIN/helm

scripts/kafka.sh up
scripts/cluster.sh up
need_cmd cargo "install Rust with rustup (https://rustup.rs) and put cargo on PATH"
BIN=$CARGO_TARGET_DIR/debug
real_node=false
[ "$(cat "$RUN_DIR/cluster/mode" 2>/dev/null)" = kubelet ] && real_node=true
if ! $real_node; then
  log "building freshet-engine, freshet-operator and freshet-test-node (the first build compiles librdkafka and RocksDB: ~25 min on 2 cores)"
  cargo build -q --workspace --bins || die "building the binaries failed" "see the compiler output above"
fi

for ns in "$SYSTEM_NS" "$APP_NS"; do
  "$KUBECTL" get ns "$ns" >/dev/null 2>&1 || "$KUBECTL" create ns "$ns" >/dev/null
done
helm_images=()
if $real_node; then
  # The real node: the pods run in containers of the images (by default from the test profile's
  # binaries, tagged <appVersion>-test; FRESHET_IMAGE_PROFILE=release for make images' own),
  # loaded into the node's containerd.
  export FRESHET_IMAGE_PROFILE=${FRESHET_IMAGE_PROFILE:-test}
  scripts/images.sh build
  tag=$(scripts/images.sh tag)
  scripts/node.sh load "ghcr.io/freshet/engine:$tag" "ghcr.io/freshet/operator:$tag"
  helm_images=(--set "image.tag=$tag" --set "engineImage.tag=$tag")
  # Pods reach the broker at the node's address (Kafka's PODS listener, forwarded into the node).
  APP_BOOTSTRAP=$FRESHET_NODE_IP:9092
  NODE_NOTE="a real kubelet and containerd in a network namespace ($(scripts/node.sh status))"
else
  # The test node: pods of the two namespaces run as local processes of the binaries above.
  if ! pid_alive "$RUN_DIR/test-node.pid"; then
    "$BIN/freshet-test-node" --namespace "$SYSTEM_NS,$APP_NS" --name freshet-demo-node >"$RUN_DIR/test-node.log" 2>&1 &
    echo $! >"$RUN_DIR/test-node.pid"
    log "test node started (pid $(cat "$RUN_DIR/test-node.pid"), log $RUN_DIR/test-node.log)"
  fi
  APP_BOOTSTRAP=$BOOTSTRAP
  NODE_NOTE="freshet-test-node runs the pods as local processes (log $RUN_DIR/test-node.log)"
fi

log "helm upgrade --install freshet charts/freshet -n $SYSTEM_NS (watching $APP_NS)"
"$HELM" upgrade --install freshet charts/freshet --namespace "$SYSTEM_NS" \
  --set "watchNamespaces={$APP_NS}" "${helm_images[@]}" >"$RUN_DIR/helm-install.log" 2>&1 ||
  { cat "$RUN_DIR/helm-install.log" >&2; die "helm install failed" "see the output above"; }
"$KUBECTL" -n "$SYSTEM_NS" rollout status deployment/freshet --timeout=120s >/dev/null ||
  die "the operator did not become ready" "look at: $KUBECTL -n $SYSTEM_NS describe pods; $KUBECTL -n $SYSTEM_NS logs deploy/freshet (test node: $RUN_DIR/test-node.log)"

# A fresh run of the example: its topics recreated, a new application id.
"$KUBECTL" -n "$APP_NS" delete sapp branch-by-region --ignore-not-found --wait=true >/dev/null
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

log "kubectl apply -f $EXAMPLE/app.yaml -n $APP_NS"
sed -e "s/^  applicationId: .*/  applicationId: demo-$(date +%s)/" -e "s/127.0.0.1:9092/$APP_BOOTSTRAP/" "$EXAMPLE/app.yaml" |
  "$KUBECTL" -n "$APP_NS" apply -f - >/dev/null
for t in branch-orders-eu branch-orders-us branch-orders-other; do
  expected=$(grep -c "\"topic\": \"$t\"" "$EXAMPLE/expected.jsonl")
  echo "--- $t"
  scripts/kafka.sh tool org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$BOOTSTRAP" --topic "$t" \
    --from-beginning --max-messages "$expected" --timeout-ms 60000 \
    --formatter-property print.key=true --formatter-property key.separator=' => ' 2>/dev/null || true
done
for _ in $(seq 1 60); do
  [ "$("$KUBECTL" -n "$APP_NS" get sapp branch-by-region -o jsonpath='{.status.readyReplicas}' 2>/dev/null)" = 1 ] && break
  sleep 0.5
done
echo
"$KUBECTL" -n "$APP_NS" get sapp
echo
"$KUBECTL" -n "$APP_NS" get pods -o wide
if $real_node; then
  # On the real node: the headless Service has the pod's address, and the kubelet serves its log.
  echo
  "$KUBECTL" -n "$APP_NS" get endpointslices -l kubernetes.io/service-name=branch-by-region
  echo
  echo "--- kubectl -n $APP_NS logs branch-by-region-0 --tail 5"
  "$KUBECTL" -n "$APP_NS" logs branch-by-region-0 --tail 5 || true
fi

cat <<MSG

Freshet is up (demo took $((SECONDS - t0)) s).
  Kafka bootstrap servers : $BOOTSTRAP
  kubeconfig              : $KUBECONFIG
  kubectl                 : $KUBECTL   (built for the apiserver's version)
  helm                    : $HELM
  operator                : helm release 'freshet' in namespace $SYSTEM_NS, watching $APP_NS
  node                    : $NODE_NOTE

Try:
  export KUBECONFIG=$KUBECONFIG
  $KUBECTL -n $APP_NS describe sapp branch-by-region
  $KUBECTL -n $APP_NS scale sapp/branch-by-region --replicas=2
  $BIN/freshet-engine describe -f $EXAMPLE/app.yaml
Stop it all with: make down
MSG
