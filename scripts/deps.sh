#!/usr/bin/env bash
# Installs the Debian packages the build and scripts need (rocksdb: libclang; rdkafka: cmake, curl, ssl,
# sasl, zlib, zstd; the scripts: curl, openssl; the observability tests: prometheus with promtool,
# chromium), only those missing: nothing is run when all are present.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

packages=(libclang-dev libcurl4-openssl-dev libssl-dev libsasl2-dev zlib1g-dev libzstd-dev cmake pkg-config curl openssl prometheus chromium)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0

command -v apt-get >/dev/null 2>&1 || die "missing build packages: ${missing[*]}, and apt-get is not available." \
  "install the equivalents of ${missing[*]} with your system's package manager"
sudo=()
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null 2>&1 || die "missing build packages: ${missing[*]}; installing them needs root." "run as root, or: sudo apt-get install -y ${missing[*]}"
  sudo=(sudo)
fi
log "installing ${missing[*]}"
"${sudo[@]}" apt-get update -qq || die "apt-get update failed." "check the network and /etc/apt/sources.list, then rerun make deps"
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" \
  || die "apt-get install ${missing[*]} failed." "run it by hand to see why: apt-get install -y ${missing[*]}"
