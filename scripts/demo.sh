#!/usr/bin/env bash
# make demo: everything up on this machine, then show how to reach it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"
scripts/kafka.sh up
scripts/cluster.sh up
cat <<MSG

Freshet local environment is up.
  Kafka bootstrap servers : 127.0.0.1:$FRESHET_KAFKA_PORT
  kubeconfig              : $RUN_DIR/kubeconfig
  kubectl                 : $K8S_BIN/kubectl   (built for the apiserver's version)
  helm                    : $HELM_BIN/helm

Try:
  $K8S_BIN/kubectl --kubeconfig $RUN_DIR/kubeconfig get ns
  scripts/kafka.sh tool org.apache.kafka.tools.TopicCommand --bootstrap-server 127.0.0.1:$FRESHET_KAFKA_PORT --list
Stop it all with: make down
MSG
"$K8S_BIN/kubectl" --kubeconfig "$RUN_DIR/kubeconfig" get ns
