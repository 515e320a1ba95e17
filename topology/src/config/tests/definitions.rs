//! The declarations themselves: complete, not contradicting each other, and secrets flagged.

use std::collections::HashSet;

use super::super::catalog::{CONTROLLED, IGNORED_STREAMS, JAVA};
use super::super::classify::looks_secret;
use super::super::librdkafka::{Kind, PROPERTIES};
use super::super::streams::{STREAMS, spec_field};
use super::*;

/// Every name a Streams declaration answers to, current and older.
fn streams_names() -> Vec<&'static str> {
    STREAMS
        .iter()
        .flat_map(|def| std::iter::once(def.name).chain(def.aliases.iter().map(|a| a.name)))
        .collect()
}

#[test]
fn every_streams_declaration_is_complete_and_names_are_unique() {
    let mut fields = HashSet::new();
    for def in STREAMS {
        assert!(
            !def.doc.trim().is_empty(),
            "{} has no documentation",
            def.name
        );
        assert!(!def.default.is_empty(), "{} has no default", def.name);
        assert!(!def.ty.is_empty(), "{} has no type", def.name);
        assert!(
            fields.insert(def.field),
            "{} fills a field twice",
            def.field
        );
    }
    let names = streams_names();
    let unique: HashSet<_> = names.iter().collect();
    assert_eq!(
        unique.len(),
        names.len(),
        "a Streams name is declared twice"
    );
}

#[test]
fn no_name_is_declared_in_two_tables() {
    // The resolver tries the tables in order, so a name in two of them would silently mean the
    // first; every name must mean one thing.
    let tables: [(&str, Vec<&str>); 4] = [
        ("streams", streams_names()),
        ("controlled", CONTROLLED.iter().map(|p| p.name).collect()),
        ("ignored", IGNORED_STREAMS.iter().map(|(n, _)| *n).collect()),
        ("java", JAVA.iter().map(|p| p.name).collect()),
    ];
    for (i, (a, names_a)) in tables.iter().enumerate() {
        for (b, names_b) in &tables[i + 1..] {
            let both: Vec<_> = names_a.iter().filter(|n| names_b.contains(n)).collect();
            assert!(both.is_empty(), "in both {a} and {b}: {both:?}");
        }
        let set: HashSet<_> = names_a.iter().collect();
        assert_eq!(set.len(), names_a.len(), "a name is repeated in {a}");
    }
}

#[test]
fn every_declared_name_is_classified_as_declared() {
    for def in STREAMS {
        assert_eq!(
            classify(def.name),
            Classification::Streams {
                property: def.name,
                field: def.field
            }
        );
        for alias in def.aliases {
            assert!(
                matches!(classify(alias.name), Classification::Streams { property, .. } if property == def.name)
            );
        }
    }
    for prop in CONTROLLED {
        assert!(
            matches!(classify(prop.name), Classification::Controlled { .. }),
            "{}",
            prop.name
        );
    }
    for (name, _) in IGNORED_STREAMS {
        assert!(
            matches!(classify(name), Classification::Ignored { .. }),
            "{name}"
        );
    }
    for prop in JAVA {
        assert_ne!(
            classify(prop.name),
            Classification::Unknown,
            "{}",
            prop.name
        );
    }
    for prop in PROPERTIES {
        let class = classify(prop.name);
        if prop.kind == Kind::Api {
            assert!(
                matches!(class, Classification::Refused { .. }),
                "{}",
                prop.name
            );
        } else {
            assert_ne!(class, Classification::Unknown, "{}", prop.name);
        }
    }
    assert_eq!(classify("linger.ms"), classify("queue.buffering.max.ms"));
    assert_eq!(
        classify("sasl.jaas.config"),
        Classification::Client {
            librdkafka: vec!["sasl.username", "sasl.password"],
            clients: vec![
                Client::MainConsumer,
                Client::RestoreConsumer,
                Client::GlobalConsumer,
                Client::Producer,
                Client::Admin
            ],
        }
    );
    assert_eq!(classify("no.such.property"), Classification::Unknown);
}

#[test]
fn spec_fields_set_declared_properties() {
    let layer = SpecFields {
        application_id: Some("a".into()),
        bootstrap_servers: Some("b:1".into()),
        num_stream_threads: Some(2),
        state_dir: Some("/s".into()),
        processing_guarantee: Some("at_least_once".into()),
        default_key_serde: Some("string".into()),
        default_value_serde: Some("long".into()),
    }
    .into_layer();
    assert_eq!(layer.entries.len(), 7);
    for (property, _) in &layer.entries {
        assert!(STREAMS.iter().any(|d| d.name == property), "{property}");
        assert!(spec_field(property).is_some(), "{property}");
    }
    let origin = Origin {
        source: LayerSource::Spec,
        key: "num.stream.threads".into(),
    };
    assert_eq!(origin.to_string(), "spec.numStreamThreads");
}

#[test]
fn every_secret_looking_name_is_declared_sensitive() {
    let names = streams_names()
        .into_iter()
        .chain(JAVA.iter().map(|p| p.name))
        .chain(PROPERTIES.iter().map(|p| p.name));
    for name in names {
        if looks_secret(name) {
            assert!(
                is_sensitive(name),
                "{name} looks secret but is not declared sensitive"
            );
        }
    }
    for name in [
        "sasl.password",
        "sasl.jaas.config",
        "ssl.key.password",
        "ssl.keystore.password",
        "ssl.truststore.password",
        "ssl.keystore.key",
        "ssl.key.pem",
        "sasl.oauthbearer.client.secret",
        "sasl.oauthbearer.config",
        "producer.sasl.password",
        "main.consumer.ssl.key.password",
    ] {
        assert!(is_sensitive(name), "{name}");
    }
    for name in [
        "application.id",
        "linger.ms",
        "sasl.mechanism",
        "producer.acks",
    ] {
        assert!(!is_sensitive(name), "{name}");
    }
}

#[test]
fn debug_output_masks_every_sensitive_value() {
    // Every sensitive librdkafka property that takes text, each with its own value, all at once.
    let secrets: Vec<(String, String)> = PROPERTIES
        .iter()
        .filter(|p| p.sensitive && p.kind == Kind::Text && p.alias_of.is_none())
        .enumerate()
        .map(|(i, p)| (p.name.to_owned(), format!("s3cr3t-{i}")))
        .collect();
    assert!(secrets.len() >= 10, "{secrets:?}");
    let c = resolve_ok(&[spec(), Layer::new(LayerSource::Env, secrets.clone())]);
    let shown = format!("{c:?}");
    for (name, value) in &secrets {
        assert!(
            c.producer
                .iter()
                .chain(&c.consumer)
                .any(|(k, v)| k == name && v == value),
            "{name} did not reach the clients"
        );
        assert!(
            !shown.contains(value.as_str()),
            "{name}'s value is shown: {shown}"
        );
        assert!(shown.contains(REDACTED));
    }
    // The Java spelling of credentials, addressed to one client.
    let c = with_env(&[(
        "producer.sasl.jaas.config",
        r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="u" password="hunter2";"#,
    )]);
    assert_eq!(get(&c.producer, "sasl.password"), Some("hunter2"));
    assert!(!format!("{c:?}").contains("hunter2"));
}
