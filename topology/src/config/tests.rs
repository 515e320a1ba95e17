use std::time::Duration;

use proptest::prelude::*;

use super::*;

/// The spec every test starts from, so that only what a test is about needs writing.
fn spec() -> Layer {
    SpecFields {
        application_id: Some("orders-app".into()),
        bootstrap_servers: Some("kafka:9092".into()),
        ..SpecFields::default()
    }
    .into_layer()
}

fn layer(source: LayerSource, entries: &[(&str, &str)]) -> Layer {
    Layer::new(source, entries.iter().copied())
}

fn config(entries: &[(&str, &str)]) -> Layer {
    layer(LayerSource::Config, entries)
}

fn resolve_ok(layers: &[Layer]) -> StreamsConfig {
    match StreamsConfig::resolve(layers) {
        Ok(config) => config,
        Err(err) => panic!("expected a configuration, got: {err}"),
    }
}

fn resolve_err(layers: &[Layer]) -> ConfigError {
    match StreamsConfig::resolve(layers) {
        Ok(config) => panic!("expected an error, got {config:?}"),
        Err(err) => err,
    }
}

fn with_config(entries: &[(&str, &str)]) -> StreamsConfig {
    resolve_ok(&[spec(), config(entries)])
}

fn err_with_config(entries: &[(&str, &str)]) -> ConfigError {
    resolve_err(&[spec(), config(entries)])
}

fn get<'a>(props: &'a [(String, String)], name: &str) -> Option<&'a str> {
    props
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

// ---- defaults -------------------------------------------------------------------------------

#[test]
fn kafka_streams_defaults_apply_when_nothing_is_set() {
    let c = with_config(&[]);
    assert_eq!(c.application_id, "orders-app");
    assert_eq!(c.bootstrap_servers, "kafka:9092");
    assert_eq!(c.num_stream_threads, 1);
    assert_eq!(c.state_dir, std::env::temp_dir().join("kafka-streams"));
    assert_eq!(c.processing_guarantee, ProcessingGuarantee::AtLeastOnce);
    assert_eq!(c.commit_interval, Duration::from_millis(30_000));
    assert_eq!(c.default_key_serde, "bytes");
    assert_eq!(c.deserialization_handler, ErrorHandler::Fail);
    assert_eq!(c.processing_handler, ErrorHandler::Fail);
    assert_eq!(c.production_handler, ErrorHandler::Fail);
    assert_eq!(c.dead_letter_topic, None);
    assert_eq!(c.cache_max_bytes, 10_485_760);
    assert_eq!(c.replication_factor, -1);
    assert_eq!(c.max_task_idle, Duration::ZERO);
    assert_eq!(c.poll, Duration::from_millis(100));
    assert_eq!(c.buffered_records_per_partition, 1000);
    assert_eq!(c.task_timeout, Duration::from_secs(300));
    assert_eq!(c.group_protocol, GroupProtocol::Classic);
    assert_eq!(c.metrics_recording_level, MetricsRecordingLevel::Info);
    assert_eq!(
        c.window_store_changelog_additional_retention,
        Duration::from_secs(86_400)
    );
    assert_eq!(c.http_port, None);
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    // Kafka Streams' client defaults where librdkafka's differ.
    assert_eq!(get(&c.consumer, "auto.offset.reset"), Some("earliest"));
    assert_eq!(
        get(&c.consumer, "isolation.level"),
        Some("read_uncommitted")
    );
    assert_eq!(get(&c.producer, "queue.buffering.max.ms"), Some("100"));
    assert_eq!(get(&c.producer, "enable.idempotence"), Some("true"));
    assert_eq!(get(&c.producer, "transaction.timeout.ms"), None);
    assert!(c.admin.is_empty(), "{:?}", c.admin);
}

#[test]
fn exactly_once_commits_every_100ms_unless_told_otherwise() {
    let eos = with_config(&[("processing.guarantee", "exactly_once_v2")]);
    assert_eq!(eos.processing_guarantee, ProcessingGuarantee::ExactlyOnceV2);
    assert_eq!(eos.commit_interval, Duration::from_millis(100));
    assert_eq!(get(&eos.producer, "transaction.timeout.ms"), Some("10000"));
    assert_eq!(get(&eos.producer, "enable.idempotence"), Some("true"));
    for consumer in [&eos.consumer, &eos.restore_consumer, &eos.global_consumer] {
        assert_eq!(get(consumer, "isolation.level"), Some("read_committed"));
    }

    let explicit = with_config(&[
        ("processing.guarantee", "exactly_once_v2"),
        ("commit.interval.ms", "250"),
    ]);
    assert_eq!(explicit.commit_interval, Duration::from_millis(250));

    // The guarantee from a higher layer decides the default too.
    let from_env = resolve_ok(&[
        spec(),
        layer(
            LayerSource::Env,
            &[("processing.guarantee", "exactly_once_v2")],
        ),
    ]);
    assert_eq!(from_env.commit_interval, Duration::from_millis(100));
}

// ---- precedence -----------------------------------------------------------------------------

#[test]
fn flags_beat_env_beat_spec_beat_config() {
    let all = [
        config(&[("num.stream.threads", "1")]),
        layer(
            LayerSource::Spec,
            &[
                ("application.id", "orders-app"),
                ("bootstrap.servers", "kafka:9092"),
                ("num.stream.threads", "2"),
            ],
        ),
        layer(LayerSource::Env, &[("num.stream.threads", "3")]),
        layer(LayerSource::Flag, &[("num.stream.threads", "4")]),
    ];
    assert_eq!(resolve_ok(&all).num_stream_threads, 4);
    assert_eq!(resolve_ok(&all[..3]).num_stream_threads, 3);
    assert_eq!(resolve_ok(&all[..2]).num_stream_threads, 2);
    // The order of the slice does not matter, only the layer's source.
    let mut reversed = all.to_vec();
    reversed.reverse();
    assert_eq!(resolve_ok(&reversed).num_stream_threads, 4);
}

#[test]
fn precedence_holds_for_client_properties_across_spellings() {
    // The Java name in a higher layer beats librdkafka's name in a lower one.
    let c = resolve_ok(&[
        spec(),
        config(&[("fetch.wait.max.ms", "500")]),
        layer(LayerSource::Flag, &[("fetch.max.wait.ms", "50")]),
    ]);
    assert_eq!(get(&c.consumer, "fetch.wait.max.ms"), Some("50"));
    // A higher layer's unprefixed value beats a lower layer's prefixed one.
    let c = resolve_ok(&[
        spec(),
        config(&[("consumer.session.timeout.ms", "6000")]),
        layer(LayerSource::Env, &[("session.timeout.ms", "20000")]),
    ]);
    assert_eq!(get(&c.consumer, "session.timeout.ms"), Some("20000"));
}

#[test]
fn within_a_layer_the_more_specific_prefix_wins() {
    let c = with_config(&[
        ("session.timeout.ms", "10000"),
        ("consumer.session.timeout.ms", "20000"),
        ("main.consumer.session.timeout.ms", "30000"),
    ]);
    assert_eq!(get(&c.consumer, "session.timeout.ms"), Some("30000"));
    assert_eq!(
        get(&c.restore_consumer, "session.timeout.ms"),
        Some("20000")
    );
    assert_eq!(get(&c.global_consumer, "session.timeout.ms"), Some("20000"));
}

#[test]
fn within_a_layer_the_later_entry_wins() {
    let c = resolve_ok(&[
        spec(),
        layer(
            LayerSource::Flag,
            &[("num.stream.threads", "2"), ("num.stream.threads", "5")],
        ),
    ]);
    assert_eq!(c.num_stream_threads, 5);
}

#[test]
fn two_spellings_of_one_property_at_one_level_must_agree() {
    let err = err_with_config(&[("linger.ms", "5"), ("queue.buffering.max.ms", "10")]);
    let text = err.to_string();
    assert!(matches!(err, ConfigError::Conflict { .. }), "{text}");
    assert!(
        text.contains("linger.ms") && text.contains("queue.buffering.max.ms"),
        "{text}"
    );
    // Equal values are no conflict.
    let c = with_config(&[("linger.ms", "5"), ("queue.buffering.max.ms", "5")]);
    assert_eq!(get(&c.producer, "queue.buffering.max.ms"), Some("5"));
}

#[test]
fn a_current_name_beats_its_deprecated_spelling_in_one_layer() {
    let c = with_config(&[
        ("cache.max.bytes.buffering", "1"),
        ("statestore.cache.max.bytes", "2"),
    ]);
    assert_eq!(c.cache_max_bytes, 2);
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("cache.max.bytes.buffering") && w.contains("deprecated")),
        "{:?}",
        c.warnings
    );
    let c = with_config(&[(
        "default.deserialization.exception.handler",
        "log-and-continue",
    )]);
    assert_eq!(c.deserialization_handler, ErrorHandler::LogAndContinue);
}

// ---- Java client names ----------------------------------------------------------------------

#[test]
fn java_client_names_are_translated_to_librdkafka() {
    let c = with_config(&[
        ("fetch.max.wait.ms", "250"),
        ("max.partition.fetch.bytes", "2097152"),
        ("session.timeout.ms", "30000"),
        ("heartbeat.interval.ms", "2000"),
        ("max.poll.interval.ms", "600000"),
        ("auto.offset.reset", "latest"),
        ("linger.ms", "20"),
        ("batch.size", "65536"),
        ("buffer.memory", "33554433"),
        ("compression.type", "zstd"),
        ("acks", "all"),
        ("request.timeout.ms", "40000"),
        ("delivery.timeout.ms", "120000"),
        ("max.request.size", "2000000"),
        ("security.protocol", "SASL_SSL"),
        ("sasl.mechanism", "SCRAM-SHA-512"),
        ("ssl.endpoint.identification.algorithm", ""),
        ("client.id", "orders"),
        ("receive.buffer.bytes", "-1"),
        ("send.buffer.bytes", "131072"),
        ("reconnect.backoff.ms", "50"),
        ("retry.backoff.ms", "100"),
        ("metadata.max.age.ms", "300000"),
        ("connections.max.idle.ms", "540000"),
        ("isolation.level", "read_committed"),
    ]);
    let consumer = &c.consumer;
    assert_eq!(get(consumer, "fetch.wait.max.ms"), Some("250"));
    assert_eq!(get(consumer, "fetch.message.max.bytes"), Some("2097152"));
    assert_eq!(get(consumer, "session.timeout.ms"), Some("30000"));
    assert_eq!(get(consumer, "heartbeat.interval.ms"), Some("2000"));
    assert_eq!(get(consumer, "max.poll.interval.ms"), Some("600000"));
    assert_eq!(get(consumer, "auto.offset.reset"), Some("latest"));
    assert_eq!(get(consumer, "isolation.level"), Some("read_committed"));
    let producer = &c.producer;
    assert_eq!(get(producer, "queue.buffering.max.ms"), Some("20"));
    assert_eq!(get(producer, "batch.size"), Some("65536"));
    // 33554433 bytes is 32768 KiB and one byte: rounded up.
    assert_eq!(get(producer, "queue.buffering.max.kbytes"), Some("32769"));
    assert_eq!(get(producer, "compression.codec"), Some("zstd"));
    assert_eq!(get(producer, "request.required.acks"), Some("all"));
    assert_eq!(get(producer, "request.timeout.ms"), Some("40000"));
    assert_eq!(get(producer, "message.timeout.ms"), Some("120000"));
    assert_eq!(get(producer, "message.max.bytes"), Some("2000000"));
    for props in [&c.consumer, &c.producer, &c.admin] {
        assert_eq!(get(props, "security.protocol"), Some("sasl_ssl"));
        assert_eq!(get(props, "sasl.mechanisms"), Some("SCRAM-SHA-512"));
        assert_eq!(
            get(props, "ssl.endpoint.identification.algorithm"),
            Some("none")
        );
        assert_eq!(get(props, "socket.receive.buffer.bytes"), Some("0"));
        assert_eq!(get(props, "socket.send.buffer.bytes"), Some("131072"));
        assert_eq!(get(props, "reconnect.backoff.ms"), Some("50"));
        assert_eq!(get(props, "retry.backoff.ms"), Some("100"));
        assert_eq!(get(props, "metadata.max.age.ms"), Some("300000"));
        assert_eq!(get(props, "connections.max.idle.ms"), Some("540000"));
    }
    // Java-only names never reach librdkafka.
    for props in [&c.consumer, &c.producer, &c.admin] {
        for java in [
            "fetch.max.wait.ms",
            "max.partition.fetch.bytes",
            "linger.ms",
            "buffer.memory",
            "compression.type",
            "acks",
            "delivery.timeout.ms",
            "max.request.size",
            "sasl.mechanism",
            "receive.buffer.bytes",
        ] {
            assert_eq!(get(props, java), None, "{java} leaked");
        }
    }
    // client.id is Kafka Streams' prefix for every client's id, not one id for all.
    assert_eq!(c.client_id.as_deref(), Some("orders"));
    assert_eq!(get(&c.consumer, "client.id"), None);
}

#[test]
fn auto_offset_reset_values_map_to_librdkafka() {
    for (java, rdkafka) in [
        ("earliest", "earliest"),
        ("latest", "latest"),
        ("none", "error"),
    ] {
        let c = with_config(&[("auto.offset.reset", java)]);
        assert_eq!(
            get(&c.consumer, "auto.offset.reset"),
            Some(rdkafka),
            "{java}"
        );
    }
    let err = err_with_config(&[("auto.offset.reset", "by_duration:PT1H")]);
    assert!(matches!(err, ConfigError::NotSupported { .. }), "{err}");
}

#[test]
fn jaas_credentials_become_sasl_username_and_password() {
    let c = with_config(&[(
        "sasl.jaas.config",
        r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="alice" password="s3cr\"et";"#,
    )]);
    for props in [&c.consumer, &c.producer, &c.admin, &c.restore_consumer] {
        assert_eq!(get(props, "sasl.username"), Some("alice"));
        assert_eq!(get(props, "sasl.password"), Some("s3cr\"et"));
        assert_eq!(get(props, "sasl.jaas.config"), None);
    }
    let c = with_config(&[(
        "sasl.jaas.config",
        "org.apache.kafka.common.security.scram.ScramLoginModule required\n  username=bob\n  password=pw;",
    )]);
    assert_eq!(get(&c.producer, "sasl.username"), Some("bob"));
    assert_eq!(get(&c.producer, "sasl.password"), Some("pw"));

    let err = err_with_config(&[(
        "sasl.jaas.config",
        "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;",
    )]);
    assert!(err.to_string().contains("sasl.oauthbearer"), "{err}");
    let err = err_with_config(&[(
        "sasl.jaas.config",
        r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="alice";"#,
    )]);
    assert!(err.to_string().contains("password"), "{err}");
}

#[test]
fn secrets_never_appear_in_errors_or_debug_output() {
    let err = err_with_config(&[(
        "sasl.jaas.config",
        r#"com.example.Custom required password="hunter2";"#,
    )]);
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(!format!("{err:?}").contains("hunter2"));
    let c = with_config(&[("sasl.password", "hunter2")]);
    assert_eq!(get(&c.producer, "sasl.password"), Some("hunter2"));
    assert!(!format!("{c:?}").contains("hunter2"));
}

#[test]
fn trust_stores_are_refused_with_the_pem_alternative() {
    let err = err_with_config(&[("ssl.truststore.location", "/etc/kafka/truststore.jks")]);
    let text = err.to_string();
    assert!(matches!(err, ConfigError::Refused { .. }), "{text}");
    assert!(text.contains("ssl.ca.location"), "{text}");
    assert!(
        text.contains("spec.config[\"ssl.truststore.location\"]"),
        "{text}"
    );
    let err = err_with_config(&[("ssl.keystore.type", "JKS")]);
    assert!(err.to_string().contains("PKCS#12"), "{err}");
    let c = with_config(&[("ssl.keystore.type", "PKCS12")]);
    assert_eq!(get(&c.consumer, "ssl.keystore.type"), None);
}

#[test]
fn java_only_settings_are_ignored_with_a_warning() {
    let c = with_config(&[
        ("max.poll.records", "500"),
        (
            "key.serializer",
            "org.apache.kafka.common.serialization.StringSerializer",
        ),
    ]);
    assert!(c.warnings.iter().any(|w| w.contains("max.poll.records")));
    assert!(c.warnings.iter().any(|w| w.contains("key.serializer")));
    assert_eq!(get(&c.consumer, "max.poll.records"), None);
}

// ---- librdkafka names -----------------------------------------------------------------------

#[test]
fn librdkafka_names_pass_through_and_aliases_fold() {
    let c = with_config(&[
        ("queue.buffering.max.messages", "50000"),
        ("statistics.interval.ms", "010"),
        ("check.crcs", "TRUE"),
        ("debug", "cgrp,fetch"),
        ("retries", "3"),
    ]);
    assert_eq!(
        get(&c.producer, "queue.buffering.max.messages"),
        Some("50000")
    );
    // Plain decimal, so librdkafka's strtol(.., 0) cannot read 010 as octal.
    assert_eq!(get(&c.consumer, "statistics.interval.ms"), Some("10"));
    assert_eq!(get(&c.consumer, "check.crcs"), Some("true"));
    assert_eq!(get(&c.consumer, "debug"), Some("cgrp,fetch"));
    assert_eq!(get(&c.admin, "debug"), Some("cgrp,fetch"));
    assert_eq!(get(&c.producer, "message.send.max.retries"), Some("3"));

    // librdkafka's own spelling of bootstrap.servers.
    let c = resolve_ok(&[
        layer(LayerSource::Spec, &[("application.id", "a")]),
        config(&[("metadata.broker.list", "k1:9092, k2:9092")]),
    ]);
    assert_eq!(c.bootstrap_servers, "k1:9092,k2:9092");
}

#[test]
fn callbacks_cannot_be_set_from_configuration() {
    let err = err_with_config(&[("dr_cb", "x")]);
    assert!(matches!(err, ConfigError::Refused { .. }), "{err}");
}

// ---- prefixes -------------------------------------------------------------------------------

#[test]
fn prefixes_scope_a_property_to_its_clients() {
    let c = with_config(&[
        ("consumer.fetch.min.bytes", "10"),
        ("producer.linger.ms", "7"),
        ("admin.retry.backoff.ms", "999"),
        ("restore.consumer.fetch.min.bytes", "20"),
        ("global.consumer.fetch.min.bytes", "30"),
    ]);
    assert_eq!(get(&c.consumer, "fetch.min.bytes"), Some("10"));
    assert_eq!(get(&c.restore_consumer, "fetch.min.bytes"), Some("20"));
    assert_eq!(get(&c.global_consumer, "fetch.min.bytes"), Some("30"));
    assert_eq!(get(&c.producer, "fetch.min.bytes"), None);
    assert_eq!(get(&c.producer, "queue.buffering.max.ms"), Some("7"));
    assert_eq!(get(&c.admin, "retry.backoff.ms"), Some("999"));
    assert_eq!(get(&c.producer, "retry.backoff.ms"), None);
    assert_eq!(get(&c.consumer, "retry.backoff.ms"), None);
}

#[test]
fn unprefixed_properties_reach_the_clients_that_read_them() {
    let c = with_config(&[
        ("fetch.min.bytes", "10"),
        ("linger.ms", "7"),
        ("socket.timeout.ms", "5000"),
    ]);
    for consumer in [&c.consumer, &c.restore_consumer, &c.global_consumer] {
        assert_eq!(get(consumer, "fetch.min.bytes"), Some("10"));
        assert_eq!(get(consumer, "queue.buffering.max.ms"), None);
    }
    assert_eq!(get(&c.producer, "fetch.min.bytes"), None);
    assert_eq!(get(&c.admin, "fetch.min.bytes"), None);
    assert_eq!(get(&c.admin, "queue.buffering.max.ms"), None);
    for props in [&c.consumer, &c.producer, &c.admin] {
        assert_eq!(get(props, "socket.timeout.ms"), Some("5000"));
    }
}

#[test]
fn a_property_addressed_to_the_wrong_client_is_dropped_with_a_warning() {
    let c = with_config(&[("producer.fetch.wait.max.ms", "5")]);
    assert_eq!(get(&c.producer, "fetch.wait.max.ms"), None);
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("producer.fetch.wait.max.ms") && w.contains("consumer property")),
        "{:?}",
        c.warnings
    );
}

#[test]
fn streams_properties_cannot_be_prefixed() {
    let err = err_with_config(&[("consumer.commit.interval.ms", "5")]);
    assert!(
        err.to_string().contains("remove the `consumer.` prefix"),
        "{err}"
    );
    let err = err_with_config(&[("producer.bootstrap.servers", "other:9092")]);
    assert!(matches!(err, ConfigError::Refused { .. }), "{err}");
}

// ---- unknown names --------------------------------------------------------------------------

#[test]
fn unknown_keys_name_their_layer_and_the_nearest_name() {
    let err = err_with_config(&[("comit.interval.ms", "100")]);
    assert_eq!(
        err,
        ConfigError::UnknownProperty {
            key: "comit.interval.ms".into(),
            origin: Origin {
                source: LayerSource::Config,
                key: "comit.interval.ms".into()
            },
            suggestion: Some("commit.interval.ms".into()),
        }
    );
    assert_eq!(
        err.to_string(),
        "unknown property `comit.interval.ms` in spec.config[\"comit.interval.ms\"]; did you mean spec.config[\"commit.interval.ms\"]?"
    );

    let err = err_with_config(&[("fetch.wait.max.msx", "100")]);
    assert!(
        matches!(&err, ConfigError::UnknownProperty { suggestion: Some(s), .. } if s == "fetch.wait.max.ms"),
        "{err}"
    );

    let err = err_with_config(&[("consumer.sesion.timeout.ms", "100")]);
    assert!(
        matches!(&err, ConfigError::UnknownProperty { suggestion: Some(s), .. } if s == "consumer.session.timeout.ms"),
        "{err}"
    );
    let err = err_with_config(&[("consumers.session.timeout.ms", "100")]);
    assert!(
        matches!(&err, ConfigError::UnknownProperty { suggestion: Some(s), .. } if s == "consumer.session.timeout.ms"),
        "{err}"
    );

    let err = err_with_config(&[("no.such.thing.at.all", "1")]);
    assert!(
        matches!(
            &err,
            ConfigError::UnknownProperty {
                suggestion: None,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn an_unknown_key_from_the_environment_names_the_variable() {
    let env = layers_from_env([("FRESHET_CONFIG_COMIT_INTERVAL_MS".into(), "100".into())]);
    let err = resolve_err(&[spec(), Layer::new(LayerSource::Env, env)]);
    let text = err.to_string();
    assert!(
        text.contains("environment variable FRESHET_CONFIG_COMIT_INTERVAL_MS"),
        "{text}"
    );
    assert!(text.contains("FRESHET_CONFIG_COMMIT_INTERVAL_MS"), "{text}");
    let err = resolve_err(&[spec(), layer(LayerSource::Flag, &[("pol.ms", "1")])]);
    assert!(err.to_string().contains("command-line flag"), "{err}");
}

// ---- refused --------------------------------------------------------------------------------

#[test]
fn properties_freshet_controls_are_refused_with_the_reason() {
    for (key, value, reason) in [
        ("group.id", "other", "application.id"),
        ("consumer.group.id", "other", "application.id"),
        ("enable.auto.commit", "true", "commits offsets itself"),
        ("partitioner", "consistent_random", "murmur2_random"),
        (
            "partitioner.class",
            "com.example.MyPartitioner",
            "murmur2_random",
        ),
        ("transactional.id", "x", "fences"),
        ("partition.assignment.strategy", "roundrobin", "range"),
        ("group.remote.assignor", "uniform", "range"),
        ("enable.auto.offset.store", "true", "explicitly"),
        ("enable.partition.eof", "true", "end-of-partition"),
    ] {
        let err = err_with_config(&[(key, value)]);
        let text = err.to_string();
        assert!(matches!(err, ConfigError::Refused { .. }), "{key}: {text}");
        assert!(text.contains(key) && text.contains(reason), "{key}: {text}");
    }
}

#[test]
fn asking_for_what_freshet_does_anyway_is_dropped_with_a_warning() {
    let c = with_config(&[
        ("group.id", "orders-app"),
        ("enable.auto.commit", "false"),
        ("partitioner", "murmur2_random"),
        ("partition.assignment.strategy", "range"),
    ]);
    assert_eq!(c.warnings.len(), 4, "{:?}", c.warnings);
    for props in [&c.consumer, &c.producer] {
        for key in [
            "group.id",
            "enable.auto.commit",
            "partitioner",
            "partition.assignment.strategy",
        ] {
            assert_eq!(get(props, key), None);
        }
    }
}

#[test]
fn exactly_once_refuses_what_would_break_it() {
    let eos = ("processing.guarantee", "exactly_once_v2");
    for (key, value, reason) in [
        ("isolation.level", "read_uncommitted", "committed"),
        ("enable.idempotence", "false", "idempotent"),
        ("acks", "1", "acks=all"),
        (
            "max.in.flight.requests.per.connection",
            "10",
            "cannot exceed 5",
        ),
        ("message.timeout.ms", "60000", "transaction.timeout.ms"),
        ("retries", "0", "retries > 0"),
        ("socket.timeout.ms", "9950", "100 ms below"),
    ] {
        let err = err_with_config(&[eos, (key, value)]);
        let text = err.to_string();
        assert!(text.contains(key) && text.contains(reason), "{key}: {text}");
    }
    // The same settings are the user's to choose under at-least-once.
    let c = with_config(&[("isolation.level", "read_uncommitted"), ("acks", "1")]);
    assert_eq!(
        get(&c.consumer, "isolation.level"),
        Some("read_uncommitted")
    );
    // ... and the Java producer's idempotence default gives way to acks=1.
    assert_eq!(get(&c.producer, "enable.idempotence"), None);
    // A message timeout within the transaction timeout is fine.
    let c = with_config(&[
        eos,
        ("transaction.timeout.ms", "60000"),
        ("message.timeout.ms", "60000"),
    ]);
    assert_eq!(get(&c.producer, "message.timeout.ms"), Some("60000"));
}

#[test]
fn the_consumer_protocol_refuses_classic_session_settings() {
    let err = err_with_config(&[
        ("group.protocol", "consumer"),
        ("session.timeout.ms", "10000"),
    ]);
    assert!(
        err.to_string()
            .contains("group.consumer.session.timeout.ms"),
        "{err}"
    );
    let c = with_config(&[("group.protocol", "consumer")]);
    assert_eq!(c.group_protocol, GroupProtocol::Consumer);
    let err = err_with_config(&[("group.protocol", "streams")]);
    assert!(matches!(err, ConfigError::NotSupported { .. }), "{err}");
}

#[test]
fn removed_and_unsupported_streams_values_say_what_to_do() {
    for old in ["exactly_once", "exactly_once_beta"] {
        let err = err_with_config(&[("processing.guarantee", old)]);
        let text = err.to_string();
        assert!(
            text.contains("removed in Kafka Streams 4") && text.contains("exactly_once_v2"),
            "{text}"
        );
    }
    let err = err_with_config(&[("num.standby.replicas", "1")]);
    assert!(matches!(err, ConfigError::NotSupported { .. }), "{err}");
    assert!(err.to_string().contains("not supported yet"), "{err}");
    assert_eq!(
        with_config(&[("num.standby.replicas", "0")]).warnings.len(),
        0
    );
}

#[test]
fn ignored_streams_properties_are_accepted_with_a_warning() {
    let c = with_config(&[
        ("topology.optimization", "all"),
        ("rocksdb.config.setter", "com.example.Setter"),
    ]);
    assert_eq!(c.warnings.len(), 2, "{:?}", c.warnings);
    assert!(c.warnings[0].contains("topology.optimization"));
}

// ---- values ---------------------------------------------------------------------------------

#[test]
fn bad_values_name_property_value_layer_and_fix() {
    let err = resolve_err(&[
        spec(),
        layer(LayerSource::Env, &[("num.stream.threads", "0")]),
    ]);
    assert_eq!(
        err.to_string(),
        "invalid value `0` for num.stream.threads in environment variable FRESHET_NUM_STREAM_THREADS or FRESHET_THREADS: num.stream.threads must be at least 1"
    );
    for (key, value, expected) in [
        ("num.stream.threads", "two", "whole number"),
        ("commit.interval.ms", "-5", "milliseconds"),
        ("commit.interval.ms", "5 seconds", "milliseconds"),
        ("replication.factor", "0", "-1"),
        ("session.timeout.ms", "abc", "1 to 3600000"),
        ("session.timeout.ms", "0", "1 to 3600000"),
        (
            "security.protocol",
            "tls",
            "plaintext, ssl, sasl_plaintext, sasl_ssl",
        ),
        ("enable.idempotence", "yes", "true or false"),
        ("default.value.serde", "avro", "json"),
        (
            "deserialization.exception.handler",
            "com.example.Handler",
            "log-and-continue",
        ),
        ("metrics.recording.level", "LOUD", "INFO"),
        (
            "errors.dead.letter.queue.topic.name",
            "dead letters",
            "legal topic name",
        ),
        ("application.server", "localhost", "host:port"),
    ] {
        let err = err_with_config(&[(key, value)]);
        let text = err.to_string();
        assert!(
            matches!(err, ConfigError::InvalidValue { .. }),
            "{key}={value}: {text}"
        );
        assert!(
            text.contains(key) && text.contains(value) && text.contains(expected),
            "{key}={value}: {text}"
        );
        assert!(text.contains("spec.config"), "{text}");
    }
}

#[test]
fn millisecond_properties_also_take_durations_as_users_write_them() {
    for value in ["5000", "5s", "PT5S", "5000ms"] {
        let c = with_config(&[("commit.interval.ms", value)]);
        assert_eq!(c.commit_interval, Duration::from_secs(5), "{value}");
    }
    let c = with_config(&[("task.timeout.ms", "1d")]);
    assert_eq!(c.task_timeout, Duration::from_secs(86_400));
}

#[test]
fn application_id_follows_kafka_streams_rule() {
    for bad in ["", "orders app", "orders/app", "ördérs"] {
        let err = resolve_err(&[SpecFields {
            application_id: Some(bad.into()),
            bootstrap_servers: Some("k:9092".into()),
            ..SpecFields::default()
        }
        .into_layer()]);
        assert!(
            matches!(&err, ConfigError::InvalidValue { origin, .. } if origin.to_string() == "spec.applicationId"),
            "{bad}: {err}"
        );
    }
    for good in ["orders-app", "orders_app.v2", "A1"] {
        let c = resolve_ok(&[
            spec(),
            layer(LayerSource::Flag, &[("application.id", good)]),
        ]);
        assert_eq!(c.application_id, good);
    }
}

#[test]
fn required_properties_are_reported_missing_once() {
    let err = resolve_err(&[]);
    let text = err.to_string();
    assert!(
        text.contains("application.id is required")
            && text.contains("bootstrap.servers is required"),
        "{text}"
    );
    // Invalid is not also missing.
    let err = resolve_err(&[layer(
        LayerSource::Spec,
        &[
            ("application.id", "bad id"),
            ("bootstrap.servers", "k:9092"),
        ],
    )]);
    assert!(matches!(err, ConfigError::InvalidValue { .. }), "{err}");
}

#[test]
fn every_problem_is_reported_at_once() {
    let err = err_with_config(&[
        ("comit.interval.ms", "1"),
        ("num.stream.threads", "0"),
        ("group.id", "x"),
    ]);
    match err {
        ConfigError::Several(errors) => assert_eq!(errors.len(), 3, "{errors:?}"),
        other => panic!("expected several errors, got {other}"),
    }
}

#[test]
fn serde_names_and_java_classes() {
    for (written, canonical) in [
        ("string", "string"),
        ("json", "json"),
        ("windowed-string", "windowed-string"),
        ("session-long", "session-long"),
        (
            "org.apache.kafka.common.serialization.Serdes$StringSerde",
            "string",
        ),
        (
            "org.apache.kafka.common.serialization.Serdes.LongSerde",
            "long",
        ),
        ("Serdes$ByteArraySerde", "bytes"),
        ("IntegerSerde", "int"),
        ("DoubleSerde", "double"),
    ] {
        let c = resolve_ok(&[
            spec(),
            layer(LayerSource::Spec, &[("default.key.serde", written)]),
        ]);
        assert_eq!(c.default_key_serde, canonical, "{written}");
    }
    let err = err_with_config(&[("default.key.serde", "com.example.Serdes$StringSerde")]);
    assert!(matches!(err, ConfigError::InvalidValue { .. }), "{err}");
    let err = err_with_config(&[(
        "default.key.serde",
        "org.apache.kafka.streams.kstream.WindowedSerdes$TimeWindowedSerde",
    )]);
    assert!(err.to_string().contains("windowed-<inner>"), "{err}");
}

#[test]
fn handler_names_and_java_classes() {
    for (key, value, expected) in [
        (
            "deserialization.exception.handler",
            "log-and-continue",
            ErrorHandler::LogAndContinue,
        ),
        (
            "deserialization.exception.handler",
            "fail",
            ErrorHandler::Fail,
        ),
        (
            "deserialization.exception.handler",
            "org.apache.kafka.streams.errors.LogAndContinueExceptionHandler",
            ErrorHandler::LogAndContinue,
        ),
        (
            "deserialization.exception.handler",
            "LogAndFailExceptionHandler",
            ErrorHandler::Fail,
        ),
        (
            "processing.exception.handler",
            "LogAndContinueProcessingExceptionHandler",
            ErrorHandler::LogAndContinue,
        ),
        (
            "processing.exception.handler",
            "LogAndContinueExceptionHandler",
            ErrorHandler::LogAndContinue,
        ),
        (
            "production.exception.handler",
            "org.apache.kafka.streams.errors.DefaultProductionExceptionHandler",
            ErrorHandler::Fail,
        ),
    ] {
        let c = with_config(&[(key, value)]);
        let actual = match key {
            "deserialization.exception.handler" => c.deserialization_handler,
            "processing.exception.handler" => c.processing_handler,
            _ => c.production_handler,
        };
        assert_eq!(actual, expected, "{key}={value}");
    }
}

#[test]
fn typed_streams_properties_are_read() {
    let c = with_config(&[
        ("errors.dead.letter.queue.topic.name", "orders-dlq"),
        ("statestore.cache.max.bytes", "0"),
        ("replication.factor", "3"),
        ("max.task.idle.ms", "50"),
        ("poll.ms", "10"),
        ("buffered.records.per.partition", "500"),
        ("task.timeout.ms", "0"),
        ("group.instance.id", "orders-0"),
        ("application.server", "orders-0.orders:8080"),
        ("metrics.recording.level", "debug"),
        ("state.dir", "/var/lib/freshet/state"),
        ("freshet.http.port", "8081"),
        ("windowstore.changelog.additional.retention.ms", "1000"),
    ]);
    assert_eq!(c.dead_letter_topic.as_deref(), Some("orders-dlq"));
    assert_eq!(c.cache_max_bytes, 0);
    assert_eq!(c.replication_factor, 3);
    assert_eq!(c.max_task_idle, Duration::from_millis(50));
    assert_eq!(c.poll, Duration::from_millis(10));
    assert_eq!(c.buffered_records_per_partition, 500);
    assert_eq!(c.task_timeout, Duration::ZERO);
    assert_eq!(c.group_instance_id.as_deref(), Some("orders-0"));
    assert_eq!(
        c.application_server.as_deref(),
        Some("orders-0.orders:8080")
    );
    assert_eq!(c.metrics_recording_level, MetricsRecordingLevel::Debug);
    assert_eq!(
        c.state_dir,
        std::path::PathBuf::from("/var/lib/freshet/state")
    );
    assert_eq!(c.http_port, Some(8081));
    assert_eq!(
        c.window_store_changelog_additional_retention,
        Duration::from_secs(1)
    );
    let err = err_with_config(&[("max.task.idle.ms", "-1")]);
    assert!(matches!(err, ConfigError::NotSupported { .. }), "{err}");
}

// ---- environment ----------------------------------------------------------------------------

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[test]
fn environment_variables_map_to_properties() {
    let entries = layers_from_env(vars(&[
        ("PATH", "/usr/bin"),
        ("FRESHET_KAFKA_PORT", "9092"),
        ("FRESHET_APPLICATION_ID", "orders-app"),
        ("FRESHET_BOOTSTRAP_SERVERS", "kafka:9092"),
        ("FRESHET_STATE_DIR", "/state"),
        ("FRESHET_PROCESSING_GUARANTEE", "exactly_once_v2"),
        ("FRESHET_HTTP_PORT", "8080"),
        ("FRESHET_CONFIG_COMMIT_INTERVAL_MS", "200"),
        ("FRESHET_CONFIG_PRODUCER_LINGER_MS", "5"),
        ("FRESHET_CONFIG_LOG__LEVEL", "7"),
    ]));
    let expect = |key: &str, value: &str| {
        assert!(
            entries.contains(&(key.to_owned(), value.to_owned())),
            "{key}={value} missing from {entries:?}"
        );
    };
    expect("application.id", "orders-app");
    expect("bootstrap.servers", "kafka:9092");
    expect("state.dir", "/state");
    expect("processing.guarantee", "exactly_once_v2");
    expect("freshet.http.port", "8080");
    expect("commit.interval.ms", "200");
    expect("producer.linger.ms", "5");
    expect("log_level", "7");
    assert_eq!(entries.len(), 8, "{entries:?}");

    let c = resolve_ok(&[Layer::new(LayerSource::Env, entries)]);
    assert_eq!(c.http_port, Some(8080));
    assert_eq!(c.commit_interval, Duration::from_millis(200));
    assert_eq!(get(&c.producer, "queue.buffering.max.ms"), Some("5"));
    assert_eq!(get(&c.admin, "log_level"), Some("7"));
}

#[test]
fn dedicated_variables_beat_aliases_beat_generic_ones() {
    let threads = |pairs: &[(&str, &str)]| {
        let mut all = vars(&[
            ("FRESHET_APPLICATION_ID", "a"),
            ("FRESHET_BOOTSTRAP_SERVERS", "k:1"),
        ]);
        all.extend(vars(pairs));
        resolve_ok(&[Layer::new(LayerSource::Env, layers_from_env(all))]).num_stream_threads
    };
    assert_eq!(threads(&[("FRESHET_THREADS", "3")]), 3);
    assert_eq!(threads(&[("FRESHET_CONFIG_NUM_STREAM_THREADS", "2")]), 2);
    assert_eq!(
        threads(&[
            ("FRESHET_NUM_STREAM_THREADS", "4"),
            ("FRESHET_THREADS", "3"),
            ("FRESHET_CONFIG_NUM_STREAM_THREADS", "2"),
        ]),
        4
    );
    assert_eq!(
        threads(&[
            ("FRESHET_THREADS", "3"),
            ("FRESHET_CONFIG_NUM_STREAM_THREADS", "2")
        ]),
        3
    );
}

#[test]
fn near_misses_of_freshet_variables_are_warned_about() {
    let warnings = env_warnings(vars(&[
        ("FRESHET_APLICATION_ID", "x"),
        ("FRESHET_KAFKA_PORT", "9092"),
        ("FRESHET_CACHE", "/cache"),
        ("HOME", "/root"),
    ]));
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].contains("FRESHET_APPLICATION_ID"),
        "{warnings:?}"
    );
}

// ---- static membership ----------------------------------------------------------------------

#[test]
fn instance_base_prefers_group_instance_id_then_pod_name() {
    let plain = with_config(&[]);
    assert_eq!(instance_base(&plain, None), None);
    assert_eq!(instance_base(&plain, Some("")), None);
    assert_eq!(
        instance_base(&plain, Some("orders-1")).as_deref(),
        Some("orders-1")
    );
    let configured = with_config(&[("group.instance.id", "fixed")]);
    assert_eq!(
        instance_base(&configured, Some("orders-1")).as_deref(),
        Some("fixed")
    );
    assert_eq!(thread_instance_id("orders-1", 2), "orders-1-2");
}

#[test]
fn transactional_ids_are_per_instance_and_thread_and_stable() {
    // Kafka Streams' EOS-v2 shape: the same instance and thread always get the same id, so a
    // restart fences the dead producer; other instances and threads never collide with it.
    let id = transactional_id("orders-app", "orders-1", 1);
    assert_eq!(id, "orders-app-orders-1-1");
    assert_eq!(transactional_id("orders-app", "orders-1", 1), id);
    assert_ne!(transactional_id("orders-app", "orders-1", 2), id);
    assert_ne!(transactional_id("orders-app", "orders-2", 1), id);
}

// ---- properties -----------------------------------------------------------------------------

fn source_strategy() -> impl Strategy<Value = LayerSource> {
    prop_oneof![
        Just(LayerSource::Config),
        Just(LayerSource::Spec),
        Just(LayerSource::Env),
        Just(LayerSource::Flag),
    ]
}

proptest! {
    /// Whatever layers set a property, in whatever order they are given, the highest source wins,
    /// and among layers of that source the last one given.
    #[test]
    fn the_highest_layer_wins(settings in proptest::collection::vec((source_strategy(), 1usize..64), 1..8)) {
        let mut layers = vec![spec()];
        for (source, threads) in &settings {
            layers.push(Layer::new(*source, [("num.stream.threads", threads.to_string())]));
        }
        let top = settings.iter().map(|(s, _)| *s).max().unwrap_or(LayerSource::Config);
        let expected = settings.iter().rev().find(|(s, _)| *s == top).map(|(_, t)| *t);
        let resolved = StreamsConfig::resolve(&layers).map(|c| c.num_stream_threads).ok();
        prop_assert_eq!(resolved, expected);
    }

    /// Every librdkafka property can be set through FRESHET_CONFIG_* and is reported back under
    /// the variable it came from.
    #[test]
    fn every_librdkafka_name_round_trips_through_the_environment(index in 0usize..super::librdkafka::PROPERTIES.len()) {
        let name = super::librdkafka::PROPERTIES[index].name;
        let var = super::env::variable_for(name);
        let entries = layers_from_env([(var, "v".to_owned())]);
        prop_assert_eq!(entries, vec![(name.to_owned(), "v".to_owned())]);
    }

    /// No input makes resolution panic.
    #[test]
    fn arbitrary_entries_never_panic(entries in proptest::collection::vec(("[a-z._]{0,24}", "\\PC{0,16}"), 0..6)) {
        let _ = StreamsConfig::resolve(&[spec(), Layer::new(LayerSource::Config, entries)]);
    }
}
