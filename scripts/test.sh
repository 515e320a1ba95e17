#!/usr/bin/env bash
# make test: build, bring up Kafka and the cluster, run every test, stop what this run started
# (FRESHET_KEEP_RUNNING=1 keeps them up). Prints the wall time of each phase.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$FRESHET_CACHE/target}
t0=$SECONDS
started=()
cleanup() {
  local rc=$?
  if [ -z "${FRESHET_KEEP_RUNNING:-}" ]; then
    local i
    for ((i = ${#started[@]} - 1; i >= 0; i--)); do "scripts/${started[i]}.sh" down || true; done
  fi
  log "make test: $( [ $rc -eq 0 ] && echo passed || echo FAILED ) in $((SECONDS - t0)) s"
  exit $rc
}
trap cleanup EXIT

need_cmd cargo "install Rust with rustup (https://rustup.rs) and put cargo on PATH"

# The Rust build and the Kubernetes/Kafka fetches are independent: on a cold machine run them side by side.
mkdir -p "$RUN_DIR"
build_log=$RUN_DIR/cargo-build.log
log "cargo build --workspace --all-targets (log: $build_log)"
( cargo build --workspace --all-targets >"$build_log" 2>&1 ) &
build_pid=$!

scripts/kafka.sh status >/dev/null 2>&1 || { started+=(kafka); scripts/kafka.sh up; }
scripts/cluster.sh status >/dev/null 2>&1 || { started+=(cluster); scripts/cluster.sh up; }
log "services up after $((SECONDS - t0)) s"

if ! wait "$build_pid"; then
  tail -n 60 "$build_log" >&2
  die "cargo build failed (full log: $build_log)" "fix the compile error above"
fi
log "build done after $((SECONDS - t0)) s"

export FRESHET_KAFKA_BOOTSTRAP=127.0.0.1:$FRESHET_KAFKA_PORT
export KUBECONFIG=$RUN_DIR/kubeconfig
export FRESHET_KUBECTL=$K8S_BIN/kubectl
export FRESHET_HELM=$HELM_BIN/helm
cargo fmt --all --check || die "cargo fmt --check found unformatted code" "run: make fmt"
cargo clippy -q --workspace --all-targets -- -D warnings || die "clippy found problems" "fix the warnings above (make lint)"
cargo test --workspace --all-targets -- ${FRESHET_TEST_ARGS:-}
