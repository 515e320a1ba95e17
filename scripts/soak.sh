#!/usr/bin/env bash
# make soak: the long crash tests (tests/tests/crash.rs, `#[ignore]`d in make test): 1,000,000
# records per guarantee, the engine SIGKILLed and restarted at least 20 times, then checked
# (exactly_once_v2: every count exact and never going down; at_least_once: nothing lost); and the
# scale-out under load (tests/tests/scale_out_latency.rs) with 1,000,000 keys of about 1 KB.
# Starts Kafka if it is not running and stops what it started (FRESHET_KEEP_RUNNING=1 keeps it).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$FRESHET_CACHE/target}
TARGET_T0=$SECONDS
trap 'finish_target "make soak"' EXIT
need_cmd cargo "install Rust with rustup (https://rustup.rs) and put cargo on PATH"
ensure_up kafka
# The tests run the engine binary: build it beside the test executable.
# --workspace, as make test builds (a per-package build rebuilds with other features).
cargo build --workspace --bins
export FRESHET_KAFKA_BOOTSTRAP=127.0.0.1:$FRESHET_KAFKA_PORT
# One at a time, so each guarantee's figures are its own.
cargo test --workspace --test crash -- --ignored --nocapture --test-threads=1 ${FRESHET_TEST_ARGS:-}
# The scale-out's long form: about 1 GB of state (make test runs 50,000 keys).
FRESHET_SOAK=1 cargo test --workspace --test scale_out_latency -- --nocapture --test-threads=1 ${FRESHET_TEST_ARGS:-}
