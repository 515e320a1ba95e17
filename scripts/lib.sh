# Shared by every script: versions, cache locations, and how to fail.
# Everything downloaded or built lives in $FRESHET_CACHE, outside the clone, so a second run skips it.

FRESHET_CACHE=${FRESHET_CACHE:-$HOME/.cache/freshet}
KAFKA_VERSION=${KAFKA_VERSION:-4.4.0}
K8S_VERSION=${K8S_VERSION:-v1.36.3}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
HELM_VERSION=${HELM_VERSION:-v3.22.0}
CONTAINERD_VERSION=${CONTAINERD_VERSION:-v2.4.2}
CRICTL_VERSION=${CRICTL_VERSION:-v1.37.0}
FRESHET_KAFKA_PORT=${FRESHET_KAFKA_PORT:-9092}
FRESHET_KAFKA_CONTROLLER_PORT=${FRESHET_KAFKA_CONTROLLER_PORT:-$((FRESHET_KAFKA_PORT + 1))}
FRESHET_APISERVER_PORT=${FRESHET_APISERVER_PORT:-6443}
FRESHET_ETCD_PORT=${FRESHET_ETCD_PORT:-2379}
# Kafka's listener for pods on the real node: bound on loopback, advertised at the node's address.
FRESHET_KAFKA_POD_PORT=${FRESHET_KAFKA_POD_PORT:-$((FRESHET_KAFKA_PORT + 2))}
# The node the cluster runs pods on: `kubelet` (a real kubelet and containerd in a network namespace:
# scripts/node.sh), `test` (freshet-test-node, pods as host processes), or `auto` (the default):
# see resolve_node below.
FRESHET_NODE=${FRESHET_NODE:-auto}
# The real node's network, FRESHET_NODE_NET.0.0/16: the veth link (host .0.1, node .0.2), the pods .1.0/24.
FRESHET_NODE_NET=${FRESHET_NODE_NET:-10.213}
FRESHET_NODE_IP=$FRESHET_NODE_NET.0.2

# The tools, overridable (JAVA=/opt/jdk/bin/java make kafka-up).
JAVA=${JAVA:-java}
MVN=${MVN:-mvn}
GO=${GO:-go}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Runtime state (data dirs, logs, pids, kubeconfig) is per checkout, in .freshet/ (ignored by git).
RUN_DIR=${FRESHET_RUN_DIR:-$ROOT/.freshet}
K8S_BIN=$FRESHET_CACHE/bin/kubernetes-$K8S_VERSION
ETCD_BIN=$FRESHET_CACHE/bin/etcd-$ETCD_VERSION
HELM_BIN=$FRESHET_CACHE/bin/helm-$HELM_VERSION
KUBELET_BIN=$FRESHET_CACHE/bin/kubelet-$K8S_VERSION
CONTAINERD_BIN=$FRESHET_CACHE/bin/containerd-$CONTAINERD_VERSION
CRICTL_BIN=$FRESHET_CACHE/bin/crictl-$CRICTL_VERSION
KAFKA_HOME=$FRESHET_CACHE/kafka-$KAFKA_VERSION
FRESHET_M2=${FRESHET_M2:-$FRESHET_CACHE/m2}

# Go caches outside the clone. GOFLAGS=-mod=mod lets the generated build module resolve freely.
export GOMODCACHE=${GOMODCACHE:-$FRESHET_CACHE/go/mod}
export GOCACHE=${GOCACHE:-$FRESHET_CACHE/go/build}
export GOPATH=${GOPATH:-$FRESHET_CACHE/go/path}

log() { printf '[freshet] %s\n' "$*" >&2; }

# die WHAT HOW: stop with what went wrong and how to fix it.
die() {
  printf '\n[freshet] ERROR: %s\n[freshet] FIX:   %s\n\n' "$1" "$2" >&2
  exit 1
}

need_cmd() { # need_cmd CMD HOW-TO-INSTALL
  command -v "$1" >/dev/null 2>&1 || die "'$1' is not installed or not on PATH." "$2"
}

port_in_use() { # port_in_use PORT: true when something listens on 127.0.0.1:PORT
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# port_free_or_die PORT WHAT VAR: refuse to start WHAT on a port something else already holds.
port_free_or_die() {
  if port_in_use "$1"; then
    local holder
    holder=$(ss -ltnp "sport = :$1" 2>/dev/null | awk 'NR>1{print $NF}' | head -1)
    die "port $1 on 127.0.0.1, needed by $2, is already in use${holder:+ by $holder}." \
        "stop whatever holds it, or pick another port: $3=<port> make ..."
  fi
}

# pid_alive PIDFILE: true when the process recorded there is still running.
pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

# stop_pidfile PIDFILE NAME: TERM, wait up to 20 s, then KILL.
stop_pidfile() {
  local f=$1 name=$2 pid i
  pid_alive "$f" || { rm -f "$f"; return 0; }
  pid=$(cat "$f")
  log "stopping $name (pid $pid)"
  kill "$pid" 2>/dev/null || true
  for i in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -0 "$pid" 2>/dev/null && kill -9 "$pid" 2>/dev/null
  rm -f "$f"
}

# Root for what needs it (podman's store, network namespaces): nothing when already root.
SUDO=()
[ "$(id -u)" -eq 0 ] || SUDO=(sudo)

# apt_install PKG...: Debian's packages, only the missing ones.
apt_install() {
  local p missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  command -v apt-get >/dev/null 2>&1 || die "${missing[*]} not installed, and apt-get is not available." \
    "install ${missing[*]} with your system's package manager, then rerun"
  [ ${#SUDO[@]} -eq 0 ] || command -v sudo >/dev/null 2>&1 || die "installing ${missing[*]} needs root." "run as root, or: sudo apt-get install -y ${missing[*]}"
  log "installing ${missing[*]} (Debian packages)"
  "${SUDO[@]}" apt-get update -qq || die "apt-get update failed." "check /etc/apt/sources.list and the network, then rerun"
  # No system service starts from what is installed here (Debian's nginx would start one on port
  # 80): the project runs its own instances on its own ports. policy-rc.d's 101 is Debian's
  # "action forbidden"; one the machine has already is left alone.
  local policy=/usr/sbin/policy-rc.d own_policy=""
  if ! "${SUDO[@]}" test -e "$policy"; then
    printf '#!/bin/sh\nexit 101\n' | "${SUDO[@]}" tee "$policy" >/dev/null && "${SUDO[@]}" chmod 755 "$policy" && own_policy=1
  fi
  local rc=0
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null 2>&1 || rc=$?
  [ -z "$own_policy" ] || "${SUDO[@]}" rm -f "$policy"
  [ "$rc" -eq 0 ] || die "apt-get install ${missing[*]} failed." "run it by hand to see why: apt-get install -y ${missing[*]}"
}

wait_until() { # wait_until SECONDS DESCRIPTION CMD...: poll CMD every 0.5 s
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.5
  done
  log "$what"
}

# resolve_node: FRESHET_NODE=auto becomes `kubelet` where this machine can run a real node
# (scripts/node.sh can-run), else `test` with a warning saying why; with a cluster already
# running, the node it was started for. Exports the result for the scripts and tests after it.
resolve_node() {
  local running= why
  pid_alive "$RUN_DIR/cluster/kube-apiserver.pid" && running=$(cat "$RUN_DIR/cluster/mode" 2>/dev/null || echo test)
  case $FRESHET_NODE in
    auto)
      if [ -n "$running" ]; then
        FRESHET_NODE=$running
      elif why=$("$ROOT/scripts/node.sh" can-run); then
        FRESHET_NODE=kubelet
      else
        FRESHET_NODE=test
        log "WARNING: pods run on the test node (each container a host process, 127.x addresses that Services cannot route to), not a real kubelet, because $why"
      fi ;;
    test | kubelet)
      # A real node's scheduler would take the test node's pods; the test node cannot serve a
      # cluster started for the real node's network.
      [ -z "$running" ] || [ "$running" = "$FRESHET_NODE" ] ||
        die "the running cluster is for the $running node, not FRESHET_NODE=$FRESHET_NODE" \
          "make cluster-down, then rerun with FRESHET_NODE=$FRESHET_NODE (or FRESHET_NODE=$running, or unset it)" ;;
    *) die "FRESHET_NODE=$FRESHET_NODE is not a node this cluster can run" \
         "use FRESHET_NODE=auto (the default: the real node where this machine can run one), FRESHET_NODE=kubelet (the real node) or FRESHET_NODE=test (the test node)" ;;
  esac
  export FRESHET_NODE
}

# Services a make target brings up when they are not running, and stops again when it ends
# (FRESHET_KEEP_RUNNING=1 keeps them): `ensure_up kafka`, `ensure_up cluster`, then
# `finish_target "make test"` from the target's EXIT trap.
STARTED_SERVICES=()
ensure_up() { # ensure_up SERVICE: scripts/SERVICE.sh up unless its status says it runs
  "$ROOT/scripts/$1.sh" status >/dev/null 2>&1 || { STARTED_SERVICES+=("$1"); "$ROOT/scripts/$1.sh" up; }
}
finish_target() { # finish_target NAME: from an EXIT trap, stop what ensure_up started, report
  local rc=$? i
  if [ -z "${FRESHET_KEEP_RUNNING:-}" ]; then
    for ((i = ${#STARTED_SERVICES[@]} - 1; i >= 0; i--)); do "$ROOT/scripts/${STARTED_SERVICES[i]}.sh" down || true; done
  fi
  log "$1: $( [ $rc -eq 0 ] && echo passed || echo FAILED ) in $((SECONDS - ${TARGET_T0:-0})) s"
  exit $rc
}
