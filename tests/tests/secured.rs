//! `freshet-engine run` against a secured broker (`scripts/kafka.sh` with
//! `FRESHET_KAFKA_SECURED=1`: real TLS, real SCRAM, the StandardAuthorizer), its credentials
//! taken from the manifest's `kafka:` block, which names Secrets read here from files and the
//! environment, as a laptop run does:
//! - SCRAM-SHA-512 over SASL_SSL, the CA from a file and the password from a variable, with
//!   exactly the ACLs Kafka Streams documents: the counts are exact;
//! - mutual TLS (`type: tls`), the certificate and key from files: the same;
//! - the same ACLs less one: the engine fails, naming the resource and the operation.
//!
//! One broker for the whole file (starting it takes ~10 s), so one test runs the cases in turn.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use freshet_tests::acls::{Acl, Operation, Resource, create_acls, kafka_streams_acls};
use freshet_tests::brokers::Brokers;
use freshet_tests::engine::EngineProcess;
use freshet_tests::unique_name;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

const KEYS: usize = 10;
const PER_KEY: usize = 20;
const WAIT: Duration = Duration::from_secs(60);

/// A counting app whose `kafka:` block is `kafka` (indented two spaces).
fn manifest(app_id: &str, input: &str, output: &str, kafka: &str) -> String {
    format!(
        r#"applicationId: {app_id}
defaultKeySerde: string
defaultValueSerde: string
{kafka}
config:
  commit.interval.ms: "200"
  statestore.cache.max.bytes: "0"
topology:
  streams:
    - {{ name: events, topic: {input} }}
  pipelines:
    - name: count
      from: events
      steps:
        - groupBy: "value"
        - count: {{ store: counts }}
        - toStream: {{}}
        - to: {{ topic: {output}, valueSerde: long }}
"#
    )
}

/// `KEYS * PER_KEY` records whose values are `KEYS` distinct words, through the super user's
/// PLAINTEXT listener.
fn produce_input(bootstrap: &str, topic: &str) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("producer");
    for i in 0..KEYS * PER_KEY {
        let key = format!("k{i}");
        let value = format!("word{}", i % KEYS);
        producer
            .send(BaseRecord::to(topic).key(&key).payload(&value))
            .unwrap_or_else(|(e, _)| panic!("produce: {e}"));
    }
    producer.flush(Duration::from_secs(30)).expect("flush");
}

/// Reads `topic` through the PLAINTEXT listener until every word's count reached `PER_KEY`;
/// returns the number of updates read and the last count per word.
fn read_counts(bootstrap: &str, topic: &str) -> (usize, BTreeMap<String, i64>) {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", unique_name("secured-reader"))
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("partition");
    consumer.assign(&tpl).expect("assign");
    let (mut updates, mut counts) = (0, BTreeMap::new());
    let deadline = Instant::now() + WAIT;
    let mut quiet_until: Option<Instant> = None;
    loop {
        let done = counts.len() == KEYS && counts.values().all(|c| *c == PER_KEY as i64);
        if done {
            // A little longer, to catch an update too many.
            let until = *quiet_until.get_or_insert_with(|| Instant::now() + Duration::from_secs(2));
            if Instant::now() >= until {
                return (updates, counts);
            }
        }
        assert!(
            Instant::now() < deadline,
            "{topic}: {updates} updates after {WAIT:?}, counts {counts:?}"
        );
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.expect("consume");
            let key = String::from_utf8_lossy(m.key().unwrap_or_default()).into_owned();
            let value: [u8; 8] = m
                .payload()
                .and_then(|p| p.try_into().ok())
                .expect("an 8-byte long");
            counts.insert(key, i64::from_be_bytes(value));
            updates += 1;
        }
    }
}

/// The Secrets the manifests name, laid out as mounted Secret volumes are.
fn secrets_dir(broker_secrets: &Path) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("secrets dir");
    for (secret, key, from) in [
        ("cluster-ca-cert", "ca.crt", "ca.crt"),
        ("app-tls", "user.crt", "app-tls.crt"),
        ("app-tls", "user.key", "app-tls.key"),
    ] {
        std::fs::create_dir_all(dir.path().join(secret)).expect("mkdir");
        std::fs::copy(broker_secrets.join(from), dir.path().join(secret).join(key))
            .unwrap_or_else(|e| panic!("copying {from}: {e}"));
    }
    dir
}

/// Runs the engine until the counts are complete, and returns the log.
fn run_and_count(
    brokers: &Brokers,
    app_id: &str,
    output: &str,
    text: &str,
    secrets: &Path,
    env: &[(&str, &str)],
) -> String {
    let file = secrets.join(format!("{app_id}.yaml"));
    std::fs::write(&file, text).expect("manifest");
    let secrets_dir = secrets.display().to_string();
    let mut env = env.to_vec();
    env.push(("FRESHET_SECRETS_DIR", &secrets_dir));
    let mut engine = EngineProcess::start(&file, &[], &env);
    engine.wait_ready(WAIT);
    let (updates, counts) = read_counts(&brokers.bootstrap(), output);
    assert_eq!(
        updates,
        KEYS * PER_KEY,
        "one update per record, no more: {counts:?}"
    );
    let status = engine.terminate(Duration::from_secs(30));
    let log = engine.log_text();
    assert!(status.success(), "{status}; log:\n{log}");
    log
}

#[test]
fn scram_and_mutual_tls_with_the_documented_acls_count_exactly_and_one_acl_less_fails() {
    let brokers = Brokers::secured();
    let plaintext = brokers.bootstrap();
    let input = unique_name("secured-in");
    let secrets = secrets_dir(&brokers.secrets());
    brokers.create_topics(&[(&input, 2)]);
    produce_input(&plaintext, &input);
    let password = brokers.password("app");

    // SCRAM-SHA-512 over SASL_SSL: the CA from a file, the password from a variable.
    let app = unique_name("secured-scram");
    let output = format!("counts-of-{app}");
    brokers.create_topics(&[(&output, 1)]);
    create_acls(
        &plaintext,
        "User:app",
        &kafka_streams_acls(&app, &[&input], &[&output]),
    );
    let kafka = format!(
        r#"kafka:
  bootstrapServers: {bootstrap}
  tls:
    trustedCertificates:
      - {{ secretName: cluster-ca-cert, certificate: ca.crt }}
  authentication:
    type: scram-sha-512
    username: app
    passwordSecret: {{ secretName: app-user, password: password }}"#,
        bootstrap = brokers.sasl_ssl_bootstrap()
    );
    let log = run_and_count(
        &brokers,
        &app,
        &output,
        &manifest(&app, &input, &output, &kafka),
        secrets.path(),
        &[("FRESHET_SECRET_APP_USER_PASSWORD", &password)],
    );
    assert!(!log.contains(&password), "the password is logged:\n{log}");

    // Mutual TLS: the client certificate and key from files; the principal is its CN.
    let app = unique_name("secured-mtls");
    let output = format!("counts-of-{app}");
    brokers.create_topics(&[(&output, 1)]);
    create_acls(
        &plaintext,
        "User:app-tls",
        &kafka_streams_acls(&app, &[&input], &[&output]),
    );
    let kafka = format!(
        r#"kafka:
  bootstrapServers: {bootstrap}
  tls:
    trustedCertificates:
      - {{ secretName: cluster-ca-cert, pattern: "*.crt" }}
  authentication:
    type: tls
    certificateAndKey: {{ secretName: app-tls, certificate: user.crt, key: user.key }}"#,
        bootstrap = brokers.ssl_bootstrap()
    );
    run_and_count(
        &brokers,
        &app,
        &output,
        &manifest(&app, &input, &output, &kafka),
        secrets.path(),
        &[],
    );

    // The documented ACLs less one: the engine stops, naming the resource and the operation.
    // Each case has topics of its own, since the ACLs granted above stay.
    denied(
        &brokers,
        secrets.path(),
        &password,
        |_, output| Acl::literal(Resource::Topic, output, Operation::Write),
        |_, output| format!("may not WRITE topic '{output}'"),
    );
    denied(
        &brokers,
        secrets.path(),
        &password,
        |input, _| Acl::literal(Resource::Topic, input, Operation::Read),
        |input, _| format!("may not READ topic '{input}'"),
    );
}

/// Runs a SCRAM app with the documented ACLs less the one `missing` gives (from its input and
/// output topics), and checks that the engine fails with the message `expected` gives.
fn denied(
    brokers: &Brokers,
    secrets: &Path,
    password: &str,
    missing: impl Fn(&str, &str) -> Acl,
    expected: impl Fn(&str, &str) -> String,
) {
    let plaintext = brokers.bootstrap();
    let input = &unique_name("secured-denied-in");
    brokers.create_topics(&[(input, 2)]);
    produce_input(&plaintext, input);
    let app = unique_name("secured-denied");
    let output = format!("counts-of-{app}");
    brokers.create_topics(&[(&output, 1)]);
    let missing = missing(input, &output);
    let acls: Vec<Acl> = kafka_streams_acls(&app, &[input], &[&output])
        .into_iter()
        .filter(|a| *a != missing)
        .collect();
    assert_eq!(
        acls.len() + 1,
        8,
        "{missing:?} is one of the documented ACLs"
    );
    create_acls(&plaintext, "User:app", &acls);
    let kafka = format!(
        r#"kafka:
  bootstrapServers: {bootstrap}
  tls:
    trustedCertificates:
      - {{ secretName: cluster-ca-cert, certificate: ca.crt }}
  authentication:
    type: scram-sha-512
    username: app
    passwordSecret: {{ secretName: app-user, password: password }}"#,
        bootstrap = brokers.sasl_ssl_bootstrap()
    );
    let file = secrets.join(format!("{app}.yaml"));
    std::fs::write(&file, manifest(&app, input, &output, &kafka)).expect("manifest");
    let dir = secrets.display().to_string();
    let mut engine = EngineProcess::start(
        &file,
        &["--error-linger-seconds", "0"],
        &[
            ("FRESHET_SECRETS_DIR", &dir),
            ("FRESHET_SECRET_APP_USER_PASSWORD", password),
        ],
    );
    let status = engine.wait(WAIT);
    let log = engine.log_text();
    assert!(!status.success(), "the engine ran without {missing:?}");
    let expected = expected(input, &output);
    assert!(
        log.contains(&expected) && log.contains("docs/security.md"),
        "the error does not say `{expected}`:\n{log}"
    );
}
