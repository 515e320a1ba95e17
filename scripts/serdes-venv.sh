#!/usr/bin/env bash
# serdes-venv.sh: a Python venv with Confluent's serdes (confluent-kafka with its Avro, JSON
# Schema, Protobuf and schema-registry extras, and grpcio-tools' protoc for the Python classes of
# .proto files, from PyPI) in $FRESHET_CACHE/venv-serdes-<version>-<hash of the requirements>,
# outside the clone; prints its python. The schema_registry suite writes and reads records with it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
VERSION=2.16.1
REQUIREMENTS=("confluent-kafka[avro,json,protobuf,schemaregistry]==$VERSION" "grpcio-tools==1.85.4")
# A new requirement list gets a new venv (the old one stays valid for the old list).
VENV=$FRESHET_CACHE/venv-serdes-$VERSION-$(printf '%s\n' "${REQUIREMENTS[@]}" | sha256sum | cut -c1-8)
if [ ! -f "$VENV/.complete" ]; then
  need_cmd python3 "install Python 3.9+ with venv (Debian: apt-get install python3-venv)"
  mkdir -p "$FRESHET_CACHE"
  exec 9>"$FRESHET_CACHE/.venv-serdes.lock"
  flock 9
  if [ ! -f "$VENV/.complete" ]; then
    log "installing ${REQUIREMENTS[*]} into $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV" || die "python3 -m venv failed" "install python3-venv (Debian: apt-get install python3-venv)"
    "$VENV/bin/pip" install -q "${REQUIREMENTS[@]}" >&2 \
      || die "pip install ${REQUIREMENTS[*]} failed" "check that PyPI is reachable, then rerun"
    touch "$VENV/.complete"
  fi
  flock -u 9
fi
echo "$VENV/bin/python"
