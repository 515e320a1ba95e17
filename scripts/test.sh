#!/usr/bin/env bash
# make test: build, bring up Kafka and the cluster, run every test, stop what this run started
# (FRESHET_KEEP_RUNNING=1 keeps them up). Prints the wall time of each phase.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$FRESHET_CACHE/target}
TARGET_T0=$SECONDS
trap 'finish_target "make test"' EXIT

need_cmd cargo "install Rust with rustup (https://rustup.rs) and put cargo on PATH"
# The pod tests are their own node (freshet-test-node binds and runs their pods): a real node and
# its scheduler in the same cluster would take pods from them.
[ "$FRESHET_NODE" = test ] || die "make test runs its pods on the test node, not FRESHET_NODE=$FRESHET_NODE" \
  "unset FRESHET_NODE for make test; the real node is checked by: FRESHET_NODE=kubelet make cluster-up node-check demo"
if scripts/cluster.sh status >/dev/null 2>&1 && [ "$(cat "$RUN_DIR/cluster/mode" 2>/dev/null || echo test)" != test ]; then
  die "the running cluster has a real node (started with FRESHET_NODE=kubelet), whose scheduler would take the test node's pods" \
    "make cluster-down, then make test"
fi

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

export FRESHET_KAFKA_BOOTSTRAP=127.0.0.1:$FRESHET_KAFKA_PORT
export KUBECONFIG=$RUN_DIR/kubeconfig
export FRESHET_KUBECTL=$K8S_BIN/kubectl
export FRESHET_HELM=$HELM_BIN/helm
FRESHET_REFERENCE_CLASSPATH=$(cat "$(cat "$RUN_DIR/reference-classpath")")
export FRESHET_REFERENCE_CLASSPATH
cargo fmt --all --check || die "cargo fmt --check found unformatted code" "run: make fmt"
cargo clippy -q --workspace --all-targets -- -D warnings || die "clippy found problems" "fix the warnings above (make lint)"
scripts/module-cycles.py >/dev/null || die "import cycles between modules: $(scripts/module-cycles.py | head -3)" "break the cycle (make lint)"
cargo test --workspace --all-targets -- ${FRESHET_TEST_ARGS:-}
# The benchmark's smoke check (no figures asserted): every contender, workload and guarantee
# produces every result, on the debug build made above.
bench/run.sh quick
