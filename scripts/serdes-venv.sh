#!/usr/bin/env bash
# serdes-venv.sh: a Python venv with Confluent's serdes (confluent-kafka with its Avro and
# schema-registry extras, from PyPI) in $FRESHET_CACHE/venv-serdes-<version>, outside the clone;
# prints its python. The schema_registry suite writes and reads records with it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
VERSION=2.16.1
VENV=$FRESHET_CACHE/venv-serdes-$VERSION
if [ ! -f "$VENV/.complete" ]; then
  need_cmd python3 "install Python 3.9+ with venv (Debian: apt-get install python3-venv)"
  mkdir -p "$FRESHET_CACHE"
  exec 9>"$FRESHET_CACHE/.venv-serdes.lock"
  flock 9
  if [ ! -f "$VENV/.complete" ]; then
    log "installing confluent-kafka $VERSION (Avro, schema registry) into $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV" || die "python3 -m venv failed" "install python3-venv (Debian: apt-get install python3-venv)"
    "$VENV/bin/pip" install -q "confluent-kafka[avro,schemaregistry]==$VERSION" >&2 \
      || die "pip install confluent-kafka[avro,schemaregistry]==$VERSION failed" "check that PyPI is reachable, then rerun"
    touch "$VENV/.complete"
  fi
  flock -u 9
fi
echo "$VENV/bin/python"
