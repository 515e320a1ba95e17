#!/usr/bin/env bash
# cluster.sh up|down|status
# A real Kubernetes control plane on loopback: etcd, kube-apiserver and kube-controller-manager,
# built from source once (build-k8s.sh), with a kubeconfig at .freshet/kubeconfig.
# Pods run on a real node where this machine can run one (FRESHET_NODE=auto, the default; kubelet
# forces it): a real kubelet and containerd start too (scripts/node.sh), and the apiserver
# advertises the node's address for the kubernetes Service ($FRESHET_NODE_IP). Else, or with
# FRESHET_NODE=test, pods run on the test node (freshet-test-node, started by the tests and make demo).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

CL=$RUN_DIR/cluster
PKI=$CL/pki
KUBECONFIG_OUT=$RUN_DIR/kubeconfig
APISERVER=https://127.0.0.1:$FRESHET_APISERVER_PORT
ETCD_PEER_PORT=$((FRESHET_ETCD_PORT + 1))

kubectl_() { "$K8S_BIN/kubectl" --kubeconfig "$KUBECONFIG_OUT" "$@"; }

make_pki() {
  [ -f "$PKI/.complete" ] && return 0
  need_cmd openssl "install OpenSSL (Debian: apt-get install openssl)"
  rm -rf "$PKI"; mkdir -p "$PKI"
  (
    cd "$PKI"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=freshet-local-ca" -keyout ca.key -out ca.crt
    cat >serving.cnf <<CNF
[req]
distinguished_name = dn
[dn]
[ext]
subjectAltName = IP:127.0.0.1,IP:10.0.0.1,IP:$FRESHET_NODE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local
extendedKeyUsage = serverAuth
CNF
    openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout apiserver.key -out apiserver.csr
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile serving.cnf -extensions ext -out apiserver.crt
    # Service-account token signing keys.
    openssl genrsa -out sa.key 2048
    openssl rsa -in sa.key -pubout -out sa.pub
    # Static bearer tokens: the admin user (system:masters) and the controller-manager.
    printf '%s,admin,admin,system:masters\n%s,system:kube-controller-manager,kcm\n' \
      "$(openssl rand -hex 24)" "$(openssl rand -hex 24)" >tokens.csv
  ) >"$CL/pki.log" 2>&1 || { cat "$CL/pki.log" >&2; die "creating the cluster's certificates in $PKI failed" "see the openssl output above"; }
  touch "$PKI/.complete"
}

# The certificates a real node needs, added to a PKI made before they were (idempotent): the
# apiserver's serving cert naming the node IP (pods reach it there) and its client cert for kubelets
# (logs, exec), in system:masters.
node_pki() {
  (
    cd "$PKI"
    if ! openssl x509 -in apiserver.crt -noout -text | grep -q "IP Address:$FRESHET_NODE_IP"; then
      sed -i "s/^subjectAltName = .*/subjectAltName = IP:127.0.0.1,IP:10.0.0.1,IP:$FRESHET_NODE_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local/" serving.cnf
      openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
        -extfile serving.cnf -extensions ext -out apiserver.crt
    fi
    if [ ! -f kubelet-client.crt ]; then
      openssl req -newkey rsa:2048 -nodes -subj "/O=system:masters/CN=kube-apiserver-kubelet-client" -keyout kubelet-client.key -out kubelet-client.csr
      openssl x509 -req -in kubelet-client.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 -out kubelet-client.crt
    fi
  ) >>"$CL/pki.log" 2>&1 || { tail -n 20 "$CL/pki.log" >&2; die "adding the node's certificates to $PKI failed" "see the openssl output above; rm -rf $PKI makes a new PKI"; }
}

write_kubeconfig() { # write_kubeconfig FILE USER-TOKEN-LINE
  local file=$1 token
  token=$(sed -n "${2}p" "$PKI/tokens.csv" | cut -d, -f1)
  cat >"$file" <<KC
apiVersion: v1
kind: Config
clusters:
- name: freshet
  cluster:
    server: $APISERVER
    certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
users:
- name: $(sed -n "${2}p" "$PKI/tokens.csv" | cut -d, -f2)
  user:
    token: $token
contexts:
- name: freshet
  context: {cluster: freshet, user: $(sed -n "${2}p" "$PKI/tokens.csv" | cut -d, -f2)}
current-context: freshet
KC
  chmod 600 "$file"
}

# start NAME LOGFILE CMD...: run in the background, remember the pid.
start() {
  local name=$1 logf=$2; shift 2
  nohup "$@" >"$logf" 2>&1 </dev/null &
  echo $! >"$CL/$name.pid"
}

# check_alive NAME LOGFILE: a component that exited during start-up is reported with its log.
check_alive() {
  pid_alive "$CL/$1.pid" && return 0
  tail -n 30 "$2" >&2 || true
  down_quiet
  die "$1 exited during start-up (log: $2)" "read the log above; a stale etcd store is cleared by: make cluster-down && rm -rf $CL"
}

up() {
  resolve_node
  if pid_alive "$CL/kube-apiserver.pid" && pid_alive "$CL/etcd.pid"; then
    log "cluster already running at $APISERVER (kubeconfig: $KUBECONFIG_OUT)"
    [ "$FRESHET_NODE" = kubelet ] && "$ROOT/scripts/node.sh" up
    return 0
  fi
  down_quiet
  port_free_or_die "$FRESHET_ETCD_PORT" "etcd (clients)" FRESHET_ETCD_PORT
  port_free_or_die "$ETCD_PEER_PORT" "etcd (peers)" FRESHET_ETCD_PORT
  port_free_or_die "$FRESHET_APISERVER_PORT" "kube-apiserver" FRESHET_APISERVER_PORT
  "$ROOT/scripts/build-k8s.sh" all
  mkdir -p "$CL"
  make_pki
  node_pki
  write_kubeconfig "$KUBECONFIG_OUT" 1
  write_kubeconfig "$CL/controller-manager.kubeconfig" 2

  log "starting etcd $ETCD_VERSION on 127.0.0.1:$FRESHET_ETCD_PORT"
  start etcd "$CL/etcd.log" "$ETCD_BIN/etcd" --name freshet --data-dir "$CL/etcd" \
    --listen-client-urls "http://127.0.0.1:$FRESHET_ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$FRESHET_ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "freshet=http://127.0.0.1:$ETCD_PEER_PORT" \
    --unsafe-no-fsync --quota-backend-bytes 2147483648 --log-level warn
  wait_until 30 "etcd is up" curl -sf "http://127.0.0.1:$FRESHET_ETCD_PORT/health" || check_alive etcd "$CL/etcd.log"
  check_alive etcd "$CL/etcd.log"

  # With the real node, the kubernetes Service's endpoint is the node IP, where node.sh forwards to us.
  # PodNodeSelector: a namespace's scheduler.alpha.kubernetes.io/node-selector annotation joins the
  # node selector of its pods; the tests keep a namespace off the real node until a test opens it
  # (tests/src/kubelet.rs), so pods of tests that start no node stay Pending as on the test node.
  local advertise=127.0.0.1 admission=()
  [ "$FRESHET_NODE" = kubelet ] && { advertise=$FRESHET_NODE_IP; admission=(--enable-admission-plugins PodNodeSelector); }
  echo "$FRESHET_NODE" >"$CL/mode"
  log "starting kube-apiserver $K8S_VERSION on $APISERVER"
  start kube-apiserver "$CL/kube-apiserver.log" "$K8S_BIN/kube-apiserver" \
    --etcd-servers "http://127.0.0.1:$FRESHET_ETCD_PORT" \
    --bind-address 127.0.0.1 --advertise-address "$advertise" --secure-port "$FRESHET_APISERVER_PORT" \
    --kubelet-client-certificate "$PKI/kubelet-client.crt" --kubelet-client-key "$PKI/kubelet-client.key" \
    --kubelet-preferred-address-types InternalIP \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" --token-auth-file "$PKI/tokens.csv" \
    --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --api-audiences https://kubernetes.default.svc.cluster.local \
    --service-cluster-ip-range 10.0.0.0/24 --authorization-mode RBAC --allow-privileged=true \
    --cert-dir "$CL/apiserver-certs" --profiling=false --v=1 "${admission[@]}"
  if ! wait_until 120 "kube-apiserver is ready" kubectl_ get --raw /readyz; then
    check_alive kube-apiserver "$CL/kube-apiserver.log"
    tail -n 30 "$CL/kube-apiserver.log" >&2
    die "kube-apiserver did not become ready within 120 s" "read $CL/kube-apiserver.log"
  fi

  log "starting kube-controller-manager $K8S_VERSION"
  start kube-controller-manager "$CL/kube-controller-manager.log" "$K8S_BIN/kube-controller-manager" \
    --kubeconfig "$CL/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$CL/controller-manager.kubeconfig" --authorization-kubeconfig "$CL/controller-manager.kubeconfig" \
    --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
    --use-service-account-credentials=true --leader-elect=false \
    --bind-address 127.0.0.1 --secure-port 0 --profiling=false --v=1
  # The default ServiceAccount is created by the controller-manager: pods cannot be admitted before it.
  wait_until 60 "kube-controller-manager is working (default ServiceAccount created)" kubectl_ -n default get serviceaccount default \
    || { check_alive kube-controller-manager "$CL/kube-controller-manager.log"; die "kube-controller-manager did not create the default ServiceAccount within 60 s" "read $CL/kube-controller-manager.log"; }
  check_alive kube-controller-manager "$CL/kube-controller-manager.log"
  log "cluster ready: kubectl --kubeconfig $KUBECONFIG_OUT get ns   (kubectl: $K8S_BIN/kubectl)"
  if [ "$FRESHET_NODE" = kubelet ]; then
    "$ROOT/scripts/node.sh" up
  else
    log "pods run on the test node (freshet-test-node: each container a host process, 127.x pod IPs that Services cannot route to); FRESHET_NODE=kubelet make cluster-up runs a real kubelet and containerd instead"
  fi
}

down_quiet() {
  local c
  # The demo's node (freshet-test-node) runs pods against this cluster: it goes first.
  stop_pidfile "$RUN_DIR/test-node.pid" freshet-test-node
  # The real node, if one runs (its pods, network namespace and cgroups go with it).
  [ -d "$RUN_DIR/node" ] && "$ROOT/scripts/node.sh" down
  for c in kube-controller-manager kube-apiserver etcd; do stop_pidfile "$CL/$c.pid" "$c"; done
}

case ${1:-} in
  up) up ;;
  down) down_quiet ;;
  status) if pid_alive "$CL/kube-apiserver.pid"; then echo "cluster: running at $APISERVER (kubeconfig $KUBECONFIG_OUT)"; else echo "cluster: stopped"; exit 1; fi ;;
  *) die "usage: cluster.sh up|down|status" "pick one of those" ;;
esac
