#!/usr/bin/env bash
# make chaos: the long forms of the fault tests (FRESHET_CHAOS=1; make test runs their short forms):
# - tests/tests/faults.rs: on brokers of their own, the single broker down 30 s; Kafka Streams'
#   broker-bounce test on three brokers (a source leader stopped 70 s, killed 70 s, frozen 30 s)
#   per guarantee; three exactly-once instances SIGKILLed 30 times; an engine started before its
#   broker and topics.
# - the operator's faults (deletion order, status writes and Kafka clients over 10 minutes).
# Starts Kafka and the cluster if they are not running and stops what it started
# (FRESHET_KEEP_RUNNING=1 keeps them).
set -euo pipefail
# The operator's fault tests run their pods on the test node (the real node's images are make test's).
export FRESHET_NODE=${FRESHET_NODE:-test}
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$FRESHET_CACHE/target}
TARGET_T0=$SECONDS
trap 'finish_target "make chaos"' EXIT
need_cmd cargo "install Rust with rustup (https://rustup.rs) and put cargo on PATH"
ensure_up kafka
ensure_up cluster
# The tests run the engine and operator binaries: build them beside the test executables.
# --workspace, as make test builds: a per-package build unifies features differently and
# rebuilds half the dependency tree in the shared target.
cargo build --workspace --bins
export FRESHET_KAFKA_BOOTSTRAP=127.0.0.1:$FRESHET_KAFKA_PORT
export KUBECONFIG=$RUN_DIR/kubeconfig
export FRESHET_KUBECTL=$K8S_BIN/kubectl
export FRESHET_CHAOS=1
# One at a time: each test's brokers and engines get the machine's two cores to themselves.
tests=()
for t in ${FRESHET_CHAOS_TESTS:-faults operator_faults}; do tests+=(--test "$t"); done
cargo test --workspace "${tests[@]}" -- --nocapture --test-threads=1 ${FRESHET_TEST_ARGS:-}
