//! The Processor API examples (`streams/examples/`) run against the real broker and do their job.
use std::process::{Command, Stdio};
use std::time::Duration;

use freshet_tests::kafka::{consume, create_topics, produce};
use freshet_tests::{kafka_bootstrap, unique_name};

/// An example binary built by `cargo build --workspace --all-targets`, run in the background.
fn example(name: &str, args: &[&str]) -> std::process::Child {
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(|d| d.parent())
        .unwrap()
        .join("examples")
        .join(name);
    assert!(
        bin.exists(),
        "{} not built: run `cargo build --workspace --all-targets`",
        bin.display()
    );
    Command::new(bin)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start example")
}

#[tokio::test(flavor = "multi_thread")]
async fn route_by_value_sends_each_order_to_its_priority_topic() {
    let (input, high, normal) = (
        unique_name("orders"),
        unique_name("orders-high"),
        unique_name("orders-normal"),
    );
    create_topics(&[(&input, 2), (&high, 1), (&normal, 1)]).await;
    produce(
        &input,
        &[
            (Some(b"o1"), Some(br#"{"priority":"high","id":1}"#)),
            (Some(b"o2"), Some(br#"{"priority":"low","id":2}"#)),
            (Some(b"o3"), Some(br#"{"id":3}"#)),
            (Some(b"o4"), Some(br#"{"priority":"high","id":4}"#)),
        ],
        1_000,
    );
    let bootstrap = kafka_bootstrap();
    let app = unique_name("route-by-value");
    let mut child = example(
        "route_by_value",
        &[
            "--bootstrap-servers",
            &bootstrap,
            "--application-id",
            &app,
            "--input",
            &input,
            "--high",
            &high,
            "--normal",
            &normal,
            "--max-seconds",
            "60",
        ],
    );
    let got_high = consume(
        &high,
        2,
        Duration::from_secs(60),
        Duration::from_millis(500),
    );
    let got_normal = consume(
        &normal,
        2,
        Duration::from_secs(60),
        Duration::from_millis(500),
    );
    let _ = child.kill();
    let _ = child.wait();
    let mut ids: Vec<&str> = got_high.iter().map(|r| r.key_str()).collect();
    ids.sort();
    assert_eq!(ids, ["o1", "o4"]);
    let mut ids: Vec<&str> = got_normal.iter().map(|r| r.key_str()).collect();
    ids.sort();
    assert_eq!(ids, ["o2", "o3"]);
    assert_eq!(
        got_high
            .iter()
            .find(|r| r.key_str() == "o1")
            .unwrap()
            .value_str(),
        r#"{"id":1,"priority":"high"}"#
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn fixed_interval_emits_counts_on_the_wall_clock() {
    let (input, output) = (unique_name("clicks"), unique_name("click-counts"));
    create_topics(&[(&input, 1), (&output, 1)]).await;
    let bootstrap = kafka_bootstrap();
    let app = unique_name("fixed-interval");
    let mut child = example(
        "fixed_interval",
        &[
            "--bootstrap-servers",
            &bootstrap,
            "--application-id",
            &app,
            "--input",
            &input,
            "--output",
            &output,
            "--interval-ms",
            "500",
            "--max-seconds",
            "60",
        ],
    );
    let records: Vec<(&[u8], &[u8])> = vec![(b"a", b"x"), (b"b", b"x"), (b"a", b"x"), (b"a", b"x")];
    let refs: Vec<_> = records.iter().map(|(k, v)| (Some(*k), Some(*v))).collect();
    produce(&input, &refs, 1_000);
    // No record arrives afterwards: only a wall-clock punctuation can emit the counts.
    let got = consume(
        &output,
        2,
        Duration::from_secs(60),
        Duration::from_millis(1500),
    );
    let _ = child.kill();
    let _ = child.wait();
    let mut counts: Vec<(String, i64)> = got
        .iter()
        .map(|r| {
            (
                r.key_str().to_owned(),
                i64::from_be_bytes(r.value.clone().unwrap().try_into().unwrap()),
            )
        })
        .collect();
    counts.sort();
    assert_eq!(
        counts,
        [("a".to_owned(), 3), ("b".to_owned(), 1)],
        "each count emitted once, then reset"
    );
}
