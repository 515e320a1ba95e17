//! The schema registry behind basic auth (scripts/registry.sh's basic-auth mode: Debian's nginx
//! with `auth_basic` and an htpasswd file in front of the http Apicurio, as deployments put an
//! authenticating proxy before a registry): an engine given the credentials through
//! `spec.schemaRegistry.basicAuth` (a Secret, as the operator mounts it) reads Avro written by
//! confluent-kafka's Python serializer (its client given `basic.auth.user.info`) and writes Avro
//! back through the proxy; an engine given a wrong password fails at once, with an error naming
//! the registry's URL, saying the credentials were refused and naming the settings that fix it,
//! and with no password in its log.
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use freshet_tests::confluent::{
    auth_registry, produce_readings, serdes_with_env, write_alerts_manifest,
};
use freshet_tests::engine::EngineProcess;
use freshet_tests::kafka::create_topics;
use freshet_tests::{kafka_bootstrap, unique_name};
use serde_json::{Value, json};

const PYTHON_DEADLINE: Duration = Duration::from_secs(120);

/// The manifest: a registry at `url` whose credentials are in the Secret `registry-creds`
/// (keys `username` and `password`, the defaults of `spec.schemaRegistry.basicAuth`).
fn manifest(dir: &Path, url: &str, input: &str, output: &str) -> PathBuf {
    let registry = format!("  url: {url}\n  basicAuth: {{ secretName: registry-creds }}");
    write_alerts_manifest(dir, "auth-registry", &registry, input, output)
}

/// The Secret `registry-creds` as the operator mounts it: `<secrets dir>/registry-creds/<key>`.
fn secrets_dir(dir: &Path, user: &str, password: &str) -> PathBuf {
    let secrets = dir.join("secrets");
    std::fs::create_dir_all(secrets.join("registry-creds")).unwrap();
    std::fs::write(secrets.join("registry-creds/username"), user).unwrap();
    std::fs::write(secrets.join("registry-creds/password"), password).unwrap();
    secrets
}

/// GET `url` with curl, the credentials (when given) in its config on stdin rather than on its
/// command line: the HTTP status and the body.
fn get(url: &str, user_info: Option<&str>) -> (u16, String) {
    let mut child = Command::new("curl")
        .args(["-s", "--max-time", "10", "-K", "-", "-w", "\n%{http_code}"])
        .arg(url)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("run curl");
    let config = user_info
        .map(|u| format!("user = \"{u}\"\n"))
        .unwrap_or_default();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(config.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, status) = text.rsplit_once('\n').unwrap_or(("", &text));
    (status.trim().parse().unwrap_or(0), body.to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn an_engine_with_the_secrets_credentials_reads_and_writes_avro_through_basic_auth() {
    let t0 = Instant::now();
    let (url, user, password) = auth_registry();
    let user_info = format!("{user}:{password}");
    // The proxy checks: without credentials the registry's API is refused, so a pass below
    // means the engine and the Python client sent the right ones.
    let (status, _) = get(&format!("{url}/subjects"), None);
    assert_eq!(status, 401, "{url} answers without credentials");
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (unique_name("auth-in"), unique_name("auth-out"));
    create_topics(&[(&input, 1), (&output, 1)]).await;
    produce_readings(
        dir.path(),
        &url,
        &input,
        &[("FRESHET_REGISTRY_USER_INFO", &user_info)],
    );
    let secrets = secrets_dir(dir.path(), &user, &password);
    let file = manifest(dir.path(), &url, &input, &output);
    let mut engine =
        EngineProcess::start(&file, &["--secrets-dir", secrets.to_str().unwrap()], &[]);
    engine.wait_ready(Duration::from_secs(60));
    let got: Vec<Value> = serdes_with_env(
        "avro",
        &["consume", &kafka_bootstrap(), &url, &output, "2", "60"],
        &[("FRESHET_REGISTRY_USER_INFO", &user_info)],
        PYTHON_DEADLINE,
    )
    .lines()
    .map(|l| serde_json::from_str(l).unwrap())
    .collect();
    engine.terminate(Duration::from_secs(30));
    let log = engine.log_text();
    let values: Vec<&Value> = got.iter().map(|r| &r["value"]).collect();
    assert_eq!(
        values,
        [
            &json!({"sensor": "boiler", "fahrenheit": 104.0, "at": 1_700_000_000_250_i64}),
            &json!({"sensor": "pump", "fahrenheit": 95.0, "at": 1_700_000_002_999_i64}),
        ],
        "engine log:\n{log}"
    );
    // The engine registered its schema through the proxy: the id in its records is the
    // subject's.
    let (status, body) = get(
        &format!("{url}/subjects/{output}-value/versions/latest"),
        Some(&user_info),
    );
    assert_eq!(status, 200, "GET the subject through the proxy: {body}");
    let latest: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(got[0]["schema_id"], latest["id"], "{latest}");
    assert!(
        !log.contains(&password),
        "the password is in the engine's log"
    );
    eprintln!("avro through the basic-auth registry in {:?}", t0.elapsed());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_engine_with_a_wrong_password_fails_at_once_naming_the_url_and_the_setting() {
    let (url, user, password) = auth_registry();
    let dir = tempfile::tempdir().unwrap();
    let (input, output) = (unique_name("auth-wrong-in"), unique_name("auth-wrong-out"));
    create_topics(&[(&input, 1), (&output, 1)]).await;
    produce_readings(
        dir.path(),
        &url,
        &input,
        &[("FRESHET_REGISTRY_USER_INFO", &format!("{user}:{password}"))],
    );
    // A password nginx's htpasswd does not hold, and distinct enough to search the log for.
    let wrong = format!("wrong-{}", unique_name("pw"));
    let secrets = secrets_dir(dir.path(), &user, &wrong);
    let file = manifest(dir.path(), &url, &input, &output);
    let started = Instant::now();
    let mut engine =
        EngineProcess::start(&file, &["--secrets-dir", secrets.to_str().unwrap()], &[]);
    // The first record's schema cannot be fetched: the deserialization handler's default
    // (log-and-fail) stops the engine, without retrying up to task.timeout.ms (5 minutes).
    let status = engine.wait(Duration::from_secs(90));
    let elapsed = started.elapsed();
    let log = engine.log_text();
    assert!(!status.success(), "the engine should fail: {log}");
    assert!(
        elapsed < Duration::from_secs(60),
        "refused credentials are not retried as an outage: {elapsed:?}"
    );
    let line = log
        .lines()
        .find(|l| l.contains("refused the credentials"))
        .unwrap_or_else(|| panic!("no error says the credentials were refused:\n{log}"));
    assert!(line.contains(&url), "names the registry URL: {line}");
    assert!(
        line.contains("basic.auth.user.info") && line.contains("spec.schemaRegistry.basicAuth"),
        "names the setting: {line}"
    );
    assert!(
        !log.contains("retrying"),
        "retried refused credentials:\n{log}"
    );
    // Neither password, nor the Authorization header that carries it.
    let header = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{wrong}"));
    for secret in [wrong.as_str(), password.as_str(), header.as_str()] {
        assert!(
            !log.contains(secret),
            "a secret is in the engine's log:\n{log}"
        );
    }
    // From the task's start to the error, by the log's clocks (the rest of `elapsed` is the
    // group's initial rebalance delay and the engine's linger after a failure).
    let at = |l: &str| l.get(11..26).map(str::to_owned).unwrap_or_default();
    let running = log
        .lines()
        .find(|l| l.contains("to=RUNNING"))
        .map(at)
        .unwrap_or_default();
    eprintln!(
        "the refused credentials stopped the engine in {elapsed:?} (task running at {running}, refused at {})",
        at(line)
    );
}
