#!/usr/bin/env bash
# registry.sh up|down|status|build|url|tls-url|tls-ca|auth-url|auth-user|auth-password-file
# A schema registry with Confluent's REST API for the Avro/Protobuf/JSON Schema tests: Apicurio
# Registry 3.3.3 (in-memory H2 storage), its Confluent-compatible API at
#   http://127.0.0.1:$FRESHET_REGISTRY_PORT/apis/ccompat/v7      (port 8081 by default)
# with the global compatibility rule set to BACKWARD, Confluent's default, so an incompatible
# schema is refused (409) as Confluent's registry refuses it. The application is Maven Central's
# assembled Quarkus app, unpacked by tests/registry (pom.xml) into $FRESHET_CACHE/registry/<hash>,
# outside the clone. Apicurio 3.3 is compiled for Java 21: FRESHET_REGISTRY_JAVA names the java to
# run it with; by default $JAVA when it is 21 or newer, else the newest JDK under /usr/lib/jvm.
# Runtime state (pid, log) in .freshet/registry/.
#
# TLS mode: with FRESHET_REGISTRY_TLS_PORT set, `up` also starts a second instance that serves
# HTTPS only (quarkus.http.insecure-requests=disabled) at
#   https://127.0.0.1:$FRESHET_REGISTRY_TLS_PORT/apis/ccompat/v7   (its management interface on the next port)
# with a server certificate (SAN 127.0.0.1 and localhost) signed by a CA made here with openssl;
# the CA's certificate is .freshet/registry-tls/ca.pem (`registry.sh tls-ca`), what clients must
# trust. Its own in-memory storage; `down` stops both.
#
# Basic-auth mode: with FRESHET_REGISTRY_AUTH_PORT set, `up` also starts Debian's nginx in front of
# the http instance, as deployments put an authenticating proxy before a registry: `auth_basic`
# with an htpasswd file (one user, `freshet`, its password random per run dir, hashed with
# `openssl passwd -apr1`), proxying to the http registry at
#   http://127.0.0.1:$FRESHET_REGISTRY_AUTH_PORT/apis/ccompat/v7
# (`registry.sh auth-url`, `auth-user`, `auth-password-file`). A wrong or missing password gets
# 401 from nginx before the registry sees the request. nginx runs with its own configuration and
# prefix under .freshet/registry-auth/ (pid, logs, temp files there; /etc/nginx and the system's
# nginx service untouched); `down` stops it.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
source "$(dirname "$0")/maven.sh"

SRC=$ROOT/tests/registry
PORT=${FRESHET_REGISTRY_PORT:-8081}
# Its management interface (health, metrics): built in, so moved off 0.0.0.0:9000 rather than off.
MANAGEMENT_PORT=${FRESHET_REGISTRY_MANAGEMENT_PORT:-$((PORT + 1))}
DIR=$RUN_DIR/registry
PIDFILE=$DIR/registry.pid
API=http://127.0.0.1:$PORT/apis/ccompat/v7
TLS_PORT=${FRESHET_REGISTRY_TLS_PORT:-}
TLS_DIR=$RUN_DIR/registry-tls
TLS_PIDFILE=$TLS_DIR/registry.pid
TLS_API=https://127.0.0.1:${TLS_PORT:-unset}/apis/ccompat/v7
AUTH_PORT=${FRESHET_REGISTRY_AUTH_PORT:-}
AUTH_DIR=$RUN_DIR/registry-auth
AUTH_PIDFILE=$AUTH_DIR/nginx.pid
AUTH_API=http://127.0.0.1:${AUTH_PORT:-unset}/apis/ccompat/v7
AUTH_USER=freshet

# java_major JAVA: the feature version of that java (17, 21, 25), or 0.
java_major() {
  "$1" -XshowSettings:properties -version 2>&1 | awk -F'= ' '/java.specification.version/ {print $2; exit}' | grep -E '^[0-9]+$' || echo 0
}

registry_java() {
  if [ -n "${FRESHET_REGISTRY_JAVA:-}" ]; then echo "$FRESHET_REGISTRY_JAVA"; return; fi
  if command -v "$JAVA" >/dev/null 2>&1 && [ "$(java_major "$JAVA")" -ge 21 ]; then echo "$JAVA"; return; fi
  local j best= best_v=0 v
  for j in /usr/lib/jvm/*/bin/java; do
    [ -x "$j" ] || continue
    v=$(java_major "$j")
    [ "$v" -gt "$best_v" ] && { best=$j; best_v=$v; }
  done
  [ "$best_v" -ge 21 ] || die "Apicurio Registry 3.3 needs Java 21 or newer; found none ($JAVA is $(java_major "$JAVA"))" \
    "install a JDK 21+ (e.g. Temurin 21 or 25) and set FRESHET_REGISTRY_JAVA=/path/to/bin/java"
  echo "$best"
}

build() {
  local out log
  out=$(maven_out "$SRC" registry)
  log=$out.log
  if [ ! -f "$out/.complete" ]; then
    need_cmd "$MVN" "install Maven 3.8+ (Debian: apt-get install maven)"
    mkdir -p "$FRESHET_CACHE/registry" "$FRESHET_CACHE/reference"
    # One Maven at a time per cache (scripts/maven.sh): the projects share one repository.
    exec 9>"$FRESHET_CACHE/reference/.lock"
    flock 9
    if [ ! -f "$out/.complete" ]; then
      log "unpacking Apicurio Registry into $out (log: $log)"
      rm -rf "$out"
      local args=(-B -f "$SRC/pom.xml" -Dmaven.repo.local="$FRESHET_M2" -Dregistry.build.dir="$out/build" package)
      if ! "$MVN" -o "${args[@]}" >"$log" 2>&1; then
        log "offline build failed (a cold Maven repository?); retrying online"
        "$MVN" "${args[@]}" >>"$log" 2>&1 || {
          grep -E '\[ERROR\]' "$log" | head -n 20 >&2
          die "fetching Apicurio Registry failed (log: $log)" \
            "check Maven Central: $MVN -B -Dmaven.repo.local=$FRESHET_M2 dependency:get -Dartifact=io.apicurio:apicurio-registry-app:3.3.3:tar.gz:all"
        }
      fi
      [ -f "$out/build/app/quarkus-run.jar" ] || die "Maven finished but left no quarkus-run.jar in $out/build/app (log: $log)" "rm -rf $out and rerun: scripts/registry.sh build"
      touch "$out/.complete"
    fi
    flock -u 9
  fi
  echo "$out/build/app"
}

answers() { curl -sf --max-time 2 "$API/subjects" >/dev/null; }
tls_answers() { curl -sf --max-time 2 --cacert "$TLS_DIR/ca.pem" "$TLS_API/subjects" >/dev/null; }
# The credentials through curl's config on stdin, never on a command line (ps shows those).
auth_answers() { printf 'user = "%s:%s"\n' "$AUTH_USER" "$(cat "$AUTH_DIR/password" 2>/dev/null)" | curl -sf --max-time 2 -K - "$AUTH_API/subjects" >/dev/null; }
# What nginx answers without credentials: 401 is the proof that it checks them.
auth_status_without_credentials() { curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$AUTH_API/subjects" || true; }

# tls_certs: a CA and a server certificate it signs (SAN 127.0.0.1, localhost), once per run dir.
tls_certs() {
  [ -f "$TLS_DIR/server.pem" ] && [ -f "$TLS_DIR/ca.pem" ] && return 0
  need_cmd openssl "install OpenSSL (Debian: apt-get install openssl)"
  mkdir -p "$TLS_DIR"
  # rustls (webpki) wants a v3 CA with keyUsage keyCertSign and a leaf with a subjectAltName.
  printf '[req]\ndistinguished_name=dn\n[dn]\n[ca]\nbasicConstraints=critical,CA:TRUE\nkeyUsage=critical,keyCertSign,cRLSign\nsubjectKeyIdentifier=hash\n' >"$TLS_DIR/ca.cnf"
  printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,DNS:localhost\n' >"$TLS_DIR/server.ext"
  openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=freshet test registry CA" \
    -config "$TLS_DIR/ca.cnf" -extensions ca -keyout "$TLS_DIR/ca.key" -out "$TLS_DIR/ca.pem" 2>/dev/null \
    || die "openssl could not make the registry's test CA" "run the openssl command in scripts/registry.sh by hand to see why"
  openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" -config "$TLS_DIR/ca.cnf" \
    -keyout "$TLS_DIR/server.key" -out "$TLS_DIR/server.csr" 2>/dev/null \
    || die "openssl could not make the registry's server key" "run the openssl command in scripts/registry.sh by hand to see why"
  openssl x509 -req -in "$TLS_DIR/server.csr" -CA "$TLS_DIR/ca.pem" -CAkey "$TLS_DIR/ca.key" -CAcreateserial \
    -days 30 -extfile "$TLS_DIR/server.ext" -out "$TLS_DIR/server.pem" 2>/dev/null \
    || die "openssl could not sign the registry's server certificate" "run the openssl command in scripts/registry.sh by hand to see why"
}

# start_instance NAME DIR PIDFILE URL CHECK ARGS...: one Apicurio process with ARGS (its ports),
# waited for until CHECK answers, then given Confluent's global compatibility, BACKWARD.
start_instance() {
  local name=$1 dir=$2 pidfile=$3 url=$4 check=$5 app java
  shift 5
  app=$(build)
  java=$(registry_java)
  mkdir -p "$dir"
  log "starting Apicurio Registry 3.3.3 ($name) at $url (log: $dir/registry.log)"
  # In-memory storage (H2), no UI, no telemetry, everything on loopback.
  (cd "$dir" && exec "$java" -Xms64m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dquarkus.http.host=127.0.0.1 "$@" \
    -Dquarkus.management.host=127.0.0.1 -Dquarkus.otel.enabled=false -Dquarkus.otel.sdk.disabled=true \
    -Dapicurio.ui.enabled=false -Dquarkus.log.console.json=false \
    -jar "$app/quarkus-run.jar" >"$dir/registry.log" 2>&1) &
  echo $! >"$pidfile"
  if ! wait_until 120 "schema registry ($name) up at $url" "$check"; then
    tail -n 30 "$dir/registry.log" >&2
    stop_pidfile "$pidfile" "schema registry ($name)"
    die "the schema registry did not answer at $url within 120 s (log: $dir/registry.log)" "read the log above"
  fi
  # Confluent's registry checks BACKWARD compatibility unless told otherwise; Apicurio has no
  # global rule until one is set.
  local cacert=()
  [ "$name" = tls ] && cacert=(--cacert "$TLS_DIR/ca.pem")
  curl -sf "${cacert[@]}" -X PUT -H 'Content-Type: application/vnd.schemaregistry.v1+json' \
    -d '{"compatibility":"BACKWARD"}' "$url/config" >/dev/null \
    || die "setting the registry's compatibility to BACKWARD failed" "see $dir/registry.log"
}

# auth_files: the password (random, once per run dir), its htpasswd and nginx's configuration.
auth_files() {
  need_cmd openssl "install OpenSSL (Debian: apt-get install openssl)"
  mkdir -p "$AUTH_DIR/temp"
  if [ ! -s "$AUTH_DIR/password" ]; then
    (umask 077 && openssl rand -hex 16 >"$AUTH_DIR/password")
  fi
  # -stdin: the password never on a command line. apr1 (Apache's MD5) is what nginx's auth_basic
  # reads on every platform.
  printf '%s:%s\n' "$AUTH_USER" "$(openssl passwd -apr1 -stdin <"$AUTH_DIR/password")" >"$AUTH_DIR/htpasswd"
  # Run as root, nginx's workers would switch to nobody, who may not read the run dir: keep them
  # as the user who starts it (the directive only means anything for root).
  local user=
  [ "$(id -u)" -ne 0 ] || user="user $(id -un) $(id -gn);"
  cat >"$AUTH_DIR/nginx.conf" <<EOF
# Written by scripts/registry.sh: basic auth in front of the http schema registry.
$user
daemon off;
worker_processes 1;
pid $AUTH_DIR/nginx.pid.nginx;
error_log $AUTH_DIR/error.log warn;
events { worker_connections 256; }
http {
  access_log $AUTH_DIR/access.log;
  client_body_temp_path $AUTH_DIR/temp/body;
  proxy_temp_path $AUTH_DIR/temp/proxy;
  fastcgi_temp_path $AUTH_DIR/temp/fastcgi;
  uwsgi_temp_path $AUTH_DIR/temp/uwsgi;
  scgi_temp_path $AUTH_DIR/temp/scgi;
  server {
    listen 127.0.0.1:$AUTH_PORT;
    auth_basic "freshet test schema registry";
    auth_basic_user_file $AUTH_DIR/htpasswd;
    location / {
      proxy_pass http://127.0.0.1:$PORT;
      # The registry behind checks nothing: it need not see the credentials.
      proxy_set_header Authorization "";
      proxy_set_header Host \$host:\$server_port;
    }
  }
}
EOF
}

# auth_up: nginx with basic auth in front of the http registry (which must be up).
auth_up() {
  if pid_alive "$AUTH_PIDFILE"; then log "schema registry (basic auth) already running at $AUTH_API"; return 0; fi
  port_free_or_die "$AUTH_PORT" "the schema registry's basic-auth proxy" FRESHET_REGISTRY_AUTH_PORT
  command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || apt_install nginx
  local nginx code
  nginx=$(command -v nginx || echo /usr/sbin/nginx)
  auth_files
  "$nginx" -t -q -e "$AUTH_DIR/error.log" -p "$AUTH_DIR/" -c "$AUTH_DIR/nginx.conf" 2>"$AUTH_DIR/nginx-test.log" \
    || { cat "$AUTH_DIR/nginx-test.log" >&2; die "nginx refused its configuration $AUTH_DIR/nginx.conf" "read the error above"; }
  log "starting nginx (basic auth) in front of the schema registry at $AUTH_API (log: $AUTH_DIR/error.log)"
  # -e: the error log from the first line on (nginx's built-in default is under /var/log/nginx).
  (cd "$AUTH_DIR" && exec "$nginx" -e "$AUTH_DIR/error.log" -p "$AUTH_DIR/" -c "$AUTH_DIR/nginx.conf" >"$AUTH_DIR/nginx.log" 2>&1) &
  echo $! >"$AUTH_PIDFILE"
  if ! wait_until 30 "schema registry (basic auth) up at $AUTH_API" auth_answers; then
    tail -n 30 "$AUTH_DIR/error.log" "$AUTH_DIR/nginx.log" >&2 || true
    stop_pidfile "$AUTH_PIDFILE" "nginx (registry basic auth)"
    die "nginx did not answer at $AUTH_API within 30 s (log: $AUTH_DIR/error.log)" "read the log above"
  fi
  code=$(auth_status_without_credentials)
  [ "$code" = 401 ] || die "nginx at $AUTH_API answered $code, not 401, without credentials" "check $AUTH_DIR/nginx.conf"
}

up() {
  if pid_alive "$PIDFILE"; then
    log "schema registry already running at $API"
  else
    port_free_or_die "$PORT" "the schema registry" FRESHET_REGISTRY_PORT
    port_free_or_die "$MANAGEMENT_PORT" "the schema registry's management interface" FRESHET_REGISTRY_MANAGEMENT_PORT
    start_instance http "$DIR" "$PIDFILE" "$API" answers \
      -Dquarkus.http.port="$PORT" -Dquarkus.management.port="$MANAGEMENT_PORT"
  fi
  [ -z "$AUTH_PORT" ] || auth_up
  [ -n "$TLS_PORT" ] || return 0
  if pid_alive "$TLS_PIDFILE"; then log "schema registry (TLS) already running at $TLS_API"; return 0; fi
  port_free_or_die "$TLS_PORT" "the TLS schema registry" FRESHET_REGISTRY_TLS_PORT
  port_free_or_die "$((TLS_PORT + 1))" "the TLS schema registry's management interface" FRESHET_REGISTRY_TLS_PORT
  tls_certs
  # HTTPS only: no plain HTTP listener at all.
  start_instance tls "$TLS_DIR" "$TLS_PIDFILE" "$TLS_API" tls_answers \
    -Dquarkus.http.ssl-port="$TLS_PORT" -Dquarkus.http.insecure-requests=disabled \
    -Dquarkus.http.ssl.certificate.files="$TLS_DIR/server.pem" \
    -Dquarkus.http.ssl.certificate.key-files="$TLS_DIR/server.key" \
    -Dquarkus.management.port="$((TLS_PORT + 1))"
}

down() {
  if [ -f "$AUTH_PIDFILE" ]; then stop_pidfile "$AUTH_PIDFILE" "nginx (registry basic auth)"; fi
  stop_pidfile "$PIDFILE" "schema registry"
  if [ -f "$TLS_PIDFILE" ]; then stop_pidfile "$TLS_PIDFILE" "schema registry (TLS)"; fi
}

status() {
  local rc=0
  if pid_alive "$PIDFILE" && answers; then
    echo "schema registry: running at $API (pid $(cat "$PIDFILE"))"
  else
    echo "schema registry: not running"
    rc=1
  fi
  if [ -n "$TLS_PORT" ]; then
    if pid_alive "$TLS_PIDFILE" && tls_answers; then
      echo "schema registry (TLS): running at $TLS_API (pid $(cat "$TLS_PIDFILE")), CA $TLS_DIR/ca.pem"
    else
      echo "schema registry (TLS): not running"
      rc=1
    fi
  fi
  if [ -n "$AUTH_PORT" ]; then
    if pid_alive "$AUTH_PIDFILE" && auth_answers; then
      echo "schema registry (basic auth): nginx at $AUTH_API (pid $(cat "$AUTH_PIDFILE")), user $AUTH_USER"
    else
      echo "schema registry (basic auth): not running"
      rc=1
    fi
  fi
  return $rc
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) status ;;
  build) build ;;
  url) echo "$API" ;;
  tls-url) echo "$TLS_API" ;;
  tls-ca) echo "$TLS_DIR/ca.pem" ;;
  auth-url) echo "$AUTH_API" ;;
  auth-user) echo "$AUTH_USER" ;;
  # The password's file (written by `up`), not the password: callers read it.
  auth-password-file) echo "$AUTH_DIR/password" ;;
  *) die "usage: registry.sh up|down|status|build|url|tls-url|tls-ca|auth-url|auth-user|auth-password-file" "pick one of those" ;;
esac
