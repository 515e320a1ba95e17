#!/usr/bin/env bash
# kafka.sh up|down|status|fetch|tool CLASS ARGS...|stop N|kill N|freeze N|thaw N|start N|leader TOPIC PARTITION
# Real Apache Kafka brokers (KRaft, broker+controller in one JVM) on 127.0.0.1, from Maven Central jars.
#
# FRESHET_KAFKA_BROKERS=1 (the default): one broker; ports FRESHET_KAFKA_PORT (clients), the next one
# (controller), FRESHET_KAFKA_POD_PORT (+2: pods); data in .freshet/kafka, kept across down and up.
# FRESHET_KAFKA_BROKERS=3: three brokers, each its own KRaft voter, for fault tests: broker N takes the
# three ports from FRESHET_KAFKA_PORT + 3*(N-1) (clients, controller, unused), data in .freshet/kafka-3/node-N;
# replication 3 and min.insync.replicas=2 everywhere, as in production. No pod listener (pods use one broker).
# stop N (SIGTERM), kill N (SIGKILL), freeze N (SIGSTOP, a stand-in for a network partition), thaw N
# (SIGCONT), start N (after stop or kill): one broker's faults; leader TOPIC PARTITION prints its leader's id.
#
# FRESHET_KAFKA_SECURED=1 (one broker; what tests/tests/secured.rs starts on ports of its own): also
# a SASL_SSL listener with SCRAM-SHA-512 (and unsecured-JWT OAUTHBEARER) on FRESHET_KAFKA_PORT + 3 and
# an SSL listener that requires a client certificate (mutual TLS) on FRESHET_KAFKA_PORT + 4, both
# under the StandardAuthorizer with no ACL meaning no access. Everything is made on the first start in
# <run dir>/kafka/secured: a CA (ca.crt), the broker's certificate for 127.0.0.1 and localhost, a
# client certificate for CN=app-tls (app-tls.crt, app-tls.key; principal User:app-tls), and random
# passwords of the SCRAM users admin (a super user) and app (admin.password, app.password). The
# PLAINTEXT listener stays for the harness (topics, ACLs): its principal, User:ANONYMOUS, is a super
# user, which is a test broker's shortcut and nothing to copy.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

BROKERS=${FRESHET_KAFKA_BROKERS:-1}
[[ $BROKERS =~ ^[1-9]$ ]] || die "FRESHET_KAFKA_BROKERS=$BROKERS is not a broker count" "use 1 (the default) or 3"
SECURED=${FRESHET_KAFKA_SECURED:-0}
[ "$SECURED" = 0 ] || [ "$BROKERS" -eq 1 ] || die "FRESHET_KAFKA_SECURED=1 is for one broker, not $BROKERS" "unset FRESHET_KAFKA_SECURED or use FRESHET_KAFKA_BROKERS=1"
SASL_SSL_PORT=$((FRESHET_KAFKA_PORT + 3))
SSL_PORT=$((FRESHET_KAFKA_PORT + 4))
BOOTSTRAP=127.0.0.1:$FRESHET_KAFKA_PORT

# node_dir N: broker N's config, data, pid and logs.
node_dir() { if [ "$BROKERS" -eq 1 ]; then echo "$RUN_DIR/kafka"; else echo "$RUN_DIR/kafka-$BROKERS/node-$1"; fi; }
client_port() { if [ "$BROKERS" -eq 1 ]; then echo "$FRESHET_KAFKA_PORT"; else echo $((FRESHET_KAFKA_PORT + 3 * ($1 - 1))); fi; }
controller_port() { if [ "$BROKERS" -eq 1 ]; then echo "$FRESHET_KAFKA_CONTROLLER_PORT"; else echo $(($(client_port "$1") + 1)); fi; }
# The tools' log4j config lives with broker 1.
KAFKA_RUN=$(node_dir 1)
# fetch: kafka_2.13 (the broker), kafka-tools (admin and console clients) and their runtime
# dependencies into $KAFKA_HOME/libs, once.
fetch() {
  [ -f "$KAFKA_HOME/.complete" ] && return 0
  need_cmd "$JAVA" "install a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless) and put java on PATH"
  need_cmd "$MVN" "install Maven 3.8+ (Debian: apt-get install maven)"
  local work=$FRESHET_CACHE/build/kafka-$KAFKA_VERSION logf=$FRESHET_CACHE/build/kafka-$KAFKA_VERSION.log
  log "fetching Apache Kafka $KAFKA_VERSION and its dependencies from Maven Central (once; log: $logf)"
  rm -rf "$work" "$KAFKA_HOME"; mkdir -p "$work"
  cat >"$work/pom.xml" <<POM
<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>dev.freshet.build</groupId>
  <artifactId>kafka-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka_2.13</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.kafka</groupId><artifactId>kafka-tools</artifactId><version>$KAFKA_VERSION</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-slf4j-impl</artifactId><version>2.25.3</version></dependency>
    <dependency><groupId>org.apache.logging.log4j</groupId><artifactId>log4j-core</artifactId><version>2.25.3</version></dependency>
  </dependencies>
</project>
POM
  if ! "$MVN" -B -q -f "$work/pom.xml" -Dmaven.repo.local="$FRESHET_M2" \
        org.apache.maven.plugins:maven-dependency-plugin:3.8.1:copy-dependencies \
        -DincludeScope=runtime -DoutputDirectory="$KAFKA_HOME/libs" >"$logf" 2>&1; then
    tail -n 20 "$logf" >&2
    die "downloading Apache Kafka $KAFKA_VERSION from Maven Central failed (log: $logf)." \
        "check that Maven Central is reachable (mvn -B dependency:get -Dartifact=org.apache.kafka:kafka_2.13:$KAFKA_VERSION) and rerun; a corrupt download is cleared by: rm -rf $FRESHET_M2/org/apache/kafka"
  fi
  ls "$KAFKA_HOME"/libs/kafka_2.13-*.jar >/dev/null 2>&1 || die "Maven finished but no kafka_2.13 jar is in $KAFKA_HOME/libs" "rm -rf $KAFKA_HOME and rerun make kafka-up"
  touch "$KAFKA_HOME/.complete"
}

# kafka_java CLASS ARGS...: run a Kafka main class (broker, StorageTool, admin or console tools).
kafka_java() {
  local cls=$1; shift
  "$JAVA" -Xms64m -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 \
    -Dlog4j2.configurationFile="$KAFKA_RUN/log4j2-tools.properties" \
    -cp "$KAFKA_HOME/libs/*" "$cls" "$@"
}

write_configs() { # write_configs N
  local n=$1 dir voters="" i
  dir=$(node_dir "$n")
  mkdir -p "$dir/data"
  for i in $(seq 1 "$BROKERS"); do voters+="${voters:+,}$i@127.0.0.1:$(controller_port "$i")"; done
  local listeners advertised protocols replication=$BROKERS min_isr=$((BROKERS > 1 ? 2 : 1))
  if [ "$BROKERS" -eq 1 ]; then
    # PODS: for pods on the real node (scripts/node.sh), on loopback too, advertised at the node's address
    # where node.sh forwards it from inside the node's network namespace.
    listeners="PLAINTEXT://127.0.0.1:$FRESHET_KAFKA_PORT,CONTROLLER://127.0.0.1:$FRESHET_KAFKA_CONTROLLER_PORT,PODS://127.0.0.1:$FRESHET_KAFKA_POD_PORT"
    advertised="PLAINTEXT://127.0.0.1:$FRESHET_KAFKA_PORT,PODS://$FRESHET_NODE_IP:9092"
    protocols="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,PODS:PLAINTEXT"
    if [ "$SECURED" = 1 ]; then
      listeners+=",SASL_SSL://127.0.0.1:$SASL_SSL_PORT,SSL://127.0.0.1:$SSL_PORT"
      advertised+=",SASL_SSL://127.0.0.1:$SASL_SSL_PORT,SSL://127.0.0.1:$SSL_PORT"
      protocols+=",SASL_SSL:SASL_SSL,SSL:SSL"
    fi
  else
    listeners="PLAINTEXT://127.0.0.1:$(client_port "$n"),CONTROLLER://127.0.0.1:$(controller_port "$n")"
    advertised="PLAINTEXT://127.0.0.1:$(client_port "$n")"
    protocols="PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT"
  fi
  cat >"$dir/server.properties" <<PROPS
process.roles=broker,controller
node.id=$n
controller.quorum.voters=$voters
listeners=$listeners
advertised.listeners=$advertised
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=$protocols
log.dirs=$dir/data
# As in production: topics are created deliberately, never by a typo.
auto.create.topics.enable=false
num.partitions=1
# Replicated as widely as the brokers allow; with 3, a write needs 2 replicas (production's setting).
default.replication.factor=$replication
min.insync.replicas=$min_isr
offsets.topic.replication.factor=$replication
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=$replication
transaction.state.log.min.isr=$min_isr
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=$replication
share.coordinator.state.topic.min.isr=$min_isr
# A broker back from a fault takes its partitions' leadership back soon (the default waits 5 min).
leader.imbalance.check.interval.seconds=10
# Tests start many short-lived groups: do not hold the first rebalance back 3 s.
group.initial.rebalance.delay.ms=0
# Let consumer groups (and the tests) use session timeouts down to 1 s.
group.min.session.timeout.ms=1000
group.consumer.min.session.timeout.ms=1000
group.consumer.min.heartbeat.interval.ms=500
# And streams groups (their minimum is 45 s): a failover test sets the group's own.
group.streams.min.session.timeout.ms=1000
# Streams-group members report task offsets every minute by default; a test asks every second.
group.streams.min.task.offset.interval.ms=1000
log.retention.check.interval.ms=60000
PROPS
  [ "$SECURED" = 1 ] && secured_configs "$dir/secured" >>"$dir/server.properties"
  write_log_configs "$dir"
}

# secured_material DIR: the CA, the broker's and the TLS client's certificates and the SCRAM
# passwords, made once (openssl; PKCS#8 keys, unencrypted: the broker reads PEM key stores).
secured_material() {
  local s=$1
  [ -f "$s/.complete" ] && return 0
  need_cmd openssl "install OpenSSL (Debian: apt-get install openssl)"
  rm -rf "$s"; mkdir -p "$s"
  (
    cd "$s"
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=freshet-test-ca" -keyout ca.key -out ca.crt
    sign() { # sign NAME SUBJECT [EXTFILE]
      openssl req -newkey rsa:2048 -nodes -subj "$2" -keyout "$1.key" -out "$1.csr"
      openssl x509 -req -days 3650 -in "$1.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$1.crt" ${3:+-extfile "$3"}
      rm -f "$1.csr"
    }
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\n' >broker.ext
    sign broker "/CN=localhost" broker.ext
    cat broker.key broker.crt >broker.pem
    sign app-tls "/CN=app-tls"
    for user in admin app; do openssl rand -hex 16 | tr -d '\n' >"$user.password"; done
    chmod 600 ./*.key ./*.password broker.pem
  ) >"$s.log" 2>&1 || { cat "$s.log" >&2; die "making the secured broker's certificates in $s failed" "read the openssl errors above"; }
  touch "$s/.complete"
}

# secured_configs DIR: the broker properties of the SASL_SSL and SSL listeners and the authorizer.
secured_configs() {
  local s=$1
  cat <<PROPS
# The secured listeners (FRESHET_KAFKA_SECURED=1): certificates and passwords in $s.
ssl.keystore.type=PEM
ssl.keystore.location=$s/broker.pem
ssl.truststore.type=PEM
ssl.truststore.location=$s/ca.crt
listener.name.ssl.ssl.client.auth=required
# A client certificate's principal is its CN (User:app-tls), as Strimzi users expect their name.
ssl.principal.mapping.rules=RULE:^CN=([^,]+)$/\$1/,DEFAULT
listener.name.sasl_ssl.sasl.enabled.mechanisms=SCRAM-SHA-512,OAUTHBEARER
listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required;
listener.name.sasl_ssl.oauthbearer.sasl.jaas.config=org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required unsecuredLoginStringClaim_sub="admin";
authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer
super.users=User:admin;User:ANONYMOUS
allow.everyone.if.no.acl.found=false
PROPS
}

# write_log_configs DIR: the broker's log4j config (to DIR/server.log) and the tools' (to stderr).
write_log_configs() {
  local dir=$1 p
  mkdir -p "$dir"
  for p in "" -tools; do
    cat >"$dir/log4j2$p.properties" <<LOG
status = warn
appender.out.type = $([ -z "$p" ] && echo File || echo Console)
appender.out.name = out
$([ -z "$p" ] && echo "appender.out.fileName = $dir/server.log")
$([ -n "$p" ] && echo "appender.out.target = SYSTEM_ERR")
appender.out.layout.type = PatternLayout
appender.out.layout.pattern = [%d] %p %m (%c)%n
rootLogger.level = $([ -z "$p" ] && echo INFO || echo WARN)
rootLogger.appenderRef.out.ref = out
logger.kafka.name = kafka
logger.kafka.level = $([ -z "$p" ] && echo INFO || echo WARN)
logger.apache.name = org.apache.kafka
logger.apache.level = $([ -z "$p" ] && echo INFO || echo ERROR)
LOG
  done
}

answers_metadata() {
  kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --list >/dev/null 2>&1
}

pidfile() { echo "$(node_dir "$1")/kafka.pid"; }

# check_node N: a broker number of this cluster.
check_node() {
  [[ ${1:-} =~ ^[0-9]+$ ]] && [ "$1" -ge 1 ] && [ "$1" -le "$BROKERS" ] \
    || die "no broker '${1:-}' in a cluster of $BROKERS" "name one of 1..$BROKERS (FRESHET_KAFKA_BROKERS=$BROKERS)"
}

# random_uuid: what `kafka-storage random-uuid` prints (Kafka's Uuid.randomUuid: 16 random bytes
# in URL-safe base64 without padding, never starting with '-'), without a JVM start for it.
random_uuid() {
  local id
  while :; do
    id=$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=')
    [[ $id == -* ]] || break
  done
  echo "$id"
}

# format_all: one cluster id, every node's store formatted with it (first start only).
format_all() {
  local n dir cluster_id=""
  for n in $(seq 1 "$BROKERS"); do
    dir=$(node_dir "$n")
    [ "$SECURED" = 1 ] && secured_material "$dir/secured"
    write_configs "$n"
    [ -f "$dir/data/meta.properties" ] && continue
    [ -n "$cluster_id" ] || cluster_id=$(random_uuid)
    local scram=() user
    if [ "$SECURED" = 1 ]; then
      for user in admin app; do
        scram+=(--add-scram "SCRAM-SHA-512=[name=$user,password=$(cat "$dir/secured/$user.password")]")
      done
    fi
    kafka_java kafka.tools.StorageTool format -t "$cluster_id" -c "$dir/server.properties" "${scram[@]}" >"$dir/format.log" 2>&1 \
      || { cat "$dir/format.log" >&2; die "formatting the KRaft store in $dir/data failed" "rm -rf $dir and rerun make kafka-up"; }
  done
}

# start_node N: launch broker N (its store formatted) and return at once.
start_node() {
  local n=$1 dir port
  dir=$(node_dir "$n")
  port=$(client_port "$n")
  pid_alive "$(pidfile "$n")" && return 0
  port_free_or_die "$port" "Kafka broker $n" FRESHET_KAFKA_PORT
  port_free_or_die "$(controller_port "$n")" "the KRaft controller of broker $n" FRESHET_KAFKA_PORT
  [ "$BROKERS" -gt 1 ] || port_free_or_die "$FRESHET_KAFKA_POD_PORT" "Kafka's listener for pods" FRESHET_KAFKA_POD_PORT
  if [ "$SECURED" = 1 ]; then
    port_free_or_die "$SASL_SSL_PORT" "Kafka's SASL_SSL listener" FRESHET_KAFKA_PORT
    port_free_or_die "$SSL_PORT" "Kafka's SSL listener" FRESHET_KAFKA_PORT
  fi
  log "starting Kafka $KAFKA_VERSION broker $n on 127.0.0.1:$port (log: $dir/server.log)"
  nohup "$JAVA" -Xms128m -Xmx${FRESHET_KAFKA_HEAP:-1g} -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -Dlog4j2.configurationFile="$dir/log4j2.properties" \
    -cp "$KAFKA_HOME/libs/*" kafka.Kafka "$dir/server.properties" \
    >"$dir/stdout.log" 2>&1 </dev/null &
  echo $! >"$(pidfile "$n")"
}

# await_node N: wait until broker N listens, or stop it and fail.
await_node() {
  local n=$1 dir port
  dir=$(node_dir "$n")
  port=$(client_port "$n")
  if ! wait_until 90 "Kafka broker $n is listening on 127.0.0.1:$port" port_in_use "$port"; then
    tail -n 30 "$dir/stdout.log" "$dir/server.log" >&2 2>/dev/null || true
    stop_pidfile "$(pidfile "$n")" "kafka broker $n"
    die "Kafka broker $n did not start listening on 127.0.0.1:$port within 90 s" "read $dir/server.log; a stale store is cleared by: make kafka-down && rm -rf $dir"
  fi
}

up() {
  local n running=1
  for n in $(seq 1 "$BROKERS"); do pid_alive "$(pidfile "$n")" || running=0; done
  if [ $running -eq 1 ]; then
    log "Kafka already running ($BROKERS broker(s)) at $BOOTSTRAP"
    return 0
  fi
  need_cmd "$JAVA" "install a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless) and put java on PATH"
  fetch
  format_all
  # Every voter at once: a KRaft quorum of 3 elects its leader only when a majority is up.
  for n in $(seq 1 "$BROKERS"); do start_node "$n"; done
  for n in $(seq 1 "$BROKERS"); do await_node "$n"; done
  wait_until 60 "Kafka answers metadata requests at $BOOTSTRAP" answers_metadata \
    || die "Kafka listens on $BOOTSTRAP but does not answer metadata requests within 60 s" "read $(node_dir 1)/server.log"
}

down() {
  local n
  for n in $(seq 1 "$BROKERS"); do stop_pidfile "$(pidfile "$n")" "kafka broker $n"; done
}

# signal_node N SIGNAL: send SIGNAL to broker N; TERM and KILL wait until it is gone.
signal_node() {
  local n=$1 sig=$2 f pid i
  check_node "$n"
  f=$(pidfile "$n")
  pid_alive "$f" || die "Kafka broker $n is not running" "start it: scripts/kafka.sh start $n"
  pid=$(cat "$f")
  log "kafka broker $n (pid $pid): SIG$sig"
  kill -s "$sig" "$pid"
  case $sig in
    TERM|KILL)
      for i in $(seq 1 300); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
      kill -0 "$pid" 2>/dev/null && die "Kafka broker $n (pid $pid) did not exit within 60 s of SIG$sig" "kill -9 $pid"
      rm -f "$f" ;;
  esac
}

# leader TOPIC PARTITION: the node id leading the partition (-1 while it has none).
leader() {
  local topic=${1:?topic} partition=${2:?partition}
  kafka_java org.apache.kafka.tools.TopicCommand --bootstrap-server "$(live_bootstrap)" --describe --topic "$topic" \
    | awk -v p="$partition" '$0 ~ "Partition: "p"\t" || $0 ~ "Partition: "p" " { for (i = 1; i <= NF; i++) if ($i == "Leader:") { print $(i + 1); exit } }'
}

# live_bootstrap: the client ports of the brokers running now (one that is stopped is no bootstrap).
live_bootstrap() {
  local n out=""
  for n in $(seq 1 "$BROKERS"); do
    pid_alive "$(pidfile "$n")" && out+="${out:+,}127.0.0.1:$(client_port "$n")"
  done
  echo "${out:-$BOOTSTRAP}"
}

status() {
  local n rc=0
  for n in $(seq 1 "$BROKERS"); do
    if pid_alive "$(pidfile "$n")"; then
      echo "kafka broker $n: running at 127.0.0.1:$(client_port "$n") (pid $(cat "$(pidfile "$n")"))"
    else
      echo "kafka broker $n: stopped"; rc=1
    fi
  done
  return $rc
}

case ${1:-} in
  up) up ;;
  down) down ;;
  fetch) fetch ;;
  status) status ;;
  stop) signal_node "${2:-}" TERM ;;
  kill) signal_node "${2:-}" KILL ;;
  freeze) signal_node "${2:-}" STOP ;;
  thaw) signal_node "${2:-}" CONT ;;
  start) check_node "${2:-}"; start_node "$2"; await_node "$2" ;;
  leader) shift; fetch; [ -f "$KAFKA_RUN/log4j2-tools.properties" ] || write_log_configs "$KAFKA_RUN"; leader "$@" ;;
  bootstrap) live_bootstrap ;;
  tool) shift; fetch; [ -f "$KAFKA_RUN/log4j2-tools.properties" ] || write_log_configs "$KAFKA_RUN"; kafka_java "$@" ;;
  *) die "usage: kafka.sh up|down|status|fetch|tool CLASS ARGS...|stop N|kill N|freeze N|thaw N|start N|leader TOPIC PARTITION|bootstrap" "pick one of those" ;;
esac
