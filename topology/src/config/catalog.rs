//! The names Freshet knows besides librdkafka's own and the Streams properties it reads
//! (`streams.rs`): Kafka Streams' properties it ignores, client properties it controls, and the
//! Java client properties that librdkafka spells differently.

use super::librdkafka::Applies;

/// Kafka Streams properties that Freshet accepts and ignores, each with the reason given in the
/// warning: a configuration written for Kafka Streams should run unchanged, but nobody should
/// believe a setting took effect when it did not.
pub(crate) static IGNORED_STREAMS: &[(&str, &str)] = &[
    (
        "acceptable.recovery.lag",
        "warm-up replicas are the broker's under group.protocol=streams (group.streams.* settings, as in Kafka Streams, which ignores this there too), and the classic and consumer protocols' assignors place none",
    ),
    (
        "max.warmup.replicas",
        "warm-up replicas are the broker's under group.protocol=streams (group.streams.* settings, as in Kafka Streams, which ignores this there too), and the classic and consumer protocols' assignors place none",
    ),
    (
        "probing.rebalance.interval.ms",
        "warm-up replicas are the broker's under group.protocol=streams (group.streams.* settings, as in Kafka Streams, which ignores this there too), and the classic and consumer protocols' assignors place none",
    ),
    (
        "built.in.metrics.version",
        "Freshet exports its own metrics at /metrics",
    ),
    (
        "default.client.supplier",
        "Freshet's clients are librdkafka's; configure them with client properties",
    ),
    (
        "default.dsl.store",
        "every Freshet store is a RocksDB store under state.dir",
    ),
    (
        "dsl.store.suppliers.class",
        "every Freshet store is a RocksDB store under state.dir",
    ),
    (
        "default.list.key.serde.inner",
        "list serdes are not supported; name serdes in the manifest",
    ),
    (
        "default.list.key.serde.type",
        "list serdes are not supported; name serdes in the manifest",
    ),
    (
        "default.list.value.serde.inner",
        "list serdes are not supported; name serdes in the manifest",
    ),
    (
        "default.list.value.serde.type",
        "list serdes are not supported; name serdes in the manifest",
    ),
    (
        "default.timestamp.extractor",
        "Freshet uses each record's own timestamp, as Kafka Streams' default FailOnInvalidTimestamp does",
    ),
    (
        "log.summary.interval.ms",
        "Freshet reports progress at /metrics",
    ),
    (
        "rack.aware.assignment.non_overlap_cost",
        "partitions are assigned by the consumer group's range assignor, not Kafka Streams' task assignor",
    ),
    (
        "rack.aware.assignment.strategy",
        "partitions are assigned by the consumer group's range assignor, not Kafka Streams' task assignor",
    ),
    (
        "rack.aware.assignment.tags",
        "partitions are assigned by the consumer group's range assignor, not Kafka Streams' task assignor",
    ),
    (
        "rack.aware.assignment.traffic_cost",
        "partitions are assigned by the consumer group's range assignor, not Kafka Streams' task assignor",
    ),
    (
        "task.assignor.class",
        "partitions are assigned by the consumer group's range assignor, not Kafka Streams' task assignor",
    ),
    (
        "internal.task.assignor.class",
        "partitions are assigned by the consumer group's range assignor, not Kafka Streams' task assignor",
    ),
    (
        "rocksdb.config.setter",
        "Java classes cannot run in Freshet; RocksDB is configured by Freshet",
    ),
    (
        "processor.wrapper.class",
        "Java classes cannot run in Freshet",
    ),
    (
        "topology.optimization",
        "Freshet builds the topology as the manifest writes it",
    ),
    (
        "ensure.explicit.internal.resource.naming",
        "Freshet always names internal topics and stores from the manifest, never from generated node names",
    ),
    (
        "upgrade.from",
        "there is no earlier Freshet format to upgrade from",
    ),
    (
        "window.size.ms",
        "windowed serdes are named in the manifest (windowed-<inner>)",
    ),
    (
        "windowed.inner.class.serde",
        "windowed serdes are named in the manifest (windowed-<inner>)",
    ),
    (
        "allow.os.group.write.access",
        "Freshet creates state.dir with the permissions the process's umask gives",
    ),
    (
        "default.interactive.query.isolation.level",
        "Freshet has no interactive queries",
    ),
    (
        "dsl.store.format",
        "every Freshet store is a RocksDB store under state.dir, in Freshet's own format",
    ),
    (
        "enable.transactional.statestores",
        "Freshet's state stores are not transactional; after a failure they are restored from their changelogs",
    ),
    (
        "statestore.uncommitted.max.bytes",
        "Freshet's state stores are not transactional; after a failure they are restored from their changelogs",
    ),
    (
        "processing.exception.handler.global.enabled",
        "Freshet loads global tables into their stores without running processors, so there is nothing for processing.exception.handler to cover there",
    ),
    (
        "state.cleanup.dir.max.age.ms",
        "Freshet deletes the directory of a task it no longer owns after state.cleanup.delay.ms",
    ),
    (
        "topology.description.push.enabled",
        "Freshet does not use Kafka Streams' group protocol (KIP-1071), which the description is pushed for",
    ),
];

pub(crate) fn ignored_streams(name: &str) -> Option<&'static str> {
    IGNORED_STREAMS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, reason)| *reason)
}

/// A client property that Freshet sets itself because Kafka Streams' semantics depend on it.
pub(crate) struct ControlledProp {
    pub name: &'static str,
    /// Why the user may not choose; the error and the warning both quote it.
    pub reason: &'static str,
    /// Values that ask for what Freshet does anyway; they are dropped with a warning rather than
    /// refused, so that a configuration copied from a Kafka Streams application runs.
    pub redundant: Redundant,
}

/// Which values of a controlled property ask for what Freshet does anyway.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Redundant {
    /// These words, compared ignoring case.
    Values(&'static [&'static str]),
    /// The value of `application.id` (`group.id`).
    ApplicationId,
}

const fn controlled_prop(
    name: &'static str,
    reason: &'static str,
    redundant: &'static [&'static str],
) -> ControlledProp {
    ControlledProp {
        name,
        reason,
        redundant: Redundant::Values(redundant),
    }
}

const GROUP_ID: &str =
    "the consumer group is application.id, as in Kafka Streams; set application.id instead";
const AUTO_COMMIT: &str = "Freshet commits offsets itself once the records' results are written, as Kafka Streams does; auto-commit would commit records not yet processed";
const OFFSET_STORE: &str = "Freshet commits the offsets of processed records explicitly; an automatic offset store would mark records as consumed before their results are written";
const PARTITION_EOF: &str = "the stream thread tracks how far each partition has been read itself, and end-of-partition events would reach it as errors";
const TRANSACTIONAL_ID: &str = "under exactly_once_v2 each stream thread's producer gets `<application.id>-<instance>-<thread>`, stable across restarts so that a restarted instance fences the dead one's open transaction at once; under at_least_once producers are not transactional";
const PARTITIONER: &str = "every producer uses murmur2_random, the Java producer's default, so that repartition and sink topics place each key where Java clients and Kafka Streams would";
const ASSIGNMENT: &str = "co-partitioned topics need partition N of each on the same instance, which the range assignor gives (librdkafka's with group.protocol=classic, the broker's with group.protocol=consumer)";
const GROUP_PROTOCOL_TYPE: &str = "librdkafka supports only the `consumer` protocol type; choose the protocol with group.protocol";
const TWO_PHASE_COMMIT: &str = "two-phase commit (KIP-939) hands a producer's transactions to an external coordinator; Freshet's stream threads commit their own transactions, as Kafka Streams does";

pub(crate) static CONTROLLED: &[ControlledProp] = &[
    ControlledProp {
        name: "group.id",
        reason: GROUP_ID,
        redundant: Redundant::ApplicationId,
    },
    controlled_prop("enable.auto.commit", AUTO_COMMIT, &["false"]),
    controlled_prop("auto.commit.enable", AUTO_COMMIT, &["false"]),
    controlled_prop("enable.auto.offset.store", OFFSET_STORE, &["false"]),
    controlled_prop("enable.partition.eof", PARTITION_EOF, &["false"]),
    controlled_prop("transactional.id", TRANSACTIONAL_ID, &[]),
    controlled_prop("partitioner", PARTITIONER, &["murmur2_random"]),
    controlled_prop("partitioner.class", PARTITIONER, &[]),
    controlled_prop("partitioner.ignore.keys", PARTITIONER, &["false"]),
    controlled_prop(
        "partition.assignment.strategy",
        ASSIGNMENT,
        &["range", "org.apache.kafka.clients.consumer.RangeAssignor"],
    ),
    controlled_prop("group.remote.assignor", ASSIGNMENT, &["range"]),
    controlled_prop("group.protocol.type", GROUP_PROTOCOL_TYPE, &["consumer"]),
    controlled_prop(
        "transaction.two.phase.commit.enable",
        TWO_PHASE_COMMIT,
        &["false"],
    ),
];

pub(crate) fn controlled(name: &str) -> Option<&'static ControlledProp> {
    CONTROLLED.iter().find(|p| p.name == name)
}

/// How a Java client property becomes librdkafka's.
#[derive(Clone, Copy, Debug)]
pub(crate) enum JavaRule {
    /// The same meaning and unit under another name.
    Rename(&'static str),
    /// Bytes in Java, kilobytes in librdkafka (`buffer.memory` → `queue.buffering.max.kbytes`).
    BufferMemory,
    /// Java's -1 for "the operating system's default" is librdkafka's 0.
    SocketBuffer(&'static str),
    /// `sasl.jaas.config` → `sasl.username` and `sasl.password`.
    Jaas,
    /// `ssl.keystore.type`: librdkafka reads PKCS#12 keystores (and PEM through other names).
    KeystoreType,
    /// No librdkafka equivalent and harmless to drop: a warning with this reason.
    Ignore(&'static str),
    /// No librdkafka equivalent and dangerous to drop: an error with this fix.
    Refuse(&'static str),
}

const JAVA_ONLY: &str = "a Java client setting with no librdkafka equivalent";
const JAVA_TLS: &str = "a Java TLS setting; librdkafka uses OpenSSL's";
const TRUSTSTORE: &str = "librdkafka reads no Java trust store: export the CA certificates as PEM (`keytool -exportcert -rfc`) and set ssl.ca.location (or ssl.ca.pem)";
const SERIALIZERS: &str =
    "Freshet's serdes come from default.key.serde, default.value.serde and the manifest";
const JAVA_CLASSES: &str = "Java classes cannot run in Freshet";
const METRICS: &str = "Freshet exports its own metrics at /metrics";
const CONFIG_PROVIDERS: &str = "config providers are Java classes, and `${provider:key}` values would reach librdkafka as written; put secrets in FRESHET_CONFIG_* variables from a Kubernetes Secret instead";
const SHARE_GROUPS: &str = "share groups (KIP-932) are not used by Kafka Streams";
const KERBEROS_RENEWAL: &str = "librdkafka renews Kerberos tickets with sasl.kerberos.kinit.cmd every sasl.kerberos.min.time.before.relogin";
const JAVA_LOGIN: &str =
    "a setting of Java's SASL login; librdkafka logs in and refreshes OAUTHBEARER tokens itself";
const TOKEN_VALIDATION: &str = "it validates OAUTHBEARER tokens, which clients leave to the broker";

/// A Java client property that librdkafka spells differently or lacks.
pub(crate) struct JavaProp {
    pub name: &'static str,
    /// The clients an unprefixed setting reaches.
    pub applies: Applies,
    pub rule: JavaRule,
    /// Whether the value is a secret (never shown in errors or `Debug` output).
    pub sensitive: bool,
}

const fn plain(name: &'static str, applies: Applies, rule: JavaRule) -> JavaProp {
    JavaProp {
        name,
        applies,
        rule,
        sensitive: false,
    }
}

/// A Java client property whose value is a secret.
const fn secret(name: &'static str, applies: Applies, rule: JavaRule) -> JavaProp {
    JavaProp {
        sensitive: true,
        ..plain(name, applies, rule)
    }
}

/// Java client properties whose librdkafka spelling or value differs, or that librdkafka lacks.
/// Java names that librdkafka shares (`session.timeout.ms`, `linger.ms`, `acks`, ...) are not
/// here: they are librdkafka properties too.
pub(crate) static JAVA: &[JavaProp] = &[
    plain(
        "fetch.max.wait.ms",
        Applies::Consumer,
        JavaRule::Rename("fetch.wait.max.ms"),
    ),
    plain("buffer.memory", Applies::Producer, JavaRule::BufferMemory),
    plain(
        "max.request.size",
        Applies::Producer,
        JavaRule::Rename("message.max.bytes"),
    ),
    plain(
        "receive.buffer.bytes",
        Applies::Both,
        JavaRule::SocketBuffer("socket.receive.buffer.bytes"),
    ),
    plain(
        "send.buffer.bytes",
        Applies::Both,
        JavaRule::SocketBuffer("socket.send.buffer.bytes"),
    ),
    secret("sasl.jaas.config", Applies::Both, JavaRule::Jaas),
    plain(
        "ssl.truststore.location",
        Applies::Both,
        JavaRule::Refuse(TRUSTSTORE),
    ),
    secret(
        "ssl.truststore.password",
        Applies::Both,
        JavaRule::Refuse(TRUSTSTORE),
    ),
    plain(
        "ssl.truststore.type",
        Applies::Both,
        JavaRule::Ignore("librdkafka reads CA certificates as PEM (ssl.ca.location, ssl.ca.pem)"),
    ),
    plain(
        "ssl.truststore.certificates",
        Applies::Both,
        JavaRule::Rename("ssl.ca.pem"),
    ),
    plain("ssl.keystore.type", Applies::Both, JavaRule::KeystoreType),
    plain(
        "ssl.keystore.certificate.chain",
        Applies::Both,
        JavaRule::Rename("ssl.certificate.pem"),
    ),
    secret(
        "ssl.keystore.key",
        Applies::Both,
        JavaRule::Rename("ssl.key.pem"),
    ),
    plain("ssl.protocol", Applies::Both, JavaRule::Ignore(JAVA_TLS)),
    plain(
        "ssl.enabled.protocols",
        Applies::Both,
        JavaRule::Ignore(JAVA_TLS),
    ),
    plain(
        "ssl.keymanager.algorithm",
        Applies::Both,
        JavaRule::Ignore(JAVA_TLS),
    ),
    plain(
        "ssl.trustmanager.algorithm",
        Applies::Both,
        JavaRule::Ignore(JAVA_TLS),
    ),
    plain(
        "ssl.secure.random.implementation",
        Applies::Both,
        JavaRule::Ignore(JAVA_TLS),
    ),
    plain("ssl.provider", Applies::Both, JavaRule::Ignore(JAVA_TLS)),
    plain(
        "ssl.engine.factory.class",
        Applies::Both,
        JavaRule::Refuse(JAVA_CLASSES),
    ),
    plain(
        "security.providers",
        Applies::Both,
        JavaRule::Ignore(JAVA_TLS),
    ),
    plain(
        "sasl.client.callback.handler.class",
        Applies::Both,
        JavaRule::Refuse(JAVA_CLASSES),
    ),
    plain(
        "sasl.login.callback.handler.class",
        Applies::Both,
        JavaRule::Refuse(JAVA_CLASSES),
    ),
    plain(
        "sasl.login.class",
        Applies::Both,
        JavaRule::Refuse(JAVA_CLASSES),
    ),
    plain(
        "key.serializer",
        Applies::Producer,
        JavaRule::Ignore(SERIALIZERS),
    ),
    plain(
        "value.serializer",
        Applies::Producer,
        JavaRule::Ignore(SERIALIZERS),
    ),
    plain(
        "key.deserializer",
        Applies::Consumer,
        JavaRule::Ignore(SERIALIZERS),
    ),
    plain(
        "value.deserializer",
        Applies::Consumer,
        JavaRule::Ignore(SERIALIZERS),
    ),
    plain(
        "max.poll.records",
        Applies::Consumer,
        JavaRule::Ignore(
            "librdkafka's consumer has no poll batch size; Freshet buffers up to buffered.records.per.partition records per partition",
        ),
    ),
    plain(
        "interceptor.classes",
        Applies::Both,
        JavaRule::Ignore(JAVA_CLASSES),
    ),
    plain("metric.reporters", Applies::Both, JavaRule::Ignore(METRICS)),
    plain(
        "metrics.num.samples",
        Applies::Both,
        JavaRule::Ignore(METRICS),
    ),
    plain(
        "metrics.sample.window.ms",
        Applies::Both,
        JavaRule::Ignore(METRICS),
    ),
    plain(
        "auto.include.jmx.reporter",
        Applies::Both,
        JavaRule::Ignore(METRICS),
    ),
    plain(
        "default.api.timeout.ms",
        Applies::Consumer,
        JavaRule::Ignore(JAVA_ONLY),
    ),
    plain(
        "max.block.ms",
        Applies::Producer,
        JavaRule::Ignore(
            "librdkafka's produce call never blocks: a full queue is reported at once",
        ),
    ),
    plain(
        "exclude.internal.topics",
        Applies::Consumer,
        JavaRule::Ignore(JAVA_ONLY),
    ),
    plain(
        "metadata.max.idle.ms",
        Applies::Producer,
        JavaRule::Ignore(JAVA_ONLY),
    ),
    plain(
        "socket.connection.setup.timeout.max.ms",
        Applies::Both,
        JavaRule::Ignore(JAVA_ONLY),
    ),
    plain(
        "partitioner.adaptive.partitioning.enable",
        Applies::Producer,
        JavaRule::Ignore(
            "it affects only records without a key, which murmur2_random spreads at random",
        ),
    ),
    plain(
        "partitioner.availability.timeout.ms",
        Applies::Producer,
        JavaRule::Ignore(
            "it affects only records without a key, which murmur2_random spreads at random",
        ),
    ),
    plain(
        "compression.gzip.level",
        Applies::Producer,
        JavaRule::Rename("compression.level"),
    ),
    plain(
        "compression.lz4.level",
        Applies::Producer,
        JavaRule::Rename("compression.level"),
    ),
    plain(
        "compression.zstd.level",
        Applies::Producer,
        JavaRule::Rename("compression.level"),
    ),
    plain(
        "config.providers",
        Applies::Both,
        JavaRule::Refuse(CONFIG_PROVIDERS),
    ),
    plain(
        "bootstrap.controllers",
        Applies::Both,
        JavaRule::Ignore("Freshet's admin client talks to the brokers of bootstrap.servers"),
    ),
    plain(
        "bootstrap.resolve.timeout.ms",
        Applies::Both,
        JavaRule::Ignore(JAVA_ONLY),
    ),
    plain(
        "metadata.cluster.check.enable",
        Applies::Both,
        JavaRule::Ignore(JAVA_ONLY),
    ),
    plain(
        "internal.throw.on.fetch.stable.offset.unsupported",
        Applies::Consumer,
        JavaRule::Ignore(JAVA_ONLY),
    ),
    plain(
        "buffer.memory.allocation.strategy",
        Applies::Producer,
        JavaRule::Ignore(JAVA_ONLY),
    ),
    plain(
        "partitioner.rack.aware",
        Applies::Producer,
        JavaRule::Ignore(
            "it affects only records without a key, which murmur2_random spreads at random",
        ),
    ),
    plain(
        "share.acknowledgement.mode",
        Applies::Consumer,
        JavaRule::Ignore(SHARE_GROUPS),
    ),
    plain(
        "share.acquire.mode",
        Applies::Consumer,
        JavaRule::Ignore(SHARE_GROUPS),
    ),
    plain(
        "sasl.kerberos.ticket.renew.jitter",
        Applies::Both,
        JavaRule::Ignore(KERBEROS_RENEWAL),
    ),
    plain(
        "sasl.kerberos.ticket.renew.window.factor",
        Applies::Both,
        JavaRule::Ignore(KERBEROS_RENEWAL),
    ),
    plain(
        "sasl.login.connect.timeout.ms",
        Applies::Both,
        JavaRule::Ignore(JAVA_LOGIN),
    ),
    plain(
        "sasl.login.read.timeout.ms",
        Applies::Both,
        JavaRule::Ignore(JAVA_LOGIN),
    ),
    plain(
        "sasl.login.refresh.buffer.seconds",
        Applies::Both,
        JavaRule::Ignore(JAVA_LOGIN),
    ),
    plain(
        "sasl.login.refresh.min.period.seconds",
        Applies::Both,
        JavaRule::Ignore(JAVA_LOGIN),
    ),
    plain(
        "sasl.login.refresh.window.factor",
        Applies::Both,
        JavaRule::Ignore(JAVA_LOGIN),
    ),
    plain(
        "sasl.login.refresh.window.jitter",
        Applies::Both,
        JavaRule::Ignore(JAVA_LOGIN),
    ),
    plain(
        "sasl.login.retry.backoff.max.ms",
        Applies::Both,
        JavaRule::Ignore(JAVA_LOGIN),
    ),
    plain(
        "sasl.login.retry.backoff.ms",
        Applies::Both,
        JavaRule::Ignore(JAVA_LOGIN),
    ),
    plain(
        "sasl.oauthbearer.assertion.template.file",
        Applies::Both,
        JavaRule::Rename("sasl.oauthbearer.assertion.jwt.template.file"),
    ),
    plain(
        "sasl.oauthbearer.header.urlencode",
        Applies::Both,
        JavaRule::Ignore(JAVA_ONLY),
    ),
    plain(
        "sasl.oauthbearer.jwt.retriever.class",
        Applies::Both,
        JavaRule::Refuse(JAVA_CLASSES),
    ),
    plain(
        "sasl.oauthbearer.jwt.validator.class",
        Applies::Both,
        JavaRule::Refuse(JAVA_CLASSES),
    ),
    plain(
        "sasl.oauthbearer.allow.unverified.audience",
        Applies::Both,
        JavaRule::Ignore(TOKEN_VALIDATION),
    ),
    plain(
        "sasl.oauthbearer.allow.unverified.issuer",
        Applies::Both,
        JavaRule::Ignore(TOKEN_VALIDATION),
    ),
    plain(
        "sasl.oauthbearer.clock.skew.seconds",
        Applies::Both,
        JavaRule::Ignore(TOKEN_VALIDATION),
    ),
    plain(
        "sasl.oauthbearer.expected.audience",
        Applies::Both,
        JavaRule::Ignore(TOKEN_VALIDATION),
    ),
    plain(
        "sasl.oauthbearer.expected.issuer",
        Applies::Both,
        JavaRule::Ignore(TOKEN_VALIDATION),
    ),
    plain(
        "sasl.oauthbearer.jwks.endpoint.refresh.ms",
        Applies::Both,
        JavaRule::Ignore(TOKEN_VALIDATION),
    ),
    plain(
        "sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms",
        Applies::Both,
        JavaRule::Ignore(TOKEN_VALIDATION),
    ),
    plain(
        "sasl.oauthbearer.jwks.endpoint.retry.backoff.ms",
        Applies::Both,
        JavaRule::Ignore(TOKEN_VALIDATION),
    ),
    plain(
        "sasl.oauthbearer.jwks.endpoint.url",
        Applies::Both,
        JavaRule::Ignore(TOKEN_VALIDATION),
    ),
    plain(
        "sasl.oauthbearer.scope.claim.name",
        Applies::Both,
        JavaRule::Ignore(TOKEN_VALIDATION),
    ),
    plain(
        "sasl.oauthbearer.sub.claim.name",
        Applies::Both,
        JavaRule::Ignore(TOKEN_VALIDATION),
    ),
];

pub(crate) fn java(name: &str) -> Option<&'static JavaProp> {
    JAVA.iter().find(|p| p.name == name)
}
