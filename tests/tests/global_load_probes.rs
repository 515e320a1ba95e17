//! While the engine loads its global tables (before any stream thread runs, which can take
//! minutes) it is alive and says why it is not ready: `/healthz` answers 200 at once, so a
//! liveness probe does not kill the pod, and `/readyz` answers 503 with a body saying it loads
//! global tables. Then it runs, and the join sees the table.
use std::time::{Duration, Instant};

use freshet_tests::engine::EngineProcess;
use freshet_tests::kafka::{consume, create_topics, key_values, produce, produce_configured};
use freshet_tests::{kafka_bootstrap, unique_name};

/// Records in the global table's topic, written in small batches, and the global consumer's
/// fetch size per partition: many small fetches make the load take seconds, long enough to
/// probe it (a fetch returns at least one whole batch, so the batches must be small too). 40,000
/// loaded in 0.94 s on an idle machine, under the second the probes need.
const TABLE_RECORDS: usize = 120_000;
const BATCH_BYTES: &str = "600";
const FETCH_BYTES: &str = "1024";

#[tokio::test(flavor = "multi_thread")]
async fn healthz_answers_and_readyz_says_loading_while_global_tables_load() {
    let (orders, products, output) = (
        unique_name("gl-orders"),
        unique_name("gl-products"),
        unique_name("gl-out"),
    );
    create_topics(&[(&orders, 1), (&products, 1), (&output, 1)]).await;
    let pad = "p".repeat(200);
    let owned: Vec<(Vec<u8>, Vec<u8>)> = (0..TABLE_RECORDS)
        .map(|i| {
            (
                format!("p{i}").into_bytes(),
                format!(r#"{{"name":"product {i}","pad":"{pad}"}}"#).into_bytes(),
            )
        })
        .collect();
    let records = key_values(&owned);
    // Many small requests in flight at once: order does not matter to a table of distinct keys,
    // and one request at a time would take minutes on a busy machine.
    produce_configured(
        &products,
        &records,
        0,
        &[],
        &[
            ("batch.size", BATCH_BYTES),
            ("enable.idempotence", "false"),
            ("max.in.flight.requests.per.connection", "1000"),
        ],
    );
    produce(
        &orders,
        &[(Some(b"o1"), Some(br#"{"product":"p39999"}"#))],
        TABLE_RECORDS as i64,
    );
    let manifest = format!(
        r#"
applicationId: {app}
bootstrapServers: {bootstrap}
defaultKeySerde: string
defaultValueSerde: json
config:
  commit.interval.ms: "100"
  global.consumer.fetch.message.max.bytes: "{FETCH_BYTES}"
topology:
  streams:
    - {{ name: orders, topic: {orders} }}
  globalTables:
    - {{ name: products, topic: {products} }}
  pipelines:
    - name: with-product
      from: orders
      steps:
        - join: {{ globalTable: products, key: "value.product", value: "{{'product': right.name}}" }}
        - to: {{ topic: {output} }}
"#,
        app = unique_name("gl-app"),
        bootstrap = kafka_bootstrap(),
    );
    let file = tempfile::Builder::new().suffix(".yaml").tempfile().unwrap();
    std::fs::write(file.path(), manifest).unwrap();
    let mut engine = EngineProcess::start(file.path(), &[], &[]);

    // Probe as the kubelet does until the engine runs: every /healthz answers 200, fast; some
    // /readyz, meanwhile, says the global tables are loading.
    let deadline = Instant::now() + Duration::from_secs(120);
    let (mut loading_seen, mut slowest_healthz) = (None, Duration::ZERO);
    loop {
        let asked = Instant::now();
        let health = engine.get("/healthz");
        let took = asked.elapsed();
        if let Some((code, body)) = &health {
            assert_eq!(*code, 200, "/healthz failed: {body}");
            slowest_healthz = slowest_healthz.max(took);
        }
        match engine.get("/readyz") {
            Some((200, _)) => break,
            Some((503, body)) if body.contains("loading global tables") => {
                assert!(
                    health.is_some(),
                    "/healthz did not answer while /readyz did"
                );
                let json: serde_json::Value = serde_json::from_str(&body).expect("/readyz is JSON");
                assert_eq!(json["state"], "REBALANCING", "{body}");
                loading_seen.get_or_insert(body);
            }
            _ => {}
        }
        if let Ok(Some(status)) = engine.child.try_wait() {
            panic!("engine exited with {status}; log:\n{}", engine.log_text());
        }
        assert!(
            Instant::now() < deadline,
            "engine not running after 120 s; log:\n{}",
            engine.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = engine.log_text();
    let load_seconds: f64 = log
        .lines()
        .find(|l| l.contains("global tables loaded"))
        .and_then(|l| l.split("seconds=").nth(1))
        .and_then(|s| {
            s.trim_matches(|c: char| !c.is_ascii_digit() && c != '.')
                .parse()
                .ok()
        })
        .unwrap_or_else(|| panic!("no load time in the log:\n{log}"));
    assert!(
        load_seconds >= 1.0,
        "the load took {load_seconds} s, too short to probe: raise TABLE_RECORDS"
    );
    let body = loading_seen.unwrap_or_else(|| {
        panic!("/readyz never said the global tables were loading ({load_seconds} s); log:\n{log}")
    });
    assert!(
        slowest_healthz < Duration::from_secs(1),
        "/healthz took {slowest_healthz:?} during the load"
    );
    println!(
        "global load {load_seconds} s; slowest /healthz {} ms; /readyz said: {}",
        slowest_healthz.as_millis(),
        body.trim()
    );
    let joined = consume(&output, 1, Duration::from_secs(30), Duration::ZERO);
    assert_eq!(joined[0].value_str(), r#"{"product":"product 39999"}"#);
    assert!(engine.terminate(Duration::from_secs(60)).success());
}
