#!/usr/bin/env bash
# Builds, once per version, the Kubernetes control plane the tests run against:
# kube-apiserver, kube-controller-manager and kubectl from the k8s.io/kubernetes Go module,
# etcd from go.etcd.io/etcd/server/v3, and helm from helm.sh/helm/v3 (target all);
# and the real node (target node): kubelet from the same module, containerd 2.x from
# github.com/containerd/containerd/v2.
# Binaries land in $FRESHET_CACHE/bin/<name>-<version>/; an existing binary is never rebuilt.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

need_cmd "$GO" "install Go 1.25 or newer (https://go.dev/doc/install) and put it on PATH; if the go command asks for a newer toolchain, export GOTOOLCHAIN=go1.27.3"
mkdir -p "$FRESHET_CACHE/build"
go() { command "$GO" "$@"; }

# go_fail STEP LOGFILE: a Go step failed; show its tail and say what to do.
go_fail() {
  tail -n 25 "$2" >&2 || true
  die "$1 failed (full log: $2)." \
      "check that the Go module proxy is reachable (go env GOPROXY) and there is disk space under $FRESHET_CACHE; then rerun. A half-downloaded module is fixed by: go clean -modcache (with GOMODCACHE=$GOMODCACHE)"
}

# k8s_module DIR LOGFILE: a Go module in DIR that builds commands of k8s.io/kubernetes $K8S_VERSION.
k8s_module() {
  local dir=$1 logf=$2 gomod
  local staging=v0.${K8S_VERSION#v1.}
  gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" 2>>"$logf" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",*$/\1/p') \
    || go_fail "downloading k8s.io/kubernetes@$K8S_VERSION" "$logf"
  [ -f "$gomod" ] || go_fail "finding the go.mod of k8s.io/kubernetes@$K8S_VERSION" "$logf"
  # k8s.io/kubernetes pins its staging modules at v0.0.0 and replaces them with ./staging/...;
  # a module of our own must replace each with its published v0.Y.Z instead.
  {
    echo "module freshet.dev/build/kubernetes"
    echo
    grep -E '^go [0-9]' "$gomod"
    echo
    echo "require k8s.io/kubernetes $K8S_VERSION"
    echo
    echo "replace ("
    sed -n 's#^[[:space:]]*\(k8s.io/[^ ]*\) => ./staging/src/.*#\t\1 => \1 '"$staging"'#p' "$gomod"
    echo ")"
  } >"$dir/go.mod"
  grep -q "k8s.io/api => k8s.io/api $staging" "$dir/go.mod" || go_fail "generating the staging replace block from $gomod" "$logf"
}

# k8s_ldflags: the version stamped into Kubernetes binaries.
k8s_ldflags() {
  local minor=${K8S_VERSION#v1.} v ldflags="-s -w"
  minor=${minor%%.*}
  for v in "gitVersion=$K8S_VERSION" gitMajor=1 "gitMinor=$minor" gitTreeState=clean; do
    ldflags+=" -X k8s.io/component-base/version.$v -X k8s.io/client-go/pkg/version.$v"
  done
  echo "$ldflags"
}

build_kubernetes() {
  local out=$K8S_BIN
  if [ -x "$out/kube-apiserver" ] && [ -x "$out/kube-controller-manager" ] && [ -x "$out/kubectl" ]; then
    return 0
  fi
  local dir=$FRESHET_CACHE/build/kubernetes-$K8S_VERSION logf=$FRESHET_CACHE/build/kubernetes-$K8S_VERSION.log
  log "building kube-apiserver, kube-controller-manager and kubectl $K8S_VERSION (once; ~10-20 min on 2 cores; log: $logf)"
  rm -rf "$dir"; mkdir -p "$dir"; : >"$logf"
  k8s_module "$dir" "$logf"
  local pkgs=(k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager k8s.io/kubernetes/cmd/kubectl)
  local ldflags
  ldflags=$(k8s_ldflags)
  (cd "$dir" && go get "${pkgs[@]/%/@$K8S_VERSION}" >>"$logf" 2>&1) || go_fail "resolving the Kubernetes $K8S_VERSION modules" "$logf"
  mkdir -p "$out.tmp"
  (cd "$dir" && go build -trimpath -ldflags "$ldflags" -o "$out.tmp/" "${pkgs[@]}" >>"$logf" 2>&1) \
    || go_fail "go build of the Kubernetes $K8S_VERSION binaries" "$logf"
  rm -rf "$out"; mv "$out.tmp" "$out"
  log "built $(ls "$out" | tr '\n' ' ')in $out"
}

# build_kubelet: the node agent, kube-proxy and kube-scheduler (only the real node needs one: the test
# node binds its pods itself), from the same k8s.io/kubernetes module as the control plane (a
# warm Go cache after build_kubernetes makes it a short link; its own module dir, so the two never race).
build_kubelet() {
  local out=$KUBELET_BIN
  [ -x "$out/kubelet" ] && [ -x "$out/kube-proxy" ] && [ -x "$out/kube-scheduler" ] && return 0
  local dir=$FRESHET_CACHE/build/kubelet-$K8S_VERSION logf=$FRESHET_CACHE/build/kubelet-$K8S_VERSION.log t=$SECONDS
  log "building kubelet, kube-proxy and kube-scheduler $K8S_VERSION (once; log: $logf)"
  rm -rf "$dir"; mkdir -p "$dir"; : >"$logf"
  k8s_module "$dir" "$logf"
  local ldflags
  ldflags=$(k8s_ldflags)
  (cd "$dir" && go get "k8s.io/kubernetes/cmd/kubelet@$K8S_VERSION" "k8s.io/kubernetes/cmd/kube-proxy@$K8S_VERSION" \
      "k8s.io/kubernetes/cmd/kube-scheduler@$K8S_VERSION" >>"$logf" 2>&1) \
    || go_fail "resolving the Kubernetes $K8S_VERSION modules" "$logf"
  mkdir -p "$out.tmp"
  (cd "$dir" && go build -trimpath -ldflags "$ldflags" -o "$out.tmp/" k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy \
      k8s.io/kubernetes/cmd/kube-scheduler >>"$logf" 2>&1) || go_fail "go build of kubelet, kube-proxy and kube-scheduler $K8S_VERSION" "$logf"
  rm -rf "$out"; mv "$out.tmp" "$out"
  log "built kubelet, kube-proxy and kube-scheduler in $out in $((SECONDS - t)) s"
}

# build_containerd: containerd 2.x (Kubernetes 1.36 needs 2.x; Debian 12 has 1.6), its runc shim and
# ctr, from the github.com/containerd/containerd/v2 module. runc itself is Debian's.
build_containerd() {
  local out=$CONTAINERD_BIN
  [ -x "$out/containerd" ] && [ -x "$out/containerd-shim-runc-v2" ] && [ -x "$out/ctr" ] && return 0
  local dir=$FRESHET_CACHE/build/containerd-$CONTAINERD_VERSION logf=$FRESHET_CACHE/build/containerd-$CONTAINERD_VERSION.log t=$SECONDS
  local mod=github.com/containerd/containerd/v2
  log "building containerd $CONTAINERD_VERSION (once; log: $logf)"
  rm -rf "$dir"; mkdir -p "$dir"; : >"$logf"
  (cd "$dir" && go mod init freshet.dev/build/containerd >>"$logf" 2>&1) || go_fail "go mod init for containerd" "$logf"
  (cd "$dir" && go get "$mod/cmd/containerd@$CONTAINERD_VERSION" "$mod/cmd/containerd-shim-runc-v2@$CONTAINERD_VERSION" "$mod/cmd/ctr@$CONTAINERD_VERSION" >>"$logf" 2>&1) \
    || go_fail "resolving $mod@$CONTAINERD_VERSION" "$logf"
  mkdir -p "$out.tmp"
  # No btrfs or devmapper snapshotters (their C headers are not needed: the node uses the native one).
  (cd "$dir" && CGO_ENABLED=0 go build -trimpath -tags "no_btrfs no_devmapper no_zfs" \
      -ldflags "-s -w -X $mod/version.Version=$CONTAINERD_VERSION -X $mod/version.Revision=freshet" \
      -o "$out.tmp/" "$mod/cmd/containerd" "$mod/cmd/containerd-shim-runc-v2" "$mod/cmd/ctr" >>"$logf" 2>&1) \
    || go_fail "go build of containerd $CONTAINERD_VERSION" "$logf"
  rm -rf "$out"; mv "$out.tmp" "$out"
  log "built containerd, containerd-shim-runc-v2 and ctr $CONTAINERD_VERSION in $((SECONDS - t)) s"
}

# build_single NAME OUTDIR PACKAGE@VERSION PACKAGE [MAIN-SOURCE [LDFLAGS]]: a one-binary module.
build_single() {
  local name=$1 out=$2 modver=$3 pkg=$4 main_src=${5:-} ldflags="-s -w ${6:-}"
  [ -x "$out/$name" ] && return 0
  local dir=$FRESHET_CACHE/build/$(basename "$out") logf=$FRESHET_CACHE/build/$(basename "$out").log
  log "building $name ($modver, once; log: $logf)"
  rm -rf "$dir"; mkdir -p "$dir"; : >"$logf"
  (cd "$dir" && go mod init "freshet.dev/build/$name" >>"$logf" 2>&1) || go_fail "go mod init for $name" "$logf"
  if [ -n "$main_src" ]; then printf '%s\n' "$main_src" >"$dir/main.go"; fi
  (cd "$dir" && go get "$modver" >>"$logf" 2>&1) || go_fail "resolving $modver" "$logf"
  if [ -n "$main_src" ]; then (cd "$dir" && go mod tidy >>"$logf" 2>&1) || go_fail "go mod tidy for $name" "$logf"; fi
  mkdir -p "$out.tmp"
  (cd "$dir" && go build -trimpath -ldflags "$ldflags" -o "$out.tmp/$name" "$pkg" >>"$logf" 2>&1) || go_fail "go build of $name" "$logf"
  rm -rf "$out"; mv "$out.tmp" "$out"
  log "built $out/$name"
}

what=${1:-all}
case $what in
  kubernetes) build_kubernetes ;;
  etcd) build_single etcd "$ETCD_BIN" "go.etcd.io/etcd/server/v3@$ETCD_VERSION" . \
          $'package main\n\nimport (\n\t"os"\n\n\t"go.etcd.io/etcd/server/v3/etcdmain"\n)\n\nfunc main() { etcdmain.Main(os.Args) }' ;;
  helm) build_single helm "$HELM_BIN" "helm.sh/helm/v3/cmd/helm@$HELM_VERSION" helm.sh/helm/v3/cmd/helm "" \
          "-X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" ;;
  kubelet) build_kubelet ;;
  containerd) build_containerd ;;
  all) "$0" etcd; "$0" kubernetes; "$0" helm ;;
  crictl) build_single crictl "$CRICTL_BIN" "sigs.k8s.io/cri-tools/cmd/crictl@$CRICTL_VERSION" sigs.k8s.io/cri-tools/cmd/crictl "" \
          "-X sigs.k8s.io/cri-tools/pkg/version.Version=$CRICTL_VERSION" ;;
  node) "$0" kubelet; "$0" containerd; "$0" crictl ;;
  *) die "unknown target '$what'" "use one of: kubernetes etcd helm all kubelet containerd crictl node" ;;
esac
