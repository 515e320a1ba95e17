//! Defaults, precedence between layers and spellings, and values of Streams properties.

use std::time::Duration;

use super::*;

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
    assert_eq!(c.group_protocol, GroupProtocol::Auto);
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
        ("default.value.serde", "thrift", "json"),
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
        (
            "production.exception.handler",
            "log-and-continue",
            ErrorHandler::LogAndContinue,
        ),
        (
            "production.exception.handler",
            "org.apache.kafka.streams.errors.LogAndContinueProductionExceptionHandler",
            ErrorHandler::LogAndContinue,
        ),
        (
            "production.exception.handler",
            "LogAndFailProductionExceptionHandler",
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
