# Shared by every script: versions, cache locations, and how to fail.
# Everything downloaded or built lives in $FRESHET_CACHE, outside the clone, so a second run skips it.

FRESHET_CACHE=${FRESHET_CACHE:-$HOME/.cache/freshet}
KAFKA_VERSION=${KAFKA_VERSION:-4.4.0}
K8S_VERSION=${K8S_VERSION:-v1.36.3}
ETCD_VERSION=${ETCD_VERSION:-v3.6.16}
HELM_VERSION=${HELM_VERSION:-v3.22.0}
FRESHET_KAFKA_PORT=${FRESHET_KAFKA_PORT:-9092}
FRESHET_KAFKA_CONTROLLER_PORT=${FRESHET_KAFKA_CONTROLLER_PORT:-$((FRESHET_KAFKA_PORT + 1))}
FRESHET_APISERVER_PORT=${FRESHET_APISERVER_PORT:-6443}
FRESHET_ETCD_PORT=${FRESHET_ETCD_PORT:-2379}

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

wait_until() { # wait_until SECONDS DESCRIPTION CMD...: poll CMD every 0.5 s
  local deadline=$((SECONDS + $1)) what=$2
  shift 2
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -ge $deadline ] && return 1
    sleep 0.5
  done
  log "$what"
}
