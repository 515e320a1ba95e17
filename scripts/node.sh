#!/usr/bin/env bash
# node.sh up|down|status|check|can-run|load IMAGE...
# A real Kubernetes node for the local cluster: kubelet and containerd 2.x (built once by
# build-k8s.sh node), Debian's runc and CNI plugins, kube-proxy, all in a network namespace this
# script creates and removes, and kube-scheduler on the host (the test node binds its own pods; a
# real one needs a scheduler). One real node per machine at a time: the kubelet keeps its device
# plugin socket in /var/lib/kubelet whatever its root dir. Nothing listens beyond loopback and
# that namespace (ports as by default; the apiserver's is FRESHET_APISERVER_PORT on both sides):
#
#   host (root netns)                         node netns freshet-<id>
#   127.0.0.1:6443 kube-apiserver  <-unix--   socat  *:6443  <- kubelet, kube-proxy, pods (via the
#   127.0.0.1:9094 Kafka "PODS"    <-socket-  socat  *:9092  <- pods       kubernetes Service)
#   veth frh<id> 10.213.0.1/24  <--------->  eth0 10.213.0.2/24 (the node IP: kubelet :10250)
#   route 10.213.1.0/24 via 10.213.0.2        bridge cni0 10.213.1.1/24 -- pods 10.213.1.x/24
#
# The apiserver reaches the kubelet (logs, exec) at the node IP over the veth; pods reach the
# apiserver and the broker at the node IP, where socat hands each connection over a Unix socket
# to the host side (so both keep listening on 127.0.0.1 only). The node netns has no default
# route: nothing from it leaves the machine. FRESHET_NODE_NET (default 10.213) moves the /16.
# Needs root, cgroup v1 or v2, and the cluster started with FRESHET_NODE=kubelet (the apiserver
# then advertises the node IP for the kubernetes Service, and has a client cert for kubelets).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

CL=$RUN_DIR/cluster
PKI=$CL/pki
N=$RUN_DIR/node
ID=$(printf '%s' "$RUN_DIR" | sha256sum | cut -c1-6)
NETNS=freshet-$ID
VETH=frh$ID
HOST_IP=$FRESHET_NODE_NET.0.1
NODE_IP=$FRESHET_NODE_IP
POD_CIDR=$FRESHET_NODE_NET.1.0/24
NODE_NAME=${FRESHET_NODE_NAME:-freshet-node}
CGROUP_ROOT=/freshet-$ID
SOCK=$N/containerd.sock
PAUSE_IMAGE=localhost/freshet/pause:1
KUBECTL=$K8S_BIN/kubectl
kubectl_() { "$KUBECTL" --kubeconfig "$RUN_DIR/kubeconfig" "$@"; }
in_node() { "${SUDO[@]}" nsenter --net="/run/netns/$NETNS" -- "$@"; }
ctr_() { "${SUDO[@]}" "$CONTAINERD_BIN/ctr" --address "$SOCK" -n k8s.io "$@" 2> >(grep -v DEPRECATION >&2); }
crictl_() { "${SUDO[@]}" "$CRICTL_BIN/crictl" --runtime-endpoint "unix://$SOCK" --image-endpoint "unix://$SOCK" --timeout 30s "$@"; }

# start NAME CMD...: in the background, pid in $N/NAME.pid, log in $N/NAME.log.
start() {
  local name=$1; shift
  nohup "$@" >"$N/$name.log" 2>&1 </dev/null &
  echo $! >"$N/$name.pid"
}
alive_or_die() { # alive_or_die NAME
  pid_alive "$N/$1.pid" && return 0
  tail -n 30 "$N/$1.log" >&2 || true
  down
  die "$1 exited during the node's start-up (log: $N/$1.log)" "read the log above; make cluster-down clears the node's state"
}

preflight() {
  [ "$(id -u)" -eq 0 ] || command -v sudo >/dev/null 2>&1 || die "the real node needs root (network namespaces, cgroups, mounts)" "run as root, or unset FRESHET_NODE to use the test node"
  [ "$(cat "$CL/mode" 2>/dev/null)" = kubelet ] && pid_alive "$CL/kube-apiserver.pid" ||
    die "the cluster is not running for a real node (it must advertise the node IP $NODE_IP)" \
      "make cluster-down && FRESHET_NODE=kubelet make cluster-up"
  apt_install runc containernetworking-plugins socat iptables iproute2 util-linux
  [ -x /usr/lib/cni/bridge ] && [ -x /usr/lib/cni/host-local ] && [ -x /usr/lib/cni/loopback ] ||
    die "the CNI plugins bridge, host-local and loopback are not in /usr/lib/cni" "apt-get install --reinstall containernetworking-plugins"
  # Another network on this machine in our /16 would be shadowed: refuse it.
  local clash
  clash=$(ip -4 route show | grep -F "$FRESHET_NODE_NET." | grep -v " dev $VETH" || true)
  [ -z "$clash" ] || die "this machine already routes addresses in $FRESHET_NODE_NET.0.0/16: $clash" \
    "pick another /16 for the node: FRESHET_NODE_NET=10.214 (also for make cluster-up and kafka-up)"
  "$ROOT/scripts/build-k8s.sh" node
}

# can_run: whether this machine can run the real node now; prints why not (exit 1) if it cannot.
# What `make test` asks before it picks the real node over the test node.
can_run() {
  if [ "$(id -u)" -ne 0 ] && ! sudo -n true 2>/dev/null; then
    echo "it needs root (network namespaces, cgroups, mounts), and sudo asks for a password"; return 1
  fi
  [ -f /sys/fs/cgroup/cgroup.controllers ] || [ -d /sys/fs/cgroup/cpu ] || { echo "no cgroup hierarchy is mounted at /sys/fs/cgroup"; return 1; }
  "${SUDO[@]}" unshare --net true 2>/dev/null || { echo "network namespaces cannot be created here (unshare --net failed)"; return 1; }
  local clash
  clash=$(ip -4 route show 2>/dev/null | grep -F "$FRESHET_NODE_NET." | grep -v " dev $VETH" | tr "\n" " " || true)
  [ -z "$clash" ] || { echo "this machine already routes $FRESHET_NODE_NET.0.0/16 ($clash): set FRESHET_NODE_NET to a free /16"; return 1; }
  # One real node per machine: the kubelet keeps its device plugin socket in /var/lib/kubelet.
  local pid other=
  for pid in $(pgrep -x kubelet 2>/dev/null); do
    pid_alive "$N/kubelet.pid" && [ "$(cat "$N/kubelet.pid")" = "$pid" ] && continue
    other=$pid
  done
  [ -z "$other" ] || { echo "another checkout's real node runs on this machine (kubelet pid $other; one per machine)"; return 1; }
  if [ ! -x "$KUBELET_BIN/kubelet" ] || [ ! -x "$CONTAINERD_BIN/containerd" ]; then
    command -v "$GO" >/dev/null 2>&1 || { echo "kubelet and containerd are not built yet and Go is not installed to build them"; return 1; }
  fi
  command -v podman >/dev/null 2>&1 || command -v apt-get >/dev/null 2>&1 || { echo "podman is not installed and apt-get is not there to install it"; return 1; }
  return 0
}

network_up() {
  if ! "${SUDO[@]}" ip netns list | grep -qw "$NETNS"; then
    log "network: netns $NETNS, veth $VETH $HOST_IP <-> eth0 $NODE_IP, pods $POD_CIDR"
    "${SUDO[@]}" ip netns add "$NETNS"
  fi
  if ! ip link show "$VETH" >/dev/null 2>&1; then
    "${SUDO[@]}" ip link add "$VETH" type veth peer name eth0 netns "$NETNS"
    "${SUDO[@]}" ip addr add "$HOST_IP/24" dev "$VETH"
    "${SUDO[@]}" ip link set "$VETH" up
    "${SUDO[@]}" ip -n "$NETNS" link set lo up
    "${SUDO[@]}" ip -n "$NETNS" addr add "$NODE_IP/24" dev eth0
    "${SUDO[@]}" ip -n "$NETNS" link set eth0 up
  fi
  ip route show "$POD_CIDR" | grep -q . || "${SUDO[@]}" ip route add "$POD_CIDR" via "$NODE_IP" dev "$VETH"
  in_node sysctl -qw net.ipv4.ip_forward=1
  # Pod-to-Service-to-pod on one bridge needs bridged packets to pass kube-proxy's NAT rules.
  in_node sysctl -qw net.bridge.bridge-nf-call-iptables=1 2>/dev/null ||
    log "warning: net.bridge.bridge-nf-call-iptables cannot be set (no br_netfilter): kube-proxy masquerades all Service traffic instead"
}

# forward NAME NODE-PORT HOST-PORT: node netns *:NODE-PORT -> Unix socket -> host 127.0.0.1:HOST-PORT.
forward() {
  local name=$1 node_port=$2 host_port=$3
  pid_alive "$N/fwd-$name-host.pid" || start "fwd-$name-host" socat "UNIX-LISTEN:$N/$name.sock,fork,unlink-early,mode=600" "TCP:127.0.0.1:$host_port"
  wait_until 10 "forwarding $NODE_IP:$node_port in the node to 127.0.0.1:$host_port" test -S "$N/$name.sock" || alive_or_die "fwd-$name-host"
  pid_alive "$N/fwd-$name-node.pid" || start "fwd-$name-node" nsenter --net="/run/netns/$NETNS" -- \
    socat "TCP-LISTEN:$node_port,fork,reuseaddr" "UNIX-CONNECT:$N/$name.sock"
}

containerd_up() {
  pid_alive "$N/containerd.pid" && return 0
  mkdir -p "$N/cni" "$N/containerd"
  cat >"$N/cni/10-freshet.conflist" <<CNI
{
  "cniVersion": "1.0.0",
  "name": "freshet",
  "plugins": [
    { "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": { "type": "host-local", "dataDir": "$N/cni-ipam", "ranges": [[{ "subnet": "$POD_CIDR" }]],
                "routes": [{ "dst": "$FRESHET_NODE_NET.0.0/16" }, { "dst": "10.0.0.0/24" }] } },
    { "type": "loopback" }
  ]
}
CNI
  cat >"$N/containerd.toml" <<TOML
version = 3
root = "$N/containerd/root"
state = "$N/containerd/state"
disabled_plugins = ["io.containerd.nri.v1.nri", "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",
  "io.containerd.snapshotter.v1.devmapper", "io.containerd.snapshotter.v1.blockfile", "io.containerd.snapshotter.v1.erofs"]

[grpc]
  address = "$SOCK"
[ttrpc]
  address = "$SOCK.ttrpc"
[debug]
  address = "$SOCK.debug"
[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = "$N/containerd/opt"
[plugins."io.containerd.cri.v1.images"]
  snapshotter = "native"
  [plugins."io.containerd.cri.v1.images".pinned_images]
    sandbox = "$PAUSE_IMAGE"
[plugins."io.containerd.cri.v1.runtime"]
  # Some VMs refuse lowering oom_score_adj: without this every sandbox fails ("can't get final child's PID").
  restrict_oom_score_adj = true
  # Pod network namespaces under the state dir, not /run/netns: this node's alone, removed with it.
  netns_mounts_under_state_dir = true
  [plugins."io.containerd.cri.v1.runtime".containerd]
    default_runtime_name = "runc"
    [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.cri.v1.runtime".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        SystemdCgroup = false
  [plugins."io.containerd.cri.v1.runtime".cni]
    bin_dirs = ["/usr/lib/cni"]
    conf_dir = "$N/cni"
TOML
  log "starting containerd $CONTAINERD_VERSION in netns $NETNS (socket $SOCK)"
  start containerd nsenter --net="/run/netns/$NETNS" -- env PATH="$CONTAINERD_BIN:$PATH" \
    "$CONTAINERD_BIN/containerd" --config "$N/containerd.toml" --log-level warn
  wait_until 60 "containerd is up" ctr_ version || alive_or_die containerd
  alive_or_die containerd
}

# load IMAGE...: copy images from root's podman store into containerd (k8s.io namespace, native
# snapshotter), each only when its image ID changed since the last load.
load() {
  local img id f
  mkdir -p "$N/loaded"
  for img in "$@"; do
    id=$("${SUDO[@]}" podman image inspect --format '{{.Id}}' "$img" 2>/dev/null) ||
      die "image $img is not in root's podman store" "build it: make images (or scripts/images.sh pause for $PAUSE_IMAGE)"
    f=$N/loaded/$(printf '%s' "$img" | tr '/:' '__')
    [ "$(cat "$f" 2>/dev/null)" = "$id" ] && ctr_ images ls -q "name==$img" | grep -q . && continue
    log "loading $img into containerd"
    rm -f "$N/image.tar"
    "${SUDO[@]}" podman save -o "$N/image.tar" "$img" >/dev/null 2>&1 || die "podman save $img failed" "check the disk space under $N"
    ctr_ images import --local --snapshotter native "$N/image.tar" >"$N/import.log" 2>&1 ||
      { cat "$N/import.log" >&2; die "ctr images import of $img failed" "read the error above"; }
    rm -f "$N/image.tar"
    echo "$id" >"$f"
  done
}

# The cgroup hierarchies' roots: the one unified tree (v2), or each v1 controller's.
cgroup_hierarchies() {
  if [ -f /sys/fs/cgroup/cgroup.controllers ]; then
    echo /sys/fs/cgroup
  else
    local d
    for d in /sys/fs/cgroup/*/; do [ -f "$d/cgroup.procs" ] && echo "${d%/}"; done
  fi
}

kubelet_up() {
  pid_alive "$N/kubelet.pid" && return 0
  local token
  token=$(sed -n 1p "$PKI/tokens.csv" | cut -d, -f1)
  # kubelet and kube-proxy reach the apiserver through the node's forward (127.0.0.1 in the netns).
  cat >"$N/kubeconfig" <<KC
apiVersion: v1
kind: Config
clusters:
- name: freshet
  cluster: {server: "https://127.0.0.1:$FRESHET_APISERVER_PORT", certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")}
users:
- name: node
  user: {token: $token}
contexts:
- name: freshet
  context: {cluster: freshet, user: node}
current-context: freshet
KC
  chmod 600 "$N/kubeconfig"
  : >"$N/resolv.conf"
  cat >"$N/kubelet.yaml" <<YAML
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$SOCK
failCgroupV1: false
cgroupDriver: cgroupfs
cgroupRoot: $CGROUP_ROOT
failSwapOn: false
clusterDomain: cluster.local
resolvConf: $N/resolv.conf
staticPodPath: ""
serializeImagePulls: false
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 100Mi, nodefs.available: 1%, imagefs.available: 1%, nodefs.inodesFree: 1%}
podPidsLimit: -1
maxPods: 110
syncFrequency: 10s
fileCheckFrequency: 10s
YAML
  # The cgroup parent of every pod, per checkout, in each v1 hierarchy (one v2 tree: just the one).
  local d
  for d in $(cgroup_hierarchies); do "${SUDO[@]}" mkdir -p "$d$CGROUP_ROOT"; done
  log "starting kubelet $K8S_VERSION in netns $NETNS: node $NODE_NAME at $NODE_IP"
  start kubelet nsenter --net="/run/netns/$NETNS" -- "$KUBELET_BIN/kubelet" --config "$N/kubelet.yaml" \
    --kubeconfig "$N/kubeconfig" --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" \
    --root-dir "$N/kubelet" --cert-dir "$N/kubelet-pki" --v=1
  if ! wait_until 120 "node $NODE_NAME is Ready" node_ready; then
    alive_or_die kubelet
    tail -n 30 "$N/kubelet.log" >&2
    die "node $NODE_NAME did not become Ready within 120 s (log: $N/kubelet.log)" "read the log above"
  fi
}
node_ready() { [ "$(kubectl_ get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]; }

# The scheduler: on the host, on loopback, like the rest of the control plane.
scheduler_up() {
  pid_alive "$N/kube-scheduler.pid" && return 0
  log "starting kube-scheduler $K8S_VERSION"
  start kube-scheduler "$KUBELET_BIN/kube-scheduler" --kubeconfig "$RUN_DIR/kubeconfig" \
    --authentication-kubeconfig "$RUN_DIR/kubeconfig" --authorization-kubeconfig "$RUN_DIR/kubeconfig" \
    --leader-elect=false --bind-address 127.0.0.1 --secure-port 0 --v=1
  sleep 1
  alive_or_die kube-scheduler
}

kube_proxy_up() {
  pid_alive "$N/kube-proxy.pid" && return 0
  cat >"$N/kube-proxy.yaml" <<YAML
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $N/kubeconfig}
hostnameOverride: $NODE_NAME
mode: iptables
clusterCIDR: $POD_CIDR
bindAddress: $NODE_IP
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
iptables: {masqueradeAll: true}
YAML
  log "starting kube-proxy $K8S_VERSION in netns $NETNS (iptables)"
  start kube-proxy nsenter --net="/run/netns/$NETNS" -- "$KUBELET_BIN/kube-proxy" --config "$N/kube-proxy.yaml" --v=1
  wait_until 60 "kube-proxy has programmed the Services" in_node iptables -t nat -S KUBE-SERVICES || alive_or_die kube-proxy
}

# storage: PersistentVolumes for the StatefulSets' claims. No provisioner runs here, so the node
# offers FRESHET_NODE_VOLUMES (32: enough for the tests of one suite side by side, a claim per
# instance) volumes of the `local` type in $N/volumes (the kubelet applies fsGroup to them, so
# uid 65532 can write), from a default StorageClass that binds on first use; the
# recycler (a loop started here) empties a released volume and makes it Available again, as
# sig-storage's local static provisioner does.
storage_up() {
  local i count=${FRESHET_NODE_VOLUMES:-32}
  {
    cat <<YAML
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: freshet-local
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain
YAML
    for i in $(seq 1 "$count"); do
      mkdir -p "$N/volumes/$i"
      cat <<YAML
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: $NODE_NAME-vol-$i
  labels: {freshet.dev/node-volume: "$NODE_NAME"}
spec:
  capacity: {storage: 10Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  storageClassName: freshet-local
  local: {path: $N/volumes/$i}
  nodeAffinity:
    required:
      nodeSelectorTerms: [{matchExpressions: [{key: kubernetes.io/hostname, operator: In, values: [$NODE_NAME]}]}]
YAML
    done
  } >"$N/storage.yaml"
  kubectl_ apply -f "$N/storage.yaml" >/dev/null || die "creating the node's StorageClass and volumes failed" "see the error above ($N/storage.yaml)"
  pid_alive "$N/recycler.pid" || start recycler "$0" recycle
}

recycle() {
  local pv i
  while sleep 3; do
    for pv in $(kubectl_ get pv -l "freshet.dev/node-volume=$NODE_NAME" \
        -o jsonpath='{range .items[?(@.status.phase=="Released")]}{.metadata.name}{"\n"}{end}' 2>/dev/null); do
      i=${pv##*-vol-}
      [ -d "$N/volumes/$i" ] && find "$N/volumes/$i" -mindepth 1 -delete 2>/dev/null
      kubectl_ patch pv "$pv" --type json -p '[{"op": "remove", "path": "/spec/claimRef"}]' >/dev/null 2>&1 &&
        log "volume $pv emptied and Available again"
    done
  done
}

up() {
  preflight
  mkdir -p "$N"
  network_up
  # The kubernetes Service's endpoint is the node IP at the apiserver's own port.
  forward apiserver "$FRESHET_APISERVER_PORT" "$FRESHET_APISERVER_PORT"
  forward kafka 9092 "$FRESHET_KAFKA_POD_PORT"
  "$ROOT/scripts/images.sh" pause
  containerd_up
  load "$PAUSE_IMAGE"
  kubelet_up
  kube_proxy_up
  scheduler_up
  storage_up
  log "node $NODE_NAME Ready: pods get $POD_CIDR; in pods the broker is $NODE_IP:9092 (Kafka's PODS listener)"
}

down() {
  if pid_alive "$N/kubelet.pid" || pid_alive "$N/containerd.pid"; then
    stop_pidfile "$N/kubelet.pid" kubelet
    # Every pod sandbox stopped and removed through CRI: containers, CNI (IPs), netns mounts.
    pid_alive "$N/containerd.pid" && [ -x "$CRICTL_BIN/crictl" ] && { crictl_ rmp -fa >/dev/null 2>&1 || true; }
  fi
  stop_pidfile "$N/kube-proxy.pid" kube-proxy
  stop_pidfile "$N/kube-scheduler.pid" kube-scheduler
  stop_pidfile "$N/recycler.pid" recycler
  stop_pidfile "$N/containerd.pid" containerd
  # Shims whose containers outlived the above (containerd's own record of them).
  local f pid
  for f in "$N"/containerd/state/io.containerd.runtime.v2.task/*/*/shim.pid; do
    [ -f "$f" ] || continue
    pid=$(cat "$f"); kill -9 "$pid" 2>/dev/null || true
  done
  for f in "$N"/fwd-*.pid; do [ -f "$f" ] && stop_pidfile "$f" "$(basename "$f" .pid)"; done
  # Mounts left under the node's dirs (pod volumes, netns), deepest first.
  if [ -d "$N" ]; then
    awk -v n="$N/" 'index($2, n) == 1 {print $2}' /proc/mounts | sort -r | while read -r m; do "${SUDO[@]}" umount -l "$m" 2>/dev/null || true; done
  fi
  ip link show "$VETH" >/dev/null 2>&1 && "${SUDO[@]}" ip link del "$VETH"
  "${SUDO[@]}" ip netns list 2>/dev/null | grep -qw "$NETNS" && "${SUDO[@]}" ip netns del "$NETNS"
  local d
  for d in $(cgroup_hierarchies); do
    [ -d "$d$CGROUP_ROOT" ] && { find "$d$CGROUP_ROOT" -depth -type d -exec rmdir {} + 2>/dev/null || true; }
  done
  if [ -f "$RUN_DIR/kubeconfig" ] && pid_alive "$CL/kube-apiserver.pid"; then
    kubectl_ delete node "$NODE_NAME" --ignore-not-found --wait=false >/dev/null 2>&1 || true
  fi
  return 0
}

# check: what the issue's "real node" means, on a pod of the Debian runtime base image (it has bash
# for the checks): scheduled and Running under runAsNonRoot, readOnlyRootFilesystem, no
# capabilities and RuntimeDefault seccomp, writing its state volume (a claim bound to a node volume)
# and nothing else; kubectl logs and exec through the kubelet; a Service with its address as endpoint;
# from the pod, the kubernetes Service (kube-proxy to the apiserver) and the broker's pod listener;
# a SIGKILLed container restarted by the kubelet with its volume intact.
check() {
  node_ready || die "node $NODE_NAME is not Ready" "start it: FRESHET_NODE=kubelet make cluster-up"
  local base=localhost/freshet/debian-runtime:12 ns=freshet-node-check out ip t=$SECONDS
  "$ROOT/scripts/images.sh" base >/dev/null
  load "$base"
  kubectl_ delete ns "$ns" --ignore-not-found --wait=true >/dev/null
  kubectl_ create ns "$ns" >/dev/null
  kubectl_ -n "$ns" apply -f - >/dev/null <<YAML
apiVersion: v1
kind: PersistentVolumeClaim
metadata: {name: state}
spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: Pod
metadata: {name: probe, labels: {app: probe}}
spec:
  terminationGracePeriodSeconds: 2
  securityContext: {runAsNonRoot: true, runAsUser: 65532, runAsGroup: 65532, fsGroup: 65532, seccompProfile: {type: RuntimeDefault}}
  containers:
  - name: probe
    image: $base
    imagePullPolicy: Never
    command: ["/bin/bash", "-c", "echo probe started as \$(id -u); exec sleep 600"]
    securityContext: {allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: {drop: [ALL]}}
    volumeMounts: [{name: state, mountPath: /var/lib/freshet}]
  volumes: [{name: state, persistentVolumeClaim: {claimName: state}}]
---
apiVersion: v1
kind: Service
metadata: {name: probe}
spec: {selector: {app: probe}, ports: [{port: 80, targetPort: 8080}]}
YAML
  kubectl_ -n "$ns" wait pod/probe --for=condition=Ready --timeout=180s >/dev/null ||
    { kubectl_ -n "$ns" describe pod probe | tail -20 >&2; die "the check pod did not become Ready on $NODE_NAME" "read the events above and $N/kubelet.log"; }
  ip=$(kubectl_ -n "$ns" get pod probe -o jsonpath='{.status.podIP}')
  log "check: pod Running on $NODE_NAME at $ip under runAsNonRoot, readOnlyRootFilesystem, drop ALL, RuntimeDefault"
  out=$(kubectl_ -n "$ns" logs probe) && [ "$out" = "probe started as 65532" ] || die "kubectl logs gave '$out'" "read $N/kubelet.log"
  log "check: kubectl logs: $out"
  out=$(kubectl_ -n "$ns" exec probe -- bash -c 'echo ok >/var/lib/freshet/written && cat /var/lib/freshet/written') && [ "$out" = ok ] ||
    die "the pod could not write its state volume ($out)" "read $N/kubelet.log"
  if kubectl_ -n "$ns" exec probe -- bash -c 'echo x >/etc/written' 2>/dev/null || kubectl_ -n "$ns" exec probe -- bash -c 'echo x >/tmp/written' 2>/dev/null; then
    die "the pod wrote to its read-only root filesystem" "check readOnlyRootFilesystem handling (runc, containerd)"
  fi
  log "check: kubectl exec: the state volume is writable for 65532, the root filesystem is not"
  out=$(kubectl_ -n "$ns" get endpointslices -l kubernetes.io/service-name=probe -o jsonpath='{.items[*].endpoints[*].addresses[*]}')
  [ "$out" = "$ip" ] || die "Service probe's endpoints are '$out', not the pod's $ip" "read the controller-manager's log ($CL/kube-controller-manager.log)"
  log "check: Service probe has endpoint $out"
  kubectl_ -n "$ns" exec probe -- bash -c 'exec 3<>/dev/tcp/10.0.0.1/443' ||
    die "the pod cannot reach the apiserver through the kubernetes Service (10.0.0.1:443)" "read $N/kube-proxy.log and $N/fwd-apiserver-*.log"
  log "check: the pod reaches the apiserver through the kubernetes Service"
  if port_in_use "$FRESHET_KAFKA_POD_PORT"; then
    kubectl_ -n "$ns" exec probe -- bash -c "exec 3<>/dev/tcp/$NODE_IP/9092" ||
      die "the pod cannot reach the broker at $NODE_IP:9092" "read $N/fwd-kafka-*.log"
    log "check: the pod reaches the broker at $NODE_IP:9092"
  else
    log "check: Kafka's pod listener (127.0.0.1:$FRESHET_KAFKA_POD_PORT) is not up: restart Kafka (make kafka-down kafka-up) to give pods a broker"
  fi
  # SIGKILL of the container's process (found through CRI): the kubelet restarts it, same volume.
  local cid pid
  cid=$(crictl_ ps --name '^probe$' -q 2>/dev/null | head -1)
  pid=$(crictl_ inspect --output go-template --template '{{.info.pid}}' "$cid" 2>/dev/null)
  [ -n "$pid" ] && [ "$pid" -gt 1 ] || die "crictl found no process for the check pod's container" "read $N/containerd.log"
  "${SUDO[@]}" kill -9 "$pid"
  wait_until 60 "check: SIGKILLed container restarted by the kubelet" \
    eval '[ "$(kubectl_ -n "$ns" get pod probe -o jsonpath="{.status.containerStatuses[0].restartCount}/{.status.containerStatuses[0].ready}")" = 1/true ]' ||
    die "the kubelet did not restart the SIGKILLed container within 60 s" "read $N/kubelet.log"
  out=$(kubectl_ -n "$ns" exec probe -- cat /var/lib/freshet/written) && [ "$out" = ok ] || die "the state volume lost its file across the restart" "read $N/kubelet.log"
  log "check: after the restart the state volume still holds what was written"
  kubectl_ delete ns "$ns" --wait=false >/dev/null
  log "check: the real node works ($((SECONDS - t)) s)"
}

case ${1:-} in
  up) up ;;
  check) check ;;
  can-run) can_run ;;
  down) down ;;
  load) shift; load "$@" ;;
  recycle) recycle ;;
  status) if pid_alive "$N/kubelet.pid"; then echo "node: $NODE_NAME running (kubelet pid $(cat "$N/kubelet.pid"))"; else echo "node: stopped"; exit 1; fi ;;
  *) die "usage: node.sh up|down|status|check|can-run|load IMAGE..." "pick one of those" ;;
esac
