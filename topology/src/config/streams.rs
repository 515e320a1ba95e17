//! Every Kafka Streams (and Freshet) property Freshet reads, one declaration each; see
//! [`streams_properties!`](super::define) for what a declaration generates.

use std::path::PathBuf;
use std::time::Duration;

use super::define::{Fallback, deprecated, spec_fields, streams_properties, synonym};
use super::parse::{self, HandlerKind};
use super::{
    ErrorHandler, GroupProtocol, Layer, LayerSource, MetricsRecordingLevel, ProcessingGuarantee,
};

spec_fields! {
    application_id: String => "application.id" as "applicationId",
    bootstrap_servers: String => "bootstrap.servers" as "bootstrapServers",
    num_stream_threads: u32 => "num.stream.threads" as "numStreamThreads",
    state_dir: String => "state.dir" as "stateDir",
    processing_guarantee: String => "processing.guarantee" as "processingGuarantee",
    default_key_serde: String => "default.key.serde" as "defaultKeySerde",
    default_value_serde: String => "default.value.serde" as "defaultValueSerde",
}

streams_properties! {
    /// Names the consumer group and prefixes every internal topic.
    application_id: String = "application.id" {
        env: ["FRESHET_APPLICATION_ID"],
        parse: parse::application_id,
        default: Fallback::Required(
            "set spec.applicationId (or FRESHET_APPLICATION_ID); it names the consumer group and prefixes every internal topic",
        ),
    }
    /// Comma-separated, without blanks, as librdkafka wants it.
    bootstrap_servers: String = "bootstrap.servers" {
        aliases: [synonym("metadata.broker.list")],
        env: ["FRESHET_BOOTSTRAP_SERVERS"],
        prefixed: "Freshet's clients all talk to one cluster: set bootstrap.servers without a prefix",
        parse: parse::bootstrap_servers,
        default: Fallback::Required(
            "set spec.bootstrapServers (or FRESHET_BOOTSTRAP_SERVERS), e.g. kafka:9092",
        ),
    }
    /// The prefix of every client's id, as in Kafka Streams.
    client_id: Option<String> = "client.id" {
        prefixed: "each client's id is derived from client.id, as in Kafka Streams: set client.id without a prefix",
        parse: parse::optional_text,
        default: Fallback::Of(|_| None),
    }
    /// Stream threads of this instance.
    num_stream_threads: usize = "num.stream.threads" {
        env: ["FRESHET_NUM_STREAM_THREADS", "FRESHET_THREADS"],
        parse: parse::num_stream_threads,
        default: Fallback::Of(|_| 1),
    }
    /// Where the state stores live (`<tmp>/kafka-streams` by default, as in Kafka Streams).
    state_dir: PathBuf = "state.dir" {
        env: ["FRESHET_STATE_DIR"],
        parse: parse::state_dir,
        default: Fallback::Of(|_| std::env::temp_dir().join("kafka-streams")),
    }
    /// `at_least_once` or `exactly_once_v2`.
    processing_guarantee: ProcessingGuarantee = "processing.guarantee" {
        env: ["FRESHET_PROCESSING_GUARANTEE"],
        parse: parse::processing_guarantee,
        default: Fallback::Of(|_| ProcessingGuarantee::AtLeastOnce),
    }
    /// How often offsets (and under exactly-once, transactions) are committed. Kafka Streams
    /// commits every 100 ms under exactly-once unless told otherwise, since downstream
    /// read_committed consumers see nothing until the transaction commits; else every 30 s.
    commit_interval: Duration = "commit.interval.ms" {
        parse: parse::millis,
        default: Fallback::Of(|guarantee| match guarantee {
            ProcessingGuarantee::ExactlyOnceV2 => Duration::from_millis(100),
            ProcessingGuarantee::AtLeastOnce => Duration::from_millis(30_000),
        }),
    }
    /// Serde names in Freshet's spelling (`string`, `windowed-string`, ...). `bytes` when not
    /// set: Kafka Streams has no default serde, and bytes pass records through unchanged rather
    /// than guessing at their format.
    default_key_serde: String = "default.key.serde" {
        parse: parse::serde,
        default: Fallback::Of(|_| "bytes".to_owned()),
    }
    /// As `default_key_serde`, for values.
    default_value_serde: String = "default.value.serde" {
        parse: parse::serde,
        default: Fallback::Of(|_| "bytes".to_owned()),
    }
    /// What to do with a record that cannot be deserialized.
    deserialization_handler: ErrorHandler = "deserialization.exception.handler" {
        aliases: [deprecated("default.deserialization.exception.handler")],
        parse: |v| parse::error_handler(v, HandlerKind::Deserialization),
        default: Fallback::Of(|_| ErrorHandler::Fail),
    }
    /// What to do when processing a record fails.
    processing_handler: ErrorHandler = "processing.exception.handler" {
        parse: |v| parse::error_handler(v, HandlerKind::Processing),
        default: Fallback::Of(|_| ErrorHandler::Fail),
    }
    /// What to do with a record the broker or the producer refuses (too large, an invalid
    /// timestamp): the runtime applies it to refusals only, never to a broker being away.
    production_handler: ErrorHandler = "production.exception.handler" {
        aliases: [deprecated("default.production.exception.handler")],
        parse: |v| parse::error_handler(v, HandlerKind::Production),
        default: Fallback::Of(|_| ErrorHandler::Fail),
    }
    /// Where the records a handler skips are written, if anywhere.
    dead_letter_topic: Option<String> = "errors.dead.letter.queue.topic.name" {
        parse: parse::dead_letter_topic,
        default: Fallback::Of(|_| None),
    }
    /// The record cache of the state stores, across all threads (10 MiB).
    cache_max_bytes: u64 = "statestore.cache.max.bytes" {
        aliases: [deprecated("cache.max.bytes.buffering")],
        parse: parse::bytes,
        default: Fallback::Of(|_| 10 * 1024 * 1024),
    }
    /// The replication factor of the internal topics Freshet creates; -1 for the broker's default.
    replication_factor: i32 = "replication.factor" {
        parse: parse::replication_factor,
        default: Fallback::Of(|_| -1),
    }
    /// Standby replicas per task: above 0 only under `group.protocol=streams`, where it is ignored
    /// (the group's `streams.num.standby.replicas` decides, as in Kafka Streams); refused
    /// elsewhere.
    num_standby_replicas: u32 = "num.standby.replicas" {
        parse: parse::num_standby_replicas,
        default: Fallback::Of(|_| 0),
    }
    /// How long a task waits for data on all its inputs before processing what it has.
    max_task_idle: Duration = "max.task.idle.ms" {
        parse: parse::max_task_idle,
        default: Fallback::Of(|_| Duration::ZERO),
    }
    /// How long a stream thread blocks waiting for records.
    poll: Duration = "poll.ms" {
        parse: parse::millis,
        default: Fallback::Of(|_| Duration::from_millis(100)),
    }
    /// Records buffered per partition before the partition is paused.
    buffered_records_per_partition: usize = "buffered.records.per.partition" {
        parse: parse::buffered_records,
        default: Fallback::Of(|_| 1000),
    }
    /// How long a task may keep failing with a timeout before the error is fatal.
    task_timeout: Duration = "task.timeout.ms" {
        parse: parse::millis,
        default: Fallback::Of(|_| Duration::from_secs(300)),
    }
    /// `group.instance.id` as written: the base of each thread's static member id.
    group_instance_id: Option<String> = "group.instance.id" {
        prefixed: "group.instance.id is the base of every stream thread's static member id: set it without a prefix",
        parse: |v| parse::group_instance_id(v).map(Some),
        default: Fallback::Of(|_| None),
    }
    /// `host:port` of this instance, as Kafka Streams takes it; checked but not used yet, since
    /// Freshet has no interactive queries.
    application_server: Option<String> = "application.server" {
        parse: parse::application_server,
        default: Fallback::Of(|_| None),
    }
    /// `INFO`, `DEBUG` or `TRACE`.
    metrics_recording_level: MetricsRecordingLevel = "metrics.recording.level" {
        parse: parse::metrics_recording_level,
        default: Fallback::Of(|_| MetricsRecordingLevel::Info),
    }
    /// How the main consumer joins the group (`auto`: streams where the brokers run them).
    group_protocol: GroupProtocol = "group.protocol" {
        prefixed: "group.protocol is how the main consumer joins the group: set it without a prefix",
        parse: parse::group_protocol,
        default: Fallback::Of(|_| GroupProtocol::Auto),
    }
    /// Added to a window store's retention for its changelog topic (one day by default).
    window_store_changelog_additional_retention: Duration = "windowstore.changelog.additional.retention.ms" {
        parse: parse::millis,
        default: Fallback::Of(|_| Duration::from_secs(24 * 60 * 60)),
    }
    /// How often consumed records of repartition topics are deleted.
    repartition_purge_interval: Duration = "repartition.purge.interval.ms" {
        parse: parse::millis,
        default: Fallback::Of(|_| Duration::from_millis(30_000)),
    }
    /// The port of `/healthz`, `/readyz` and `/metrics` (Freshet's own property); the runtime
    /// picks its default when `None`.
    http_port: Option<u16> = "freshet.http.port" {
        env: ["FRESHET_HTTP_PORT"],
        parse: |v| parse::http_port(v).map(Some),
        default: Fallback::Of(|_| None),
    }
    /// The block cache every RocksDB store of the process shares (64 MiB by default). RocksDB's
    /// memory is one budget per process (Kafka Streams needs a `rocksdb.config.setter` class for
    /// this); the name is Freshet's.
    rocksdb_block_cache_bytes: u64 = "freshet.rocksdb.block.cache.bytes" {
        parse: parse::bytes,
        default: Fallback::Of(|_| 64 * 1024 * 1024),
    }
    /// The memtable budget of every RocksDB store of the process together (32 MiB by default);
    /// memtables are charged to the block cache as well.
    rocksdb_write_buffer_bytes: u64 = "freshet.rocksdb.write.buffer.bytes" {
        parse: parse::bytes,
        default: Fallback::Of(|_| 32 * 1024 * 1024),
    }
    /// How long the directory of a task this instance no longer owns stays before it is deleted
    /// (10 minutes, as in Kafka Streams).
    state_cleanup_delay: Duration = "state.cleanup.delay.ms" {
        parse: parse::millis,
        default: Fallback::Of(|_| Duration::from_secs(600)),
    }
    /// The schema registry of the `avro` serde (Confluent's property): the base URL of its
    /// Confluent-compatible REST API, e.g. `http://registry:8081`.
    schema_registry_url: Option<String> = "schema.registry.url" {
        parse: parse::optional_text,
        default: Fallback::Of(|_| None),
    }
    /// `USER_INFO` (from `basic.auth.user.info`) or `URL` (from the URL's user info), as
    /// Confluent's serdes take it; unset: no basic auth.
    basic_auth_credentials_source: Option<String> = "basic.auth.credentials.source" {
        parse: parse::credentials_source,
        default: Fallback::Of(|_| None),
    }
    /// `user:password` for the registry's basic auth.
    basic_auth_user_info: Option<String> = "basic.auth.user.info" {
        sensitive: true,
        parse: parse::optional_text,
        default: Fallback::Of(|_| None),
    }
    /// CA certificates (PEM) an `https` registry's certificate is checked against (Kafka's
    /// `ssl.truststore.certificates` with `ssl.truststore.type=PEM`, under Confluent's
    /// `schema.registry.` prefix); unset: the system's trusted CAs.
    schema_registry_ssl_truststore_certificates: Option<String> = "schema.registry.ssl.truststore.certificates" {
        parse: parse::optional_text,
        default: Fallback::Of(|_| None),
    }
    /// Whether a serializer registers its schema under the subject (true, Confluent's default)
    /// or only looks its id up.
    auto_register_schemas: bool = "auto.register.schemas" {
        parse: parse::boolean,
        default: Fallback::Of(|_| true),
    }
    /// Whether a serializer writes with the subject's latest schema instead of its own.
    use_latest_version: bool = "use.latest.version" {
        parse: parse::boolean,
        default: Fallback::Of(|_| false),
    }
    /// The subject of record keys: `TopicNameStrategy` (`<topic>-key`, the default),
    /// `RecordNameStrategy` (the record's full name) or `TopicRecordNameStrategy`
    /// (`<topic>-<full name>`); Confluent's class names are accepted too.
    key_subject_name_strategy: String = "key.subject.name.strategy" {
        parse: parse::subject_name_strategy,
        default: Fallback::Of(|_| "TopicNameStrategy".to_owned()),
    }
    /// The subject of record values, as `key.subject.name.strategy`.
    value_subject_name_strategy: String = "value.subject.name.strategy" {
        parse: parse::subject_name_strategy,
        default: Fallback::Of(|_| "TopicNameStrategy".to_owned()),
    }
    /// How often a left or outer stream-stream join looks for records whose window closed
    /// without a partner (1 s). Kafka Streams' internal setting, under its own name so that a
    /// test can set it on both.
    outer_join_emit_interval: Duration = "__emit.interval.ms.kstreams.outer.join.spurious.results.fix__" {
        parse: parse::millis,
        default: Fallback::Of(|_| Duration::from_secs(1)),
    }
}

/// The declaration of the property `name` (current name or alias), and the alias if it is one.
pub(crate) fn streams_property(
    name: &str,
) -> Option<(
    &'static super::define::StreamsDef,
    Option<&'static super::define::Alias>,
)> {
    STREAMS
        .iter()
        .find_map(|def| def.spelling(name).map(|alias| (def, alias)))
}
