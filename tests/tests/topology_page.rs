//! The engine's `/topology` page in a real browser (Debian's `chromium`, headless; another binary
//! with `FRESHET_CHROMIUM`): for every example app the page, read back as the DOM the browser
//! built, draws every processor, source, sink and store `describe.txt` lists; while records flow
//! through one, the rates it shows change; a screenshot of each is saved with the test output
//! (`target/tmp/topology-page/<example>.png`). The machine forms stay at `?format=`.
use std::collections::BTreeSet;
use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use freshet_tests::engine::EngineProcess;
use freshet_tests::kafka::{produce, recreate_topics};
use freshet_tests::{repo_root, unique_name};

fn chromium() -> String {
    std::env::var("FRESHET_CHROMIUM").unwrap_or_else(|_| "chromium".into())
}

/// Runs headless Chromium on `url` with `extra` (e.g. `--dump-dom`) after `budget_ms` of
/// virtual time (the page's script runs, fetches and refreshes meanwhile); its stdout.
fn browse(url: &str, extra: &[&str], budget_ms: u64) -> String {
    let profile = tempfile::tempdir().expect("profile dir");
    let out = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--window-size=1600,1200",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("--virtual-time-budget={budget_ms}"))
        .args(extra)
        .arg(url)
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run {}: {e}; install Debian's chromium (make deps) or set FRESHET_CHROMIUM",
                chromium()
            )
        });
    assert!(
        out.status.success(),
        "chromium {url}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Sources, processors, sinks and stores `describe.txt` names.
fn described(text: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let (mut nodes, mut stores) = (BTreeSet::new(), BTreeSet::new());
    for line in text.lines().map(str::trim) {
        for kind in ["Source: ", "Processor: ", "Sink: "] {
            if let Some(rest) = line.strip_prefix(kind) {
                let name = rest.split(" (").next().unwrap_or_default();
                nodes.insert(name.to_owned());
                if let Some(s) = rest.split("(stores: [").nth(1) {
                    for store in s
                        .trim_end_matches("])")
                        .split(", ")
                        .filter(|s| !s.is_empty())
                    {
                        stores.insert(store.to_owned());
                    }
                }
            }
        }
    }
    (nodes, stores)
}

/// The values of attribute `attr` in `dom`.
fn attribute_values(dom: &str, attr: &str) -> BTreeSet<String> {
    dom.split(&format!("{attr}=\""))
        .skip(1)
        .filter_map(|s| s.split('"').next())
        .map(|s| s.replace("&amp;", "&"))
        .collect()
}

/// Each drawn node's rate text, by node name.
fn node_rates(dom: &str) -> Vec<(String, String)> {
    dom.split("<g class=\"node\"")
        .skip(1)
        .filter_map(|g| {
            let name = g.split("data-node=\"").nth(1)?.split('"').next()?;
            let rate = g.split("class=\"rate\">").nth(1)?.split('<').next()?;
            Some((name.to_owned(), rate.to_owned()))
        })
        .collect()
}

fn output_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("topology-page");
    std::fs::create_dir_all(&dir).expect("output dir");
    dir
}

/// Starts example `name` (its topics made first, one partition each), checks its page against
/// `describe.txt`, saves a screenshot; returns the engine, running.
async fn open_example(name: &str) -> EngineProcess {
    let dir = repo_root().join("examples").join(name);
    let app = std::fs::read_to_string(dir.join("app.yaml")).expect("app.yaml");
    let manifest: serde_json::Value = serde_yaml_ng::from_str(&app).expect("app.yaml is YAML");
    // Every topic the manifest names and the example's expected output reads.
    fn topics_in(v: &serde_json::Value, out: &mut BTreeSet<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    match (k.as_str(), v.as_str()) {
                        ("topic", Some(t)) => {
                            out.insert(t.to_owned());
                        }
                        _ => topics_in(v, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| topics_in(v, out)),
            _ => {}
        }
    }
    let mut topics = BTreeSet::new();
    topics_in(&manifest, &mut topics);
    for line in std::fs::read_to_string(dir.join("expected.jsonl"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
    {
        if let Some(t) = line["topic"].as_str() {
            topics.insert(t.to_owned());
        }
    }
    let topics: Vec<&str> = topics.iter().map(String::as_str).collect();
    recreate_topics(&topics, 1).await;
    let bootstrap = freshet_tests::kafka_bootstrap();
    let mut engine = EngineProcess::start(
        &dir.join("app.yaml"),
        &[
            "--bootstrap-servers",
            &bootstrap,
            "--application-id",
            &unique_name(name),
        ],
        &[],
    );
    engine.wait_ready(Duration::from_secs(60));
    let url = format!("http://127.0.0.1:{}/topology", engine.http_port);
    let dom = browse(&url, &["--dump-dom"], 3_000);
    let (nodes, stores) =
        described(&std::fs::read_to_string(dir.join("describe.txt")).expect("describe.txt"));
    assert!(!nodes.is_empty(), "{name}: describe.txt lists no node");
    let drawn = attribute_values(&dom, "data-node");
    let missing: Vec<&String> = nodes.difference(&drawn).collect();
    assert!(missing.is_empty(), "{name}: not drawn: {missing:?}\n{dom}");
    let drawn_stores = attribute_values(&dom, "data-store");
    let missing: Vec<&String> = stores.difference(&drawn_stores).collect();
    assert!(
        missing.is_empty(),
        "{name}: stores not drawn: {missing:?}\n{dom}"
    );
    assert!(
        dom.contains("data-refreshes=\""),
        "{name}: the page never read its data:\n{dom}"
    );
    let shot = output_dir().join(format!("{name}.png"));
    browse(&url, &[&format!("--screenshot={}", shot.display())], 3_000);
    assert!(
        std::fs::metadata(&shot)
            .map(|m| m.len() > 1_000)
            .unwrap_or(false),
        "{name}: no screenshot at {}",
        shot.display()
    );
    println!(
        "{name}: {} nodes, {} stores drawn; screenshot {}",
        nodes.len(),
        stores.len(),
        shot.display()
    );
    engine
}

#[tokio::test(flavor = "multi_thread")]
async fn the_page_draws_every_example_and_its_rates_move_while_records_flow() {
    for name in [
        "route-by-type",
        "enriched-orders",
        "orders-with-product",
        "per-customer-10m",
    ] {
        let mut engine = open_example(name).await;
        engine.kill();
    }

    // branch-by-region, with records flowing: the rates the page shows move, node by node (the
    // branches see only their region's share of what the source reads).
    let name = "branch-by-region";
    let mut engine = open_example(name).await;
    let input =
        std::fs::read_to_string(repo_root().join("examples").join(name).join("input.jsonl"))
            .expect("input.jsonl");
    let lines: Vec<serde_json::Value> = input
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).expect("input line"))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let sender = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut round = 0u64;
            while !stop.load(Ordering::Relaxed) {
                round += 1;
                // Bursts of varying size, so successive rates differ; every region in each, in
                // one batch.
                let burst = (round % 4 + 1) * 20;
                let values: Vec<(Option<&[u8]>, Vec<u8>)> = lines
                    .iter()
                    .map(|l| {
                        (
                            l["key"].as_str().map(str::as_bytes),
                            l["value"].to_string().into_bytes(),
                        )
                    })
                    .collect();
                let records: Vec<freshet_tests::kafka::KeyValue<'_>> = (0..burst)
                    .flat_map(|_| values.iter().map(|(k, v)| (*k, Some(v.as_slice()))))
                    .collect();
                produce("branch-orders", &records, 1_000);
                std::thread::sleep(Duration::from_millis(300));
            }
        })
    };
    let url = format!("http://127.0.0.1:{}/topology", engine.http_port);
    let mut seen: Vec<Vec<(String, String)>> = Vec::new();
    for _ in 0..3 {
        let dom = browse(&url, &["--dump-dom"], 3_000);
        seen.push(node_rates(&dom));
    }
    stop.store(true, Ordering::Relaxed);
    sender.join().expect("sender");
    let moving = seen.iter().flatten().any(|(_, r)| {
        r.split(' ')
            .next()
            .and_then(|v| v.parse::<f64>().ok())
            .is_some_and(|v| v > 0.0)
    });
    assert!(moving, "no rate above zero while records flow: {seen:?}");
    assert!(
        seen.windows(2).any(|w| w[0] != w[1]),
        "the rates did not change between three reads: {seen:?}"
    );
    let value = |rates: &[(String, String)], node: &str| {
        rates
            .iter()
            .find(|(n, _)| n == node)
            .and_then(|(_, r)| r.split(' ').next()?.parse::<f64>().ok())
    };
    assert!(
        seen.iter().any(|rates| {
            let source = value(rates, "KSTREAM-SOURCE-0000000000");
            let eu = value(rates, "by-region-eu");
            matches!((source, eu), (Some(s), Some(e)) if s > 0.0 && e > 0.0 && e < s)
        }),
        "a branch's rate is not its own share of the source's: {seen:?}"
    );
    println!("rates read: {seen:?}");

    // The machine forms are still there.
    for (format, marker) in [
        ("text", "Topologies:"),
        ("dot", "digraph topology"),
        ("mermaid", "flowchart LR"),
        ("json", "\"subtopologies\""),
    ] {
        let (status, body) = engine
            .get(&format!("/topology?format={format}"))
            .expect("answer");
        assert_eq!(status, 200, "{format}: {body}");
        assert!(body.contains(marker), "{format}: {body}");
    }
    let (status, body) = engine.get("/topology").expect("answer");
    assert!(
        status == 200 && body.starts_with("Topologies:"),
        "without Accept: text/html the text form: {body}"
    );
    let (status, body) = engine.get("/topology?format=svg").expect("answer");
    assert!(
        status == 400 && body.contains("text, dot, mermaid or json"),
        "{status} {body}"
    );
    engine.kill();
}
