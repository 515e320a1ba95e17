//! The autoscaler under a steady input above one instance's capacity: it settles on a count
//! that keeps up and holds it, without flapping, for five minutes
//! (`FRESHET_AUTOSCALE_STEADY_SECS` changes how long). Its own test binary, so no other test
//! shares the CPU with it: the engine is throttled by a CPU-heavy expression, and one
//! instance's capacity is measured first, on this machine, so the input is sized from it.
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use freshet_crds::StreamsApp;
use freshet_tests::apps::{
    WAIT, apply, counting_app, operator, read_counts, ready_pods, wait_counts,
};
use freshet_tests::cluster::{install_crd, namespace};
use freshet_tests::kafka::{create_topics, key_values, produce};
use freshet_tests::node::Node;
use freshet_tests::{eventually, kube_client, unique_name};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Pod;
use kube::api::Api;

/// A filter that keeps every record after 512 multiplications (to make the engine, not the
/// broker, the bottleneck: about a millisecond a record), then a count by key.
const STEPS: &str = r#"          - filter: "[0,1,2,3,4,5,6,7].map(a, [0,1,2,3,4,5,6,7].map(b, [0,1,2,3,4,5,6,7].map(c, a * b * c).size()).size()).size() == 8"
          - groupByKey: {}"#;
const KEYS: usize = 100;
/// Each instance's `resources.limits.cpu`.
const CPU_LIMIT: &str = "250m";

/// Records number `range` of the input: record i has key `k{i % KEYS}`.
fn send_records(topic: &str, range: std::ops::Range<usize>) {
    let owned: Vec<(Vec<u8>, Vec<u8>)> = range
        .map(|i| (format!("k{}", i % KEYS).into_bytes(), b"v".to_vec()))
        .collect();
    let refs = key_values(&owned);
    produce(topic, &refs, 0);
}

/// Records `k0`… in turn, `per_second` of them, in 100 ms ticks, until `stop`; `sent` counts.
fn steady_input(
    topic: String,
    per_second: usize,
    stop: Arc<AtomicBool>,
    sent: Arc<AtomicUsize>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let started = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let due = (started.elapsed().as_secs_f64() * per_second as f64) as usize;
            let from = sent.load(Ordering::Relaxed);
            if due > from {
                send_records(&topic, from..due);
                sent.store(due, Ordering::Relaxed);
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
}

/// Records/s one instance counted while the backlog of `backlog` records (sent at `sent`) waited:
/// from a tenth of it counted to all of it, so start-up and the last poll do not count. When one
/// poll (a slow read on a busy machine) saw it go from under a tenth to all of it, from `sent`.
fn drain_rate(output: &str, backlog: usize, sent: Instant) -> f64 {
    let deadline = Instant::now() + WAIT;
    let mut from: Option<(Instant, i64)> = None;
    loop {
        let counted: i64 = read_counts(output).values().sum();
        let now = Instant::now();
        if from.is_none() && counted >= (backlog / 10) as i64 && counted < backlog as i64 {
            from = Some((now, counted));
        }
        if counted >= backlog as i64 {
            let (start, at_start) = from.unwrap_or((sent, 0));
            let seconds = now.duration_since(start).as_secs_f64().max(0.001);
            return (counted - at_start) as f64 / seconds;
        }
        assert!(
            now < deadline,
            "the backlog was not counted: {counted} of {backlog}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn app(app_id: &str, input: &str, output: &str, autoscaling: bool) -> StreamsApp {
    let mut extra = format!("  resources: {{ limits: {{ cpu: {CPU_LIMIT} }} }}");
    if autoscaling {
        extra.push_str("\n  autoscaling: { enabled: true, minReplicas: 1, maxReplicas: 4, metricsInterval: 2s, window: 20s, scaleDownStabilization: 30s, cooldown: 10s, catchUpDuration: 30s, maxLagPerReplica: 1000000 }");
    }
    counting_app(app_id, input, output, &extra, STEPS)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn steady_input_above_one_instance_settles_without_flapping() {
    let observe = Duration::from_secs(
        std::env::var("FRESHET_AUTOSCALE_STEADY_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(300),
    );
    let client = kube_client().await;
    install_crd(&client).await;
    let ns = namespace(&client, "steady").await;
    let node = Node::start(client.clone(), &unique_name("node"), &[&ns]).await;
    let (input, output) = (unique_name("steady-in"), unique_name("steady-out"));
    create_topics(&[(&input, 6), (&output, 1)]).await;
    let mut op = operator(&ns);
    let apps: Api<StreamsApp> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    let app_id = unique_name("steady-app");

    // One instance's capacity on this machine: a backlog drained by one pod.
    apply(&apps, app(&app_id, &input, &output, false)).await;
    eventually(WAIT, "one pod ready", || async {
        (ready_pods(&pods).await == 1).then_some(())
    })
    .await;
    let backlog = 6_000;
    let sent = Arc::new(AtomicUsize::new(backlog));
    let sent_at = Instant::now();
    send_records(&input, 0..backlog);
    let one = tokio::task::block_in_place(|| drain_rate(&output, backlog, sent_at));
    // 1.25 times what one instance does: more than one can take, less than two take.
    let rate = (one * 1.25) as usize;
    println!("one instance: {one:.0} records/s; steady input {rate}/s");

    // Autoscaling on, under the steady input.
    let stop = Arc::new(AtomicBool::new(false));
    let producer = steady_input(input.clone(), rate, stop.clone(), sent.clone());
    apply(&apps, app(&app_id, &input, &output, true)).await;
    let replicas = || async {
        sets.get("counter")
            .await
            .ok()
            .and_then(|s| s.spec?.replicas)
            .unwrap_or(0)
    };
    let autoscaling_status = || async {
        apps.get("counter")
            .await
            .ok()
            .and_then(|a| a.status?.autoscaling)
    };
    // Settled: no change for 40 s (past the cooldown and the stabilisation window).
    let settle_deadline = Instant::now() + Duration::from_secs(240);
    let (mut current, mut since) = (replicas().await, Instant::now());
    let mut history = vec![current];
    while since.elapsed() < Duration::from_secs(40) {
        assert!(
            Instant::now() < settle_deadline,
            "never settled: {history:?}\noperator log:\n{}",
            op.log_text()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        let r = replicas().await;
        if r != current {
            (current, since) = (r, Instant::now());
            history.push(r);
            if let Some(a) = autoscaling_status().await {
                println!("  to {r}: {}", a.reason);
            }
        }
    }
    println!("settled at {current} replicas (history {history:?})");

    let status = autoscaling_status().await;
    assert!(
        current > 1,
        "stayed at one instance under 1.25 times its capacity: {history:?}; {status:?}\noperator log:\n{}",
        op.log_text()
    );
    // Then no change, and the lag stays bounded, for `observe`.
    let watched = Instant::now();
    let mut most_lag = 0;
    while watched.elapsed() < observe {
        tokio::time::sleep(Duration::from_secs(2)).await;
        let r = replicas().await;
        if r != current {
            let why = autoscaling_status().await;
            panic!(
                "flapped {} s into the steady state: {history:?} then {r}; autoscaling status: {why:?}\noperator log:\n{}",
                watched.elapsed().as_secs(),
                op.log_text()
            );
        }
        if let Some(a) = autoscaling_status().await {
            most_lag = most_lag.max(a.lag);
            assert!(
                a.lag < (rate * 20) as i64,
                "not keeping up at {current} replicas: lag {} ({a:?})",
                a.lag
            );
        }
    }
    stop.store(true, Ordering::Relaxed);
    producer.join().expect("producer");
    let total = sent.load(Ordering::Relaxed);
    println!(
        "{current} replicas held for {} s under {rate}/s; most lag seen {most_lag}; {total} records",
        observe.as_secs()
    );
    // Everything sent was counted (at least once).
    tokio::task::block_in_place(|| wait_counts(&output, KEYS, (total / KEYS) as i64));
    op.kill();
    drop(node);
}
