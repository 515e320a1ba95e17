#!/usr/bin/env bash
# images.sh build|check|push|base|pause|list|tag|sizes
# The engine and operator images, built with podman (as root, no daemon) on a machine that may reach
# no container registry:
#   base   a Debian 12 runtime base made here with debootstrap (minbase + ca-certificates, libssl3, libcurl4,
#          tini as PID 1, and the user 65532), cached in $FRESHET_CACHE/images and imported as $BASE_IMAGE;
#   build  release binaries built by cargo on the host, copied into that base through the Dockerfile's
#          `host` and `runtime-local` stages: ghcr.io/freshet/{engine,operator}:<appVersion> in root's
#          podman store (the vfs storage driver on a machine with no storage.conf yet);
#   check  --version of both images, and `validate -f` of an example mounted into the engine's container;
#   push   tag and push both to $IMAGE_REGISTRY (ghcr.io/you, registry.example:5000/freshet, ...).
# FRESHET_IMAGE_PROFILE=test builds from the test profile's binaries instead (dev profile, what
# `make test` compiles anyway), tagged <appVersion>-test so they are never mistaken for releases.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$ROOT"

APP_VERSION=$(sed -n 's/^appVersion: *"\{0,1\}\([^"]*\)"\{0,1\}$/\1/p' charts/freshet/Chart.yaml)
[ -n "$APP_VERSION" ] || die "no appVersion in charts/freshet/Chart.yaml" "add one: appVersion: \"0.1.0\""
IMAGE_PREFIX=${FRESHET_IMAGE_PREFIX:-ghcr.io/freshet}
PROFILE=${FRESHET_IMAGE_PROFILE:-release}
case $PROFILE in
  release) TAG=${FRESHET_IMAGE_TAG:-$APP_VERSION}; PROFILE_DIR=release; CARGO_PROFILE=(--release) ;;
  test) TAG=${FRESHET_IMAGE_TAG:-$APP_VERSION-test}; PROFILE_DIR=debug; CARGO_PROFILE=() ;;
  *) die "FRESHET_IMAGE_PROFILE=$PROFILE is not a profile images are built from" "use release (the default) or test" ;;
esac
IMAGES=(engine operator)
IMG_CACHE=$FRESHET_CACHE/images
DEBIAN_SUITE=bookworm
# The runtime libraries of the binaries beyond Debian's minbase (which has libc6, libgcc-s1,
# libstdc++6, zlib1g, libzstd1): checked by `images.sh check` with ldd inside the image. tini is
# the containers' PID 1 (see the Dockerfile's ENTRYPOINT).
BASE_PACKAGES=ca-certificates,libssl3,libcurl4,tini
BASE_IMAGE=localhost/freshet/debian-runtime:12
RUNTIME_UID=65532
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$FRESHET_CACHE/target}

podman_() { "${SUDO[@]}" podman "$@"; }

# Podman, and root's store on the vfs driver when this machine has no storage configuration yet
# (overlay-on-overlay and VMs without the right kernel options make vfs the one that always works).
# An existing /etc/containers/storage.conf, or a store already holding images, is left as it is.
ensure_podman() {
  command -v podman >/dev/null 2>&1 || apt_install podman
  local conf=/etc/containers/storage.conf store=/var/lib/containers/storage
  if [ ! -f "$conf" ] && ! "${SUDO[@]}" test -s "$store/overlay-images/images.json"; then
    log "root's podman store: the vfs storage driver ($conf)"
    "${SUDO[@]}" mkdir -p /etc/containers
    printf '[storage]\ndriver = "vfs"\nrunroot = "/run/containers/storage"\ngraphroot = "%s"\n' "$store" |
      "${SUDO[@]}" tee "$conf" >/dev/null
    # A store initialised with another driver by an earlier podman call, but empty: start it anew.
    "${SUDO[@]}" test -d "$store/overlay" && podman_ system reset -f >/dev/null 2>&1 || true
  fi
  podman_ info >/dev/null 2>"$RUN_DIR/podman-info.log" || { cat "$RUN_DIR/podman-info.log" >&2;
    die "podman does not work on this machine (podman info failed)" "read the error above; a broken store is reset by: podman system reset -f"; }
}

# The mirror debootstrap fetches from: this machine's own apt source, else Debian's CDN.
debian_mirror() {
  local m=${FRESHET_DEBIAN_MIRROR:-}
  if [ -z "$m" ]; then
    m=$(sed -n 's/^URIs: *\([^ ]*\/debian\)$/\1/p' /etc/apt/sources.list.d/*.sources 2>/dev/null | head -1)
    [ -n "$m" ] || m=$(awk '$1=="deb" && $2 ~ /\/debian\/?$/ {print $2; exit}' /etc/apt/sources.list 2>/dev/null)
  fi
  echo "${m:-http://deb.debian.org/debian}"
}

# base: the Debian 12 runtime rootfs (debootstrap minbase, trimmed: no docs, man pages, locales or
# apt lists), the user 65532, imported into podman as $BASE_IMAGE. Rebuilt only when missing.
base() {
  local key tarball
  key=$(printf 'v2 %s %s %s' "$DEBIAN_SUITE" "$BASE_PACKAGES" "$RUNTIME_UID" | sha256sum | cut -c1-12)
  tarball=$IMG_CACHE/debian-$DEBIAN_SUITE-runtime-$key.tar
  if [ ! -f "$tarball" ]; then
    apt_install debootstrap
    local dir=$IMG_CACHE/rootfs.tmp mirror logf=$IMG_CACHE/debootstrap.log t=$SECONDS
    mirror=$(debian_mirror)
    log "building the Debian 12 runtime base: debootstrap --variant=minbase $DEBIAN_SUITE from $mirror (once; log: $logf)"
    mkdir -p "$IMG_CACHE"
    "${SUDO[@]}" rm -rf "$dir"
    "${SUDO[@]}" debootstrap --variant=minbase --include="$BASE_PACKAGES" "$DEBIAN_SUITE" "$dir" "$mirror" >"$logf" 2>&1 || {
      tail -n 20 "$logf" >&2
      die "debootstrap of Debian $DEBIAN_SUITE failed (log: $logf)" \
        "check that $mirror answers (or set FRESHET_DEBIAN_MIRROR=<a Debian mirror>), then rerun make images"; }
    "${SUDO[@]}" bash -euc '
      d=$1 uid=$2
      chroot "$d" apt-get clean
      rm -rf "$d"/var/lib/apt/lists/* "$d"/var/cache/apt/* "$d"/var/cache/debconf/*-old "$d"/var/log/* \
        "$d"/usr/share/doc/* "$d"/usr/share/man/* "$d"/usr/share/info/* "$d"/usr/share/lintian \
        "$d"/tmp/* "$d"/root/.bash_history "$d"/etc/machine-id "$d"/var/lib/dbus/machine-id
      find "$d"/usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +
      : >"$d"/etc/hostname; : >"$d"/etc/resolv.conf
      echo "freshet:x:$uid:$uid:freshet:/nonexistent:/usr/sbin/nologin" >>"$d"/etc/passwd
      echo "freshet:x:$uid:" >>"$d"/etc/group
      echo "freshet:*:19000:0:99999:7:::" >>"$d"/etc/shadow
      install -d -o "$uid" -g "$uid" "$d"/var/lib/freshet
    ' _ "$dir" "$RUNTIME_UID"
    "${SUDO[@]}" tar -C "$dir" --numeric-owner -cf "$tarball.tmp" . || die "packing the base rootfs failed" "check the disk space under $IMG_CACHE"
    "${SUDO[@]}" mv "$tarball.tmp" "$tarball"
    "${SUDO[@]}" rm -rf "$dir"
    log "Debian 12 runtime base built in $((SECONDS - t)) s: $tarball ($(du -m "$tarball" | cut -f1) MB)"
  fi
  if [ "$(podman_ image inspect --format '{{index .Labels "dev.freshet.base"}}' "$BASE_IMAGE" 2>/dev/null)" != "$key" ]; then
    log "importing the base as $BASE_IMAGE"
    podman_ import --change "LABEL dev.freshet.base=$key" --change "USER $RUNTIME_UID:$RUNTIME_UID" \
      --change "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin" \
      "$tarball" "$BASE_IMAGE" >"$RUN_DIR/podman-import.log" 2>&1 || die "podman import of $tarball failed (log: $RUN_DIR/podman-import.log)" "rerun; a broken store is reset by: podman system reset -f"
  fi
}

# binaries: freshet-engine and freshet-operator of $PROFILE, built by cargo on the host (the target
# dir is in the cache, so a second run only links what changed), staged as the build context.
CONTEXT=$RUN_DIR/images
binaries() {
  need_cmd cargo "install Rust with rustup (https://rustup.rs) and put cargo on PATH"
  "$ROOT/scripts/deps.sh"
  local t=$SECONDS
  log "cargo build ${CARGO_PROFILE[*]:-(test profile)} --bin freshet-engine --bin freshet-operator (a cold release build compiles librdkafka and RocksDB: ~25 min on 2 cores)"
  cargo build -q --locked "${CARGO_PROFILE[@]}" --bin freshet-engine --bin freshet-operator \
    || die "cargo build of the binaries failed" "see the compiler output above"
  log "binaries ready after $((SECONDS - t)) s"
  rm -rf "$CONTEXT"; mkdir -p "$CONTEXT/bin"
  # Without DWARF (the C++ of RocksDB and librdkafka makes it ~500 MB): the symbols stay, so
  # backtraces still name their functions.
  need_cmd strip "install binutils (Debian: apt-get install binutils)"
  local b
  for b in freshet-engine freshet-operator; do
    strip --strip-debug -o "$CONTEXT/bin/$b" "$CARGO_TARGET_DIR/$PROFILE_DIR/$b" || die "strip of $b failed" "check the disk space under $RUN_DIR"
  done
}

build() {
  local t=$SECONDS
  ensure_podman
  base
  binaries
  local img key
  for img in "${IMAGES[@]}"; do
    # Unchanged binary, Dockerfile and base: the image is already the one this would build.
    key=$(cat "$CONTEXT/bin/freshet-$img" "$ROOT/Dockerfile" <(podman_ image inspect --format '{{.Id}}' "$BASE_IMAGE") | sha256sum | cut -c1-16)
    if [ "$(podman_ image inspect --format '{{index .Labels "dev.freshet.build"}}' "$IMAGE_PREFIX/$img:$TAG" 2>/dev/null)" = "$key" ]; then
      log "$IMAGE_PREFIX/$img:$TAG is up to date"
      continue
    fi
    log "podman build --target $img -t $IMAGE_PREFIX/$img:$TAG"
    podman_ build --pull=never --target "$img" -f "$ROOT/Dockerfile" \
      --build-arg BINARIES=host --build-arg RUNTIME=runtime-local --build-arg LOCAL_BASE="$BASE_IMAGE" \
      --label "org.opencontainers.image.version=$TAG" --label "dev.freshet.profile=$PROFILE" --label "dev.freshet.build=$key" \
      -t "$IMAGE_PREFIX/$img:$TAG" "$CONTEXT" >"$RUN_DIR/image-$img.log" 2>&1 || {
        tail -n 30 "$RUN_DIR/image-$img.log" >&2
        die "podman build of $img failed (log: $RUN_DIR/image-$img.log)" "read the error above"; }
  done
  # The images these replaced, now untagged.
  podman_ image prune -f --filter label=dev.freshet.profile >/dev/null 2>&1 || true
  podman_ image prune -f --filter label=dev.freshet.base >/dev/null 2>&1 || true
  log "images built in $((SECONDS - t)) s:"
  list
}

list() {
  podman_ images --format '{{.Repository}}:{{.Tag}}  {{.ID}}  {{.Size}}' | grep -E "^($IMAGE_PREFIX/(engine|operator):$TAG|$BASE_IMAGE) " >&2 || true
}

# RUN_OPTS: podman run's options for the checks: no network (none is needed), and the host's limits.
# Podman 4.3 (Debian 12) still sets nofile=1048576 and nproc=32768 under --ulimit host; where root
# may not raise its hard limits (no CAP_SYS_RESOURCE, as in some VMs) runc then fails with "error
# setting rlimit": the current hard limits are passed instead.
run_opts() {
  RUN_OPTS=(--network none --ulimit host)
  if ! podman_ run --rm "${RUN_OPTS[@]}" --entrypoint /bin/true "$BASE_IMAGE" >/dev/null 2>&1; then
    local n p
    n=$(ulimit -Hn); p=$(ulimit -Hu)
    if [ "$p" = unlimited ] || [ "$p" -gt 32768 ]; then p=32768; fi
    RUN_OPTS=(--network none --ulimit "nofile=$n:$n" --ulimit "nproc=$p:$p")
    log "podman run --ulimit host fails here (root may not raise rlimits): the checks pass ${RUN_OPTS[*]:2}"
  fi
}

# check: what a user runs first, in containers of the built images.
check() {
  ensure_podman
  run_opts
  local img out
  for img in "${IMAGES[@]}"; do
    out=$(podman_ run --rm "${RUN_OPTS[@]}" "$IMAGE_PREFIX/$img:$TAG" --version 2>&1) ||
      die "$IMAGE_PREFIX/$img:$TAG --version failed: $out" "rebuild with: make images"
    [ "$out" = "freshet-$img $APP_VERSION" ] || die "$IMAGE_PREFIX/$img:$TAG --version printed '$out', not 'freshet-$img $APP_VERSION'" "rebuild with: make images"
    log "podman run $IMAGE_PREFIX/$img:$TAG --version: $out"
    # Every shared library the binary needs is in the image.
    out=$(podman_ run --rm "${RUN_OPTS[@]}" --entrypoint /usr/bin/ldd "$IMAGE_PREFIX/$img:$TAG" "/usr/local/bin/freshet-$img" 2>&1)
    if grep -q 'not found' <<<"$out"; then die "$img: libraries missing in the image: $(grep 'not found' <<<"$out" | tr -d '\t' | tr '\n' ' ')" "add their Debian packages to BASE_PACKAGES in scripts/images.sh and to the Dockerfile's runtime-slim stage"; fi
    [ "$(podman_ image inspect --format '{{.Config.User}}' "$IMAGE_PREFIX/$img:$TAG")" = "$RUNTIME_UID:$RUNTIME_UID" ] ||
      die "$IMAGE_PREFIX/$img:$TAG does not run as $RUNTIME_UID" "check USER in the Dockerfile"
    # A VOLUME would be an anonymous writable volume beside the pod's, past readOnlyRootFilesystem.
    out=$(podman_ image inspect --format '{{range $v, $_ := .Config.Volumes}}{{$v}} {{end}}' "$IMAGE_PREFIX/$img:$TAG")
    [ -z "${out// /}" ] || die "$IMAGE_PREFIX/$img:$TAG declares VOLUME $out" "remove VOLUME from the Dockerfile: the pod's volumes are the only writable places"
  done
  out=$(podman_ run --rm "${RUN_OPTS[@]}" --read-only -v "$ROOT/examples/branch-by-region/app.yaml:/etc/freshet/app.yaml:ro" \
    "$IMAGE_PREFIX/engine:$TAG" validate -f /etc/freshet/app.yaml 2>&1) ||
    die "validate -f of the example in the engine's container failed: $out" "rebuild with: make images"
  log "podman run --read-only $IMAGE_PREFIX/engine:$TAG validate -f /etc/freshet/app.yaml (mounted): $out"
  # A pod deleted while its engine starts ends at once: tini is PID 1 and passes SIGTERM on (the
  # kernel drops a signal PID 1 has no handler for). The engine waits for brokers that are not there.
  local ctr pid1 code t
  ctr=$(podman_ run -d "${RUN_OPTS[@]}" -v "$ROOT/examples/branch-by-region/app.yaml:/etc/freshet/app.yaml:ro" \
    "$IMAGE_PREFIX/engine:$TAG" run -f /etc/freshet/app.yaml --bootstrap-servers 127.0.0.1:9 --http-port 0) ||
    die "the engine's container did not start: $ctr" "rebuild with: make images"
  pid1=$(podman_ exec "$ctr" cat /proc/1/comm 2>&1) || true
  t=$SECONDS
  podman_ stop -t 30 "$ctr" >/dev/null
  code=$(podman_ inspect --format '{{.State.ExitCode}}' "$ctr")
  out=$(podman_ logs "$ctr" 2>&1 | tail -n 5)
  podman_ rm -f "$ctr" >/dev/null
  [ "$pid1" = tini ] || die "PID 1 in the engine's container is '$pid1', not tini" "check ENTRYPOINT in the Dockerfile and tini in BASE_PACKAGES"
  { [ $((SECONDS - t)) -lt 10 ] && { [ "$code" = 0 ] || [ "$code" = 143 ]; }; } ||
    die "the engine's container took $((SECONDS - t)) s to stop on SIGTERM (exit code $code): $out" "check the engine's SIGTERM handling and the Dockerfile's ENTRYPOINT"
  log "podman stop of the engine's container while it waits for Kafka: exit code $code in $((SECONDS - t)) s, PID 1 is $pid1"
}

# push: both images to $IMAGE_REGISTRY, with the tag the chart expects (its appVersion).
push() {
  [ -n "${IMAGE_REGISTRY:-}" ] || die "IMAGE_REGISTRY is not set" "say where to push: make images push IMAGE_REGISTRY=ghcr.io/<you> (log in first: podman login <registry>)"
  ensure_podman
  local img
  for img in "${IMAGES[@]}"; do
    podman_ image exists "$IMAGE_PREFIX/$img:$TAG" || die "$IMAGE_PREFIX/$img:$TAG is not built" "run: make images"
    podman_ tag "$IMAGE_PREFIX/$img:$TAG" "${IMAGE_REGISTRY%/}/$img:$TAG"
    log "podman push ${IMAGE_REGISTRY%/}/$img:$TAG"
    podman_ push "${IMAGE_REGISTRY%/}/$img:$TAG" || die "pushing ${IMAGE_REGISTRY%/}/$img:$TAG failed" "log in first (podman login ${IMAGE_REGISTRY%%/*}) and check that the repository exists and you may write to it"
  done
  log "pushed; install the chart with: --set image.repository=${IMAGE_REGISTRY%/}/operator --set engineImage.repository=${IMAGE_REGISTRY%/}/engine"
}

# pause: the pod sandbox image the real node pins (no registry to pull registry.k8s.io/pause from):
# scripts/node/pause.c, static, alone in a FROM scratch image.
PAUSE_IMAGE=localhost/freshet/pause:1
pause() {
  ensure_podman
  local dir=$RUN_DIR/pause-image key
  key=$(sha256sum "$ROOT/scripts/node/pause.c" | cut -c1-12)
  [ "$(podman_ image inspect --format '{{index .Labels "dev.freshet.pause"}}' "$PAUSE_IMAGE" 2>/dev/null)" = "$key" ] && return 0
  need_cmd gcc "install gcc (Debian: apt-get install gcc libc6-dev)"
  rm -rf "$dir"; mkdir -p "$dir"
  gcc -static -Os -s -o "$dir/pause" "$ROOT/scripts/node/pause.c" || die "compiling scripts/node/pause.c failed" "install gcc and libc6-dev (Debian), then rerun"
  printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' >"$dir/Containerfile"
  podman_ build --pull=never --label "dev.freshet.pause=$key" -f "$dir/Containerfile" -t "$PAUSE_IMAGE" "$dir" >"$RUN_DIR/image-pause.log" 2>&1 ||
    { tail -n 20 "$RUN_DIR/image-pause.log" >&2; die "podman build of the pause image failed (log: $RUN_DIR/image-pause.log)" "read the error above"; }
  log "built $PAUSE_IMAGE"
}

mkdir -p "$RUN_DIR"
case ${1:-build} in
  build) build ;;
  check) check ;;
  push) push ;;
  base) ensure_podman; base ;;
  pause) pause ;;
  list) list ;;
  tag) echo "$TAG" ;;
  sizes) ensure_podman
    for img in "${IMAGES[@]}"; do
      printf '%s:%s  %s MB uncompressed, %s MB compressed (podman save | gzip)\n' "$IMAGE_PREFIX/$img" "$TAG" \
        "$(podman_ image inspect --format '{{.Size}}' "$IMAGE_PREFIX/$img:$TAG" | awk '{printf "%.1f", $1/1e6}')" \
        "$(podman_ save "$IMAGE_PREFIX/$img:$TAG" 2>/dev/null | gzip | wc -c | awk '{printf "%.1f", $1/1e6}')"
    done ;;
  *) die "usage: images.sh build|check|push|base|pause|list|tag|sizes" "pick one of those" ;;
esac
