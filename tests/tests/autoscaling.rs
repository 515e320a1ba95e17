//! The autoscaler end to end: a backlog scales a StreamsApp out while it waits, and the app
//! comes back to `minReplicas` after the drain, under both guarantees and with input written
//! by a plain or a transactional producer. The operator, the StatefulSet controller and the
//! test node run the pods; Kafka and the apiserver are real.
//!
//! Under exactly-once the repartition topic, and with a transactional upstream the input
//! topic, end in commit markers that no consumer commits past: the log-end minus committed
//! lag never reaches 0 there, which once held apps at their peak forever.
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use freshet_crds::StreamsApp;
use freshet_tests::apps::{
    WAIT, apply, counting_app, operator, read_counts, send_batch, wait_counts,
};
use freshet_tests::cluster::{install_crd, namespace};
use freshet_tests::engine::changelog_restores;
use freshet_tests::kafka::create_topics;
use freshet_tests::node::Node;
use freshet_tests::streams_groups::{describe_members, set_group_config};
use freshet_tests::{eventually, kube_client, unique_name};
use k8s_openapi::api::apps::v1::StatefulSet;
use kube::api::Api;

/// Shortened for the test: 2 s measurements over 10 s, a 4 s cooldown, 12 s of stabilisation.
const INTERVAL: Duration = Duration::from_secs(2);
const COOLDOWN: Duration = Duration::from_secs(4);
const STABILIZATION: Duration = Duration::from_secs(12);

/// Every value the StatefulSet's `spec.replicas` took, with when, polled every 200 ms.
#[derive(Clone, Default)]
struct ReplicaLog(Arc<Mutex<Vec<(Instant, i32)>>>);

impl ReplicaLog {
    fn watch(sets: Api<StatefulSet>) -> (Self, tokio::task::JoinHandle<()>) {
        let log = ReplicaLog::default();
        let writer = log.clone();
        let task = tokio::spawn(async move {
            loop {
                if let Some(r) = sets
                    .get("counter")
                    .await
                    .ok()
                    .and_then(|s| s.spec?.replicas)
                {
                    let mut values = writer.0.lock().expect("replica log");
                    if values.last().is_none_or(|(_, last)| *last != r) {
                        values.push((Instant::now(), r));
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        (log, task)
    }

    fn values(&self) -> Vec<(Instant, i32)> {
        self.0.lock().expect("replica log").clone()
    }

    /// How often the count turned from up to down or back.
    fn direction_changes(&self) -> usize {
        let steps: Vec<i32> = self
            .values()
            .windows(2)
            .map(|w| (w[1].1 - w[0].1).signum())
            .collect();
        steps.windows(2).filter(|w| w[0] != w[1]).count()
    }
}

/// A StreamsApp applied on a backlog of 300,000 records on 6 partitions (the issue's
/// scenario), counted per key through a repartition topic (`groupBy`), 2 threads per instance
/// so at most 3 instances hold work.
/// Which group the app's instances are members of.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Group {
    /// A classic group (the test app sets `session.timeout.ms`, so `auto` picks it).
    Classic,
    /// A streams group (`group.protocol: streams`) keeping a standby of each task.
    StreamsWithStandbys,
}

async fn burst_and_drain(guarantee: &str, transactional_input: bool, group: Group) {
    let client = kube_client().await;
    install_crd(&client).await;
    let ns = namespace(&client, "autoscale").await;
    let node = Node::start(client.clone(), &unique_name("node"), &[&ns]).await;
    let (input, output) = (unique_name("auto-in"), unique_name("auto-out"));
    create_topics(&[(&input, 6), (&output, 1)]).await;
    let mut op = operator(&ns);
    let apps: Api<StreamsApp> = Api::namespaced(client.clone(), &ns);
    let sets: Api<StatefulSet> = Api::namespaced(client.clone(), &ns);
    let extra = format!(
        "  numStreamThreads: 2\n  processingGuarantee: {guarantee}\n  autoscaling: {{ enabled: true, minReplicas: 1, maxReplicas: 8, metricsInterval: {}s, window: 10s, scaleDownStabilization: {}s, cooldown: {}s, catchUpDuration: 3s, maxLagPerReplica: 20000 }}",
        INTERVAL.as_secs(),
        STABILIZATION.as_secs(),
        COOLDOWN.as_secs()
    );
    // The backlog is there before the app: the operator's first measurement sees it waiting.
    let (keys, each) = (1000, 300);
    let burst = Instant::now();
    send_batch(&input, keys, each, transactional_input);
    let produced = burst.elapsed();
    let (replicas, watcher) = ReplicaLog::watch(sets.clone());
    let app_id = unique_name("auto-app");
    let mut app = counting_app(
        &app_id,
        &input,
        &output,
        &extra,
        "          - groupBy: \"key\"",
    );
    if group == Group::StreamsWithStandbys {
        set_group_config(&app_id, "streams.num.standby.replicas=1");
        app.spec.config.remove("session.timeout.ms");
        app.spec
            .config
            .insert("group.protocol".into(), "streams".into());
    }
    apply(&apps, app).await;
    tokio::task::block_in_place(|| wait_counts(&output, keys, each as i64));
    let drained = Instant::now();
    // What the instance that stays (counter-0) holds before the scale-down, and where its log
    // stands: the tasks it holds as active or standby need no restore from scratch.
    let before_scale_down = if group == Group::StreamsWithStandbys {
        let held: BTreeSet<String> = describe_members(&app_id)
            .into_iter()
            .filter(|m| {
                m.instance_id
                    .as_deref()
                    .is_some_and(|i| i.starts_with("counter-0-"))
            })
            .flat_map(|m| m.active.into_iter().chain(m.standby))
            .collect();
        Some((held, node.log(&ns, "counter-0").await.len()))
    } else {
        None
    };
    eventually(WAIT, "back to one replica", || async {
        let s = sets.get("counter").await.ok()?;
        (s.spec?.replicas == Some(1)).then_some(())
    })
    .await;
    let back = drained.elapsed();
    let values = replicas.values();
    let label = format!(
        "{guarantee}, {} input",
        if transactional_input {
            "transactional"
        } else {
            "plain"
        }
    );
    let shown: Vec<String> = values
        .iter()
        .map(|(t, r)| format!("{r}@{:.1}s", t.duration_since(burst).as_secs_f64()))
        .collect();
    println!(
        "{label}: {} records produced in {} ms, drained after {} ms, replicas {shown:?}, back to 1 {} ms after the drain",
        keys * each,
        produced.as_millis(),
        drained.duration_since(burst).as_millis(),
        back.as_millis()
    );
    let most = values.iter().map(|(_, r)| *r).max().unwrap_or(0);
    let status = apps.get("counter").await.ok().and_then(|a| a.status);
    assert!(
        (2..=3).contains(&most),
        "{label}: the StatefulSet went to {most} (expected up while the backlog waited, at most the cap of 3): {shown:?}\nstatus: {status:?}\noperator log:\n{}",
        op.log_text()
    );
    let first_up = values
        .iter()
        .find(|(_, r)| *r > 1)
        .map(|(t, _)| *t)
        .expect("scaled up");
    assert!(
        first_up < drained,
        "{label}: scaled up only after the backlog drained: {shown:?}"
    );
    let limit = COOLDOWN + STABILIZATION + 2 * INTERVAL;
    assert!(
        back <= limit,
        "{label}: back to 1 replica {back:?} after the drain, more than cooldown + stabilisation + 2 intervals ({limit:?}): {shown:?}\noperator log:\n{}",
        op.log_text()
    );
    assert!(
        replicas.direction_changes() <= 2,
        "{label}: flapped: {shown:?}"
    );
    // The status says what was measured: no records waiting, and the markers as raw lag.
    let status = eventually(WAIT, "status.autoscaling at 1 replica", || async {
        let a = apps.get("counter").await.ok()?.status?.autoscaling?;
        (a.desired_replicas == 1).then_some(a)
    })
    .await;
    assert_eq!(status.lag, 0, "{label}: {status:?}");
    let markers_expected = guarantee == "exactly_once_v2" || transactional_input;
    assert_eq!(
        status.raw_lag > 0,
        markers_expected,
        "{label}: raw lag {} (transaction markers expected: {markers_expected}): {status:?}",
        status.raw_lag
    );
    // Nothing lost or counted twice across the rescales.
    send_batch(&input, keys, 1, transactional_input);
    tokio::task::block_in_place(|| wait_counts(&output, keys, each as i64 + 1));
    let counts = read_counts(&output);
    let wrong: Vec<_> = counts
        .iter()
        .filter(|(_, n)| **n != each as i64 + 1)
        .take(5)
        .collect();
    assert!(
        counts.len() == keys && wrong.is_empty(),
        "{label}: counts not exact ({} keys; e.g. {wrong:?})",
        counts.len()
    );
    if let Some((held, log_from)) = before_scale_down {
        restored_only_without_standby(&node.log(&ns, "counter-0").await, log_from, &held, keys);
    }
    watcher.abort();
    op.kill();
    drop(node);
}

/// The count's tasks are those of sub-topology 1 (after the repartition by `groupBy`), task
/// `1_<p>` restoring partition `p` of the store's changelog. The survivor's log from `log_from`
/// on (the scale-down) must show next to no records restored for the tasks in `held` (those it
/// held as active or standby before): at most 5 % of the state of `keys` keys in all.
fn restored_only_without_standby(log: &str, log_from: usize, held: &BTreeSet<String>, keys: usize) {
    let after = log.get(log_from..).unwrap_or_default();
    let (mut from_standby, mut from_scratch) = (0usize, 0usize);
    for (partition, records) in changelog_restores(after) {
        if held.contains(&format!("1_{partition}")) {
            from_standby += records;
        } else {
            from_scratch += records;
        }
    }
    println!(
        "scale-down: the survivor restored {from_standby} records of tasks it held a standby (or the active) of, {from_scratch} of the others (held: {held:?})"
    );
    assert!(
        from_standby * 20 <= keys,
        "the survivor restored {from_standby} records of tasks it held standbys of (more than 5 % of {keys} keys):\n{after}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_least_once_plain_input_scales_out_and_back() {
    burst_and_drain("at_least_once", false, Group::Classic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn at_least_once_transactional_input_scales_out_and_back() {
    burst_and_drain("at_least_once", true, Group::Classic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_once_plain_input_scales_out_and_back() {
    burst_and_drain("exactly_once_v2", false, Group::Classic).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_once_transactional_input_scales_out_and_back() {
    burst_and_drain("exactly_once_v2", true, Group::Classic).await;
}

/// Under a streams group with a standby per task, the scale back to one instance hands the
/// survivor the tasks it held standbys of without a restore from scratch.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn exactly_once_streams_group_scales_back_onto_its_standbys() {
    burst_and_drain("exactly_once_v2", false, Group::StreamsWithStandbys).await;
}
