//! group.protocol=streams (KIP-1071) against a secured broker (`Brokers::secured`: real TLS,
//! real SCRAM, the StandardAuthorizer): the stream threads' streams-group members connect as
//! the app's librdkafka clients do, from the same `kafka:` block:
//! - SCRAM-SHA-512 over SASL_SSL, with the ACLs Kafka Streams documents: the count is exact,
//!   Kafka's own tool lists the member with its tasks, and `freshet-engine reset` sees the
//!   member over the same secured connection and refuses;
//! - mutual TLS (`type: tls`): the same;
//! - OAUTHBEARER (librdkafka's unsecured JWT, a test broker's mode): the same;
//! - a setting the streams-group client cannot honour (Kerberos) is refused by
//!   `freshet-engine validate`, naming it; nothing connects in plaintext instead.
//!
//! One broker for the whole file (starting it takes ~10 s), so one test runs the cases in turn.

use std::collections::BTreeSet;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use freshet_tests::acls::{create_acls, kafka_streams_acls};
use freshet_tests::brokers::Brokers;
use freshet_tests::engine::{EngineProcess, engine_binary};
use freshet_tests::streams_groups::describe_at;
use freshet_tests::unique_name;
use freshet_tests::words::{KEYS, PER_KEY, WAIT, produce_words, read_word_counts};

/// A counting app in a streams group whose `kafka:` block is `kafka`.
fn manifest(app_id: &str, input: &str, output: &str, kafka: &str) -> String {
    format!(
        r#"applicationId: {app_id}
defaultKeySerde: string
defaultValueSerde: string
{kafka}
config:
  group.protocol: streams
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

/// One case: runs the engine until the counts are complete, checks that Kafka's tool (over the
/// plaintext listener) lists its member in the streams group with every task, and returns the
/// log.
fn run_and_count(
    brokers: &Brokers,
    input: &str,
    app: &str,
    kafka: &str,
    secrets: &Path,
    env: &[(&str, &str)],
) -> String {
    let started = Instant::now();
    let output = format!("counts-of-{app}");
    brokers.create_topics(&[(&output, 1)]);
    let file = secrets.join(format!("{app}.yaml"));
    std::fs::write(&file, manifest(app, input, &output, kafka)).expect("manifest");
    let secrets_dir = secrets.display().to_string();
    let mut env = env.to_vec();
    env.push(("FRESHET_SECRETS_DIR", &secrets_dir));
    let mut engine = EngineProcess::start(&file, &[], &env);
    engine.wait_ready(WAIT);
    let (updates, counts) = read_word_counts(&brokers.bootstrap(), &output, PER_KEY as i64);
    assert_eq!(
        updates,
        KEYS * PER_KEY,
        "one update per record, no more: {counts:?}\n{}",
        engine.log_text()
    );
    // Two sub-topologies (the groupBy repartitions), two partitions each.
    let all: BTreeSet<String> = ["0_0", "0_1", "1_0", "1_1"].map(str::to_owned).into();
    let rows = describe_at(&brokers.bootstrap(), app);
    assert_eq!(rows.len(), 1, "one member: {rows:#?}");
    assert_eq!(rows[0].protocol, "streams", "{rows:#?}");
    assert_eq!(rows[0].active, all, "the member runs every task: {rows:#?}");
    // `reset` finds the running member through the same secured connection (StreamsGroupDescribe)
    // and refuses; a reset that could not see it would take the group for empty.
    let out = Command::new(engine_binary())
        .args(["reset", "--dry-run", "-f"])
        .arg(&file)
        .envs(env.iter().copied())
        .env("FRESHET_LOG", "warn")
        .output()
        .expect("freshet-engine reset");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "reset ran beside a member: {err}"
    );
    assert!(err.contains("active members"), "{err}");
    let status = engine.terminate(Duration::from_secs(30));
    let log = engine.log_text();
    assert!(status.success(), "{status}; log:\n{log}");
    assert!(
        log.contains("joined the streams group"),
        "no streams-group member joined:\n{log}"
    );
    eprintln!(
        "{app}: counted exactly as a streams-group member in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    log
}

#[test]
fn streams_group_members_count_exactly_over_scram_mutual_tls_and_oauthbearer() {
    let brokers = Brokers::secured();
    let plaintext = brokers.bootstrap();
    let input = unique_name("sg-secured-in");
    let secrets = secrets_dir(&brokers.secrets());
    brokers.create_topics(&[(&input, 2)]);
    produce_words(&plaintext, &input);
    let password = brokers.password("app");

    // SCRAM-SHA-512 over SASL_SSL: the CA from a file, the password from a variable.
    let app = unique_name("sg-scram");
    create_acls(
        &plaintext,
        "User:app",
        &kafka_streams_acls(&app, &[&input], &[&format!("counts-of-{app}")]),
    );
    let scram = format!(
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
        &input,
        &app,
        &scram,
        secrets.path(),
        &[("FRESHET_SECRET_APP_USER_PASSWORD", &password)],
    );
    assert!(!log.contains(&password), "the password is logged:\n{log}");

    // Mutual TLS: the client certificate and key from files; the principal is its CN.
    let app = unique_name("sg-mtls");
    create_acls(
        &plaintext,
        "User:app-tls",
        &kafka_streams_acls(&app, &[&input], &[&format!("counts-of-{app}")]),
    );
    let mtls = format!(
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
    run_and_count(&brokers, &input, &app, &mtls, secrets.path(), &[]);

    // OAUTHBEARER with the broker's unsecured-JWT validator.
    let app = unique_name("sg-oauth");
    create_acls(
        &plaintext,
        "User:app-oauth",
        &kafka_streams_acls(&app, &[&input], &[&format!("counts-of-{app}")]),
    );
    let oauth = format!(
        r#"kafka:
  bootstrapServers: {bootstrap}
  tls:
    trustedCertificates:
      - {{ secretName: cluster-ca-cert, certificate: ca.crt }}"#,
        bootstrap = brokers.sasl_ssl_bootstrap()
    );
    run_and_count(
        &brokers,
        &input,
        &app,
        &oauth,
        secrets.path(),
        &[
            ("FRESHET_CONFIG_SECURITY_PROTOCOL", "SASL_SSL"),
            ("FRESHET_CONFIG_SASL_MECHANISM", "OAUTHBEARER"),
            (
                "FRESHET_CONFIG_ENABLE_SASL_OAUTHBEARER_UNSECURE_JWT",
                "true",
            ),
            (
                "FRESHET_CONFIG_SASL_OAUTHBEARER_CONFIG",
                "principal=app-oauth",
            ),
        ],
    );

    // Kerberos, which librdkafka speaks and the streams-group client does not: refused when
    // the manifest is validated, naming the setting, not connected in plaintext.
    let app = unique_name("sg-gssapi");
    let file = secrets.path().join(format!("{app}.yaml"));
    let kafka = format!(
        "kafka:\n  bootstrapServers: {}",
        brokers.sasl_ssl_bootstrap()
    );
    std::fs::write(&file, manifest(&app, &input, "unused", &kafka)).expect("manifest");
    let out = Command::new(engine_binary())
        .args(["validate", "-f"])
        .arg(&file)
        // librdkafka's default mechanism is GSSAPI.
        .env("FRESHET_CONFIG_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
        .output()
        .expect("freshet-engine validate");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!out.status.success(), "validate accepted GSSAPI:\n{text}");
    assert!(
        text.contains("group.protocol=streams") && text.contains("sasl.mechanism=GSSAPI"),
        "the refusal does not name the setting:\n{text}"
    );
}
