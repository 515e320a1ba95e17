//! The names Freshet knows besides librdkafka's own: Kafka Streams' properties (understood,
//! ignored, or controlled by Freshet) and the Java client properties that librdkafka spells
//! differently.

use super::librdkafka::Applies;

/// A Kafka Streams (or Freshet) property that Freshet reads itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) enum StreamsKey {
    ApplicationId,
    BootstrapServers,
    ClientId,
    NumStreamThreads,
    StateDir,
    ProcessingGuarantee,
    CommitInterval,
    DefaultKeySerde,
    DefaultValueSerde,
    DeserializationHandler,
    ProcessingHandler,
    ProductionHandler,
    DeadLetterTopic,
    CacheMaxBytes,
    ReplicationFactor,
    NumStandbyReplicas,
    MaxTaskIdle,
    Poll,
    BufferedRecords,
    TaskTimeout,
    GroupInstanceId,
    ApplicationServer,
    MetricsRecordingLevel,
    GroupProtocol,
    WindowStoreAdditionalRetention,
    RepartitionPurgeInterval,
    HttpPort,
    RocksDbBlockCacheBytes,
    RocksDbWriteBufferBytes,
    StateCleanupDelay,
    OuterJoinEmitInterval,
}

impl StreamsKey {
    /// The name users are told to write.
    pub(crate) fn name(self) -> &'static str {
        STREAMS
            .iter()
            .find(|p| p.key == self && p.replaced_by.is_none())
            .map_or("?", |p| p.name)
    }
}

/// A name for a [`StreamsKey`].
pub(crate) struct StreamsProp {
    pub name: &'static str,
    pub key: StreamsKey,
    /// Set for an older spelling: it still works, but loses to the current name written in the
    /// same layer, as Kafka Streams prefers the new name when both are set.
    pub replaced_by: Option<&'static str>,
    /// Whether using the older spelling deserves a warning (a deprecated Kafka Streams name does;
    /// librdkafka's own spelling of `bootstrap.servers` does not).
    pub deprecated: bool,
}

const fn current(name: &'static str, key: StreamsKey) -> StreamsProp {
    StreamsProp {
        name,
        key,
        replaced_by: None,
        deprecated: false,
    }
}

const fn older(name: &'static str, key: StreamsKey, replaced_by: &'static str) -> StreamsProp {
    StreamsProp {
        name,
        key,
        replaced_by: Some(replaced_by),
        deprecated: true,
    }
}

/// Freshet's own property for the port of `/healthz`, `/readyz` and `/metrics`; Kafka Streams has
/// no HTTP server, so the name is Freshet's.
pub(crate) const HTTP_PORT: &str = "freshet.http.port";

pub(crate) static STREAMS: &[StreamsProp] = &[
    current("application.id", StreamsKey::ApplicationId),
    current("bootstrap.servers", StreamsKey::BootstrapServers),
    StreamsProp {
        name: "metadata.broker.list",
        key: StreamsKey::BootstrapServers,
        replaced_by: Some("bootstrap.servers"),
        deprecated: false,
    },
    current("client.id", StreamsKey::ClientId),
    current("num.stream.threads", StreamsKey::NumStreamThreads),
    current("state.dir", StreamsKey::StateDir),
    current("processing.guarantee", StreamsKey::ProcessingGuarantee),
    current("commit.interval.ms", StreamsKey::CommitInterval),
    current("default.key.serde", StreamsKey::DefaultKeySerde),
    current("default.value.serde", StreamsKey::DefaultValueSerde),
    current(
        "deserialization.exception.handler",
        StreamsKey::DeserializationHandler,
    ),
    older(
        "default.deserialization.exception.handler",
        StreamsKey::DeserializationHandler,
        "deserialization.exception.handler",
    ),
    current(
        "processing.exception.handler",
        StreamsKey::ProcessingHandler,
    ),
    current(
        "production.exception.handler",
        StreamsKey::ProductionHandler,
    ),
    older(
        "default.production.exception.handler",
        StreamsKey::ProductionHandler,
        "production.exception.handler",
    ),
    current(
        "errors.dead.letter.queue.topic.name",
        StreamsKey::DeadLetterTopic,
    ),
    current("statestore.cache.max.bytes", StreamsKey::CacheMaxBytes),
    older(
        "cache.max.bytes.buffering",
        StreamsKey::CacheMaxBytes,
        "statestore.cache.max.bytes",
    ),
    current("replication.factor", StreamsKey::ReplicationFactor),
    current("num.standby.replicas", StreamsKey::NumStandbyReplicas),
    current("max.task.idle.ms", StreamsKey::MaxTaskIdle),
    current("poll.ms", StreamsKey::Poll),
    current(
        "buffered.records.per.partition",
        StreamsKey::BufferedRecords,
    ),
    current("task.timeout.ms", StreamsKey::TaskTimeout),
    current("group.instance.id", StreamsKey::GroupInstanceId),
    current("application.server", StreamsKey::ApplicationServer),
    current("metrics.recording.level", StreamsKey::MetricsRecordingLevel),
    current("group.protocol", StreamsKey::GroupProtocol),
    current(
        "windowstore.changelog.additional.retention.ms",
        StreamsKey::WindowStoreAdditionalRetention,
    ),
    current(
        "repartition.purge.interval.ms",
        StreamsKey::RepartitionPurgeInterval,
    ),
    current(HTTP_PORT, StreamsKey::HttpPort),
    current("state.cleanup.delay.ms", StreamsKey::StateCleanupDelay),
    // Kafka Streams' internal setting, under its own name so that a test can set it on both.
    current(
        "__emit.interval.ms.kstreams.outer.join.spurious.results.fix__",
        StreamsKey::OuterJoinEmitInterval,
    ),
    // RocksDB's memory is one budget per process (Kafka Streams needs a `rocksdb.config.setter`
    // class for this); the names are Freshet's.
    current(
        "freshet.rocksdb.block.cache.bytes",
        StreamsKey::RocksDbBlockCacheBytes,
    ),
    current(
        "freshet.rocksdb.write.buffer.bytes",
        StreamsKey::RocksDbWriteBufferBytes,
    ),
];

pub(crate) fn streams_property(name: &str) -> Option<&'static StreamsProp> {
    STREAMS.iter().find(|p| p.name == name)
}

/// Kafka Streams properties that Freshet accepts and ignores, each with the reason given in the
/// warning: a configuration written for Kafka Streams should run unchanged, but nobody should
/// believe a setting took effect when it did not.
pub(crate) static IGNORED_STREAMS: &[(&str, &str)] = &[
    (
        "acceptable.recovery.lag",
        "standby and warm-up replicas are not supported yet",
    ),
    (
        "max.warmup.replicas",
        "standby and warm-up replicas are not supported yet",
    ),
    (
        "probing.rebalance.interval.ms",
        "standby and warm-up replicas are not supported yet",
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
];

pub(crate) fn ignored_streams(name: &str) -> Option<&'static str> {
    IGNORED_STREAMS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, reason)| *reason)
}

/// A client property that Freshet sets itself because Kafka Streams' semantics depend on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Controlled {
    GroupId,
    AutoCommit,
    OffsetStore,
    PartitionEof,
    TransactionalId,
    Partitioner,
    AssignmentStrategy,
    GroupProtocolType,
}

pub(crate) struct ControlledProp {
    pub name: &'static str,
    pub what: Controlled,
    /// Values that ask for what Freshet does anyway; they are dropped with a warning rather than
    /// refused, so that a configuration copied from a Kafka Streams application runs.
    pub redundant: &'static [&'static str],
}

pub(crate) static CONTROLLED: &[ControlledProp] = &[
    ControlledProp {
        name: "group.id",
        what: Controlled::GroupId,
        redundant: &[],
    },
    ControlledProp {
        name: "enable.auto.commit",
        what: Controlled::AutoCommit,
        redundant: &["false"],
    },
    ControlledProp {
        name: "auto.commit.enable",
        what: Controlled::AutoCommit,
        redundant: &["false"],
    },
    ControlledProp {
        name: "enable.auto.offset.store",
        what: Controlled::OffsetStore,
        redundant: &["false"],
    },
    ControlledProp {
        name: "enable.partition.eof",
        what: Controlled::PartitionEof,
        redundant: &["false"],
    },
    ControlledProp {
        name: "transactional.id",
        what: Controlled::TransactionalId,
        redundant: &[],
    },
    ControlledProp {
        name: "partitioner",
        what: Controlled::Partitioner,
        redundant: &["murmur2_random"],
    },
    ControlledProp {
        name: "partitioner.class",
        what: Controlled::Partitioner,
        redundant: &[],
    },
    ControlledProp {
        name: "partitioner.ignore.keys",
        what: Controlled::Partitioner,
        redundant: &["false"],
    },
    ControlledProp {
        name: "partition.assignment.strategy",
        what: Controlled::AssignmentStrategy,
        redundant: &["range", "org.apache.kafka.clients.consumer.RangeAssignor"],
    },
    ControlledProp {
        name: "group.remote.assignor",
        what: Controlled::AssignmentStrategy,
        redundant: &["range"],
    },
    ControlledProp {
        name: "group.protocol.type",
        what: Controlled::GroupProtocolType,
        redundant: &["consumer"],
    },
];

impl Controlled {
    /// Why the user may not choose; the error and the warning both quote it.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            Controlled::GroupId => {
                "the consumer group is application.id, as in Kafka Streams; set application.id instead"
            }
            Controlled::AutoCommit => {
                "Freshet commits offsets itself once the records' results are written, as Kafka Streams does; auto-commit would commit records not yet processed"
            }
            Controlled::OffsetStore => {
                "Freshet commits the offsets of processed records explicitly; an automatic offset store would mark records as consumed before their results are written"
            }
            Controlled::PartitionEof => {
                "the stream thread tracks how far each partition has been read itself, and end-of-partition events would reach it as errors"
            }
            Controlled::TransactionalId => {
                "under exactly_once_v2 each stream thread's producer gets `<application.id>-<instance>-<thread>`, stable across restarts so that a restarted instance fences the dead one's open transaction at once; under at_least_once producers are not transactional"
            }
            Controlled::Partitioner => {
                "every producer uses murmur2_random, the Java producer's default, so that repartition and sink topics place each key where Java clients and Kafka Streams would"
            }
            Controlled::AssignmentStrategy => {
                "co-partitioned topics need partition N of each on the same instance, which the range assignor gives (librdkafka's with group.protocol=classic, the broker's with group.protocol=consumer)"
            }
            Controlled::GroupProtocolType => {
                "librdkafka supports only the `consumer` protocol type; choose the protocol with group.protocol"
            }
        }
    }
}

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

/// Java client properties whose librdkafka spelling or value differs, or that librdkafka lacks.
/// Java names that librdkafka shares (`session.timeout.ms`, `linger.ms`, `acks`, ...) are not
/// here: they are librdkafka properties too.
pub(crate) static JAVA: &[(&str, Applies, JavaRule)] = &[
    (
        "fetch.max.wait.ms",
        Applies::Consumer,
        JavaRule::Rename("fetch.wait.max.ms"),
    ),
    ("buffer.memory", Applies::Producer, JavaRule::BufferMemory),
    (
        "max.request.size",
        Applies::Producer,
        JavaRule::Rename("message.max.bytes"),
    ),
    (
        "receive.buffer.bytes",
        Applies::Both,
        JavaRule::SocketBuffer("socket.receive.buffer.bytes"),
    ),
    (
        "send.buffer.bytes",
        Applies::Both,
        JavaRule::SocketBuffer("socket.send.buffer.bytes"),
    ),
    ("sasl.jaas.config", Applies::Both, JavaRule::Jaas),
    (
        "ssl.truststore.location",
        Applies::Both,
        JavaRule::Refuse(TRUSTSTORE),
    ),
    (
        "ssl.truststore.password",
        Applies::Both,
        JavaRule::Refuse(TRUSTSTORE),
    ),
    (
        "ssl.truststore.type",
        Applies::Both,
        JavaRule::Ignore("librdkafka reads CA certificates as PEM (ssl.ca.location, ssl.ca.pem)"),
    ),
    (
        "ssl.truststore.certificates",
        Applies::Both,
        JavaRule::Rename("ssl.ca.pem"),
    ),
    ("ssl.keystore.type", Applies::Both, JavaRule::KeystoreType),
    (
        "ssl.keystore.certificate.chain",
        Applies::Both,
        JavaRule::Rename("ssl.certificate.pem"),
    ),
    (
        "ssl.keystore.key",
        Applies::Both,
        JavaRule::Rename("ssl.key.pem"),
    ),
    ("ssl.protocol", Applies::Both, JavaRule::Ignore(JAVA_TLS)),
    (
        "ssl.enabled.protocols",
        Applies::Both,
        JavaRule::Ignore(JAVA_TLS),
    ),
    (
        "ssl.keymanager.algorithm",
        Applies::Both,
        JavaRule::Ignore(JAVA_TLS),
    ),
    (
        "ssl.trustmanager.algorithm",
        Applies::Both,
        JavaRule::Ignore(JAVA_TLS),
    ),
    (
        "ssl.secure.random.implementation",
        Applies::Both,
        JavaRule::Ignore(JAVA_TLS),
    ),
    ("ssl.provider", Applies::Both, JavaRule::Ignore(JAVA_TLS)),
    (
        "ssl.engine.factory.class",
        Applies::Both,
        JavaRule::Refuse(JAVA_CLASSES),
    ),
    (
        "security.providers",
        Applies::Both,
        JavaRule::Ignore(JAVA_TLS),
    ),
    (
        "sasl.client.callback.handler.class",
        Applies::Both,
        JavaRule::Refuse(JAVA_CLASSES),
    ),
    (
        "sasl.login.callback.handler.class",
        Applies::Both,
        JavaRule::Refuse(JAVA_CLASSES),
    ),
    (
        "sasl.login.class",
        Applies::Both,
        JavaRule::Refuse(JAVA_CLASSES),
    ),
    (
        "key.serializer",
        Applies::Producer,
        JavaRule::Ignore(SERIALIZERS),
    ),
    (
        "value.serializer",
        Applies::Producer,
        JavaRule::Ignore(SERIALIZERS),
    ),
    (
        "key.deserializer",
        Applies::Consumer,
        JavaRule::Ignore(SERIALIZERS),
    ),
    (
        "value.deserializer",
        Applies::Consumer,
        JavaRule::Ignore(SERIALIZERS),
    ),
    (
        "max.poll.records",
        Applies::Consumer,
        JavaRule::Ignore(
            "librdkafka's consumer has no poll batch size; Freshet buffers up to buffered.records.per.partition records per partition",
        ),
    ),
    (
        "interceptor.classes",
        Applies::Both,
        JavaRule::Ignore(JAVA_CLASSES),
    ),
    ("metric.reporters", Applies::Both, JavaRule::Ignore(METRICS)),
    (
        "metrics.num.samples",
        Applies::Both,
        JavaRule::Ignore(METRICS),
    ),
    (
        "metrics.sample.window.ms",
        Applies::Both,
        JavaRule::Ignore(METRICS),
    ),
    (
        "auto.include.jmx.reporter",
        Applies::Both,
        JavaRule::Ignore(METRICS),
    ),
    (
        "default.api.timeout.ms",
        Applies::Consumer,
        JavaRule::Ignore(JAVA_ONLY),
    ),
    (
        "max.block.ms",
        Applies::Producer,
        JavaRule::Ignore(
            "librdkafka's produce call never blocks: a full queue is reported at once",
        ),
    ),
    (
        "exclude.internal.topics",
        Applies::Consumer,
        JavaRule::Ignore(JAVA_ONLY),
    ),
    (
        "metadata.max.idle.ms",
        Applies::Producer,
        JavaRule::Ignore(JAVA_ONLY),
    ),
    (
        "socket.connection.setup.timeout.max.ms",
        Applies::Both,
        JavaRule::Ignore(JAVA_ONLY),
    ),
    (
        "partitioner.adaptive.partitioning.enable",
        Applies::Producer,
        JavaRule::Ignore(
            "it affects only records without a key, which murmur2_random spreads at random",
        ),
    ),
    (
        "partitioner.availability.timeout.ms",
        Applies::Producer,
        JavaRule::Ignore(
            "it affects only records without a key, which murmur2_random spreads at random",
        ),
    ),
    (
        "compression.gzip.level",
        Applies::Producer,
        JavaRule::Rename("compression.level"),
    ),
    (
        "compression.lz4.level",
        Applies::Producer,
        JavaRule::Rename("compression.level"),
    ),
    (
        "compression.zstd.level",
        Applies::Producer,
        JavaRule::Rename("compression.level"),
    ),
];

pub(crate) fn java(name: &str) -> Option<(Applies, JavaRule)> {
    JAVA.iter()
        .find(|(n, _, _)| *n == name)
        .map(|(_, applies, rule)| (*applies, *rule))
}
