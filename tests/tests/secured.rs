//! `freshet-engine run` against a secured broker (`scripts/kafka.sh` with
//! `FRESHET_KAFKA_SECURED=1`: real TLS, real SCRAM, the StandardAuthorizer), its credentials
//! taken from the manifest's `kafka:` block, which names Secrets read here from files and the
//! environment, as a laptop run does:
//! - SCRAM-SHA-512 over SASL_SSL, the CA from a file and the password from a variable, with
//!   exactly the ACLs Kafka Streams documents: the counts are exact;
//! - mutual TLS (`type: tls`), the certificate and key from files: the same;
//! - OAUTHBEARER with the broker's unsecured-JWT validator: the same;
//! - the same ACLs less one: the engine fails, naming the resource and the operation.
//!
//! One broker for the whole file (starting it takes ~10 s), so one test runs the cases in turn.

use std::path::Path;
use std::time::Duration;

use freshet_tests::acls::{Acl, Operation, Resource, create_acls, kafka_streams_acls};
use freshet_tests::brokers::Brokers;
use freshet_tests::engine::EngineProcess;
use freshet_tests::unique_name;
use freshet_tests::words::{KEYS, PER_KEY, WAIT, produce_words, read_word_counts};

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
    let (updates, counts) = read_word_counts(&brokers.bootstrap(), output, PER_KEY as i64);
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
fn scram_mutual_tls_and_oauthbearer_with_the_documented_acls_count_exactly_and_one_acl_less_fails()
{
    let brokers = Brokers::secured();
    let plaintext = brokers.bootstrap();
    let input = unique_name("secured-in");
    let secrets = secrets_dir(&brokers.secrets());
    brokers.create_topics(&[(&input, 2)]);
    produce_words(&plaintext, &input);
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

    // OAUTHBEARER with the broker's unsecured-JWT validator (a test broker's mode: the token is
    // not signed): the TLS from the kafka block, the mechanism and the token's principal from
    // the environment, as a pod's env from a Secret gives them.
    let app = unique_name("secured-oauth");
    let output = format!("counts-of-{app}");
    brokers.create_topics(&[(&output, 1)]);
    create_acls(
        &plaintext,
        "User:app-oauth",
        &kafka_streams_acls(&app, &[&input], &[&output]),
    );
    let kafka = format!(
        r#"kafka:
  bootstrapServers: {bootstrap}
  tls:
    trustedCertificates:
      - {{ secretName: cluster-ca-cert, certificate: ca.crt }}"#,
        bootstrap = brokers.sasl_ssl_bootstrap()
    );
    run_and_count(
        &brokers,
        &app,
        &output,
        &manifest(&app, &input, &output, &kafka),
        secrets.path(),
        &[
            ("FRESHET_CONFIG_SECURITY_PROTOCOL", "SASL_SSL"),
            ("FRESHET_CONFIG_SASL_MECHANISM", "OAUTHBEARER"),
            // librdkafka's own unsecured token, for test brokers only.
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
    produce_words(&plaintext, input);
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
