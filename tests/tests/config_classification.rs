//! Every configuration name Kafka itself defines is classified by Freshet: understood (a Streams
//! setting, or a client property passed to librdkafka under its librdkafka name), controlled by
//! Freshet, accepted and ignored with a reason, or refused with a reason — never "unknown", which
//! would make a configuration copied from a Kafka Streams application fail as if it had a typo.
//!
//! The names come from Kafka's own definitions (`StreamsConfig.configDef()`,
//! `ConsumerConfig.configNames()`, `ProducerConfig.configNames()`,
//! `AdminClientConfig.configNames()`) of the reference project's Kafka version, printed by
//! `tests/reference/config-names/ConfigNames.java`, a single-file program run on the reference
//! classpath.

use std::process::Command;

use freshet_streams::config::{Classification, classify};
use freshet_tests::differential::process::oracle_classpath;
use freshet_tests::repo_root;

/// (definition, name) for every name Kafka's config definitions declare.
fn kafka_names() -> Vec<(String, String)> {
    let classpath = oracle_classpath();
    let program = repo_root().join("tests/reference/config-names/ConfigNames.java");
    let java = std::env::var("JAVA").unwrap_or_else(|_| "java".to_owned());
    let out = Command::new(&java)
        .arg("-cp")
        .arg(&classpath)
        .arg(&program)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {java}: {e}"));
    assert!(
        out.status.success(),
        "{} failed ({}): {}",
        program.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_once('\t'))
        .map(|(definition, name)| (definition.to_owned(), name.to_owned()))
        .collect()
}

#[test]
fn every_kafka_config_name_is_classified() {
    let names = kafka_names();
    for definition in ["streams", "consumer", "producer", "admin"] {
        assert!(
            names.iter().filter(|(d, _)| d == definition).count() > 20,
            "too few {definition} names printed: {names:?}"
        );
    }
    let mut unclassified: Vec<String> = names
        .iter()
        .filter(|(_, name)| classify(name) == Classification::Unknown)
        .map(|(definition, name)| format!("{definition}: {name}"))
        .collect();
    unclassified.sort();
    unclassified.dedup();
    assert!(
        unclassified.is_empty(),
        "{} Kafka config names are not classified by Freshet (understood, controlled, ignored with a reason or refused with a reason):\n  {}",
        unclassified.len(),
        unclassified.join("\n  ")
    );
}

#[test]
fn streams_only_names_are_not_taken_for_client_properties() {
    // A name Kafka Streams defines and no Java client does is Streams' own: passing it to
    // librdkafka because librdkafka happens to share the name would change a client instead.
    let names = kafka_names();
    let client_names: Vec<&str> = names
        .iter()
        .filter(|(d, _)| d != "streams")
        .map(|(_, n)| n.as_str())
        .collect();
    let taken: Vec<String> = names
        .iter()
        .filter(|(d, n)| d == "streams" && !client_names.contains(&n.as_str()))
        .filter_map(|(_, n)| match classify(n) {
            class @ Classification::Client { .. } => Some(format!("{n}: {class:?}")),
            _ => None,
        })
        .collect();
    assert!(
        taken.is_empty(),
        "Streams names taken for client properties:\n  {}",
        taken.join("\n  ")
    );
}

#[test]
fn streams_names_are_never_passed_to_librdkafka_unknowingly() {
    // A Streams property that librdkafka happens to share a name with (client.id,
    // bootstrap.servers) must still be read as Freshet's setting, not as a client property.
    for name in [
        "application.id",
        "bootstrap.servers",
        "client.id",
        "num.stream.threads",
    ] {
        assert!(
            matches!(classify(name), Classification::Streams { .. }),
            "{name}: {:?}",
            classify(name)
        );
    }
}
