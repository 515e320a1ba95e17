//! Confluent's own serdes (confluent-kafka's Python `AvroSerializer`, `JSONSerializer`,
//! `ProtobufSerializer` and their deserializers, with its `SchemaRegistryClient`) run as a child
//! process: the independent implementation of Confluent's wire format the schema-registry suites
//! check Freshet against (tests/interop/confluent_serdes.py).
//!
//! Every run has a deadline: a child still running at it is killed and the test fails with what
//! it printed, so a hung consumer or registry call can never hang the suite.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::repo_root;

/// The schema registry's Confluent-compatible API root (`FRESHET_SCHEMA_REGISTRY_URL`, else
/// `make registry-up`'s default).
pub fn registry_url() -> String {
    std::env::var("FRESHET_SCHEMA_REGISTRY_URL")
        .unwrap_or_else(|_| "http://127.0.0.1:8081/apis/ccompat/v7".to_owned())
}

/// The https registry of scripts/registry.sh's TLS mode: its API root
/// (`FRESHET_SCHEMA_REGISTRY_TLS_URL`) and the CA certificate that signed its certificate
/// (`FRESHET_SCHEMA_REGISTRY_TLS_CA`, a PEM file); panics saying how to start it when unset.
pub fn tls_registry() -> (String, PathBuf) {
    let how = "start the TLS registry with FRESHET_REGISTRY_TLS_PORT=<port> scripts/registry.sh up, then set FRESHET_SCHEMA_REGISTRY_TLS_URL=$(scripts/registry.sh tls-url) and FRESHET_SCHEMA_REGISTRY_TLS_CA=$(scripts/registry.sh tls-ca) (make test does)";
    let url = std::env::var("FRESHET_SCHEMA_REGISTRY_TLS_URL")
        .unwrap_or_else(|_| panic!("FRESHET_SCHEMA_REGISTRY_TLS_URL is unset: {how}"));
    let ca = PathBuf::from(
        std::env::var("FRESHET_SCHEMA_REGISTRY_TLS_CA")
            .unwrap_or_else(|_| panic!("FRESHET_SCHEMA_REGISTRY_TLS_CA is unset: {how}")),
    );
    assert!(ca.is_file(), "{} is not a file: {how}", ca.display());
    (url, ca)
}

/// The basic-auth registry of scripts/registry.sh's basic-auth mode (nginx's `auth_basic` in
/// front of the http registry): its API root (`FRESHET_SCHEMA_REGISTRY_AUTH_URL`), the user
/// (`FRESHET_SCHEMA_REGISTRY_AUTH_USER`) and the password it accepts
/// (`FRESHET_SCHEMA_REGISTRY_AUTH_PASSWORD`); panics saying how to start it when unset.
pub fn auth_registry() -> (String, String, String) {
    let how = "start the basic-auth proxy with FRESHET_REGISTRY_AUTH_PORT=<port> scripts/registry.sh up, then set FRESHET_SCHEMA_REGISTRY_AUTH_URL=$(scripts/registry.sh auth-url), FRESHET_SCHEMA_REGISTRY_AUTH_USER=$(scripts/registry.sh auth-user) and FRESHET_SCHEMA_REGISTRY_AUTH_PASSWORD=$(cat $(scripts/registry.sh auth-password-file)) (make test does)";
    let var = |name: &str| {
        std::env::var(name)
            .ok()
            .filter(|v| !v.is_empty())
            .unwrap_or_else(|| panic!("{name} is unset: {how}"))
    };
    (
        var("FRESHET_SCHEMA_REGISTRY_AUTH_URL"),
        var("FRESHET_SCHEMA_REGISTRY_AUTH_USER"),
        var("FRESHET_SCHEMA_REGISTRY_AUTH_PASSWORD"),
    )
}

/// The venv's python with confluent-kafka (scripts/serdes-venv.sh makes it once, cached).
pub fn python() -> PathBuf {
    static PYTHON: OnceLock<PathBuf> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            // A cold cache installs from PyPI: minutes, not hours.
            let out = run(
                Command::new(repo_root().join("scripts/serdes-venv.sh")),
                Duration::from_secs(600),
                "scripts/serdes-venv.sh",
            );
            PathBuf::from(out.trim())
        })
        .clone()
}

/// Runs `tests/interop/confluent_serdes.py FORMAT ARGS...` (FORMAT: avro, json, protobuf) and
/// returns its standard output; fails the test when it fails or outlives `deadline`.
pub fn serdes(format: &str, args: &[&str], deadline: Duration) -> String {
    serdes_with_env(format, args, &[], deadline)
}

/// [`serdes`] with environment variables (`FRESHET_REGISTRY_CA`: the CA of an https registry;
/// `FRESHET_REGISTRY_USER_INFO`: `user:password` for a registry that checks basic auth).
pub fn serdes_with_env(
    format: &str,
    args: &[&str],
    env: &[(&str, &str)],
    deadline: Duration,
) -> String {
    let mut cmd = Command::new(python());
    cmd.arg(repo_root().join("tests/interop/confluent_serdes.py"))
        .arg(format)
        .args(args)
        .envs(env.iter().copied());
    run(
        cmd,
        deadline,
        &format!("confluent_serdes.py {format} {args:?}"),
    )
}

/// Runs `cmd` to its end or to `deadline` (then kills it); panics naming `what` with its output
/// unless it exits with success.
pub fn run(mut cmd: Command, deadline: Duration, what: &str) -> String {
    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{what}: cannot start: {e}"));
    // Read both pipes while waiting, so a chatty child never blocks on a full pipe.
    let drain = |mut pipe: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = pipe.read_to_end(&mut buf);
            String::from_utf8_lossy(&buf).into_owned()
        })
    };
    let out = drain(Box::new(child.stdout.take().expect("piped stdout")));
    let err = drain(Box::new(child.stderr.take().expect("piped stderr")));
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break Some(status),
            Ok(None) if started.elapsed() < deadline => {
                std::thread::sleep(Duration::from_millis(100))
            }
            Ok(None) => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            Err(e) => panic!("{what}: waiting for it: {e}"),
        }
    };
    let (out, err) = (
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    );
    match status {
        None => panic!(
            "{what}: still running after its {deadline:?} deadline, killed\nstdout:\n{out}\nstderr:\n{err}"
        ),
        Some(s) if !s.success() => {
            panic!(
                "{what}: failed ({s}) after {:?}\nstdout:\n{out}\nstderr:\n{err}",
                started.elapsed()
            )
        }
        Some(_) => out,
    }
}

/// The Avro reading the secured-registry suites (TLS, basic auth) write, and the alert their
/// engines write back.
pub const READING_SCHEMA: &str = r#"{"type":"record","name":"Reading","namespace":"plant","fields":[{"name":"sensor","type":"string"},{"name":"celsius","type":"double"},{"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}}]}"#;
/// See [`READING_SCHEMA`].
pub const ALERT_SCHEMA: &str = r#"{"type":"record","name":"Alert","namespace":"plant","fields":[{"name":"sensor","type":"string"},{"name":"fahrenheit","type":"double"},{"name":"at","type":{"type":"long","logicalType":"timestamp-millis"}}]}"#;

/// Writes three readings ([`READING_SCHEMA`]) to `input` with the Python `AvroSerializer`
/// through the registry at `url`; `env` tells the Python side how to reach it (its CA, its
/// credentials).
pub fn produce_readings(dir: &std::path::Path, url: &str, input: &str, env: &[(&str, &str)]) {
    let schema = dir.join("reading.avsc");
    std::fs::write(&schema, READING_SCHEMA).expect("write the reading schema");
    let records = [
        serde_json::json!({"key": "s1", "value": {"sensor": "boiler", "celsius": 40.0, "at": 1_700_000_000_250_i64}}),
        serde_json::json!({"key": "s2", "value": {"sensor": "door", "celsius": 12.0, "at": 1_700_000_001_000_i64}}),
        serde_json::json!({"key": "s3", "value": {"sensor": "pump", "celsius": 35.0, "at": 1_700_000_002_999_i64}}),
    ];
    let lines: Vec<String> = records.iter().map(serde_json::Value::to_string).collect();
    let file = dir.join("readings.jsonl");
    std::fs::write(&file, lines.join("\n")).expect("write the readings");
    serdes_with_env(
        "avro",
        &[
            "produce",
            &crate::kafka_bootstrap(),
            url,
            input,
            schema.to_str().expect("a UTF-8 path"),
            file.to_str().expect("a UTF-8 path"),
        ],
        env,
        Duration::from_secs(120),
    );
}

/// Writes `dir/app.yaml`, the app of the TLS and basic-auth registry suites: Avro readings
/// ([`READING_SCHEMA`]) of `input` above 30 °C become alerts ([`ALERT_SCHEMA`]) in `output`, as
/// application `<app_prefix>-<unique>`, its registry given by `registry` (the lines under
/// `schemaRegistry:`, indented two spaces).
pub fn write_alerts_manifest(
    dir: &std::path::Path,
    app_prefix: &str,
    registry: &str,
    input: &str,
    output: &str,
) -> PathBuf {
    let text = format!(
        r#"
applicationId: {app}
bootstrapServers: {bootstrap}
defaultKeySerde: string
defaultValueSerde: avro
schemaRegistry:
{registry}
config:
  commit.interval.ms: "100"
topology:
  streams:
    - {{ name: readings, topic: {input} }}
  pipelines:
    - name: alerts
      from: readings
      steps:
        - filter: "value.celsius > 30.0"
        - mapValues: "{{'sensor': value.sensor, 'fahrenheit': value.celsius * 9.0 / 5.0 + 32.0, 'at': value.at}}"
        - to: {{ topic: {output}, valueSchema: '{ALERT_SCHEMA}' }}
"#,
        app = crate::unique_name(app_prefix),
        bootstrap = crate::kafka_bootstrap(),
    );
    let path = dir.join("app.yaml");
    std::fs::write(&path, text).expect("write manifest");
    path
}
