//! Client properties: Java names, librdkafka names, prefixes, unknown and refused names.

use super::*;

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
    let c = with_env(&[(
        "sasl.jaas.config",
        r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="alice" password="s3cr\"et";"#,
    )]);
    for props in [&c.consumer, &c.producer, &c.admin, &c.restore_consumer] {
        assert_eq!(get(props, "sasl.username"), Some("alice"));
        assert_eq!(get(props, "sasl.password"), Some("s3cr\"et"));
        assert_eq!(get(props, "sasl.jaas.config"), None);
    }
    let c = with_env(&[(
        "sasl.jaas.config",
        "org.apache.kafka.common.security.scram.ScramLoginModule required\n  username=bob\n  password=pw;",
    )]);
    assert_eq!(get(&c.producer, "sasl.username"), Some("bob"));
    assert_eq!(get(&c.producer, "sasl.password"), Some("pw"));

    let err = err_with_env(&[(
        "sasl.jaas.config",
        "org.apache.kafka.common.security.oauthbearer.OAuthBearerLoginModule required;",
    )]);
    assert!(err.to_string().contains("sasl.oauthbearer"), "{err}");
    let err = err_with_env(&[(
        "sasl.jaas.config",
        r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="alice";"#,
    )]);
    assert!(err.to_string().contains("password"), "{err}");
}

#[test]
fn secrets_never_appear_in_errors_or_debug_output() {
    let err = err_with_env(&[(
        "sasl.jaas.config",
        r#"com.example.Custom required password="hunter2";"#,
    )]);
    assert!(!err.to_string().contains("hunter2"), "{err}");
    assert!(!format!("{err:?}").contains("hunter2"));
    let c = with_env(&[("sasl.password", "hunter2")]);
    assert_eq!(get(&c.producer, "sasl.password"), Some("hunter2"));
    assert!(!format!("{c:?}").contains("hunter2"));
}

#[test]
fn secrets_in_config_are_refused_naming_the_field_to_use_and_never_the_value() {
    let cases = [
        ("sasl.password", "spec.kafka.authentication.passwordSecret"),
        (
            "producer.sasl.password",
            "spec.kafka.authentication.passwordSecret",
        ),
        (
            "sasl.jaas.config",
            "spec.kafka.authentication.passwordSecret",
        ),
        (
            "ssl.key.password",
            "spec.kafka.authentication.certificateAndKey",
        ),
        (
            "ssl.keystore.password",
            "spec.kafka.authentication.certificateAndKey",
        ),
        ("ssl.key.pem", "spec.kafka.authentication.certificateAndKey"),
        (
            "ssl.truststore.password",
            "spec.kafka.tls.trustedCertificates",
        ),
        (
            "sasl.oauthbearer.client.secret",
            "spec.kafka.authentication.clientSecret",
        ),
        (
            "sasl.oauthbearer.config",
            "spec.kafka.authentication.clientSecret",
        ),
    ];
    for (key, field) in cases {
        let err = err_with_config(&[(key, "hunter2-value")]);
        let text = err.to_string();
        assert!(
            matches!(&err, ConfigError::SecretInConfig { key: k, .. } if k == key),
            "{key}: {text}"
        );
        assert!(text.contains(&format!("spec.config[\"{key}\"]")), "{text}");
        assert!(text.contains(field), "{key}: {text}");
        assert!(text.contains("FRESHET_CONFIG_"), "{key}: {text}");
        assert!(!text.contains("hunter2"), "{text}");
        assert!(!format!("{err:?}").contains("hunter2"), "{err:?}");
    }
    // Every sensitive property is refused there, by its declaration, and the same names from
    // the environment are accepted (a Secret in spec.pod.env).
    let secrets: Vec<(&str, &str)> = super::librdkafka::PROPERTIES
        .iter()
        .filter(|p| p.sensitive && p.kind == super::librdkafka::Kind::Text)
        .map(|p| (p.name, "s3cr3t"))
        .collect();
    let ConfigError::Several(errors) = err_with_config(&secrets) else {
        panic!("one error per secret expected");
    };
    assert_eq!(errors.len(), secrets.len(), "{errors:?}");
    assert!(
        errors
            .iter()
            .all(|e| matches!(e, ConfigError::SecretInConfig { .. })),
        "{errors:?}"
    );
    let c = with_env(&[("sasl.password", "hunter2")]);
    assert_eq!(get(&c.producer, "sasl.password"), Some("hunter2"));
    // A secret-looking name nobody declares is refused there too.
    let err = err_with_config(&[("ssl.mystery.password", "x")]);
    assert!(matches!(err, ConfigError::SecretInConfig { .. }), "{err}");
}

#[test]
fn kerberos_is_refused_as_the_build_cannot_do_it() {
    for (key, value) in [
        ("sasl.mechanism", "GSSAPI"),
        ("producer.sasl.mechanisms", "gssapi"),
    ] {
        let err = err_with_config(&[(key, value)]);
        let text = err.to_string();
        assert!(matches!(err, ConfigError::NotSupported { .. }), "{text}");
        assert!(
            text.contains("Cyrus SASL") && text.contains("SCRAM-SHA-512"),
            "{text}"
        );
    }
    let err = err_with_env(&[(
        "sasl.jaas.config",
        "com.sun.security.auth.module.Krb5LoginModule required useKeyTab=true;",
    )]);
    assert!(err.to_string().contains("Kerberos"), "{err}");
    let c = with_config(&[("sasl.mechanism", "SCRAM-SHA-512")]);
    assert_eq!(get(&c.producer, "sasl.mechanisms"), Some("SCRAM-SHA-512"));
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
    let c = with_config(&[("group.protocol", "streams")]);
    assert_eq!(c.group_protocol, GroupProtocol::Streams);
    let err = err_with_config(&[
        ("group.protocol", "streams"),
        ("heartbeat.interval.ms", "1000"),
    ]);
    assert!(
        err.to_string()
            .contains("group.streams.heartbeat.interval.ms"),
        "{err}"
    );
    // auto, the default, keeps them: with them set it chooses classic at start.
    let c = with_config(&[("session.timeout.ms", "10000")]);
    assert_eq!(c.group_protocol, GroupProtocol::Auto);
    assert_eq!(get(&c.consumer, "session.timeout.ms"), Some("10000"));
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
    assert!(err.to_string().contains("assignor cannot give"), "{err}");
    let err = err_with_config(&[("group.protocol", "auto"), ("num.standby.replicas", "1")]);
    assert!(matches!(err, ConfigError::NotSupported { .. }), "{err}");
    assert!(
        err.to_string().contains("set group.protocol=streams"),
        "{err}"
    );
    // Under streams the group decides, and the client's setting is ignored as in Kafka Streams.
    let c = with_config(&[("group.protocol", "streams"), ("num.standby.replicas", "1")]);
    assert_eq!(c.num_standby_replicas, 1);
    assert!(
        c.warnings
            .iter()
            .any(|w| w.contains("num.standby.replicas") && w.contains("kafka-configs")),
        "{:?}",
        c.warnings
    );
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
