#!/usr/bin/env bash
# make test: build, bring up Kafka and the cluster, run every test, stop what this run started
# (FRESHET_KEEP_RUNNING=1 keeps them up). Prints the wall time of each phase.
set -euo pipefail
# The node the pods run on: FRESHET_NODE=auto (the default) takes the real node where this machine
# can run one, else the test node with a warning saying why; kubelet or test force one
# (resolve_node in lib.sh; with a cluster already running, the node it was started for).
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$FRESHET_CACHE/target}
TARGET_T0=$SECONDS
trap 'finish_target "make test"' EXIT

need_cmd cargo "install Rust with rustup (https://rustup.rs) and put cargo on PATH"
resolve_node
log "pods run on the $( [ "$FRESHET_NODE" = kubelet ] && echo "real node (kubelet and containerd, from the images)" || echo "test node" )"

# The Rust build and the Kubernetes/Kafka fetches are independent: on a cold machine run them side by side.
mkdir -p "$RUN_DIR"
build_log=$RUN_DIR/cargo-build.log
log "cargo build --workspace --all-targets (log: $build_log)"
( cargo build --workspace --all-targets >"$build_log" 2>&1 ) &
build_pid=$!

ensure_up kafka
# The Kafka Streams reference (the differential tests' oracle), beside the cargo build and the
# cluster's start. After Kafka's fetch, so two Mavens never fill one repository at once.
reference_log=$RUN_DIR/reference-build.log
# The benchmark's Kafka Streams contender (for bench-quick below) right after, on the same lock.
( scripts/reference.sh build >"$RUN_DIR/reference-classpath" 2>"$reference_log" \
    && bench/kstreams.sh build >/dev/null 2>>"$reference_log" ) &
reference_pid=$!
ensure_up cluster
# The schema registry of the Avro/Protobuf/JSON Schema suites (tests/tests/schema_registry.rs),
# its HTTPS-only twin for tests/tests/schema_registry_tls.rs (two ports past the registry's; the
# twin's management interface takes the next) and nginx checking basic auth in front of it for
# tests/tests/schema_registry_auth.rs (four ports past).
export FRESHET_REGISTRY_TLS_PORT=${FRESHET_REGISTRY_TLS_PORT:-$((${FRESHET_REGISTRY_PORT:-8081} + 2))}
export FRESHET_REGISTRY_AUTH_PORT=${FRESHET_REGISTRY_AUTH_PORT:-$((${FRESHET_REGISTRY_PORT:-8081} + 4))}
ensure_up registry
log "services up after $((SECONDS - TARGET_T0)) s"

if ! wait "$build_pid"; then
  tail -n 60 "$build_log" >&2
  die "cargo build failed (full log: $build_log)" "fix the compile error above"
fi
if ! wait "$reference_pid"; then
  cat "$reference_log" >&2
  die "building the Kafka Streams reference failed (log: $reference_log)" "fix the error above, then: scripts/reference.sh build"
fi
log "build done after $((SECONDS - TARGET_T0)) s"
if [ "$FRESHET_NODE" = kubelet ]; then
  # The pods run the images of the binaries just built (the test profile, tagged <appVersion>-test),
  # loaded into the node's containerd.
  export FRESHET_IMAGE_PROFILE=test
  scripts/images.sh build
  FRESHET_NODE_IMAGE_TAG=$(scripts/images.sh tag)
  scripts/node.sh load "ghcr.io/freshet/engine:$FRESHET_NODE_IMAGE_TAG" "ghcr.io/freshet/operator:$FRESHET_NODE_IMAGE_TAG"
  export FRESHET_NODE_IMAGE_TAG FRESHET_POD_KAFKA_BOOTSTRAP=$FRESHET_NODE_IP:9092
  export FRESHET_CRICTL=$CRICTL_BIN/crictl FRESHET_CRI_ENDPOINT=unix://$RUN_DIR/node/containerd.sock
  log "images loaded into the real node after $((SECONDS - TARGET_T0)) s"
fi

# Namespaces an interrupted earlier run left (tests/src/cluster.rs labels them): their pods would
# take the real node's room, and their apps would still consume.
"$K8S_BIN/kubectl" --kubeconfig "$RUN_DIR/kubeconfig" delete namespace -l freshet.dev/test-namespace=true \
  --wait=false --ignore-not-found >/dev/null 2>&1 || log "warning: could not delete the namespaces of earlier test runs"

export FRESHET_KAFKA_BOOTSTRAP=127.0.0.1:$FRESHET_KAFKA_PORT
FRESHET_SCHEMA_REGISTRY_URL=http://127.0.0.1:${FRESHET_REGISTRY_PORT:-8081}/apis/ccompat/v7
export FRESHET_SCHEMA_REGISTRY_URL
FRESHET_SCHEMA_REGISTRY_TLS_URL=$(scripts/registry.sh tls-url)
FRESHET_SCHEMA_REGISTRY_TLS_CA=$(scripts/registry.sh tls-ca)
export FRESHET_SCHEMA_REGISTRY_TLS_URL FRESHET_SCHEMA_REGISTRY_TLS_CA
FRESHET_SCHEMA_REGISTRY_AUTH_URL=$(scripts/registry.sh auth-url)
FRESHET_SCHEMA_REGISTRY_AUTH_USER=$(scripts/registry.sh auth-user)
FRESHET_SCHEMA_REGISTRY_AUTH_PASSWORD=$(cat "$(scripts/registry.sh auth-password-file)")
export FRESHET_SCHEMA_REGISTRY_AUTH_URL FRESHET_SCHEMA_REGISTRY_AUTH_USER FRESHET_SCHEMA_REGISTRY_AUTH_PASSWORD
export KUBECONFIG=$RUN_DIR/kubeconfig
export FRESHET_KUBECTL=$K8S_BIN/kubectl
export FRESHET_HELM=$HELM_BIN/helm
FRESHET_REFERENCE_CLASSPATH=$(cat "$(cat "$RUN_DIR/reference-classpath")")
export FRESHET_REFERENCE_CLASSPATH
cargo fmt --all --check || die "cargo fmt --check found unformatted code" "run: make fmt"
cargo clippy -q --workspace --all-targets -- -D warnings || die "clippy found problems" "fix the warnings above (make lint)"
scripts/module-cycles.py >/dev/null || die "import cycles between modules: $(scripts/module-cycles.py | head -3)" "break the cycle (make lint)"
# Every suite runs even after one fails, so one run names every failure.
cargo test --workspace --all-targets --no-fail-fast -- ${FRESHET_TEST_ARGS:-}
# The benchmark's smoke check (no figures asserted): every contender, workload and guarantee
# produces every result, on the debug build made above.
bench/run.sh quick
