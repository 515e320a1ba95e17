#!/usr/bin/env bash
# kafka.sh up|down|status|fetch|tool CLASS ARGS...
# A real Apache Kafka broker (KRaft, broker+controller in one JVM) on 127.0.0.1, from Maven Central jars.
# Ports: FRESHET_KAFKA_PORT (clients), the next one (controller), FRESHET_KAFKA_POD_PORT (+2: pods).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

KAFKA_RUN=$RUN_DIR/kafka
PIDFILE=$KAFKA_RUN/kafka.pid
BOOTSTRAP=127.0.0.1:$FRESHET_KAFKA_PORT

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

write_configs() {
  mkdir -p "$KAFKA_RUN/data"
  cat >"$KAFKA_RUN/server.properties" <<PROPS
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$FRESHET_KAFKA_CONTROLLER_PORT
# PODS: for pods on the real node (scripts/node.sh), on loopback too, advertised at the node's address
# where node.sh forwards it from inside the node's network namespace.
listeners=PLAINTEXT://127.0.0.1:$FRESHET_KAFKA_PORT,CONTROLLER://127.0.0.1:$FRESHET_KAFKA_CONTROLLER_PORT,PODS://127.0.0.1:$FRESHET_KAFKA_POD_PORT
advertised.listeners=PLAINTEXT://127.0.0.1:$FRESHET_KAFKA_PORT,PODS://$FRESHET_NODE_IP:9092
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT,PODS:PLAINTEXT
log.dirs=$KAFKA_RUN/data
# As in production: topics are created deliberately, never by a typo.
auto.create.topics.enable=false
num.partitions=1
# A single node: internal topics cannot be replicated.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=10
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=10
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
# Tests start many short-lived groups: do not hold the first rebalance back 3 s.
group.initial.rebalance.delay.ms=0
# Let consumer groups (and the tests) use session timeouts down to 1 s.
group.min.session.timeout.ms=1000
group.consumer.min.session.timeout.ms=1000
group.consumer.min.heartbeat.interval.ms=500
log.retention.check.interval.ms=60000
PROPS
  local p
  for p in "" -tools; do
    cat >"$KAFKA_RUN/log4j2$p.properties" <<LOG
status = warn
appender.out.type = $([ -z "$p" ] && echo File || echo Console)
appender.out.name = out
$([ -z "$p" ] && echo "appender.out.fileName = $KAFKA_RUN/server.log")
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

up() {
  if pid_alive "$PIDFILE"; then
    log "Kafka already running (pid $(cat "$PIDFILE")) at $BOOTSTRAP"
    return 0
  fi
  need_cmd "$JAVA" "install a Java 17+ runtime (Debian: apt-get install openjdk-17-jre-headless) and put java on PATH"
  port_free_or_die "$FRESHET_KAFKA_PORT" "the Kafka broker" FRESHET_KAFKA_PORT
  port_free_or_die "$FRESHET_KAFKA_CONTROLLER_PORT" "the Kafka KRaft controller" FRESHET_KAFKA_CONTROLLER_PORT
  port_free_or_die "$FRESHET_KAFKA_POD_PORT" "Kafka's listener for pods" FRESHET_KAFKA_POD_PORT
  fetch
  write_configs
  if [ ! -f "$KAFKA_RUN/data/meta.properties" ]; then
    local cluster_id
    cluster_id=$(kafka_java kafka.tools.StorageTool random-uuid) || die "kafka-storage random-uuid failed" "see the Java error above; rm -rf $KAFKA_HOME to refetch the jars"
    kafka_java kafka.tools.StorageTool format -t "$cluster_id" -c "$KAFKA_RUN/server.properties" >"$KAFKA_RUN/format.log" 2>&1 \
      || { cat "$KAFKA_RUN/format.log" >&2; die "formatting the KRaft store in $KAFKA_RUN/data failed" "rm -rf $KAFKA_RUN and rerun make kafka-up"; }
  fi
  log "starting Kafka $KAFKA_VERSION on $BOOTSTRAP (log: $KAFKA_RUN/server.log)"
  nohup "$JAVA" -Xms256m -Xmx${FRESHET_KAFKA_HEAP:-1g} -XX:+UseG1GC -XX:MaxGCPauseMillis=20 \
    -Dlog4j2.configurationFile="$KAFKA_RUN/log4j2.properties" \
    -cp "$KAFKA_HOME/libs/*" kafka.Kafka "$KAFKA_RUN/server.properties" \
    >"$KAFKA_RUN/stdout.log" 2>&1 </dev/null &
  echo $! >"$PIDFILE"
  if ! wait_until 90 "Kafka is listening on $BOOTSTRAP" port_in_use "$FRESHET_KAFKA_PORT"; then
    tail -n 30 "$KAFKA_RUN/stdout.log" "$KAFKA_RUN/server.log" >&2 2>/dev/null || true
    stop_pidfile "$PIDFILE" kafka
    die "the Kafka broker did not start listening on $BOOTSTRAP within 90 s" "read $KAFKA_RUN/server.log; a stale store is cleared by: make kafka-down && rm -rf $KAFKA_RUN"
  fi
  wait_until 60 "Kafka answers metadata requests at $BOOTSTRAP" answers_metadata \
    || die "Kafka listens on $BOOTSTRAP but does not answer metadata requests within 60 s" "read $KAFKA_RUN/server.log"
}

down() { stop_pidfile "$PIDFILE" kafka; }

case ${1:-} in
  up) up ;;
  down) down ;;
  fetch) fetch ;;
  status) if pid_alive "$PIDFILE"; then echo "kafka: running at $BOOTSTRAP (pid $(cat "$PIDFILE"))"; else echo "kafka: stopped"; exit 1; fi ;;
  tool) shift; fetch; mkdir -p "$KAFKA_RUN"; [ -f "$KAFKA_RUN/log4j2-tools.properties" ] || write_configs; kafka_java "$@" ;;
  *) die "usage: kafka.sh up|down|status|fetch|tool CLASS ARGS..." "pick one of those" ;;
esac
