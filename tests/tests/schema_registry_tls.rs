//! The schema registry over HTTPS (scripts/registry.sh's TLS mode: Apicurio serving HTTPS only,
//! its certificate signed by a CA made with openssl): an engine given the CA through
//! `spec.schemaRegistry.tls.trustedCertificates` (a Secret, as the operator mounts it) reads
//! and writes Avro through it, checked with confluent-kafka's Python serdes; an engine without
//! the CA fails at once with an error naming the registry's URL, the untrusted certificate and
//! the setting that fixes it.
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use freshet_tests::confluent::{
    produce_readings, serdes_with_env, tls_registry, write_alerts_manifest,
};
use freshet_tests::engine::EngineProcess;
use freshet_tests::kafka::create_topics;
use freshet_tests::{kafka_bootstrap, unique_name};
use serde_json::{Value, json};

const PYTHON_DEADLINE: Duration = Duration::from_secs(120);

/// The manifest: a registry at `url`, trusted through the Secret `registry-ca` when `trusted`.
fn manifest(dir: &Path, url: &str, trusted: bool, input: &str, output: &str) -> std::path::PathBuf {
    let tls = if trusted {
        "\n  tls:\n    trustedCertificates:\n      - { secretName: registry-ca, certificate: ca.crt }"
    } else {
        ""
    };
    write_alerts_manifest(
        dir,
        "tls-registry",
        &format!("  url: {url}{tls}"),
        input,
        output,
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn an_engine_trusting_the_ca_reads_and_writes_avro_through_https() {
    let t0 = Instant::now();
    let (url, ca) = tls_registry();
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (unique_name("tls-in"), unique_name("tls-out"));
    create_topics(&[(&input, 1), (&output, 1)]).await;
    produce_readings(
        dir.path(),
        &url,
        &input,
        &[("FRESHET_REGISTRY_CA", ca.to_str().unwrap())],
    );
    // The CA as the operator mounts a Secret: <secrets dir>/<secret>/<key>.
    let secrets = dir.path().join("secrets");
    std::fs::create_dir_all(secrets.join("registry-ca")).unwrap();
    std::fs::copy(&ca, secrets.join("registry-ca/ca.crt")).unwrap();
    let file = manifest(dir.path(), &url, true, &input, &output);
    let mut engine =
        EngineProcess::start(&file, &["--secrets-dir", secrets.to_str().unwrap()], &[]);
    engine.wait_ready(Duration::from_secs(60));
    let got: Vec<Value> = serdes_with_env(
        "avro",
        &["consume", &kafka_bootstrap(), &url, &output, "2", "60"],
        &[("FRESHET_REGISTRY_CA", ca.to_str().unwrap())],
        PYTHON_DEADLINE,
    )
    .lines()
    .map(|l| serde_json::from_str(l).unwrap())
    .collect();
    engine.terminate(Duration::from_secs(30));
    let values: Vec<&Value> = got.iter().map(|r| &r["value"]).collect();
    assert_eq!(
        values,
        [
            &json!({"sensor": "boiler", "fahrenheit": 104.0, "at": 1_700_000_000_250_i64}),
            &json!({"sensor": "pump", "fahrenheit": 95.0, "at": 1_700_000_002_999_i64}),
        ],
        "engine log:\n{}",
        engine.log_text()
    );
    // The engine registered its schema over HTTPS: the id in its records is the subject's.
    let out = Command::new("curl")
        .args(["-sf", "--max-time", "10", "--cacert"])
        .arg(&ca)
        .arg(format!("{url}/subjects/{output}-value/versions/latest"))
        .output()
        .unwrap();
    assert!(out.status.success(), "GET the subject over https");
    let latest: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(got[0]["schema_id"], latest["id"], "{latest}");
    eprintln!("avro through the https registry in {:?}", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_engine_without_the_ca_fails_naming_the_url_and_the_setting() {
    let (url, ca) = tls_registry();
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (
        unique_name("tls-untrusted-in"),
        unique_name("tls-untrusted-out"),
    );
    create_topics(&[(&input, 1), (&output, 1)]).await;
    produce_readings(
        dir.path(),
        &url,
        &input,
        &[("FRESHET_REGISTRY_CA", ca.to_str().unwrap())],
    );
    let file = manifest(dir.path(), &url, false, &input, &output);
    let started = Instant::now();
    let mut engine = EngineProcess::start(&file, &[], &[]);
    // The first record's schema cannot be fetched: the deserialization handler's default
    // (log-and-fail) stops the engine, without retrying up to task.timeout.ms (5 minutes).
    let status = engine.wait(Duration::from_secs(90));
    let log = engine.log_text();
    assert!(!status.success(), "the engine should fail: {log}");
    assert!(
        started.elapsed() < Duration::from_secs(60),
        "a certificate error is not retried as an outage: {:?}",
        started.elapsed()
    );
    let line = log
        .lines()
        .find(|l| l.contains("not trusted"))
        .unwrap_or_else(|| panic!("no error says the certificate is not trusted:\n{log}"));
    assert!(line.contains(&url), "names the registry URL: {line}");
    assert!(
        line.contains("schema.registry.ssl.truststore.certificates")
            && line.contains("spec.schemaRegistry.tls.trustedCertificates"),
        "names the setting: {line}"
    );
    assert!(
        !log.contains("unreachable; retrying"),
        "retried a certificate error:\n{log}"
    );
}
